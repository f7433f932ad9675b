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

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection};
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{ErrorKind, RedisError, RedisResult, ServerErrorKind};
use registry_core::{ErrorCode, StageError, StageResult};

use crate::Config;

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
    nodes: Vec<String>,
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
    /// Code `Config` when no node is given or a node is not a `redis://` URL.
    pub(crate) fn new(config: &Config) -> StageResult<Cluster> {
        if config.nodes.is_empty() {
            return Err(config_error(
                "nodes is empty: give at least one seed node of the cluster, e.g. \
                 nodes = [\"redis://127.0.0.1:7000\"]"
                    .to_owned(),
            ));
        }
        for node in &config.nodes {
            if !node.starts_with("redis://") {
                return Err(config_error(format!(
                    "node `{node}` is not a redis:// url: write nodes as \"redis://host:port\""
                )));
            }
            if let Err(e) = redis::IntoConnectionInfo::into_connection_info(node.as_str()) {
                return Err(config_error(format!(
                    "node `{node}` is not a valid redis url: {}",
                    one_line(&e.to_string())
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
                    config.nodes.join(", "),
                    one_line(&e.to_string())
                ))
            })?;
        Ok(Cluster {
            client,
            nodes: config.nodes.clone(),
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
    /// error [`classify`] gives the failure.
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
                            self.nodes.join(", "),
                            describe(&e)
                        ),
                    ));
                }
                Err(e) => return Err(classify(doing, &e)),
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

/// Whether an error is the cluster or the network being unavailable for now, which a retry on a
/// fresh connection may cure, rather than an answer about the data.
pub(crate) fn transient(e: &RedisError) -> bool {
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
/// entry (`TAKEN` from a script), `Storage` for anything else.
pub(crate) fn classify(doing: &str, e: &RedisError) -> StageError {
    match e.code() {
        Some("TAKEN") => StageError::new(
            ErrorCode::Conflict,
            format!(
                "cannot {doing}: id {} is already taken by another entry",
                crate::keys::member_text(e.detail().unwrap_or("").as_bytes())
            ),
        ),
        Some("DAMAGED") => {
            // Redis appends where in the script the error was raised; the reader needs only what.
            let detail = e.detail().unwrap_or("");
            let detail = detail.split(" script: ").next().unwrap_or(detail);
            StageError::new(
                ErrorCode::Storage,
                format!("cannot {doing}: {}", detail.trim()),
            )
        }
        _ => StageError::new(
            ErrorCode::Storage,
            format!("cannot {doing}: {}", describe(e)),
        ),
    }
}

/// A redis error as one lowercase line.
fn describe(e: &RedisError) -> String {
    one_line(&e.to_string())
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
        let err = classify("insert into shard 0", &taken);
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
        let err = classify("get from shard 1", &damaged);
        assert_eq!(err.code, ErrorCode::Storage);
        assert_eq!(
            err.message,
            "cannot get from shard 1: entry SEC-RUL b42 holds bytes that do not parse"
        );
        let io: RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
        assert!(transient(&io));
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
