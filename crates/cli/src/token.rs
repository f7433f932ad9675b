//! `registry token add | list | revoke`: the bearer tokens a shared registry accepts
//! ([`registry_host::tokens`]), kept as hashes in the tokens file (`[serve] tokens_file`,
//! `tokens.json` in the data directory by default; `--file` names another).

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use registry_core::Field;
use registry_host::tokens::{Role, Tokens};

use crate::config::Settings;
use crate::{CliError, Format, FormatArg, output};

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
    /// The tokens file [default: `[serve] tokens_file`, else tokens.json in the data directory]
    #[arg(long, value_name = "PATH", global = true)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it, once: only its hash is kept
    Add(AddArgs),
    /// The tokens: name, role, scopes, when made (never the secrets)
    List(FormatArg),
    /// Remove a token: requests bearing it are refused from then on
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// A name for whoever holds it (letters, digits, `_`, `.`, `-`)
    pub name: String,
    /// What it may do: read, write (and read), admin (and everything)
    #[arg(long)]
    pub role: String,
    /// Limit it to this scope (repeatable; by default every scope)
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    pub name: String,
    #[command(flatten)]
    pub format: FormatArg,
}

/// Runs `registry token …`.
///
/// # Errors
/// A bad name, role or scope, a name taken or unknown (exit 1); a tokens file that cannot be
/// read or written (exit 2).
pub fn run(args: TokenArgs, settings: &Settings) -> Result<(), CliError> {
    // A data directory made here is kept out of version control, as every command does.
    let path = args
        .file
        .unwrap_or_else(|| settings.serve.tokens_file.clone());
    let new_data_dir = path.starts_with(&settings.data_dir) && !settings.data_dir.exists();
    let mut tokens = Tokens::load(&path)?;
    let save = |tokens: &Tokens| -> Result<(), CliError> {
        tokens.save(&path)?;
        if new_data_dir
            && let Err(warning) = registry_host::registry::ignore_data_dir(&settings.data_dir)
        {
            output::warnings(&[warning]);
        }
        Ok(())
    };
    match args.command {
        TokenCommand::Add(add) => {
            let role = Role::parse(&add.role)?;
            let mut scopes = Vec::with_capacity(add.scopes.len());
            for scope in &add.scopes {
                let known = settings
                    .schema
                    .canonical(Field::Scope, scope)
                    .ok_or_else(|| {
                        CliError::input(format!(
                            "scope `{scope}` is not one of the schema's ({})",
                            settings.schema.allowed(Field::Scope).join(", ")
                        ))
                    })?;
                scopes.push(known.to_owned());
            }
            let secret = tokens.add(&add.name, role, scopes)?;
            save(&tokens)?;
            match add.format.format {
                Format::Json => output::json(&serde_json::json!({
                    "name": add.name,
                    "role": role,
                    "token": secret,
                    "file": path,
                })),
                Format::Text => {
                    writeln!(io::stdout().lock(), "{secret}").map_err(output::write_err)?;
                    output::note_line(&format!(
                        "token `{}` ({}) added to {}: this is the only time it is shown",
                        add.name,
                        add.role,
                        path.display()
                    ));
                    Ok(())
                }
            }
        }
        TokenCommand::List(format) => match format.format {
            Format::Json => output::json(&tokens.all()),
            Format::Text => {
                let mut out = io::stdout().lock();
                (|| {
                    for t in tokens.all() {
                        let scopes = if t.scopes.is_empty() {
                            "every scope".to_owned()
                        } else {
                            t.scopes.join(", ")
                        };
                        let role = serde_json::to_value(t.role)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default();
                        writeln!(
                            out,
                            "{:<24} {role:<6} {scopes:<24} {}",
                            t.name, t.created_at
                        )?;
                    }
                    Ok(())
                })()
                .map_err(output::write_err)
            }
        },
        TokenCommand::Revoke(revoke) => {
            if !tokens.revoke(&revoke.name) {
                return Err(CliError::input(format!(
                    "no token named `{}` in {}",
                    revoke.name,
                    path.display()
                )));
            }
            save(&tokens)?;
            match revoke.format.format {
                Format::Json => output::json(&serde_json::json!({"revoked": revoke.name})),
                Format::Text => writeln!(io::stdout().lock(), "revoked   {}", revoke.name)
                    .map_err(output::write_err),
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on [default: `[serve] listen`, else 127.0.0.1:8420]; port 0
    /// picks a free one
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

/// `registry serve`: prints `listening on http://ADDR` (`https://` with `[serve] tls_cert`)
/// once bound, then serves until SIGTERM or SIGINT.
///
/// # Errors
/// As [`registry_server::serve`] (exit 2).
pub fn serve(args: ServeArgs, settings: &Settings) -> Result<(), CliError> {
    let scheme = if settings.serve.tls.is_some() {
        "https"
    } else {
        "http"
    };
    registry_server::serve(settings, args.listen, |bound| {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "listening on {scheme}://{bound}");
        let _ = out.flush();
    })?;
    Ok(())
}
