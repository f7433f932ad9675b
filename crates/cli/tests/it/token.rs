//! `registry token add | list | revoke`: a token is shown once and kept as its hash, in a file
//! only its owner may read, inside a data directory kept out of version control.

use crate::Scratch;

#[test]
fn a_token_is_shown_once_kept_as_a_hash_and_revoked() {
    let s = Scratch::new();
    let added = s.json(&["token", "add", "ci", "--role", "write", "--scope", "sec"]);
    let secret = added["token"].as_str().expect("the token").to_owned();
    assert!(secret.starts_with("reg_") && secret.len() == 68, "{secret}");
    let file = s.data_dir().join("tokens.json");
    let kept = std::fs::read_to_string(&file).expect("the tokens file");
    assert!(!kept.contains(&secret[4..]), "only a hash is kept: {kept}");
    assert!(s.data_dir().join(".gitignore").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let listed = s.json(&["token", "list"]);
    assert_eq!(listed[0]["name"], "ci");
    assert_eq!(listed[0]["role"], "write");
    assert_eq!(listed[0]["scopes"], serde_json::json!(["SEC"]));
    assert!(!listed.to_string().contains(&secret[4..]), "{listed}");

    for (args, want) in [
        (
            &["token", "add", "ci", "--role", "read"][..],
            "a token named `ci` exists",
        ),
        (
            &["token", "add", "x", "--role", "owner"][..],
            "role `owner` is not read, write or admin",
        ),
        (
            &["token", "add", "x", "--role", "read", "--scope", "NOPE"][..],
            "scope `NOPE` is not one of",
        ),
        (
            &["token", "add", "a b", "--role", "read"][..],
            "use 1 to 64 letters",
        ),
        (
            &["token", "revoke", "nobody"][..],
            "no token named `nobody`",
        ),
    ] {
        let (code, message) = s.fail(args);
        assert_eq!(code, 1, "{args:?}: {message}");
        assert!(message.contains(want), "{args:?}: {message}");
    }
    s.ok(&["token", "revoke", "ci"]);
    assert_eq!(s.json(&["token", "list"]), serde_json::json!([]));
}

#[test]
fn the_serve_table_names_the_tokens_file_and_refuses_what_it_cannot_use() {
    let s = Scratch::new();
    s.write(
        "registry.toml",
        "[serve]\ntokens_file = \"secrets/tokens.json\"\n",
    );
    s.ok(&["token", "add", "ops", "--role", "admin"]);
    assert!(s.path().join("secrets/tokens.json").is_file());
    s.write("registry.toml", "[serve]\nlisten = \"everywhere\"\n");
    let (code, message) = s.fail(&["token", "list"]);
    assert_eq!(code, 2, "{message}");
    assert!(
        message.contains("serve.listen = \"everywhere\" is not an address"),
        "{message}"
    );
    // A repository's untrusted file may not point the tokens file outside its directory.
    let u = Scratch::untrusted();
    u.write(
        "registry.toml",
        "[serve]\ntokens_file = \"/tmp/elsewhere.json\"\n",
    );
    let (code, message) = u.fail(&["token", "list"]);
    assert_eq!(code, 2, "{message}");
    assert!(message.contains("serve.tokens_file"), "{message}");
}
