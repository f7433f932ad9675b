//! The connection to the cluster: a small pool of synchronous cluster connections, bounded
//! retries with backoff, and `WAIT` for replicas.
//!
//! The `redis` crate's synchronous cluster connection follows `MOVED` and `ASK` redirections and
//! refreshes its slot map itself, with a few quick retries. What it does not do is ride out a
//! failover: while a dead master's slots have no new master (a few seconds), its calls fail with
//! I/O errors or `CLUSTERDOWN`. [`Cluster::run`] wraps every call in a second loop that drops the
//! failed connection, waits with exponential backoff and tries again on a fresh one (which reads
//! the slot map anew), `retries` times; then the call fails with code `Unavailable`, naming the
//! nodes and the last error. A writing script run twice by a retry answers the second time
//! with the reply of the first (see `scripts.rs`), so a reply lost in transit costs nothing.
//!
//! A refused password or permission is not transient, though the cluster connection reports a
//! password refused by every seed node as an I/O error: [`refusal`] finds it (in the error's
//! kind, code or text) before anything is retried, and [`classify`] makes it one `Config` line
//! naming the node and the reason. Node URLs and error texts reach messages only through
//! [`NodeUrls`] (see `redact.rs`), so no message shows a password.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection};
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{ErrorKind, RedisError, RedisResult, ServerErrorKind};
use registry_core::{ErrorCode, StageError, StageResult};

use crate::Config;
use crate::redact::{NodeUrls, shown};

/// How many times the cluster connection itself retries a redirected or refused command before
/// [`Cluster::run`] takes over: enough to follow a `MOVED` and an `ASK`.
const INNER_RETRIES: u32 = 3;

/// The settings [`Cluster`] keeps from the config.
#[derive(Debug, Clone)]
struct Policy {
    retries: u32,
    wait_min: Duration,
    wait_max: Duration,
    wait_replicas: u32,
    wait_timeout_ms: u64,
    pool_size: usize,
}

/// A pool of connections to one cluster.
pub(crate) struct Cluster {
    client: ClusterClient,
    /// The seed nodes, shown without passwords.
    nodes: NodeUrls,
    policy: Policy,
    pool: Mutex<Pool>,
    returned: Condvar,
}

#[derive(Default)]
struct Pool {
    idle: Vec<ClusterConnection>,
    /// Connections that exist, idle or in use.
    open: usize,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("nodes", &self.nodes)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Builds the client from the config; connects nothing yet.
    ///
    /// # Errors
    /// Code `Config` when no node is given or a node is not a `redis://` URL. No message shows
    /// a node's password.
    pub(crate) fn new(config: &Config) -> StageResult<Cluster> {
        if config.nodes.is_empty() {
            return Err(config_error(
                "nodes is empty: give at least one seed node of the cluster, e.g. \
                 nodes = [\"redis://127.0.0.1:7000\"]"
                    .to_owned(),
            ));
        }
        let nodes = NodeUrls::new(&config.nodes);
        for node in &config.nodes {
            if !node.starts_with("redis://") {
                return Err(config_error(format!(
                    "node `{}` is not a redis:// url: write nodes as \"redis://host:port\"",
                    shown(node)
                )));
            }
            if let Err(e) = redis::IntoConnectionInfo::into_connection_info(node.as_str()) {
                return Err(config_error(format!(
                    "node `{}` is not a valid redis url: {}",
                    shown(node),
                    describe(&e, &nodes)
                )));
            }
        }
        if config.pool_size == 0 {
            return Err(config_error(
                "pool_size is 0: at least one connection is needed".to_owned(),
            ));
        }
        if config.wait_replicas > 0 && config.wait_timeout_ms == 0 {
            return Err(config_error(format!(
                "wait_timeout_ms is 0 with wait_replicas = {}: WAIT with no timeout would block \
                 forever when replicas are missing; give a timeout in milliseconds",
                config.wait_replicas
            )));
        }
        let wait_min = Duration::from_millis(config.retry_wait_min_ms);
        let wait_max =
            Duration::from_millis(config.retry_wait_max_ms.max(config.retry_wait_min_ms));
        // A WAIT blocks on the server for up to its timeout: the reply must be allowed that long.
        let response_ms = config
            .response_timeout_ms
            .max(config.wait_timeout_ms.saturating_add(1000));
        let client = ClusterClientBuilder::new(config.nodes.clone())
            .retries(INNER_RETRIES)
            .min_retry_wait(config.retry_wait_min_ms)
            .max_retry_wait(config.retry_wait_max_ms.max(config.retry_wait_min_ms + 1))
            .connection_timeout(Duration::from_millis(config.connect_timeout_ms.max(1)))
            .response_timeout(Duration::from_millis(response_ms.max(1)))
            .build()
            .map_err(|e| {
                config_error(format!(
                    "cannot use nodes {}: {}",
                    nodes.joined(),
                    describe(&e, &nodes)
                ))
            })?;
        Ok(Cluster {
            client,
            nodes,
            policy: Policy {
                retries: config.retries,
                wait_min,
                wait_max,
                wait_replicas: config.wait_replicas,
                wait_timeout_ms: config.wait_timeout_ms,
                pool_size: config.pool_size,
            },
            pool: Mutex::new(Pool::default()),
            returned: Condvar::new(),
        })
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        // The pool is changed in single steps, never left half-done by a panic.
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes an idle connection, or opens one while fewer than `pool_size` exist, or waits for
    /// one to come back.
    fn take(&self) -> RedisResult<ClusterConnection> {
        let mut pool = self.pool();
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(conn);
            }
            if pool.open < self.policy.pool_size {
                pool.open += 1;
                drop(pool);
                return self.client.get_connection().inspect_err(|_| {
                    self.pool().open -= 1;
                    self.returned.notify_one();
                });
            }
            pool = self
                .returned
                .wait(pool)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn give_back(&self, conn: Option<ClusterConnection>) {
        let mut pool = self.pool();
        match conn {
            Some(conn) => pool.idle.push(conn),
            None => pool.open -= 1,
        }
        drop(pool);
        self.returned.notify_one();
    }

    /// Runs `call` on a pooled connection, retrying as the module documentation says. `doing`
    /// names the operation in errors ("insert into shard 3").
    ///
    /// # Errors
    /// Code `Unavailable` when the cluster stays unreachable through every retry; otherwise the
    /// error [`classify`] gives the failure (code `Config`, at the first try, for a refused
    /// password or permission).
    pub(crate) fn run<T>(
        &self,
        doing: &str,
        mut call: impl FnMut(&mut ClusterConnection) -> RedisResult<T>,
    ) -> StageResult<T> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let result = self.take().and_then(|mut conn| {
                let result = call(&mut conn);
                // A connection whose call failed at the transport level may hold a half-read
                // reply: it is dropped rather than reused.
                let keep = match &result {
                    Ok(_) => true,
                    Err(e) => !transient(e),
                };
                self.give_back(keep.then_some(conn));
                result
            });
            match result {
                Ok(value) => return Ok(value),
                Err(e) if transient(&e) && attempt < self.policy.retries => {
                    std::thread::sleep(self.backoff(attempt));
                    attempt += 1;
                }
                Err(e) if transient(&e) => {
                    return Err(StageError::new(
                        ErrorCode::Unavailable,
                        format!(
                            "redis cluster unavailable: cannot {doing} after {} attempts over {} \
                             ms (nodes {}): {}",
                            attempt + 1,
                            started.elapsed().as_millis(),
                            self.nodes.joined(),
                            describe(&e, &self.nodes)
                        ),
                    ));
                }
                Err(e) => return Err(classify(doing, &e, &self.nodes)),
            }
        }
    }

    /// The wait before retry number `attempt + 1`: doubling from `retry_wait_min_ms`, capped at
    /// `retry_wait_max_ms`.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.policy
            .wait_min
            .saturating_mul(factor)
            .min(self.policy.wait_max)
    }

    /// After a write to the slot of `key`, waits until `wait_replicas` replicas have it, on the
    /// same connection (WAIT counts the writes of the connection it is sent on). Does nothing
    /// when `wait_replicas` is 0.
    ///
    /// # Errors
    /// Code `Unavailable` naming how many replicas acknowledged, when fewer than asked did so
    /// within `wait_timeout_ms`.
    pub(crate) fn wait_replicas(
        &self,
        conn: &mut ClusterConnection,
        key: &str,
    ) -> RedisResult<Option<WaitShort>> {
        let want = self.policy.wait_replicas;
        if want == 0 {
            return Ok(None);
        }
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(want).arg(self.policy.wait_timeout_ms);
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
            key,
            SlotAddr::Master,
        )));
        let value = conn.route_command(&cmd, route)?;
        let acked: i64 = redis::from_redis_value(value)?;
        let acked = u32::try_from(acked.max(0)).unwrap_or(u32::MAX);
        Ok((acked < want).then_some(WaitShort {
            acked,
            want,
            timeout_ms: self.policy.wait_timeout_ms,
        }))
    }
}

/// Fewer replicas acknowledged a write than `wait_replicas` asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitShort {
    pub(crate) acked: u32,
    pub(crate) want: u32,
    pub(crate) timeout_ms: u64,
}

impl WaitShort {
    /// The error of a write that reached the master but not enough replicas.
    pub(crate) fn error(&self, doing: &str) -> StageError {
        StageError::new(
            ErrorCode::Unavailable,
            format!(
                "cannot {doing} durably: {} of {} replicas acknowledged within {} ms \
                 (wait_replicas, wait_timeout_ms); the batch is written on the master, and \
                 retrying it reports its entries as already stored",
                self.acked, self.want, self.timeout_ms
            ),
        )
    }
}

/// Why the cluster refused the node URLs' credentials: no retry can cure it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The cluster requires a password and the URLs give none (`NOAUTH`).
    NoPassword,
    /// The password or user name is wrong, or the user is disabled (`WRONGPASS`, or the `redis`
    /// crate's `AuthenticationFailed`, which it reports for any refused `AUTH`, including a
    /// password given to a cluster that requires none).
    WrongCredentials,
    /// The user may not run a command the plugin needs (`NOPERM`).
    NoPermission,
}

/// A refusal found in an error, with the code messages name it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) why: Refusal,
    pub(crate) code: &'static str,
    /// Where in the error's text the refusal is named: the node named last before it is the
    /// one that refused (the cluster connection joins every seed node's error into one).
    at: usize,
}

/// Texts that name a refusal in a `redis` error, case as the server and the crate write them.
const REFUSALS: [(&str, Refusal, &str); 7] = [
    ("WRONGPASS", Refusal::WrongCredentials, "WRONGPASS"),
    (
        "invalid username-password pair",
        Refusal::WrongCredentials,
        "WRONGPASS",
    ),
    (
        "Password authentication failed",
        Refusal::WrongCredentials,
        "authentication failed",
    ),
    (
        "AuthenticationFailed",
        Refusal::WrongCredentials,
        "authentication failed",
    ),
    ("NOAUTH", Refusal::NoPassword, "NOAUTH"),
    ("NOPERM", Refusal::NoPermission, "NOPERM"),
    // How the crate writes a parsed `NOPERM` (the kind's name).
    ("NoPerm", Refusal::NoPermission, "NOPERM"),
];

/// The refusal of credentials or of a permission `e` reports, if it does: by its kind or code,
/// or, since the cluster connection wraps what every seed node answered into one I/O error, by
/// its text. The earliest refusal named wins.
pub(crate) fn refusal(e: &RedisError) -> Option<Refused> {
    let text = e.to_string();
    let named = REFUSALS
        .iter()
        .filter_map(|&(marker, why, code)| text.find(marker).map(|at| Refused { why, code, at }))
        .min_by_key(|r| r.at);
    named.or_else(|| {
        let (why, code) = match (e.kind(), e.code()) {
            (ErrorKind::AuthenticationFailed, _) => {
                (Refusal::WrongCredentials, "authentication failed")
            }
            (ErrorKind::Server(ServerErrorKind::NoPerm), _) | (_, Some("NOPERM")) => {
                (Refusal::NoPermission, "NOPERM")
            }
            (_, Some("NOAUTH")) => (Refusal::NoPassword, "NOAUTH"),
            (_, Some("WRONGPASS")) => (Refusal::WrongCredentials, "WRONGPASS"),
            _ => return None,
        };
        Some(Refused {
            why,
            code,
            at: text.len(),
        })
    })
}

/// Whether an error is the cluster or the network being unavailable for now, which a retry on a
/// fresh connection may cure, rather than an answer about the data. A refused password or
/// permission never is, even when reported as an I/O error.
pub(crate) fn transient(e: &RedisError) -> bool {
    if refusal(e).is_some() {
        return false;
    }
    if e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
    {
        return true;
    }
    matches!(
        e.kind(),
        ErrorKind::ClusterConnectionNotFound
            | ErrorKind::Server(
                ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::BusyLoading
                    | ServerErrorKind::ReadOnly
                    | ServerErrorKind::Moved
                    | ServerErrorKind::Ask
            )
    )
}

/// The stage error of a failure that is not transient: `Conflict` for an id taken by another
/// entry (`TAKEN` from a script), `Config` for a refused password or permission, `Storage` for
/// anything else. `nodes` hides the passwords of the text of `e`.
pub(crate) fn classify(doing: &str, e: &RedisError, nodes: &NodeUrls) -> StageError {
    // The scripts' own errors first: their details hold ids, which may spell anything.
    match e.code() {
        Some("TAKEN") => {
            let id = crate::keys::member_text(e.detail().unwrap_or("").as_bytes());
            let taken = registry_core::rules::id_taken(&id);
            StageError::new(taken.code, format!("cannot {doing}: {taken}"))
        }
        Some("DAMAGED") => {
            // Redis appends where in the script the error was raised; the reader needs only what.
            let detail = e.detail().unwrap_or("");
            let detail = detail.split(" script: ").next().unwrap_or(detail);
            StageError::new(
                ErrorCode::Storage,
                format!("cannot {doing}: {}", detail.trim()),
            )
        }
        _ => match refusal(e) {
            Some(refused) => refused_error(doing, e, refused, nodes),
            None => StageError::new(
                ErrorCode::Storage,
                format!("cannot {doing}: {}", describe(e, nodes)),
            ),
        },
    }
}

/// The one line of a refusal: who refused what, and the code that says so. A refused password
/// is about the configuration, not about one call or shard, so it names the node instead; a
/// refused permission names the call that needed it.
fn refused_error(doing: &str, e: &RedisError, refused: Refused, nodes: &NodeUrls) -> StageError {
    let code = refused.code;
    let text = e.to_string();
    let node = nodes.named_before(&text, refused.at);
    let message = match refused.why {
        Refusal::WrongCredentials => {
            format!("cannot authenticate to {node}: wrong password or user ({code})")
        }
        Refusal::NoPassword => format!(
            "cannot authenticate to {node}: the cluster requires a password and the node urls \
             give none ({code}); write it in each, e.g. redis://user:password@host:port"
        ),
        Refusal::NoPermission => {
            let user = match nodes.user() {
                Some(user) => format!("user `{user}`"),
                None => "the default user".to_owned(),
            };
            // Redis's detail names the refused command; the code is said once, at the end.
            let detail = match e.detail() {
                Some(detail) => describe_text(detail, nodes),
                None => describe(e, nodes),
            };
            format!("cannot {doing}: the cluster denies {user} a permission: {detail} ({code})")
        }
    };
    StageError::new(ErrorCode::Config, message)
}

/// A redis error as one lowercase line, with passwords hidden.
fn describe(e: &RedisError, nodes: &NodeUrls) -> String {
    describe_text(&e.to_string(), nodes)
}

/// Text from the `redis` crate as one lowercase line, with passwords hidden (before the
/// lowercasing, which could turn a password into text that no longer matches it).
fn describe_text(text: &str, nodes: &NodeUrls) -> String {
    one_line(&nodes.scrub(text))
}

pub(crate) fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.trim_end_matches('.').to_lowercase()
}

pub(crate) fn config_error(message: String) -> StageError {
    StageError::new(ErrorCode::Config, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(nodes: &[&str]) -> Config {
        Config {
            nodes: nodes.iter().map(|&n| n.to_owned()).collect(),
            ..Config::default()
        }
    }

    #[test]
    fn bad_configs_are_config_errors() {
        for (cfg, want) in [
            (config(&[]), "nodes is empty"),
            (config(&["127.0.0.1:7000"]), "is not a redis:// url"),
            (config(&["redis://"]), "is not a valid redis url"),
            (
                Config {
                    pool_size: 0,
                    ..config(&["redis://127.0.0.1:7000"])
                },
                "pool_size is 0",
            ),
            (
                Config {
                    wait_replicas: 1,
                    wait_timeout_ms: 0,
                    ..config(&["redis://127.0.0.1:7000"])
                },
                "wait_timeout_ms is 0",
            ),
        ] {
            let err = Cluster::new(&cfg).expect_err(want);
            assert_eq!(err.code, ErrorCode::Config, "{}", err.message);
            assert!(err.message.contains(want), "{} lacks {want}", err.message);
        }
        assert!(Cluster::new(&config(&["redis://127.0.0.1:7000"])).is_ok());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cluster = Cluster::new(&Config {
            retry_wait_min_ms: 10,
            retry_wait_max_ms: 70,
            ..config(&["redis://127.0.0.1:7000"])
        })
        .expect("valid config");
        let waits: Vec<u128> = (0..6).map(|a| cluster.backoff(a).as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 70, 70, 70]);
        assert_eq!(cluster.backoff(u32::MAX).as_millis(), 70);
    }

    #[test]
    fn script_errors_map_to_codes() {
        let taken = redis::make_extension_error("TAKEN".into(), Some("SEC-RUL b42".into()));
        let err = classify("insert into shard 0", &taken, &NodeUrls::new(&[]));
        assert_eq!(err.code, ErrorCode::Conflict);
        assert_eq!(
            err.message,
            "cannot insert into shard 0: id SEC-RUL-042 is already taken by another entry"
        );
        assert!(!transient(&taken));
        let damaged = redis::make_extension_error(
            "DAMAGED".into(),
            Some(
                "entry SEC-RUL b42 holds bytes that do not parse script: 12ab, on @user_script:35"
                    .into(),
            ),
        );
        let err = classify("get from shard 1", &damaged, &NodeUrls::new(&[]));
        assert_eq!(err.code, ErrorCode::Storage);
        assert_eq!(
            err.message,
            "cannot get from shard 1: entry SEC-RUL b42 holds bytes that do not parse"
        );
        let io: RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
        assert!(transient(&io));
    }

    /// The error the `redis` crate makes of a server's error reply `line`.
    fn server_error(line: &str) -> RedisError {
        match redis::parse_redis_value(format!("-{line}\r\n").as_bytes()) {
            Ok(redis::Value::ServerError(e)) => e.into(),
            other => panic!("`{line}` is not an error reply: {other:?}"),
        }
    }

    /// The error of the cluster connection when no seed node could be used: one I/O error
    /// joining what each node answered, as `redis` writes it.
    fn no_seed_node(each: &[(&str, &str)]) -> RedisError {
        let each: Vec<String> = each.iter().map(|(a, e)| format!("{a}: {e}")).collect();
        RedisError::from((
            ErrorKind::Io,
            "It failed to check startup nodes.",
            format!(
                "Failed to connect to each cluster node ({})",
                each.join("; ")
            ),
        ))
    }

    const WRONG: &str = "Password authentication failed - AuthenticationFailed";

    #[test]
    fn refusals_are_found_and_never_transient() {
        let auth: RedisError = (
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        )
            .into();
        for (e, want) in [
            (
                auth,
                Some((Refusal::WrongCredentials, "authentication failed")),
            ),
            (
                no_seed_node(&[("127.0.0.1:7100", WRONG)]),
                Some((Refusal::WrongCredentials, "authentication failed")),
            ),
            (
                no_seed_node(&[
                    ("127.0.0.1:7100", "Connection refused (os error 111)"),
                    ("127.0.0.1:7101", "\"NOAUTH\": Authentication required."),
                ]),
                Some((Refusal::NoPassword, "NOAUTH")),
            ),
            (
                server_error("WRONGPASS invalid username-password pair or user is disabled."),
                Some((Refusal::WrongCredentials, "WRONGPASS")),
            ),
            (
                server_error("NOAUTH Authentication required."),
                Some((Refusal::NoPassword, "NOAUTH")),
            ),
            (
                server_error("NOPERM this user has no permissions to run the 'evalsha' command"),
                Some((Refusal::NoPermission, "NOPERM")),
            ),
            (
                redis::make_extension_error("NOPERM".into(), None),
                Some((Refusal::NoPermission, "NOPERM")),
            ),
            (
                no_seed_node(&[("127.0.0.1:7100", "Connection refused (os error 111)")]),
                None,
            ),
            (server_error("CLUSTERDOWN The cluster is down"), None),
            (server_error("ERR unknown command 'x'"), None),
        ] {
            let found = refusal(&e).map(|r| (r.why, r.code));
            assert_eq!(found, want, "{e}");
            if want.is_some() {
                assert!(!transient(&e), "{e} is taken for transient");
            }
        }
        // Still transient: an unreachable node, a cluster failing over.
        assert!(transient(&no_seed_node(&[(
            "127.0.0.1:7100",
            "Connection refused (os error 111)"
        )])));
        assert!(transient(&server_error("CLUSTERDOWN The cluster is down")));
    }

    #[test]
    fn refusals_are_one_config_line_naming_the_node() {
        let nodes = NodeUrls::new(&[
            "redis://registry:p%40ss@127.0.0.1:7100".to_owned(),
            "redis://registry:p%40ss@127.0.0.1:7101".to_owned(),
        ]);
        let check = |e: RedisError, want: &str| {
            let err = classify("open shard 0 (`{registry/0}`)", &e, &nodes);
            assert_eq!(err.code, ErrorCode::Config, "{}", err.message);
            assert_eq!(err.message, want);
        };
        check(
            no_seed_node(&[
                ("127.0.0.1:7100", "Connection refused (os error 111)"),
                ("127.0.0.1:7101", WRONG),
            ]),
            "cannot authenticate to redis://registry:***@127.0.0.1:7101: wrong password or user \
             (authentication failed)",
        );
        check(
            server_error("WRONGPASS invalid username-password pair or user is disabled."),
            "cannot authenticate to redis://registry:***@127.0.0.1:7100: wrong password or user \
             (WRONGPASS)",
        );
        check(
            no_seed_node(&[("127.0.0.1:7100", "\"NOAUTH\": Authentication required.")]),
            "cannot authenticate to redis://registry:***@127.0.0.1:7100: the cluster requires a \
             password and the node urls give none (NOAUTH); write it in each, e.g. \
             redis://user:password@host:port",
        );
        check(
            server_error("NOPERM this user has no permissions to run the 'evalsha' command"),
            "cannot open shard 0 (`{registry/0}`): the cluster denies user `registry` a \
             permission: this user has no permissions to run the 'evalsha' command (NOPERM)",
        );
        let default_user = NodeUrls::new(&["redis://:pw@127.0.0.1:7100".to_owned()]);
        let err = classify(
            "list shard 2",
            &redis::make_extension_error("NOPERM".into(), Some("no 'zrange' for you".into())),
            &default_user,
        );
        assert_eq!(
            err.message,
            "cannot list shard 2: the cluster denies the default user a permission: no 'zrange' \
             for you (NOPERM)"
        );
        // An id that spells a refusal is still a taken id.
        let taken = redis::make_extension_error("TAKEN".into(), Some("NOAUTH b1".into()));
        assert_eq!(classify("insert", &taken, &nodes).code, ErrorCode::Conflict);
    }

    #[test]
    fn classified_messages_hide_passwords() {
        let nodes = NodeUrls::new(&["redis://admin:S3cr%40t@127.0.0.1:7100".to_owned()]);
        for e in [
            redis::make_extension_error(
                "ERR".into(),
                Some("AUTH S3cr@t failed for redis://admin:S3cr%40t@127.0.0.1:7100".into()),
            ),
            no_seed_node(&[("127.0.0.1:7100", "\"NOAUTH\": AUTH S3cr%40t")]),
            server_error("WRONGPASS admin:S3cr@t is not valid"),
            server_error("NOPERM admin:S3cr@t may not"),
            server_error("ERR s3cr@T is wrong"),
        ] {
            let err = classify("get from shard 0", &e, &nodes);
            let shown = format!("{err:?}");
            for secret in ["S3cr@t", "s3cr@t", "S3cr%40t", "s3cr%40t"] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
        let err = classify(
            "get from shard 0",
            &redis::make_extension_error(
                "ERR".into(),
                Some("AUTH S3cr@t failed for redis://admin:S3cr%40t@127.0.0.1:7100".into()),
            ),
            &nodes,
        );
        assert_eq!(err.code, ErrorCode::Storage);
        assert_eq!(
            err.message,
            "cannot get from shard 0: \"err\": auth *** failed for \
             redis://admin:***@127.0.0.1:7100"
        );
    }

    #[test]
    fn config_errors_and_debug_hide_passwords() {
        for (nodes, want) in [
            (
                vec!["rediss://admin:hunter2@127.0.0.1:7000"],
                "node `rediss://admin:***@127.0.0.1:7000` is not a redis:// url",
            ),
            (
                vec!["admin:hunter2@127.0.0.1:7000"],
                "node `admin:***@127.0.0.1:7000` is not a redis:// url",
            ),
            (
                vec!["redis://:hunter2@127.0.0.1:x"],
                "node `redis://***@127.0.0.1:x` is not a valid redis url",
            ),
            (
                vec![
                    "redis://:hunter2@127.0.0.1:7000",
                    "redis://:other@127.0.0.1:7001",
                ],
                "cannot use nodes redis://***@127.0.0.1:7000, redis://***@127.0.0.1:7001: cannot \
                 use different password among initial nodes",
            ),
        ] {
            let err = Cluster::new(&config(&nodes)).expect_err(want);
            assert_eq!(err.code, ErrorCode::Config);
            assert!(err.message.starts_with(want), "{}", err.message);
            assert!(!err.message.contains("hunter2"), "{}", err.message);
        }
        let cluster = Cluster::new(&config(&["redis://u:hunter2@127.0.0.1:7000"])).expect("valid");
        let debug = format!("{cluster:?}");
        assert!(
            debug.contains("nodes: [\"redis://u:***@127.0.0.1:7000\"]"),
            "{debug}"
        );
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn messages_are_one_lowercase_line() {
        for (input, want) in [
            ("Connection refused.", "connection refused"),
            ("I/O error:\n  disk full.", "i/o error: disk full"),
            ("", ""),
        ] {
            assert_eq!(one_line(input), want);
        }
    }
}
