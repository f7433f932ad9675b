//! The command line as clap sees it at run time: the derived [`Cli`], with the
//! values of the schema in use put into the help of every enumerated option.
//!
//! Scope, type, variant and status take the values `[schema]` in `registry.toml` declares, so
//! they cannot be fixed at compile time: the settings are read first (their errors tolerated:
//! the built-in schema stands in, and the command reports the error itself once it runs), then
//! the derived command is changed before the arguments are parsed. Each such option gets a
//! value parser, [`SchemaValues`], that lists the values (clap shows them as `[possible values:
//! …]` in the help, and the completion scripts offer them) but accepts any text: the registry
//! checks the value itself, case-insensitively, with its one-line message naming the field and
//! the values allowed. Rejected: clap's `PossibleValuesParser`, whose refusal is a multi-line
//! usage report that would replace that message, and which knows nothing of the case the
//! registry forgives.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap::builder::{PossibleValue, StringValueParser, TypedValueParser};
use clap::{Arg, ArgMatches, CommandFactory};
use registry_core::{Field, Schema};

use crate::Cli;

/// The global options the settings depend on, as far as they can be read from arguments that
/// may not parse: `--config` (or `REGISTRY_CONFIG`) and `--data-dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Early {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
}

impl Early {
    /// Reads `--config` and `--data-dir` from `args`, ignoring every error (the real parse
    /// reports them). Help and version flags are left out here: clap stops at them, and
    /// `registry list --help --config other.toml` shows the values of `other.toml`.
    pub fn read(args: &[OsString]) -> Early {
        let stops = ["-h", "--help", "-V", "--version"];
        let args: Vec<&OsString> = args
            .iter()
            .filter(|a| !stops.iter().any(|s| a.as_os_str() == *s))
            .collect();
        let lenient = Cli::command()
            .ignore_errors(true)
            .try_get_matches_from(&args);
        match lenient {
            Ok(m) => Early {
                config: m.get_one::<PathBuf>("config").cloned(),
                data_dir: m.get_one::<PathBuf>("data_dir").cloned(),
            },
            // `registry --config F help list`: clap's help subcommand stops the lenient parse
            // too, so the options are looked for by name.
            Err(_) => Early {
                config: option(&args, "--config").or_else(|| {
                    std::env::var_os("REGISTRY_CONFIG")
                        .filter(|v| !v.is_empty())
                        .map(PathBuf::from)
                }),
                data_dir: option(&args, "--data-dir"),
            },
        }
    }
}

/// The value of the long option `name` (`--name VALUE` or `--name=VALUE`), the last one given.
fn option(args: &[&OsString], name: &str) -> Option<PathBuf> {
    let mut found = None;
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        let Some(text) = arg.to_str() else { continue };
        if text == "--" {
            break;
        } else if text == name {
            found = it.next().map(PathBuf::from);
        } else if let Some(value) = text.strip_prefix(name).and_then(|v| v.strip_prefix('=')) {
            found = Some(PathBuf::from(value));
        }
    }
    found
}

/// The enumerated options, by argument id, and the header field each takes.
const FIELD_ARGS: [(&str, Field); 4] = [
    ("scope", Field::Scope),
    ("kind", Field::Type),
    ("variant", Field::Variant),
    ("status", Field::Status),
];

/// The command line with `schema`'s values in the help of every enumerated option.
pub fn command(schema: &Schema) -> clap::Command {
    Cli::command().mut_subcommands(|sub| with_schema(sub, schema))
}

/// `sub` (a subcommand, and its own subcommands) with the schema's values.
fn with_schema(sub: clap::Command, schema: &Schema) -> clap::Command {
    let name = sub.get_name().to_owned();
    sub.mut_args(|arg| field_arg(arg, &name, schema))
        .mut_subcommands(|nested| with_schema(nested, schema))
}

/// One argument of the subcommand `command`: an enumerated field gets the schema's values and
/// a help line saying what it does there; `--version` names the schema's default.
fn field_arg(arg: Arg, command: &str, schema: &Schema) -> Arg {
    let id = arg.get_id().as_str().to_owned();
    if id == "version" && matches!(command, "add" | "stamp") {
        return arg.help(format!(
            "Version, e.g. v2.9 [default: {}]",
            schema.version()
        ));
    }
    let Some(&(_, field)) = FIELD_ARGS.iter().find(|(name, _)| *name == id) else {
        return arg;
    };
    let name = field.name();
    let help = match command {
        "list" => format!("List only the entries of this {name}"),
        "update" => format!("The new {name}"),
        "export" => format!("Export only the entries of this {name} (repeatable)"),
        _ => match schema.default_value(field) {
            Some(default) => {
                format!("The {name} [default: predicted from the request, else {default}]")
            }
            None => format!("The {name} [default: predicted from the request]"),
        },
    };
    arg.help(help)
        .value_parser(SchemaValues(schema.allowed(field).to_vec()))
}

/// A value parser that offers the schema's values (to the help and to completion) and takes any
/// text: the registry checks it, with its own message (see the module documentation).
#[derive(Debug, Clone)]
pub struct SchemaValues(pub Vec<String>);

impl TypedValueParser for SchemaValues {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            self.0.iter().map(|v| PossibleValue::new(v.clone())),
        ))
    }
}

/// Whether the command `matches` asks for `--format json` (in the innermost subcommand that has
/// a `--format`): its errors are then JSON too.
pub fn asks_json(matches: &ArgMatches) -> bool {
    let mut json = false;
    let mut m = matches;
    loop {
        if let Ok(Some(mut values)) = m.try_get_raw("format") {
            json = values.next() == Some(OsStr::new("json"));
        }
        match m.subcommand() {
            Some((_, sub)) => m = sub,
            None => return json,
        }
    }
}

/// Whether arguments that did not parse ask for `--format json`, as far as can be told: a usage
/// error is then JSON too.
pub fn args_ask_json(args: &[OsString]) -> bool {
    args.windows(2)
        .any(|w| w[0] == "--format" && w[1] == "json")
        || args.iter().any(|a| a == "--format=json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help(schema: &Schema, path: &[&str]) -> String {
        let mut cmd = command(schema);
        cmd.build();
        let mut sub = &mut cmd;
        for name in path {
            sub = sub.find_subcommand_mut(name).expect("subcommand");
        }
        sub.render_long_help().to_string()
    }

    fn custom() -> Schema {
        let list = |s: &[&str]| s.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
        Schema::new(
            registry_core::Fields {
                scope: list(&["NET", "APP"]),
                kind: list(&["RULES"]),
                variant: list(&["LIVE", "DEV"]),
                status: list(&["REQUIRED", "OPTIONAL"]),
            },
            "v1.0".to_owned(),
            registry_core::Fields::default(),
        )
        .expect("schema")
    }

    #[test]
    fn every_enumerated_option_lists_the_schema_values() {
        let schema = custom();
        for path in [&["add"][..], &["list"], &["stamp"]] {
            let text = help(&schema, path);
            assert!(text.contains("NET, APP"), "{path:?}: {text}");
            assert!(text.contains("LIVE, DEV"), "{path:?}: {text}");
            assert!(text.contains("REQUIRED, OPTIONAL"), "{path:?}: {text}");
            assert!(!text.contains("GOV"), "{path:?}: {text}");
        }
        let update = help(&schema, &["update"]);
        assert!(update.contains("LIVE, DEV") && update.contains("REQUIRED, OPTIONAL"));
        assert!(help(&schema, &["export"]).contains("NET, APP"));
        assert!(help(&schema, &["add"]).contains("[default: v1.0]"));
        let builtin = help(&Schema::default(), &["list"]);
        assert!(builtin.contains("GOV, SEC, OPS"), "{builtin}");
    }

    #[test]
    fn any_value_parses_for_the_registry_to_check() {
        let m = command(&custom())
            .try_get_matches_from(["registry", "list", "--scope", "nope"])
            .expect("parsed");
        let (_, list) = m.subcommand().expect("list");
        assert_eq!(
            list.get_one::<String>("scope").map(String::as_str),
            Some("nope")
        );
    }

    #[test]
    fn json_is_asked_by_the_innermost_format() {
        let cmd = || command(&Schema::default());
        let asks = |args: &[&str]| {
            let mut all = vec!["registry"];
            all.extend(args);
            asks_json(&cmd().try_get_matches_from(all).expect("parsed"))
        };
        assert!(asks(&["list", "--format", "json"]));
        assert!(!asks(&["list"]));
        assert!(!asks(&["export", "--format", "yaml"]));
        assert!(asks(&["plugins", "check", "x", "--format", "json"]));
        assert!(!asks(&["plugins", "--format", "json", "check", "x"]));
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(args_ask_json(&args(&[
            "registry", "list", "--format", "json", "--x"
        ])));
        assert!(args_ask_json(&args(&["registry", "--format=json"])));
        assert!(!args_ask_json(&args(&[
            "registry", "list", "--title", "json"
        ])));
    }
}
