//! `registry`: the command line of the rule registry.
//!
//! Glue only: it parses arguments (clap), reads settings (figment), loads the stage plugins
//! named in `registry.toml`, and prints what the `registry_core::Pipeline` returns. Every error
//! is one line on stderr with exit code 1 (the user's input is wrong or not found) or 2
//! (configuration, plugins, storage).

mod batch;
mod learn;
mod lint;
mod output;
mod plugin_check;
mod registry;
mod stamp;
mod transfer;
mod trust;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A fast, plugin-based registry of rules, scripts and configs.
#[derive(Debug, Parser)]
#[command(name = "registry", version, about, disable_help_subcommand = true)]
struct Cli {
    /// Configuration file [default: ./registry.toml if present, else built-in defaults]
    #[arg(long, global = true, env = "REGISTRY_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Data directory, overriding `data_dir` from the configuration
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Show full details of plugin load errors
    #[arg(long, short, global = true)]
    verbose: bool,
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
    Add(AddArgs),
    /// Show an entry
    Get {
        /// Entry id, e.g. SEC-RUL-042
        id: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// List entries in id order
    List(ListArgs),
    /// Write a new revision of an entry
    Update(UpdateArgs),
    /// Show every revision of an entry, oldest first
    History {
        /// Entry id, e.g. SEC-RUL-042
        id: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Train the generator's model on the registered entries or on a JSONL file
    Train(TrainArgs),
    /// Show what `add` would fill in for a request, storing nothing
    Predict(PredictArgs),
    /// Show the plugin loaded for each stage, or check a plugin library (`plugins check`)
    Plugins(PluginsArgs),
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
    /// Allow a plugin library (or a directory of them) outside the registry's own plugin
    /// directory to be loaded; recorded in the user's configuration, never in a repository
    Trust(trust::TrustArgs),
}

#[derive(Debug, Args)]
struct PluginsArgs {
    #[command(subcommand)]
    command: Option<PluginsCommand>,
    #[command(flatten)]
    format: FormatArg,
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// Load a plugin library as the host would, show its name, version, stages and ABI
    /// compatibility, and run a short conformance test of each stage; exit 0 if usable, 2 if not
    Check(plugin_check::CheckArgs),
}

#[derive(Debug, Args)]
struct AddArgs {
    /// Title: one line of text, at most 1 KiB
    #[arg(long)]
    title: String,
    #[command(flatten)]
    fields: FieldArgs,
    /// Version, e.g. v2.9 [default: the schema's]
    #[arg(long)]
    version: Option<String>,
    /// Free-form context, repeatable
    #[arg(long, value_name = "KEY=VALUE")]
    context: Vec<String>,
    #[command(flatten)]
    format: FormatArg,
}

/// The four enumerated header fields, as `add` takes them and `list` filters by them.
#[derive(Debug, Args)]
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

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    fields: FieldArgs,
    /// Show at most this many entries
    #[arg(long)]
    limit: Option<usize>,
    /// Start after this id
    #[arg(long, value_name = "ID")]
    after: Option<String>,
    #[command(flatten)]
    format: FormatArg,
}

#[derive(Debug, Args)]
struct UpdateArgs {
    /// Entry id, e.g. SEC-RUL-042
    id: String,
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    variant: Option<String>,
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    version: Option<String>,
    /// Context to set, repeatable
    #[arg(long, value_name = "KEY=VALUE")]
    context: Vec<String>,
    /// Update only if the entry is at this revision (as `get` or `history` shows it); else fail
    /// with a conflict, changing nothing
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    if_revision: Option<u32>,
    #[command(flatten)]
    format: FormatArg,
}

#[derive(Debug, Args)]
struct TrainArgs {
    /// Train on this JSONL file of requests with their fields filled in, instead of the
    /// registered entries ("-" for standard input)
    #[arg(long, value_name = "FILE.jsonl")]
    from: Option<PathBuf>,
    /// Measure accuracy on this fraction of the examples, held out [default: 0.2]
    #[arg(long, value_name = "FRACTION", conflicts_with = "folds")]
    holdout: Option<f64>,
    /// Measure accuracy by K-fold cross-validation instead
    #[arg(long, value_name = "K")]
    folds: Option<u32>,
    /// Seed for the splits and any sampling
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    format: FormatArg,
}

#[derive(Debug, Args)]
struct PredictArgs {
    /// Title of the request
    #[arg(long, required_unless_present = "from", conflicts_with = "from")]
    title: Option<String>,
    /// Free-form context, repeatable
    #[arg(long, value_name = "KEY=VALUE", conflicts_with = "from")]
    context: Vec<String>,
    /// Predict for every request of this JSONL file, one JSON line out per line in ("-" for
    /// standard input)
    #[arg(long, value_name = "FILE.jsonl")]
    from: Option<PathBuf>,
    #[command(flatten)]
    format: FormatArg,
}

/// An error for the user: the exit code and one line (plus optional detail for `--verbose`).
pub use registry_host::Error as CliError;
pub(crate) use registry_host::settings as config;

/// Bounds glibc's allocator before any thread starts, unless the environment already tunes it.
///
/// With its defaults, glibc gives each thread that allocates its own arena (up to 8 per core)
/// and raises its mmap threshold every time a large block is freed, after which large blocks
/// come from the arenas and fragment them. Loading a million entries then grew the peak RSS
/// from 83 MB (100,000 entries) to 150 MB; with at most 4 arenas and large blocks always
/// mapped, it peaked at 114 to 126 MB at about the same speed (`registry scale-test`, 2 cores).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bound_allocator() {
    let set = |name: &str| std::env::var_os(name).is_some();
    // SAFETY: `mallopt` only changes allocator parameters, and this runs on the only thread.
    unsafe {
        if !set("MALLOC_MMAP_THRESHOLD_") {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
        if !set("MALLOC_ARENA_MAX") {
            libc::mallopt(libc::M_ARENA_MAX, 4);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_allocator() {}

fn main() -> ExitCode {
    bound_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with success; usage errors are clap's short report.
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let verbose = cli.verbose;
    match registry::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "error: {}", e.message);
            if let Some(detail) = e.detail {
                if verbose {
                    let _ = writeln!(err, "{detail}");
                } else {
                    let _ = writeln!(err, "(run with --verbose for details)");
                }
            }
            ExitCode::from(e.code)
        }
    }
}
