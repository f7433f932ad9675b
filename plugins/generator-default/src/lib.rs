//! The default generator: keyword rules fill the header fields a request leaves empty, and a
//! fixed template renders the YAML config.
//!
//! # Predicting fields
//!
//! Each rule lists words and the values they suggest. A rule matches a request when one of its
//! words starts a word of the title or of a context value, ignoring case: `alert` matches
//! "Alerts" and "alerting", while `ops` does not match "stops" and `etl` does not match "kettle".
//! Words are the runs of letters and digits. For each field the request leaves empty, the first
//! matching rule (in rule order) that sets the field decides; a field no rule sets is left empty,
//! and the pipeline then applies the schema's default.
//!
//! The built-in rules reproduce the original system's keyword if/else, tried in this order:
//!
//! | words               | scope     | type      | status   |
//! |---------------------|-----------|-----------|----------|
//! | `security`          | SEC       | RULES     | REQUIRED |
//! | `ops`, `devops`     | OPS       | SCRIPT    |          |
//! | `dashboard`         | DASHBOARD | CONFIG    |          |
//! | `etl`               | ETL       | MULTI-ETL |          |
//! | `alert`             | ALERT     |           |          |
//! | `bash`, `shell`     | BASH      | SCRIPT    |          |
//!
//! The last two are additions; `devops` is listed because the original's substring test caught it.
//! With a custom schema, built-in values the schema does not declare are dropped silently. The
//! `keywords` config key replaces the built-in rules altogether, and there a value the schema does
//! not declare is an error.
//!
//! Keyword rules are not calibrated estimates, so their guesses carry no confidence
//! ([`Guess::confidence`] is `None`, [`Source::Keyword`]).
//!
//! # Rendering configs
//!
//! The config keeps the original system's shape: a `dashboard` section (title, version, the
//! entry's header in both forms, security settings that are stricter when the context says
//! `env=prod` or `env=production`, the filter fields of the scope, deployment and performance
//! settings), a `governance` section (id, the four fields, the context's `owner`), and the request
//! context as a sorted mapping when there is one. Rendering is deterministic: no times, no
//! randomness, keys in a fixed order.
//!
//! Design decision: the document is a tree of borrowed `Serialize` structs written by a small
//! block-YAML serializer in this crate (module `emit`), not assembled with `format!`, which gets the
//! quoting of titles with `:`, `#`, quotes or a leading `[` wrong. `yaml_serde` was the first
//! choice and remains the reference: the tests write the same documents with both and check that
//! they read back as the same YAML values. It was set aside for rendering because its emitter, a translation of libyaml,
//! renders this template about 30,000 times a second on one core; the emitter here does several
//! times that. Building a `yaml_serde::Value` tree first was rejected as needless allocation.

mod emit;
mod keywords;
mod render;

use registry_core::{Draft, FromConfig, Generator, Prediction, Request, Setup, StageResult};
use serde::Deserialize;

pub use keywords::KeywordRule;
use keywords::Rules;

#[cfg(doc)]
use registry_core::{Guess, Source};

/// The generator's `[generator.config]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `keywords`: the keyword rules, tried in order. When given, they replace the built-in rules
    /// (see the crate documentation); an empty list turns keyword prediction off. Default: the
    /// built-in rules.
    pub keywords: Option<Vec<KeywordRule>>,
}

/// Keyword-rule prediction and template rendering; see the crate documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultGenerator {
    rules: Rules,
}

impl FromConfig for DefaultGenerator {
    type Config = Config;

    /// # Errors
    /// A `Config` error naming every configured rule with no words, a word that is not letters and
    /// digits, or a value the schema does not declare (with the values it allows).
    fn from_config(config: Config, setup: &Setup) -> StageResult<Self> {
        let rules = match &config.keywords {
            Some(rules) => Rules::from_config(rules, &setup.schema)?,
            None => Rules::built_in(&setup.schema),
        };
        Ok(DefaultGenerator { rules })
    }
}

impl Generator for DefaultGenerator {
    fn predict(&self, requests: &[Request], out: &mut Vec<Prediction>) -> StageResult<()> {
        out.reserve(requests.len());
        out.extend(requests.iter().map(|r| self.rules.predict(r)));
        Ok(())
    }

    fn render(&self, drafts: &[Draft], out: &mut Vec<String>) -> StageResult<()> {
        out.reserve(drafts.len());
        for draft in drafts {
            out.push(render::render(draft)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use registry_core::{Context, EntryId, ErrorCode, Fields, Header, Schema, Source};
    use registry_testkit::sample::given as fields;
    use serde_json::json;

    use super::*;

    fn setup(schema: Schema) -> Setup {
        Setup {
            schema,
            data_dir: PathBuf::from("/nonexistent"),
            config_dir: PathBuf::from("/nonexistent"),
            shard: 0,
            shards: 1,
        }
    }

    fn generator(config: serde_json::Value, schema: Schema) -> StageResult<DefaultGenerator> {
        let config: Config = serde_json::from_value(config).expect("config deserializes");
        DefaultGenerator::from_config(config, &setup(schema))
    }

    fn context(pairs: &[(&str, &str)]) -> Context {
        Context::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .expect("valid context")
    }

    fn predict_with(
        generator: &DefaultGenerator,
        title: &str,
        given: &str,
        ctx: &[(&str, &str)],
    ) -> Fields<Option<String>> {
        let request =
            Request::new(title, fields(given), None, context(ctx)).expect("valid request");
        let mut out = Vec::new();
        generator
            .predict(std::slice::from_ref(&request), &mut out)
            .expect("predicts");
        assert_eq!(out.len(), 1);
        let prediction = out.pop().expect("one prediction");
        prediction.map(|_, g| {
            g.map(|g| {
                assert_eq!(g.confidence, None, "keyword guesses carry no confidence");
                assert_eq!(g.source, Source::Keyword);
                g.value
            })
        })
    }

    #[test]
    fn built_in_keywords() {
        let g = generator(json!({}), Schema::default()).expect("default config works");
        let check = |title: &str, expected: &str| {
            assert_eq!(
                predict_with(&g, title, "- - - -", &[]),
                fields(expected),
                "{title:?}"
            );
        };
        check("Block SSH security group", "SEC RULES - REQUIRED");
        check("SECURITY: patch the kernel", "SEC RULES - REQUIRED");
        check("Ops runbook for restarts", "OPS SCRIPT - -");
        check("DevOps pipeline cleanup", "OPS SCRIPT - -");
        check("Sales dashboards", "DASHBOARD CONFIG - -");
        check("Nightly ETL of orders", "ETL MULTI-ETL - -");
        check("Alerting on disk usage", "ALERT - - -");
        check("Rotate logs with a shell script", "BASH SCRIPT - -");
        check("cleanup.bash helper", "BASH SCRIPT - -");
        // Earlier rules win field by field, as the original's if/else did.
        check("Security dashboard", "SEC RULES - REQUIRED");
        check("Dashboard for ops", "OPS SCRIPT - -");
        check("Alert when the ETL stalls", "ETL MULTI-ETL - -");
        check("Alert from a bash cron job", "ALERT SCRIPT - -");
        // Words inside other words do not count.
        check("Stops the workshops", "- - - -");
        check("Kettle descaling", "- - - -");
        check("Insecurity", "- - - -");
        check("Quarterly report", "- - - -");
        check("Sécurité réseau", "- - - -");
    }

    #[test]
    fn only_missing_fields_are_proposed() {
        let g = generator(json!({}), Schema::default()).expect("default config works");
        assert_eq!(
            predict_with(&g, "Block SSH security group", "GOV - - LIVE", &[]),
            fields("- RULES - -")
        );
        assert_eq!(
            predict_with(&g, "Security dashboard", "SEC - - -", &[]),
            fields("- RULES - REQUIRED")
        );
    }

    #[test]
    fn context_values_are_searched() {
        let g = generator(json!({}), Schema::default()).expect("default config works");
        assert_eq!(
            predict_with(&g, "Weekly report", "- - - -", &[("team", "security")]),
            fields("SEC RULES - REQUIRED")
        );
        // Keys are not values: `ops=1` says nothing.
        assert_eq!(
            predict_with(&g, "Weekly report", "- - - -", &[("ops", "1")]),
            fields("- - - -")
        );
    }

    #[test]
    fn one_prediction_per_request() {
        let g = generator(json!({}), Schema::default()).expect("default config works");
        let requests: Vec<Request> = ["security", "nothing", "etl"]
            .iter()
            .map(|t| Request::new(t, Fields::default(), None, Context::default()).expect("valid"))
            .collect();
        let mut out = vec![Prediction::default()];
        g.predict(&requests, &mut out).expect("predicts");
        let scopes: Vec<Option<&str>> = out
            .iter()
            .map(|p| p.scope.as_ref().map(|g| g.value.as_str()))
            .collect();
        assert_eq!(scopes, [None, Some("SEC"), None, Some("ETL")]);
    }

    #[test]
    fn configured_keywords_replace_the_built_in_ones() {
        let g = generator(
            json!({ "keywords": [
                { "words": ["firewall", "Vulnerability"], "scope": "sec", "variant": "compact" },
                { "words": ["firewall"], "scope": "OPS", "status": "LIVE" },
            ]}),
            Schema::default(),
        )
        .expect("valid rules");
        let check = |title: &str, expected: &str| {
            assert_eq!(
                predict_with(&g, title, "- - - -", &[]),
                fields(expected),
                "{title:?}"
            );
        };
        check("Open firewall port", "SEC - COMPACT LIVE");
        check("Weekly VULNERABILITY scan", "SEC - COMPACT -");
        check("Block SSH security group", "- - - -");
        let off = generator(json!({ "keywords": [] }), Schema::default()).expect("valid");
        assert_eq!(
            predict_with(&off, "security", "- - - -", &[]),
            fields("- - - -")
        );
    }

    fn custom_schema() -> Schema {
        let list = |s: &[&str]| s.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
        Schema::new(
            Fields {
                scope: list(&["GOV", "OPS", "Bash"]),
                kind: list(&["RULES", "CONFIG"]),
                variant: list(&["LIVE"]),
                status: list(&["DRAFT", "REQUIRED"]),
            },
            "v1".into(),
            Fields::default(),
        )
        .expect("valid schema")
    }

    #[test]
    fn built_in_values_outside_a_custom_schema_are_dropped() {
        let g = generator(json!({}), custom_schema()).expect("built-in rules adapt");
        let check = |title: &str, expected: &str| {
            assert_eq!(
                predict_with(&g, title, "- - - -", &[]),
                fields(expected),
                "{title:?}"
            );
        };
        // SEC is not declared: the rest of the security rule still applies.
        check("Security review", "- RULES - REQUIRED");
        // SCRIPT is not declared: OPS still applies; values come in the schema's spelling.
        check("Ops runbook", "OPS - - -");
        check("Shell helper", "Bash - - -");
        // Neither ALERT nor anything else of the alert rule is declared.
        check("Alert on disk", "- - - -");
        // The dropped ETL scope lets a later rule decide the scope.
        check("ETL dashboard", "- CONFIG - -");
    }

    #[test]
    fn config_errors_name_rule_field_value_and_allowed_values() {
        let err = generator(
            json!({ "keywords": [
                { "words": ["ok"], "scope": "SEC" },
                { "words": ["x"], "type": "RULEZ", "status": "LIVE" },
                { "words": [], "variant": "NOPE" },
                { "words": ["two words", ""] },
            ]}),
            Schema::default(),
        )
        .expect_err("invalid rules");
        assert_eq!(err.code, ErrorCode::Config);
        assert_eq!(
            err.message,
            "keywords[1].type: `RULEZ` is not one of schema.type: RULES, SCRIPT, CONFIG, MULTI-ETL; \
             keywords[2].words: the list is empty: give at least one word; \
             keywords[2].variant: `NOPE` is not one of schema.variant: EXPANDED, COMPACT, LIVE, DEV, TEST, DEPRECATED, SCRIPT, YAML; \
             keywords[3].words: `two words` is not a word: use letters and digits only; \
             keywords[3].words: `` is not a word: use letters and digits only"
        );
        let err = generator(
            json!({ "keywords": [{ "words": ["security"], "scope": "SEC" }] }),
            custom_schema(),
        )
        .expect_err("SEC is not in the custom schema");
        assert_eq!(
            err.message,
            "keywords[0].scope: `SEC` is not one of schema.scope: GOV, OPS, Bash"
        );
    }

    #[test]
    fn unknown_config_keys_are_rejected() {
        for bad in [
            json!({ "keyword": [] }),
            json!({ "keywords": [{ "words": ["a"], "scopes": "SEC" }] }),
            json!({ "keywords": [{ "scope": "SEC" }] }),
        ] {
            let err = serde_json::from_value::<Config>(bad.clone()).expect_err("rejected");
            let text = err.to_string();
            assert!(
                text.contains("unknown field") || text.contains("missing field"),
                "{bad}: {text}"
            );
        }
        assert_eq!(
            serde_json::from_value::<Config>(json!({})).expect("empty config"),
            Config::default()
        );
    }

    fn draft(title: &str, ctx: &[(&str, &str)]) -> Draft {
        Draft {
            header: Header {
                fields: Fields {
                    scope: "SEC".into(),
                    kind: "RULES".into(),
                    variant: "LIVE".into(),
                    status: "REQUIRED".into(),
                },
                id: EntryId::new(EntryId::prefix_for("SEC", "RULES"), 42),
                version: "v2.9".into(),
            },
            title: title.into(),
            context: context(ctx),
        }
    }

    fn render(drafts: &[Draft]) -> Vec<String> {
        let g = generator(json!({}), Schema::default()).expect("default config works");
        let mut out = Vec::new();
        g.render(drafts, &mut out).expect("renders");
        assert_eq!(out.len(), drafts.len());
        out
    }

    fn parse(yaml: &str) -> yaml_serde::Value {
        yaml_serde::from_str(yaml).expect("rendered config parses")
    }

    #[test]
    fn render_is_deterministic() {
        let d = draft("Block SSH", &[("env", "prod"), ("owner", "alice")]);
        let other = draft("Something else", &[]);
        let out = render(&[d.clone(), other, d.clone()]);
        assert_eq!(out[0], out[2]);
        assert_eq!(out[0], render(&[d])[0]);
        assert_ne!(out[0], out[1]);
    }

    #[test]
    fn production_is_stricter() {
        let [prod, dev, default] = [&[("env", "prod")][..], &[("env", "dev")][..], &[][..]]
            .map(|ctx| parse(&render(&[draft("t", ctx)])[0]));
        let security = |v: &yaml_serde::Value| v["dashboard"]["security"].clone();
        assert_ne!(security(&prod), security(&dev));
        assert_eq!(security(&dev), security(&default));
        assert_eq!(prod["dashboard"]["security"]["csrf"], true);
        assert_eq!(
            prod["dashboard"]["security"]["cookies"]["same_site"],
            "strict"
        );
        assert_eq!(prod["dashboard"]["security"]["authentication"]["mfa"], true);
        assert_eq!(dev["dashboard"]["security"]["authentication"]["mfa"], false);
        assert_eq!(prod["dashboard"]["deployment"]["environment"], "prod");
        assert_eq!(
            default["dashboard"]["deployment"]["environment"],
            "development"
        );
        let limit = |v: &yaml_serde::Value| {
            v["dashboard"]["security"]["rate_limit"]["requests_per_minute"]
                .as_u64()
                .expect("a number")
        };
        assert!(limit(&prod) < limit(&dev));
    }

    #[test]
    fn filters_follow_the_scope() {
        for (scope, kind, first) in [
            ("SEC", "RULES", "threat_level"),
            ("OPS", "SCRIPT", "cpu"),
            ("ETL", "MULTI-ETL", "records_processed"),
            ("DASHBOARD", "CONFIG", "price"),
            ("GOV", "RULES", "id"),
            ("ALERT", "RULES", "id"),
        ] {
            let mut d = draft("t", &[]);
            d.header.fields.scope = scope.into();
            d.header.fields.kind = kind.into();
            d.header.id = EntryId::new(EntryId::prefix_for(scope, kind), 1);
            let v = parse(&render(&[d])[0]);
            assert_eq!(v["dashboard"]["filters"][0], first, "{scope}");
            assert_eq!(v["governance"]["scope"], scope);
            assert_eq!(v["governance"]["type"], kind);
        }
    }

    #[test]
    fn tricky_titles_round_trip() {
        for title in [
            r#"Block "SSH": port 22 # now"#,
            "[SEC] looks like a header",
            "- starts like a list",
            "key: value",
            "it's 'quoted'",
            "yes",
            "null",
            "~",
            "123",
            "0x1F",
            "1e3",
            "v2.9",
            "&anchor *alias !tag %directive @at `tick`",
            "{a: b}, [c]",
            "trailing colon:",
            "é ünïcödé ✓ 日本語",
            "a\\b \\n not a newline",
        ] {
            let d = draft(title, &[("note", "# also: [tricky]"), ("owner", "'o'")]);
            let v = parse(&render(std::slice::from_ref(&d))[0]);
            assert_eq!(v["dashboard"]["title"], title, "{title:?}");
            assert_eq!(v["dashboard"]["header"], d.header.readable().as_str());
            assert_eq!(v["dashboard"]["grepable"], d.header.grepable().as_str());
            assert_eq!(v["context"]["note"], "# also: [tricky]");
            assert_eq!(v["governance"]["owner"], "'o'");
        }
    }

    #[test]
    fn full_config_snapshot() {
        let d = draft(
            "Block SSH: from 0.0.0.0/0",
            &[
                ("owner", "secops"),
                ("region", "eu-west-1"),
                ("env", "prod"),
            ],
        );
        let expected = "\
dashboard:
  title: 'Block SSH: from 0.0.0.0/0'
  version: v2.9
  header: '[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]'
  grepable: '[sec-rules-live-sec-rul-042-v2.9-required]'
  security:
    csrf: true
    cookies:
      secure: true
      http_only: true
      same_site: strict
    authentication:
      required: true
      mfa: true
      session_timeout_minutes: 15
    encryption:
      at_rest: true
      in_transit: true
      min_tls_version: '1.3'
    rate_limit:
      requests_per_minute: 100
      burst: 20
  filters:
  - threat_level
  - source_ip
  - destination_port
  - action
  deployment:
    environment: prod
    region: eu-west-1
    replicas: 3
    health_check: /health
  performance:
    cache:
      enabled: true
      ttl_seconds: 300
      max_entries: 10000
    batch_size: 50
    timeout_ms: 5000
governance:
  id: SEC-RUL-042
  scope: SEC
  type: RULES
  variant: LIVE
  status: REQUIRED
  owner: secops
context:
  env: prod
  owner: secops
  region: eu-west-1
";
        assert_eq!(render(&[d])[0], expected);
    }

    #[test]
    fn optional_parts_are_left_out() {
        let yaml = &render(&[draft("t", &[])])[0];
        let v = parse(yaml);
        assert!(v.get("context").is_none(), "{yaml}");
        assert!(v["governance"].get("owner").is_none(), "{yaml}");
        assert!(
            v["dashboard"]["deployment"].get("region").is_none(),
            "{yaml}"
        );
    }
}
