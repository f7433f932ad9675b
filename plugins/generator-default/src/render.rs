//! The YAML config template: the original system's document shape, made deterministic.
//!
//! The document is a tree of borrowed `#[derive(Serialize)]` structs: struct fields serialize in
//! declaration order, so the key order is fixed without a map, and nothing is copied into an
//! intermediate value tree. The parts that do not depend on the draft (security settings,
//! performance, filters) are constants. The original system embedded random confidences,
//! timestamps and a second header with another id; none of that is kept, so the same draft
//! always renders to the same bytes.
//!
//! The document is written by `crate::emit`, whose output the tests compare with what
//! `yaml_serde` writes for the same document.

use registry_core::{Context, Draft, EntryId, ErrorCode, StageError, StageResult};
use serde::{Serialize, Serializer};

use crate::emit;

/// Room for a typical config, so the output buffer seldom grows while rendering.
const TYPICAL_CONFIG_BYTES: usize = 1536;

#[derive(Serialize)]
struct Document<'a> {
    dashboard: Dashboard<'a>,
    governance: Governance<'a>,
    #[serde(skip_serializing_if = "ContextMap::is_empty")]
    context: ContextMap<'a>,
}

#[derive(Serialize)]
struct Dashboard<'a> {
    title: &'a str,
    version: &'a str,
    header: String,
    grepable: String,
    security: &'static Security,
    filters: &'static [&'static str],
    deployment: Deployment<'a>,
    performance: &'static Performance,
}

#[derive(Serialize)]
struct Security {
    csrf: bool,
    cookies: Cookies,
    authentication: Authentication,
    encryption: Encryption,
    rate_limit: RateLimit,
}

#[derive(Serialize)]
struct Cookies {
    secure: bool,
    http_only: bool,
    same_site: &'static str,
}

#[derive(Serialize)]
struct Authentication {
    required: bool,
    mfa: bool,
    session_timeout_minutes: u32,
}

#[derive(Serialize)]
struct Encryption {
    at_rest: bool,
    in_transit: bool,
    min_tls_version: &'static str,
}

#[derive(Serialize)]
struct RateLimit {
    requests_per_minute: u32,
    burst: u32,
}

#[derive(Serialize)]
struct Deployment<'a> {
    environment: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    replicas: u32,
    health_check: &'static str,
}

#[derive(Serialize)]
struct Performance {
    cache: CacheSettings,
    batch_size: u32,
    timeout_ms: u32,
}

#[derive(Serialize)]
struct CacheSettings {
    enabled: bool,
    ttl_seconds: u32,
    max_entries: u32,
}

#[derive(Serialize)]
struct Governance<'a> {
    id: &'a EntryId,
    scope: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    variant: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a str>,
}

/// The request context as a YAML mapping, in the context's (sorted) key order, without copying it
/// into a map first.
struct ContextMap<'a>(&'a Context);

impl ContextMap<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for ContextMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter())
    }
}

/// Settings for production: secure cookies, mandatory MFA, encryption everywhere, a tight limit.
static PRODUCTION: Security = Security {
    csrf: true,
    cookies: Cookies {
        secure: true,
        http_only: true,
        same_site: "strict",
    },
    authentication: Authentication {
        required: true,
        mfa: true,
        session_timeout_minutes: 15,
    },
    encryption: Encryption {
        at_rest: true,
        in_transit: true,
        min_tls_version: "1.3",
    },
    rate_limit: RateLimit {
        requests_per_minute: 100,
        burst: 20,
    },
};

/// Settings for every other environment: still authenticated and encrypted in transit, but
/// without the constraints that get in the way of local work.
static DEVELOPMENT: Security = Security {
    csrf: false,
    cookies: Cookies {
        secure: false,
        http_only: true,
        same_site: "lax",
    },
    authentication: Authentication {
        required: true,
        mfa: false,
        session_timeout_minutes: 480,
    },
    encryption: Encryption {
        at_rest: false,
        in_transit: true,
        min_tls_version: "1.2",
    },
    rate_limit: RateLimit {
        requests_per_minute: 1000,
        burst: 200,
    },
};

static PERFORMANCE: Performance = Performance {
    cache: CacheSettings {
        enabled: true,
        ttl_seconds: 300,
        max_entries: 10_000,
    },
    batch_size: 50,
    timeout_ms: 5000,
};

/// The filter fields a dashboard of a scope offers, as in the original system.
fn filters(scope: &str) -> &'static [&'static str] {
    const SEC: &[&str] = &["threat_level", "source_ip", "destination_port", "action"];
    const OPS: &[&str] = &["cpu", "memory", "disk", "latency_ms"];
    const ETL: &[&str] = &[
        "records_processed",
        "records_failed",
        "duration_ms",
        "source",
    ];
    const DASHBOARD: &[&str] = &["price", "volume", "change_percent", "market"];
    const OTHER: &[&str] = &["id", "status", "created_at"];
    // Scopes arrive in the schema's spelling; comparing without case keeps custom schemas that
    // spell them differently working.
    [
        ("SEC", SEC),
        ("OPS", OPS),
        ("ETL", ETL),
        ("DASHBOARD", DASHBOARD),
    ]
    .into_iter()
    .find(|(name, _)| scope.eq_ignore_ascii_case(name))
    .map_or(OTHER, |(_, list)| list)
}

/// Whether the context names a production environment (`env=prod` or `env=production`).
fn is_production(env: Option<&str>) -> bool {
    env.is_some_and(|e| e.eq_ignore_ascii_case("prod") || e.eq_ignore_ascii_case("production"))
}

/// Renders the config of one draft.
///
/// # Errors
/// An `Internal` error if the emitter fails, which the fixed shape of the document should make
/// impossible.
pub(crate) fn render(draft: &Draft) -> StageResult<String> {
    let capacity = TYPICAL_CONFIG_BYTES + draft.title.len();
    emit::to_string(&document(draft), capacity).map_err(|e| {
        StageError::new(
            ErrorCode::Internal,
            format!("cannot render the config of {}: {e}", draft.header.id),
        )
    })
}

/// The document of a draft, borrowing from it.
fn document(draft: &Draft) -> Document<'_> {
    let header = &draft.header;
    let context = &draft.context;
    let env = context.get("env");
    let production = is_production(env);
    Document {
        dashboard: Dashboard {
            title: &draft.title,
            version: &header.version,
            header: header.readable(),
            grepable: header.grepable(),
            security: if production {
                &PRODUCTION
            } else {
                &DEVELOPMENT
            },
            filters: filters(&header.fields.scope),
            deployment: Deployment {
                environment: env.unwrap_or("development"),
                region: context.get("region"),
                replicas: if production { 3 } else { 1 },
                health_check: "/health",
            },
            performance: &PERFORMANCE,
        },
        governance: Governance {
            id: &header.id,
            scope: &header.fields.scope,
            kind: &header.fields.kind,
            variant: &header.fields.variant,
            status: &header.fields.status,
            owner: context.get("owner"),
        },
        context: ContextMap(context),
    }
}

#[cfg(test)]
mod tests {
    use registry_core::{Fields, Header};

    use super::*;

    fn draft(scope: &str, kind: &str, title: &str, pairs: &[(&str, &str)]) -> Draft {
        Draft {
            header: Header {
                fields: Fields {
                    scope: scope.into(),
                    kind: kind.into(),
                    variant: "LIVE".into(),
                    status: "DEV".into(),
                },
                id: EntryId::new(EntryId::prefix_for(scope, kind), 7),
                version: "v1.0.3".into(),
            },
            title: title.into(),
            context: Context::new(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            )
            .expect("valid context"),
        }
    }

    /// The emitter and `yaml_serde` write the same document as the same YAML value, and for
    /// ordinary drafts as the same bytes.
    #[test]
    fn matches_yaml_serde() {
        let parse = |s: &str| -> yaml_serde::Value {
            yaml_serde::from_str(s).unwrap_or_else(|e| panic!("{s}\ndoes not parse: {e}"))
        };
        let cases = [
            draft(
                "SEC",
                "RULES",
                "Block SSH from the internet",
                &[("env", "prod")],
            ),
            draft("OPS", "SCRIPT", "Restart (nightly), then check", &[]),
            draft(
                "ETL",
                "MULTI-ETL",
                "Load: orders # 2",
                &[("owner", "it's me"), ("region", "eu-west-1"), ("true", "1")],
            ),
            draft(
                "DASHBOARD",
                "CONFIG",
                "[draft] prices",
                &[("env", "staging")],
            ),
            draft("GOV", "RULES", "yes", &[("a", "\"quoted\""), ("b", "~")]),
        ];
        for (i, d) in cases.iter().enumerate() {
            let ours = render(d).expect("renders");
            let theirs = yaml_serde::to_string(&document(d)).expect("yaml_serde writes it");
            assert_eq!(
                parse(&ours),
                parse(&theirs),
                "ours:\n{ours}\ntheirs:\n{theirs}"
            );
            if i < 2 {
                assert_eq!(ours, theirs);
            }
        }
    }
}
