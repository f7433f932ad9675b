//! Settings: `registry.toml` (or built-in defaults) with `REGISTRY_*` environment overrides,
//! read in two steps: raw serde structs that reject unknown keys, then a checked [`Settings`].

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, magic::RelativePathBuf};
use registry_abi::linked::Builtin;
use registry_abi::load::{SearchPaths, StageSpec, Trust};
use registry_core::{Field, Fields, Schema, StageKind};
use serde::Deserialize;

use crate::error::Error;

/// The top-level keys of `registry.toml`. Environment variables are matched against these only:
/// `REGISTRY_*` is a common prefix (container registries use it too), so a variable naming no
/// known key is someone else's and is ignored rather than rejected.
const TOP_LEVEL_KEYS: [&str; 13] = [
    "data_dir",
    "plugin_dir",
    "shards",
    "limits",
    "lint",
    "schema",
    "cache",
    "generator",
    "validator",
    "storage",
    "router",
    "stamp",
    "serve",
];

/// `REGISTRY_*` variables the command reads itself, not settings.
const OWN_VARIABLES: [&str; 2] = ["REGISTRY_CONFIG", "REGISTRY_TRUST"];

/// The most shards a registry may have: each is a file (or a Redis hash slot) opened by every
/// command, and 1,024 is past what the sizing projection asks for a billion entries (40) by
/// a wide margin, while a mistyped 100,000 would otherwise create files until the process runs
/// out of them.
pub const MAX_SHARDS: u32 = 1024;

/// The longest input line or record (`batch`, `import`, `predict --from`, `train --from`)
/// read by default: 1 MiB. A longer one is refused without being held in memory.
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<RelativePathBuf>,
    plugin_dir: Option<RelativePathBuf>,
    shards: Option<u32>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    lint: RawLint,
    #[serde(default)]
    schema: RawSchema,
    #[serde(default)]
    cache: RawStage,
    #[serde(default)]
    generator: RawStage,
    #[serde(default)]
    validator: RawStage,
    #[serde(default)]
    storage: RawStage,
    #[serde(default)]
    router: RawStage,
    #[serde(default)]
    stamp: StampConfig,
    #[serde(default)]
    serve: RawServe,
}

/// `[serve]`: what `registry serve` listens on and whom it lets in.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServe {
    listen: Option<String>,
    tokens_file: Option<RelativePathBuf>,
    tls_cert: Option<RelativePathBuf>,
    tls_key: Option<RelativePathBuf>,
    #[serde(flatten)]
    limits: ServeLimits,
}

/// Where the shared registry listens, and the tokens it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    /// `[serve] listen`; loopback port 8420 by default.
    pub listen: std::net::SocketAddr,
    /// `[serve] tokens_file`; `tokens.json` in the data directory by default (never committed).
    pub tokens_file: PathBuf,
    /// `[serve] tls_cert` and `tls_key`: the certificate chain and private key (PEM) to serve
    /// HTTPS with; plain HTTP when not set. Both or neither.
    pub tls: Option<TlsFiles>,
    /// Bounds on what one client may ask of the server.
    pub limits: ServeLimits,
}

/// The files `registry serve` reads to serve HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM, the server's own first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS #8, PKCS #1 or SEC1).
    pub key: PathBuf,
}

/// What bounds the server's work and memory, so that a slow or hostile client cannot stall
/// the others: each is a key of `[serve]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeLimits {
    /// The largest request body read whole (everything but a batch): 1 MiB.
    pub max_body_bytes: u64,
    /// The largest batch body, streamed line by line (each line also within
    /// `[limits] max_record_bytes`): 256 MiB.
    pub max_batch_bytes: u64,
    /// A request that has no answer in this long gets 503: 30 s. A streamed answer (batch,
    /// export) is bounded by its size instead, once it has started.
    pub request_timeout_ms: u64,
    /// A connection whose request head has not arrived in this long is closed: 10 s.
    pub header_timeout_ms: u64,
    /// Connections served at once; more wait to be accepted: 512.
    pub max_connections: u32,
    /// Requests per second each token (each client address, without tokens) may make on
    /// average; 0 for no limit: 1,000.
    pub rate_limit: u32,
    /// Requests a token may make at once above its average rate: 2,000.
    pub rate_burst: u32,
    /// Registrations gathered into one commit at most: 1,024.
    pub group_commit_max: u32,
    /// How long a commit waits for more registrations once it has one, in microseconds: 0,
    /// gathering only those that arrived while the commit before was being written.
    pub group_commit_wait_us: u64,
    /// On SIGTERM or SIGINT, how long requests under way have to finish: 10 s.
    pub shutdown_timeout_ms: u64,
    /// Memory kept for the JSON of the entries read last, so that reading one again skips
    /// writing it (counted twice: the JSON and the entry it was written from); 0 keeps none:
    /// 32 MiB.
    pub answer_cache_bytes: u64,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_body_bytes: 1 << 20,
            max_batch_bytes: 256 << 20,
            request_timeout_ms: 30_000,
            header_timeout_ms: 10_000,
            max_connections: 512,
            rate_limit: 1_000,
            rate_burst: 2_000,
            group_commit_max: 1_024,
            group_commit_wait_us: 0,
            shutdown_timeout_ms: 10_000,
            answer_cache_bytes: 32 << 20,
        }
    }
}

/// The address `registry serve` listens on unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8420";

impl ServeSettings {
    /// Refuses to listen beyond loopback when no token is configured: with none, every request
    /// would be let in, so only this machine may reach the server.
    ///
    /// # Errors
    /// A configuration error saying why and what to do.
    pub fn check_exposure(&self, tokens: usize) -> Result<(), Error> {
        if tokens == 0 && !self.listen.ip().is_loopback() {
            return Err(Error::config(format!(
                "listening on {} needs authentication, and {} holds no token: add one with \
                 `registry token add NAME --role ROLE`, or listen on loopback ({DEFAULT_LISTEN})",
                self.listen,
                self.tokens_file.display()
            )));
        }
        Ok(())
    }
}

/// Refuses a `[serve]` limit of 0 where 0 would stop the server serving anything.
fn checked_limits(limits: ServeLimits, file: &Option<PathBuf>) -> Result<ServeLimits, Error> {
    for (key, value) in [
        ("max_body_bytes", limits.max_body_bytes),
        ("max_batch_bytes", limits.max_batch_bytes),
        ("request_timeout_ms", limits.request_timeout_ms),
        ("header_timeout_ms", limits.header_timeout_ms),
        ("max_connections", u64::from(limits.max_connections)),
        ("rate_burst", u64::from(limits.rate_burst)),
        ("group_commit_max", u64::from(limits.group_commit_max)),
    ] {
        if value == 0 {
            return Err(Error::config(format!(
                "{}: serve.{key} must be at least 1",
                source_name(file)
            )));
        }
    }
    if limits.group_commit_wait_us > 1_000_000 {
        return Err(Error::config(format!(
            "{}: serve.group_commit_wait_us = {} is more than a second; a registration would \
             wait that long",
            source_name(file),
            limits.group_commit_wait_us
        )));
    }
    Ok(limits)
}

/// `[stamp]`: what stamping reads from files themselves, and comment syntax for more types.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StampConfig {
    /// How files matching a glob say what they are (`[[stamp.map]]`), the first match wins.
    #[serde(default)]
    pub map: Vec<Mapping>,
    /// Line comment prefix per file extension (`".rego" = "#"`), for types stamp does not know.
    #[serde(default)]
    pub comments: std::collections::BTreeMap<String, String>,
}

/// One `[[stamp.map]]`: request fields read from a file's own metadata.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Files it applies to: a glob relative to the configuration's directory (`sigma/**/*.yml`).
    pub glob: String,
    /// Where the metadata is: `yaml` (the file is a YAML mapping) or `front-matter` (a YAML
    /// mapping between `---` lines at the top, as Markdown files carry).
    pub format: MetadataFormat,
    /// The dotted key whose value is the title.
    pub title: Option<String>,
    /// The dotted key of the file's own identifier (Sigma's `id`): recorded in the context
    /// under that key, and a file whose identifier is registered is linked to that entry,
    /// never registered again.
    pub key: Option<String>,
    /// Header fields from dotted keys (`status = "status"`).
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, String>,
    /// Translations of values into the schema's, per field
    /// (`[stamp.map.values.status] experimental = "DEV"`).
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    /// Context pairs from dotted keys (`level = "level"`); a sequence is joined with `,`.
    #[serde(default)]
    pub context: std::collections::BTreeMap<String, String>,
}

/// Where a mapped file keeps its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetadataFormat {
    Yaml,
    FrontMatter,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLint {
    /// Globs of the files that must carry a header.
    #[serde(default)]
    require: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    /// The longest input line or record, in bytes.
    max_record_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    scope: Option<Vec<String>>,
    #[serde(rename = "type")]
    kind: Option<Vec<String>>,
    variant: Option<Vec<String>>,
    status: Option<Vec<String>>,
    version: Option<String>,
    #[serde(default)]
    defaults: RawDefaults,
    /// Dotted config keys each scope's entries must have; `"*"` for every scope.
    #[serde(default)]
    required: std::collections::BTreeMap<String, Vec<String>>,
    /// The scope part of a scope's ids when it is not the scope's name (a renamed scope).
    #[serde(default)]
    id_scope: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    scope: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    variant: Option<String>,
    status: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    library: Option<String>,
    config: Option<Dict>,
}

/// How the configuration file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config PATH`.
    Flag,
    /// The `REGISTRY_CONFIG` environment variable.
    Environment,
    /// The nearest `registry.toml` in the working directory or a parent, up to the repository
    /// root or the file system's root.
    Discovered,
    /// None found: built-in defaults.
    Defaults,
}

impl ConfigSource {
    /// How a person would say it: `--config`, `REGISTRY_CONFIG`, `found from the working
    /// directory`, `built-in defaults`.
    pub fn describe(self) -> &'static str {
        match self {
            ConfigSource::Flag => "--config",
            ConfigSource::Environment => "REGISTRY_CONFIG",
            ConfigSource::Discovered => "found from the working directory",
            ConfigSource::Defaults => "built-in defaults",
        }
    }
}

/// Checked settings.
#[derive(Debug)]
pub struct Settings {
    /// The configuration file read, if any.
    pub file: Option<PathBuf>,
    /// How it was found.
    pub source: ConfigSource,
    /// Whether the file is trusted: named by the user (`--config`, `REGISTRY_CONFIG`), or
    /// found and then trusted with `registry trust`. An untrusted one may not choose code to run
    /// nor point outside its directory (see [`load`]).
    pub trusted: bool,
    pub data_dir: PathBuf,
    /// Where `data_dir` came from, for messages: "--data-dir", "REGISTRY_DATA_DIR", the file.
    pub data_dir_source: String,
    /// The longest input line or record accepted, in bytes.
    pub max_record_bytes: u64,
    /// `[lint]`: what `registry lint` asks of files.
    pub lint: LintSettings,
    /// What a person should know about how the settings were read (a mistyped variable, a
    /// trust file that is ignored); a front end shows them.
    pub warnings: Vec<String>,
    pub paths: SearchPaths,
    /// Shards requested by the configuration; `None` means "as recorded, or one per core for a
    /// new registry".
    pub shards: Option<u32>,
    pub schema: Schema,
    pub stages: Vec<StageSpec>,
    /// `[stamp]`: file metadata mappings and extra comment syntax.
    pub stamp: StampConfig,
    /// The plugins linked into the program, which `library = "<name>"` names.
    pub builtins: &'static [Builtin],
    /// `[serve]`.
    pub serve: ServeSettings,
}

/// `[lint]` of `registry.toml`.
#[derive(Debug, Clone, Default)]
pub struct LintSettings {
    /// `require`: the files matching any of these globs must carry a header (a
    /// `missing-header` error otherwise), as with `--require-header` for them alone. Matched
    /// against the path relative to `base`; `*` stays within one path component, `**`
    /// crosses them.
    pub require: globset::GlobSet,
    /// The globs as written, for messages.
    pub require_globs: Vec<String>,
    /// The directory the globs are relative to: that of the configuration file.
    pub base: PathBuf,
}

/// The plugin each stage uses when `registry.toml` does not say: a built-in name.
pub fn default_library(stage: StageKind) -> &'static str {
    match stage {
        StageKind::Cache => "cache-quick",
        StageKind::Generator => "generator-default",
        StageKind::Validator => "validator-schema",
        StageKind::Storage => "storage-redb",
        StageKind::Router => "router-hash",
    }
}

/// Reads the settings: `--config PATH` (or `REGISTRY_CONFIG`), else the nearest
/// `registry.toml` in the working directory or its parents (stopping at the repository root, a
/// directory holding `.git`, or the file system's root), else built-in defaults; then
/// `REGISTRY_*` environment variables on top. Relative paths in a file are relative to it.
///
/// A file that was found rather than named is a repository's, so untrusted input (git's
/// CVE-2022-24765 is the lesson): it is refused when someone other than the user (or root)
/// owns it or could write it or its directory, unless the user trusted it; and until the user
/// trusts it (`registry trust FILE`, or a directory holding it), it may set the schema,
/// templates inside its own directory, lint options and a data directory inside its own
/// directory, but not `plugin_dir` nor a plugin library file, which would choose code to run,
/// nor a data directory or templates elsewhere. Built-in plugins, which run no outside code,
/// it may name.
///
/// # Errors
/// A missing `--config` file, unparsable TOML, an unknown key (named, with its file), an
/// invalid schema (every problem, one per line), an unsafe found file, or a key an untrusted
/// file may not set (named).
pub fn load(
    config: Option<&Path>,
    data_dir: Option<&Path>,
    builtins: &'static [Builtin],
) -> Result<Settings, Error> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::config(format!("cannot read the current directory: {e}")))?;
    let mut source = match config {
        Some(path)
            if std::env::var_os("REGISTRY_CONFIG").is_some_and(|v| v == path.as_os_str()) =>
        {
            ConfigSource::Environment
        }
        Some(_) => ConfigSource::Flag,
        None => ConfigSource::Defaults,
    };
    let file = match config {
        Some(path) if path.is_dir() => {
            return Err(Error::config(format!(
                "config file {} is a directory: give the path of a registry.toml",
                path.display()
            )));
        }
        Some(path) if !path.is_file() => {
            return Err(Error::config(format!(
                "config file {} not found",
                path.display()
            )));
        }
        Some(path) => Some(path.to_owned()),
        None => nearest_config(&cwd),
    };
    if config.is_none() && file.is_some() {
        source = ConfigSource::Discovered;
    }
    let mut warnings =
        lookalike_variables(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()));
    let trusted_paths = crate::trust::trusted_paths(&mut warnings);
    let trusted = match (&file, source) {
        (Some(f), ConfigSource::Discovered) => {
            let trusted = is_trusted(f, &trusted_paths);
            if !trusted && let Err(why) = registry_abi::trust::check_owned(f) {
                return Err(Error::config(format!(
                    "not reading {}: {why}; a registry.toml found from the working directory \
                     must be safe from other users (or name it with --config, or run \
                     `registry trust {}`)",
                    f.display(),
                    f.display()
                )));
            }
            trusted
        }
        _ => true,
    };
    let mut figment = Figment::new();
    if let Some(file) = &file {
        figment = figment.merge(Toml::file_exact(file));
    }
    let env = Env::prefixed("REGISTRY_")
        .filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            let first = key.split("__").next().unwrap_or("");
            TOP_LEVEL_KEYS.contains(&first)
        })
        .split("__");
    let raw: RawConfig = figment
        .merge(env)
        .extract()
        .map_err(|e| figment_error(&e))?;

    let base_dir = match &file {
        Some(f) => absolute(f.parent().unwrap_or(Path::new(".")), &cwd),
        None => cwd.clone(),
    };
    let from_env = std::env::var_os("REGISTRY_DATA_DIR").is_some();
    let (data_dir, data_dir_source) = match (data_dir, &raw.data_dir) {
        (Some(d), _) if d.as_os_str().is_empty() => {
            return Err(Error::config(
                "--data-dir is empty: give the directory of the registry",
            ));
        }
        (Some(d), _) => (absolute(d, &cwd), "--data-dir".to_owned()),
        (None, Some(d)) if d.original().as_os_str().is_empty() => {
            let source = if from_env {
                "REGISTRY_DATA_DIR".to_owned()
            } else {
                source_name(&file)
            };
            return Err(Error::config(format!(
                "data_dir is empty in {source}: give the directory of the registry"
            )));
        }
        (None, Some(d)) => (
            absolute(&d.relative(), &cwd),
            if from_env {
                "REGISTRY_DATA_DIR".to_owned()
            } else {
                format!("data_dir in {}", source_name(&file))
            },
        ),
        (None, None) => (
            base_dir.join(".registry"),
            match &file {
                Some(f) => format!("the default beside {}", f.display()),
                None => "the default in the working directory (no registry.toml)".to_owned(),
            },
        ),
    };
    let plugin_dir = match &raw.plugin_dir {
        Some(d) => absolute(&d.relative(), &cwd),
        None => exe_dir()?,
    };
    if let Some(k) = raw.shards
        && !(1..=MAX_SHARDS).contains(&k)
    {
        return Err(Error::config(format!(
            "{}: shards = {k}: a registry has 1 to {MAX_SHARDS} shards",
            source_name(&file)
        )));
    }
    let max_record_bytes = raw
        .limits
        .max_record_bytes
        .unwrap_or(DEFAULT_MAX_RECORD_BYTES);
    if max_record_bytes == 0 {
        return Err(Error::config(format!(
            "{}: limits.max_record_bytes must be at least 1",
            source_name(&file)
        )));
    }
    let lint = lint_settings(raw.lint, &base_dir).map_err(|problems| {
        Error::config(format!("{}: {}", source_name(&file), problems.join("; ")))
    })?;
    let schema = schema(raw.schema).map_err(|problems| {
        Error::config(format!("{}: {}", source_name(&file), problems.join("; ")))
    })?;
    let stamp = checked_stamp(raw.stamp, &file)?;
    let listen = raw.serve.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let serve = ServeSettings {
        listen: listen.parse().map_err(|_| {
            Error::config(format!(
                "{}: serve.listen = {listen:?} is not an address and port such as {DEFAULT_LISTEN}",
                source_name(&file)
            ))
        })?,
        tokens_file: match &raw.serve.tokens_file {
            Some(p) => absolute(&p.relative(), &cwd),
            None => data_dir.join("tokens.json"),
        },
        tls: match (&raw.serve.tls_cert, &raw.serve.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: absolute(&cert.relative(), &cwd),
                key: absolute(&key.relative(), &cwd),
            }),
            (None, None) => None,
            _ => {
                return Err(Error::config(format!(
                    "{}: serve.tls_cert and serve.tls_key go together: set both to serve \
                     HTTPS, or neither",
                    source_name(&file)
                )));
            }
        },
        limits: checked_limits(raw.serve.limits, &file)?,
    };
    let stages: Vec<StageSpec> = [
        (StageKind::Cache, raw.cache),
        (StageKind::Generator, raw.generator),
        (StageKind::Validator, raw.validator),
        (StageKind::Storage, raw.storage),
        (StageKind::Router, raw.router),
    ]
    .into_iter()
    .map(|(stage, raw)| {
        let config = raw.config.unwrap_or_default();
        StageSpec {
            stage,
            library: raw
                .library
                .unwrap_or_else(|| default_library(stage).to_owned()),
            config_json: serde_json::to_string(&config).unwrap_or_else(|_| "{}".to_owned()),
        }
    })
    .collect();
    if !trusted && let Some(f) = &file {
        restricted(f, &base_dir, &paths_given(f)?)?;
    }
    let own = exe_dir()?;
    Ok(Settings {
        file,
        source,
        trusted,
        data_dir,
        data_dir_source,
        max_record_bytes,
        lint,
        warnings,
        paths: SearchPaths {
            plugin_dir,
            base_dir,
            trust: Trust {
                own: vec![own],
                trusted: trusted_paths,
            },
        },
        shards: raw.shards,
        schema,
        stages,
        stamp,
        builtins,
        serve,
    })
}

/// Checks `[stamp]`: globs that parse, fields that are header fields, comment prefixes.
///
/// # Errors
/// The first problem, naming the key and the file.
fn checked_stamp(stamp: StampConfig, file: &Option<PathBuf>) -> Result<StampConfig, Error> {
    let at = source_name(file);
    for (i, m) in stamp.map.iter().enumerate() {
        let key = format!("stamp.map[{i}]");
        globset::Glob::new(&m.glob)
            .map_err(|e| Error::config(format!("{at}: {key}.glob `{}`: {e}", m.glob)))?;
        for field in m.fields.keys().chain(m.values.keys()) {
            if !Field::ALL.iter().any(|f| f.name() == field) {
                return Err(Error::config(format!(
                    "{at}: {key}: `{field}` is not a header field: use scope, type, variant or \
                     status"
                )));
            }
        }
    }
    for (ext, prefix) in &stamp.comments {
        if !ext.starts_with('.') || ext.len() < 2 || ext.contains(['/', '\\']) {
            return Err(Error::config(format!(
                "{at}: stamp.comments: `{ext}` is not a file extension: write it with its dot, \
                 e.g. \".rego\""
            )));
        }
        if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::config(format!(
                "{at}: stamp.comments.\"{ext}\": `{prefix}` is not a line comment prefix"
            )));
        }
    }
    Ok(stamp)
}

/// The name of the configuration file [`load`] looks for.
pub const CONFIG_FILE: &str = "registry.toml";

/// The nearest `registry.toml` in `dir` or its parents, stopping after the repository root (a
/// directory holding `.git`) or at the file system's root, as cargo and ruff look for theirs.
pub fn nearest_config(dir: &Path) -> Option<PathBuf> {
    let mut dir = Some(dir);
    while let Some(d) = dir {
        let candidate = d.join(CONFIG_FILE);
        if candidate.is_file() {
            return Some(candidate);
        }
        if d.join(".git").exists() {
            return None;
        }
        dir = d.parent();
    }
    None
}

/// Whether the user trusted `file`: it, or a directory holding it, is a trusted path.
fn is_trusted(file: &Path, trusted: &[PathBuf]) -> bool {
    let Ok(real) = file.canonicalize() else {
        return false;
    };
    trusted.iter().any(|t| {
        t.canonicalize()
            .is_ok_and(|t| real == t || (t.is_dir() && real.starts_with(&t)))
    })
}

/// The paths a configuration file itself sets (not the environment): `data_dir`, `plugin_dir`
/// and the generator's `templates_dir`.
struct FilePaths {
    data_dir: Option<PathBuf>,
    tokens_file: Option<PathBuf>,
    tls: Vec<PathBuf>,
    plugin_dir: bool,
    templates_dir: Option<PathBuf>,
    /// Each `library` the file sets.
    libraries: Vec<(StageKind, String)>,
}

fn paths_given(file: &Path) -> Result<FilePaths, Error> {
    let raw: RawConfig = Figment::new()
        .merge(Toml::file_exact(file))
        .extract()
        .map_err(|e| figment_error(&e))?;
    let templates_dir = raw
        .generator
        .config
        .as_ref()
        .and_then(|c| c.get("templates_dir"))
        .and_then(|v| v.as_str().map(PathBuf::from));
    let libraries = [
        (StageKind::Cache, raw.cache.library),
        (StageKind::Generator, raw.generator.library),
        (StageKind::Validator, raw.validator.library),
        (StageKind::Storage, raw.storage.library),
        (StageKind::Router, raw.router.library),
    ]
    .into_iter()
    .filter_map(|(stage, library)| Some((stage, library?)))
    .collect();
    Ok(FilePaths {
        data_dir: raw.data_dir.map(|d| d.original().to_owned()),
        tokens_file: raw.serve.tokens_file.map(|d| d.original().to_owned()),
        tls: [raw.serve.tls_cert, raw.serve.tls_key]
            .into_iter()
            .flatten()
            .map(|d| d.original().to_owned())
            .collect(),
        plugin_dir: raw.plugin_dir.is_some(),
        templates_dir,
        libraries,
    })
}

/// Refuses what an untrusted configuration file may not set: code to run (`plugin_dir`, a
/// plugin library file) or a place outside its own directory (`data_dir`, `templates_dir`).
fn restricted(file: &Path, base_dir: &Path, given: &FilePaths) -> Result<(), Error> {
    let refuse = |key: &str, why: &str| {
        Error::config(format!(
            "{}: `{key}` {why}, which a registry.toml found from the working directory may \
             not do until you trust it: run `registry trust {}` if you do (or name it with \
             --config)",
            file.display(),
            file.display()
        ))
    };
    if given.plugin_dir {
        return Err(refuse(
            "plugin_dir",
            "chooses where plugin code is loaded from",
        ));
    }
    let nowhere = SearchPaths {
        plugin_dir: PathBuf::new(),
        base_dir: PathBuf::new(),
        trust: Trust::default(),
    };
    for (stage, library) in &given.libraries {
        if let registry_abi::load::Library::File(_) = registry_abi::load::library(library, &nowhere)
        {
            return Err(refuse(
                &format!("{stage}.library = {library:?}"),
                "names a plugin library, code that would run",
            ));
        }
    }
    let inside = |p: &Path| {
        let joined = absolute(p, base_dir);
        let real = joined.canonicalize().unwrap_or(joined);
        let base = base_dir
            .canonicalize()
            .unwrap_or_else(|_| base_dir.to_owned());
        real.starts_with(base)
    };
    if let Some(d) = &given.data_dir
        && !inside(d)
    {
        return Err(refuse(
            &format!("data_dir = {:?}", d.display().to_string()),
            "points outside its directory",
        ));
    }
    if let Some(d) = &given.tokens_file
        && !inside(d)
    {
        return Err(refuse(
            &format!("serve.tokens_file = {:?}", d.display().to_string()),
            "points outside its directory",
        ));
    }
    for d in &given.tls {
        if !inside(d) {
            return Err(refuse(
                &format!("serve.tls = {:?}", d.display().to_string()),
                "points outside its directory",
            ));
        }
    }
    if let Some(d) = &given.templates_dir
        && !inside(d)
    {
        return Err(refuse(
            &format!(
                "generator.config.templates_dir = {:?}",
                d.display().to_string()
            ),
            "points outside its directory",
        ));
    }
    Ok(())
}

/// A warning for each `REGISTRY_*` variable that names no setting but is a small edit away from
/// one (`REGISTRY_DATADIR`), since a mistyped variable would otherwise be silently ignored. Other
/// `REGISTRY_*` variables stay allowed: other software uses the prefix too.
fn lookalike_variables(names: impl Iterator<Item = String>) -> Vec<String> {
    names
        .filter_map(|name| {
            let meant = lookalike(&name)?;
            Some(format!(
                "environment variable {name} is not a registry setting and is ignored; did you \
                 mean {meant}?"
            ))
        })
        .collect()
}

/// The setting variable `name` resembles, when it names none itself.
fn lookalike(name: &str) -> Option<String> {
    let rest = name.strip_prefix("REGISTRY_")?;
    if OWN_VARIABLES.contains(&name) || rest.starts_with("TEST_") {
        return None;
    }
    let first = rest.split("__").next().unwrap_or(rest).to_ascii_lowercase();
    if TOP_LEVEL_KEYS.contains(&first.as_str()) {
        return None;
    }
    let own = OWN_VARIABLES.iter().map(|v| {
        (
            v.trim_start_matches("REGISTRY_").to_ascii_lowercase(),
            (*v).to_owned(),
        )
    });
    let settings = TOP_LEVEL_KEYS.iter().map(|k| {
        (
            (*k).to_owned(),
            format!("REGISTRY_{}", k.to_ascii_uppercase()),
        )
    });
    own.chain(settings)
        .map(|(key, var)| (edit_distance(&first, &key), var))
        .filter(|&(d, _)| d <= 2 && d < first.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, var)| {
            let tail = rest.find("__").map_or("", |at| &rest[at..]);
            format!("{var}{tail}")
        })
}

/// Levenshtein distance between two short ASCII strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

fn source_name(file: &Option<PathBuf>) -> String {
    file.as_ref().map_or_else(
        || "built-in configuration".to_owned(),
        |f| f.display().to_string(),
    )
}

/// The absolute form of `path`, with `.` and `..` resolved lexically (without following links),
/// so messages and reports show `/srv/x/data` rather than `/srv/x/conf/../data`.
fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    use std::path::Component;
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        cwd.join(path)
    };
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn exe_dir() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::config(format!("cannot locate the registry executable: {e}")))?;
    let exe = exe.canonicalize().unwrap_or(exe);
    Ok(exe.parent().map(Path::to_owned).unwrap_or_default())
}

/// Builds the schema: a field whose list is not given keeps the built-in list and default; a
/// field whose list is given has the default written in `[schema.defaults]`, or none.
/// Compiles `[lint] require`, naming every glob that is not one.
fn lint_settings(raw: RawLint, base: &Path) -> Result<LintSettings, Vec<String>> {
    let mut set = globset::GlobSetBuilder::new();
    let mut problems = Vec::new();
    for glob in &raw.require {
        match globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
        {
            Ok(g) => {
                set.add(g);
            }
            Err(e) => problems.push(format!(
                "lint.require: `{glob}` is not a glob: {}",
                e.kind()
            )),
        }
    }
    let require = set
        .build()
        .map_err(|e| vec![format!("lint.require: {e}")])?;
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(LintSettings {
        require,
        require_globs: raw.require,
        base: base.to_owned(),
    })
}

fn schema(raw: RawSchema) -> Result<Schema, Vec<String>> {
    let builtin = Schema::default();
    let lists = Fields {
        scope: raw.scope,
        kind: raw.kind,
        variant: raw.variant,
        status: raw.status,
    };
    let given = Fields {
        scope: raw.defaults.scope,
        kind: raw.defaults.kind,
        variant: raw.defaults.variant,
        status: raw.defaults.status,
    };
    let defaults = Fields::from_fn(|f| match (&lists[f], &given[f]) {
        (_, Some(d)) => Some(d.clone()),
        (None, None) => builtin.default_value(f).map(str::to_owned),
        (Some(_), None) => None,
    });
    let values = lists.map(|f, list| list.unwrap_or_else(|| builtin.allowed(f).to_vec()));
    let version = raw.version.unwrap_or_else(|| builtin.version().to_owned());
    Schema::new(values, version, defaults)
        .and_then(|schema| schema.with_required(raw.required))
        .and_then(|schema| schema.with_id_scopes(raw.id_scope))
        .map_err(|errors| errors.into_iter().map(|e| e.to_string()).collect())
}

/// One line naming the key and where it was set.
fn figment_error(e: &figment::Error) -> Error {
    use figment::error::Kind;
    let source = e
        .metadata
        .as_ref()
        .and_then(|m| m.source.as_ref())
        .map_or_else(|| "configuration".to_owned(), ToString::to_string);
    let key = e.path.join(".");
    let message = match &e.kind {
        Kind::UnknownField(_, expected) => {
            format!(
                "unknown key `{key}` in {source} (expected one of: {})",
                expected.join(", ")
            )
        }
        Kind::InvalidType(actual, expected) => {
            format!("`{key}` in {source} has the wrong type: found {actual}, expected {expected}")
        }
        Kind::Message(m) => format!("{source}: {}", m.lines().next().unwrap_or(m)),
        other => format!("`{key}` in {source}: {other}"),
    };
    // Where, for `--format json`'s error object: the file (when a file said it) and the key.
    let mut error = Error::config(message);
    if let Some(figment::Source::File(file)) = e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
        error = error.in_file(file.display().to_string());
    }
    if !key.is_empty() {
        error = error.on_field(key);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_close_to_a_setting_are_named() {
        for (name, want) in [
            ("REGISTRY_DATADIR", Some("REGISTRY_DATA_DIR")),
            ("REGISTRY_DATA_DIRR", Some("REGISTRY_DATA_DIR")),
            ("REGISTRY_SHRADS", Some("REGISTRY_SHARDS")),
            (
                "REGISTRY_STORGE__CONFIG__CACHE_SIZE_MB",
                Some("REGISTRY_STORAGE__CONFIG__CACHE_SIZE_MB"),
            ),
            ("REGISTRY_TRUTS", Some("REGISTRY_TRUST")),
            ("REGISTRY_DATA_DIR", None),
            ("REGISTRY_STORAGE__CONFIG__DURABLE", None),
            ("REGISTRY_CONFIG", None),
            ("REGISTRY_TEST_REDIS_NODES", None),
            ("REGISTRY_AUTH", None),
            ("REGISTRY_MIRROR_URL", None),
            ("HOME", None),
        ] {
            assert_eq!(lookalike(name).as_deref(), want, "{name}");
        }
        assert_eq!(edit_distance("datadir", "data_dir"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn paths_are_made_absolute_and_tidy() {
        let cwd = Path::new("/srv/reg");
        for (path, want) in [
            ("data", "/srv/reg/data"),
            ("conf/../data", "/srv/reg/data"),
            ("./a/./b", "/srv/reg/a/b"),
            ("/opt/x/../y", "/opt/y"),
            ("../../..", "/"),
        ] {
            assert_eq!(
                absolute(Path::new(path), cwd),
                PathBuf::from(want),
                "{path}"
            );
        }
    }

    #[test]
    fn serving_beyond_loopback_needs_a_token() {
        let at = |listen: &str| ServeSettings {
            listen: listen.parse().expect("an address"),
            tokens_file: PathBuf::from("data/tokens.json"),
            tls: None,
            limits: ServeLimits::default(),
        };
        assert!(at("127.0.0.1:8420").check_exposure(0).is_ok());
        assert!(at("[::1]:8420").check_exposure(0).is_ok());
        assert!(at("0.0.0.0:8420").check_exposure(1).is_ok());
        let refused = at("0.0.0.0:8420").check_exposure(0).expect_err("refused");
        assert!(
            refused
                .to_string()
                .contains("listening on 0.0.0.0:8420 needs authentication"),
            "{refused}"
        );
    }
}
