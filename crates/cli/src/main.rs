//! `registry`: the command line of the rule registry.
//!
//! Glue only: it parses arguments (clap), reads settings (figment), loads the stage plugins
//! named in `registry.toml`, and prints what the `registry_core::Pipeline` returns. Every error
//! is one line on stderr with exit code 1 (the user's input is wrong or not found) or 2
//! (configuration, plugins, storage).
//!
//! Nothing prints with `println!` or `eprintln!` (both panic when the stream is closed): every
//! write goes through `output`, which ends the command quietly on a closed pipe
//! ([`output::write_err`] says why that way).

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod audit;
mod backup;
mod batch;
mod command;
mod entries;
mod generate;
mod info;
mod learn;
mod lint;
mod output;
mod plugin_check;
mod plugins;
mod progress;
mod registry;
mod remote;
mod search;
mod stamp;
mod token;
mod transfer;
mod trust;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, FromArgMatches, Parser, Subcommand, ValueEnum};

/// A fast, plugin-based registry of rules, scripts and configs.
#[derive(Debug, Parser)]
#[command(name = "registry", version, about)]
struct Cli {
    /// Configuration file [default: the nearest registry.toml in this directory or a parent, up
    /// to the repository root; else built-in defaults]
    #[arg(
        long,
        global = true,
        env = "REGISTRY_CONFIG",
        value_name = "PATH",
        help_heading = "Global options"
    )]
    config: Option<PathBuf>,
    /// Data directory, overriding `data_dir` from the configuration
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    data_dir: Option<PathBuf>,
    /// Say which configuration and data directory are used, and show full details of plugin load
    /// errors
    #[arg(long, short, global = true, help_heading = "Global options")]
    verbose: bool,
    /// Print errors only: no warnings, notes, progress or summaries on stderr (the results a
    /// command writes to stdout are still written)
    #[arg(long, short, global = true, help_heading = "Global options")]
    quiet: bool,
    /// Run against this `registry serve` (http:// or https://) instead of a local data
    /// directory; the token is read from REGISTRY_TOKEN
    #[arg(
        long,
        global = true,
        env = "REGISTRY_SERVER",
        value_name = "URL",
        help_heading = "Global options"
    )]
    server: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
struct FormatArg {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register a rule: fill the missing header fields, allocate an id, render its config
    Add(entries::AddArgs),
    /// Show an entry
    Get(entries::IdArgs),
    /// List entries in id order
    List(entries::ListArgs),
    /// Write a new revision of an entry
    Update(entries::UpdateArgs),
    /// Show every revision of an entry, oldest first
    History(entries::IdArgs),
    /// Show what changed between two revisions of an entry
    Diff(audit::DiffArgs),
    /// Show who wrote what, when and from where: one record per write, oldest first
    Audit(audit::AuditArgs),
    /// Find entries by the words of their titles, contexts and configs, best match first
    Search(search::SearchArgs),
    /// Empty the full-text index and fill it again from storage
    Reindex(search::ReindexArgs),
    /// Take an entry out of use, as a new revision: kept with its history, its id never reused,
    /// left out of `list` (see `--all`)
    Retire(entries::RetireArgs),
    /// Merge a mistaken duplicate into the entry to keep, as a new revision: `stamp --refresh`
    /// then re-points the duplicate's files to that entry
    Merge(entries::MergeArgs),
    /// Make a retired or merged entry active again, as a new revision
    Revive(entries::RetireArgs),
    /// Train the generator's model on the registered entries or on a JSONL file
    Train(learn::TrainArgs),
    /// Show what `add` would fill in for a request, storing nothing
    Predict(learn::PredictArgs),
    /// Show the plugin loaded for each stage, or check a plugin library (`plugins check`)
    Plugins(plugins::PluginsArgs),
    /// Check the headers of files against the schema (and the registry with --registered)
    Lint(lint::LintArgs),
    /// Register each file that lacks a header and write the header into it
    Stamp(stamp::StampArgs),
    /// Write every entry with its history and hash, as JSON lines or YAML
    Export(transfer::ExportArgs),
    /// Read exported entries (or plain requests) into this registry
    Import(transfer::ImportArgs),
    /// Register every request of a JSONL file in parallel batches, reporting each line that fails
    Batch(batch::BatchArgs),
    /// Register generated requests in a fresh registry; report throughput, latency and memory
    ScaleTest(batch::ScaleTestArgs),
    /// Count the entries per scope, type, variant and status, and the space they take
    Stats(batch::StatsArgs),
    /// Rewrite every shard in its most compact form and give free space back, reporting the
    /// bytes before and after; no entry changes
    Compact(batch::CompactArgs),
    /// Verify every entry, revision and index of every shard, naming each problem (exit 1 if
    /// any)
    Check(batch::CheckArgs),
    /// Remove a secret from one revision (a title or a context value), recording who asked why;
    /// the hash chain stays whole and the purge shows in history and exports
    Purge(entries::PurgeArgs),
    /// Share the registry over HTTP (being built: health, get and register so far), with bearer
    /// tokens; with no token it listens on loopback only
    Serve(token::ServeArgs),
    /// Make, list and revoke the bearer tokens a shared registry accepts (kept as hashes)
    Token(token::TokenArgs),
    /// Copy the registry into a new directory, consistently (this process holds it meanwhile)
    /// and checked, with its high-water marks
    Backup(backup::BackupArgs),
    /// Replace the registry with a backup, checked, never handing out again an id issued after
    /// the backup; the replaced registry is kept beside it
    Restore(backup::RestoreArgs),
    /// Convert a registry written by an earlier release to the newest storage format, in place
    /// and crash-safely, then check that every entry reads back as before; ids do not change
    Migrate(batch::MigrateArgs),
    /// Allow a plugin library (or a directory of them) outside the registry's own plugin
    /// directory to be loaded, or a registry.toml found in a repository to choose plugins and
    /// paths; recorded in the user's configuration, never in a repository
    Trust(trust::TrustArgs),
    /// Show which configuration and data directory commands use here, and how they were found
    Info(info::InfoArgs),
    /// Write a registered entry's header into a file, replacing the header it has
    Link(stamp::LinkArgs),
    /// Print the completion script of a shell
    ///
    /// For example `registry completions bash >
    /// ~/.local/share/bash-completion/completions/registry`. The script offers the values of
    /// the schema in use when it is made.
    Completions(generate::CompletionsArgs),
    /// Write the man pages: registry(1) to standard output, or one page per command into DIR
    Man(generate::ManArgs),
}

/// The four enumerated header fields, as `add` takes them and `list` filters by them.
#[derive(Debug, Clone, Args)]
struct FieldArgs {
    #[arg(long)]
    scope: Option<String>,
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    #[arg(long)]
    variant: Option<String>,
    #[arg(long)]
    status: Option<String>,
}

impl From<FieldArgs> for registry_core::Fields<Option<String>> {
    fn from(a: FieldArgs) -> Self {
        registry_core::Fields {
            scope: a.scope,
            kind: a.kind,
            variant: a.variant,
            status: a.status,
        }
    }
}

/// An error for the user: the exit code and one line (plus optional detail for `--verbose`).
pub use registry_host::Error as CliError;
pub(crate) use registry_host::settings as config;

/// Bounds glibc's allocator before any thread starts, unless the environment already tunes it.
///
/// With its defaults, glibc gives each thread that allocates its own arena (up to 8 per core)
/// and raises its mmap threshold every time a large block is freed, after which large blocks
/// come from the arenas and fragment them. Loading a million entries then grew the peak RSS
/// from 83 MB (100,000 entries) to 150 MB; with at most 4 arenas and a fixed mmap threshold, it
/// stays near 100 MB.
///
/// The threshold is 1 MiB, not glibc's initial 128 KiB: a batch's vectors of 1,000 requests,
/// entries and encodings are a few hundred KiB each, and mapping each one fresh cost a page
/// fault per 4 KiB touched and a TLB shootdown at every unmap. `registry scale-test --count
/// 1000000` on 2 cores: 63,396 entries/s at 100.7 MB peak RSS with 128 KiB, 68,233/s at
/// 106.0 MB with 1 MiB, 67,429/s at 106.9 MB with 4 MiB (one run each, alternating); at
/// 300,000 entries the gain was 15 to 20 %. mimalloc instead measured 8 % faster than that but
/// doubled the peak RSS (194 MB against 93 MB at 300,000 entries), so glibc stays.
///
/// Setting the mmap threshold also fixes glibc's trim threshold at 128 KiB, so every free at the
/// top of a heap gave memory back that the next batch faulted in again, page by page: page
/// faults were 7 % of a `scale-test` profile. At 8 MiB, `registry scale-test --count 300000`
/// ran at 92,557, 95,245 and 96,520 entries/s against 90,353, 91,225 and 86,296 (alternating)
/// at the same peak RSS (85 to 89 MiB): the batch loop still returns free memory every 16
/// batches ([`registry_host::batch::release_free_memory`]). At 1,000,000 entries it gains less
/// and costs a few MiB: 80,506 and 79,869 entries/s at 106 and 107 MiB, against 78,634 and
/// 79,595 at 101 and 103 MiB with 128 KiB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bound_allocator() {
    let set = |name: &str| std::env::var_os(name).is_some();
    // SAFETY: `mallopt` only changes allocator parameters, and this runs on the only thread.
    unsafe {
        if !set("MALLOC_MMAP_THRESHOLD_") {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
        }
        if !set("MALLOC_TRIM_THRESHOLD_") {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 8 * 1024 * 1024);
        }
        if !set("MALLOC_ARENA_MAX") {
            libc::mallopt(libc::M_ARENA_MAX, 4);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_allocator() {}

/// Reads the settings of `early`'s global options (read before the arguments were parsed).
fn settings(early: &command::Early) -> Result<config::Settings, CliError> {
    config::load(
        early.config.as_deref(),
        early.data_dir.as_deref(),
        registry_builtin::BUILTINS,
    )
}

/// Runs the command with the settings read for its help, or read again if the parsed global
/// options say otherwise than what was read of them first.
fn run(
    cli: Cli,
    name: &str,
    early: command::Early,
    read: Result<config::Settings, CliError>,
) -> Result<(), CliError> {
    // Trusting a configuration must work while that configuration is refused.
    if let Command::Trust(args) = cli.command {
        return trust::run(args);
    }
    let parsed = command::Early {
        config: cli.config.clone(),
        data_dir: cli.data_dir.clone(),
    };
    let settings = if parsed == early {
        read
    } else {
        settings(&parsed)
    };
    // Completions and man pages need no registry: a configuration that cannot be read gives
    // the built-in schema's values, as the help does.
    let fallback = registry_core::Schema::default();
    let schema = settings.as_ref().map_or(&fallback, |s| &s.schema);
    match &cli.command {
        Command::Completions(args) => return generate::completions(args, command::command(schema)),
        Command::Man(args) => return generate::man(args, command::command(schema)),
        _ => {}
    }
    if let Some(url) = cli.server.as_deref().filter(|u| !u.is_empty()) {
        let remote = remote::Remote::new(url)?;
        match cli.command {
            Command::Add(args) => return remote::add(&remote, args),
            Command::Get(args) => return remote::get(&remote, args),
            Command::List(args) => return remote::list(&remote, args),
            Command::Update(args) => return remote::update(&remote, args),
            Command::History(args) => return remote::history(&remote, args),
            Command::Diff(args) => return remote::diff(&remote, args),
            Command::Audit(args) => return remote::audit(&remote, args),
            Command::Search(args) => return remote::search(&remote, args),
            Command::Stats(args) => return remote::stats(&remote, args.format.format),
            Command::Export(args) => return remote::export(&remote, args),
            Command::Batch(args) => return remote::batch(&remote, args),
            Command::Import(args) => return remote::import(&remote, args),
            Command::Retire(args) => {
                return remote::lifecycle(
                    &remote,
                    &args.id,
                    registry_core::Lifecycle::Retired,
                    args.if_revision,
                    "retired",
                    args.format.format,
                );
            }
            Command::Revive(args) => {
                return remote::lifecycle(
                    &remote,
                    &args.id,
                    registry_core::Lifecycle::Active,
                    args.if_revision,
                    "revived",
                    args.format.format,
                );
            }
            Command::Merge(args) => {
                let into = entries::parse_id(&args.into).map_err(|e| e.on_field("into"))?;
                return remote::lifecycle(
                    &remote,
                    &args.id,
                    registry_core::Lifecycle::Merged(into),
                    args.if_revision,
                    "merged",
                    args.format.format,
                );
            }
            // Lint reads files, not the registry, unless it compares them with it.
            Command::Lint(args) if !args.registered && !args.fix => {
                return lint::run(args, &settings?);
            }
            Command::Info(_) | Command::Plugins(_) | Command::Trust(_) => {}
            _ => {
                return Err(CliError::config(format!(
                    "`registry {name}` works on a local registry only: drop --server (or unset \
                     REGISTRY_SERVER)"
                )));
            }
        }
    }
    let settings = settings?;
    output::warnings(&settings.warnings);
    if cli.verbose {
        info::announce(&settings);
    }
    match cli.command {
        Command::Trust(args) => trust::run(args),
        Command::Info(args) => info::run(args, &settings),
        Command::Link(args) => stamp::link(args, &settings),
        Command::Plugins(args) => plugins::run(args, &settings),
        Command::Add(args) => entries::add(args, &settings),
        Command::Get(args) => entries::get(args, &settings),
        Command::List(args) => entries::list(args, &settings),
        Command::Update(args) => entries::update(args, &settings),
        Command::History(args) => entries::history(args, &settings),
        Command::Diff(args) => audit::diff(args, &settings),
        Command::Audit(args) => audit::audit(args, &settings),
        Command::Search(args) => search::search(args, &settings),
        Command::Reindex(args) => search::reindex(args, &settings),
        Command::Retire(args) => entries::retire(args, &settings),
        Command::Merge(args) => entries::merge(args, &settings),
        Command::Revive(args) => entries::revive(args, &settings),
        Command::Train(args) => learn::train(args, &settings),
        Command::Predict(args) => learn::predict(args, &settings),
        Command::Lint(args) => lint::run(args, &settings),
        Command::Stamp(args) => stamp::run(args, &settings),
        Command::Export(args) => transfer::export(args, &settings),
        Command::Import(args) => transfer::import(args, &settings),
        Command::Batch(args) => batch::batch(args, &settings),
        Command::ScaleTest(args) => batch::scale_test(args, settings, cli.data_dir.is_some()),
        Command::Stats(args) => batch::stats(args, &settings),
        Command::Compact(args) => batch::compact(args, &settings),
        Command::Migrate(args) => batch::migrate(args, &settings),
        Command::Check(args) => batch::check(args, &settings),
        Command::Backup(args) => backup::backup(args, &settings),
        Command::Purge(args) => entries::purge(args, &settings),
        Command::Token(args) => token::run(args, &settings),
        Command::Serve(args) => token::serve(args, &settings),
        Command::Restore(args) => backup::restore(args, &settings),
        Command::Completions(_) | Command::Man(_) => Ok(()),
    }
}

fn main() -> ExitCode {
    bound_allocator();
    let args: Vec<OsString> = std::env::args_os().collect();
    // The settings come first: the schema they hold gives the values the help lists.
    let early = command::Early::read(&args);
    let read = settings(&early);
    let fallback = registry_core::Schema::default();
    let schema = read.as_ref().map_or(&fallback, |s| &s.schema);
    let parsed = command::command(schema)
        .try_get_matches_from(&args)
        .and_then(|m| {
            let name = m.subcommand_name().unwrap_or_default().to_owned();
            Ok((Cli::from_arg_matches(&m)?, command::asks_json(&m), name))
        });
    let (cli, json, name) = match parsed {
        Ok(parsed) => parsed,
        Err(e) if e.use_stderr() && command::args_ask_json(&args) => {
            output::set_json(true);
            output::error(&output::usage_error(&e), false);
            return ExitCode::from(1);
        }
        Err(e) => {
            // Help and version go to stdout with success; usage errors are clap's short report.
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let verbose = cli.verbose;
    output::set_quiet(cli.quiet);
    output::set_json(json);
    match run(cli, &name, early, read) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::error(&e, verbose);
            ExitCode::from(e.code)
        }
    }
}
