//! Settings: `registry.toml` (or built-in defaults) with `REGISTRY_*` environment overrides,
//! read in two steps: raw serde structs that reject unknown keys, then a checked [`Settings`].

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, magic::RelativePathBuf};
use registry_abi::load::{SearchPaths, StageSpec};
use registry_core::{Fields, Schema, StageKind};
use serde::Deserialize;

use crate::CliError;

/// The top-level keys of `registry.toml`. Environment variables are matched against these only:
/// `REGISTRY_*` is a common prefix (container registries use it too), so a variable naming no
/// known key is someone else's and is ignored rather than rejected.
const TOP_LEVEL_KEYS: [&str; 9] = [
    "data_dir",
    "plugin_dir",
    "shards",
    "schema",
    "cache",
    "generator",
    "validator",
    "storage",
    "router",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<RelativePathBuf>,
    plugin_dir: Option<RelativePathBuf>,
    shards: Option<u32>,
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

/// Checked settings.
#[derive(Debug)]
pub struct Settings {
    /// The configuration file read, if any.
    pub file: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub paths: SearchPaths,
    /// Shards requested by the configuration; `None` means "as recorded, or one per core for a
    /// new registry".
    pub shards: Option<u32>,
    pub schema: Schema,
    pub stages: Vec<StageSpec>,
}

/// The plugin each stage uses when `registry.toml` does not say.
pub fn default_library(stage: StageKind) -> &'static str {
    match stage {
        StageKind::Cache => "cache-moka",
        StageKind::Generator => "generator-default",
        StageKind::Validator => "validator-schema",
        StageKind::Storage => "storage-redb",
        StageKind::Router => "router-hash",
    }
}

/// Reads the settings: `--config PATH`, else `./registry.toml` if present, else built-in
/// defaults; then `REGISTRY_*` environment variables on top.
///
/// # Errors
/// A missing `--config` file, unparsable TOML, an unknown key (named, with its file), or an
/// invalid schema (every problem, one per line).
pub fn load(config: Option<&Path>, data_dir: Option<&Path>) -> Result<Settings, CliError> {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::config(format!("cannot read the current directory: {e}")))?;
    let file = match config {
        Some(path) if !path.is_file() => {
            return Err(CliError::config(format!(
                "config file {} not found",
                path.display()
            )));
        }
        Some(path) => Some(path.to_owned()),
        None => Some(cwd.join("registry.toml")).filter(|p| p.is_file()),
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
    let data_dir = match (data_dir, &raw.data_dir) {
        (Some(d), _) => absolute(d, &cwd),
        (None, Some(d)) => absolute(&d.relative(), &cwd),
        (None, None) => base_dir.join(".registry"),
    };
    let plugin_dir = match &raw.plugin_dir {
        Some(d) => absolute(&d.relative(), &cwd),
        None => exe_dir()?,
    };
    if raw.shards == Some(0) {
        return Err(CliError::config(format!(
            "{}: shards must be at least 1",
            source_name(&file)
        )));
    }
    let schema = schema(raw.schema).map_err(|problems| {
        CliError::config(format!("{}: {}", source_name(&file), problems.join("; ")))
    })?;
    let stages = [
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
    Ok(Settings {
        file,
        data_dir,
        paths: SearchPaths {
            plugin_dir,
            base_dir,
        },
        shards: raw.shards,
        schema,
        stages,
    })
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

fn exe_dir() -> Result<PathBuf, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::config(format!("cannot locate the registry executable: {e}")))?;
    let exe = exe.canonicalize().unwrap_or(exe);
    Ok(exe.parent().map(Path::to_owned).unwrap_or_default())
}

/// Builds the schema: a field whose list is not given keeps the built-in list and default; a
/// field whose list is given has the default written in `[schema.defaults]`, or none.
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
        .map_err(|errors| errors.into_iter().map(|e| e.to_string()).collect())
}

/// One line naming the key and where it was set.
fn figment_error(e: &figment::Error) -> CliError {
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
    CliError::config(message)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
