//! The bearer tokens a shared registry accepts (`registry token add | list | revoke`): each a
//! name, a role (`read`, `write`, `admin`) and optionally the scopes it is limited to, kept in a
//! tokens file as a hash, never as the token.
//!
//! **The secret.** `reg_` and 64 hexadecimal digits: 32 bytes from the operating system's
//! generator (`getrandom`), shown once by `token add` and never again.
//!
//! **The hash.** BLAKE3 of the whole token, unsalted and fast. A password needs a slow, salted
//! hash because people choose guessable ones; a token of 256 random bits cannot be guessed or
//! found in a table, so a fast hash loses nothing and lets a server check a request in
//! microseconds (as code hosts store their access tokens). A presented token is hashed and looked
//! up by its hash, so no comparison runs on secret bytes.
//!
//! **The file.** JSON (`tokens.json` in the data directory unless `[serve] tokens_file` says
//! otherwise: the data directory is never committed), rewritten whole through a temporary file
//! and a rename, readable and writable by its owner only.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use registry_core::{ContentHash, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::{Error, io_reason};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read entries, history, exports, stats.
    Read,
    /// And register, update, import, retire.
    Write,
    /// And purge, audit, tokens.
    Admin,
}

impl Role {
    /// Parses `read`, `write` or `admin`.
    ///
    /// # Errors
    /// Any other word, named with the three.
    pub fn parse(s: &str) -> Result<Role, Error> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            other => Err(Error::input(format!(
                "role `{other}` is not read, write or admin"
            ))),
        }
    }

    /// `read`, `write` or `admin`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `needed` allows.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

/// One token as the file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub name: String,
    pub role: Role,
    /// The scopes it may touch (schema spelling); empty for every scope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// BLAKE3 of the token.
    pub hash: ContentHash,
    pub created_at: Timestamp,
}

impl Token {
    /// Whether the token may touch an entry of `scope`.
    pub fn covers(&self, scope: &str) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|s| s.eq_ignore_ascii_case(scope))
    }
}

/// The tokens file, read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tokens {
    tokens: Vec<Token>,
}

/// The prefix of every token: it makes one recognisable to secret scanners and to a person.
pub const TOKEN_PREFIX: &str = "reg_";

/// The longest token name.
const MAX_NAME: usize = 64;

/// 256 random bits from the operating system, as 64 hex digits: a token's secret, a session's
/// id. `what` names the use in the error.
///
/// # Errors
/// The operating system gives no random bytes.
pub fn random_hex(what: &str) -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::config(format!("no random bytes for {what}: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Tokens {
    /// Reads the tokens file at `path`; none when it does not exist.
    ///
    /// # Errors
    /// The file cannot be read, or is not a tokens file (named, with why).
    pub fn load(path: &Path) -> Result<Tokens, Error> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Tokens::default()),
            Err(e) => {
                return Err(Error::config(format!(
                    "cannot read the tokens file {}: {}",
                    path.display(),
                    io_reason(&e)
                )));
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::config(format!(
                "the tokens file {} is not readable: {e}",
                path.display()
            ))
        })
    }

    /// Every token, in the order added.
    pub fn all(&self) -> &[Token] {
        &self.tokens
    }

    /// Adds a token named `name` and returns its secret, which is kept nowhere.
    ///
    /// # Errors
    /// A name that is empty, too long, not letters, digits, `_`, `.` and `-`, or taken; or no
    /// random bytes from the operating system.
    pub fn add(&mut self, name: &str, role: Role, scopes: Vec<String>) -> Result<String, Error> {
        if name.is_empty()
            || name.len() > MAX_NAME
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(Error::input(format!(
                "token name `{name}`: use 1 to {MAX_NAME} letters, digits, `_`, `.` and `-`"
            )));
        }
        if self.tokens.iter().any(|t| t.name == name) {
            return Err(Error::input(format!(
                "a token named `{name}` exists: revoke it first, or choose another name"
            )));
        }
        let secret = format!("{TOKEN_PREFIX}{}", random_hex("a token")?);
        let scopes: BTreeSet<String> = scopes.into_iter().collect();
        self.tokens.push(Token {
            name: name.to_owned(),
            role,
            scopes: scopes.into_iter().collect(),
            hash: hash(&secret),
            created_at: Timestamp::now(),
        });
        Ok(secret)
    }

    /// Removes the token named `name`; whether there was one.
    pub fn revoke(&mut self, name: &str) -> bool {
        let before = self.tokens.len();
        self.tokens.retain(|t| t.name != name);
        self.tokens.len() != before
    }

    /// The token a presented secret is, if any.
    pub fn verify(&self, secret: &str) -> Option<&Token> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return None;
        }
        let h = hash(secret);
        self.tokens.iter().find(|t| t.hash == h)
    }

    /// Writes the file whole: a temporary file beside it, synced, then renamed over it; only
    /// its owner may read or write it.
    ///
    /// # Errors
    /// The directory cannot be made or written.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let fail = |doing: &str, e: &std::io::Error| {
            Error::config(format!(
                "cannot {doing} the tokens file {}: {}",
                path.display(),
                io_reason(e)
            ))
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(|e| fail("make the directory of", &e))?;
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::config(format!("cannot write the tokens file: {e}")))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| fail("write", &e))?;
        set_private(tmp.as_file()).map_err(|e| fail("protect", &e))?;
        tmp.write_all(&json)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| fail("write", &e))?;
        tmp.persist(path).map_err(|e| fail("replace", &e.error))?;
        Ok(())
    }
}

/// The hash a token is kept as.
fn hash(secret: &str) -> ContentHash {
    ContentHash(*blake3::hash(secret.as_bytes()).as_bytes())
}

#[cfg(unix)]
fn set_private(file: &fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_private(_: &fs::File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_kept_as_its_hash_and_found_by_its_secret_only() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("tokens.json");
        let mut tokens = Tokens::load(&path).expect("none yet");
        let secret = tokens
            .add("ci", Role::Write, vec!["SEC".into(), "SEC".into()])
            .expect("added");
        assert!(secret.starts_with("reg_") && secret.len() == 68, "{secret}");
        tokens.save(&path).expect("saved");
        let text = fs::read_to_string(&path).expect("reads");
        assert!(
            !text.contains(&secret[4..]),
            "the secret is not kept: {text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = Tokens::load(&path).expect("loads");
        let found = again.verify(&secret).expect("the secret finds it");
        assert_eq!((found.name.as_str(), found.role), ("ci", Role::Write));
        assert_eq!(found.scopes, ["SEC"]);
        assert!(found.covers("sec") && !found.covers("OPS"));
        let mut wrong = secret.clone();
        wrong.pop();
        wrong.push(if secret.ends_with('0') { '1' } else { '0' });
        assert!(again.verify(&wrong).is_none());
        assert!(
            again.verify(&secret[4..]).is_none(),
            "the prefix is part of it"
        );
    }

    #[test]
    fn names_are_checked_unique_and_revoked() {
        let mut tokens = Tokens::default();
        let first = tokens.add("alice", Role::Admin, vec![]).expect("added");
        let second = tokens.add("bob", Role::Read, vec![]).expect("added");
        assert_ne!(first, second, "each secret is new");
        for (name, want) in [
            ("alice", "a token named `alice` exists"),
            ("", "use 1 to 64"),
            ("a b", "use 1 to 64"),
        ] {
            let e = tokens.add(name, Role::Read, vec![]).expect_err("refused");
            assert!(e.to_string().contains(want), "{e}");
        }
        assert!(tokens.revoke("alice"));
        assert!(!tokens.revoke("alice"));
        assert!(tokens.verify(&first).is_none());
        assert_eq!(tokens.verify(&second).map(|t| t.role), Some(Role::Read));
        assert!(Role::Admin.allows(Role::Write) && !Role::Read.allows(Role::Write));
        assert!(Role::parse("owner").is_err());
    }
}
