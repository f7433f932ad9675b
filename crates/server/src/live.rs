//! `GET /v1/live`: how the server is doing right now, as JSON for the dashboard (which would
//! otherwise parse the Prometheus text): requests per second over the last minute, latency
//! percentiles over the last ten seconds, the cache's hit rate, each shard's health, the entries
//! and changes counted, and the search index's lag.
//!
//! Requests are counted in a ring of one-second slots ([`Window`]), each a count and a latency
//! histogram of logarithmic buckets (four per doubling, from 10 µs: a percentile is the upper
//! bound of its bucket, at most 19 % above the true value). Recording a request is a few relaxed
//! atomic additions; a slot is cleared by the first request of its new second, so a request
//! racing that clearing may be lost from the figures (never counted twice).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use registry_host::tokens::Role;
use serde_json::json;

use crate::AppState;
use crate::auth::Caller;
use crate::problem::Problem;

/// Seconds kept.
const SLOTS: usize = 64;

/// Seconds the rate is shown for.
const RATE_SECONDS: u64 = 60;

/// Seconds the percentiles are taken over.
const LATENCY_SECONDS: u64 = 10;

/// Latency buckets: bucket `i` holds latencies up to `10 µs × 2^(i/4)`; the last, everything
/// beyond (about 42 s).
const BUCKETS: usize = 80;

struct Slot {
    /// The second (since the server started) this slot counts; `u64::MAX` before its first.
    second: AtomicU64,
    count: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

/// The last minute of requests, by second.
pub(crate) struct Window {
    started: std::time::Instant,
    slots: Box<[Slot]>,
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Window")
    }
}

/// The bucket of a latency.
fn bucket(took: Duration) -> usize {
    let micros = took.as_secs_f64() * 1e6;
    if micros <= 10.0 {
        return 0;
    }
    let i = ((micros / 10.0).log2() * 4.0).ceil();
    // A float in 0..=BUCKETS, cut to the last bucket.
    (i as usize).min(BUCKETS - 1)
}

/// The upper bound of a bucket, in milliseconds.
fn bound_ms(bucket: usize) -> f64 {
    0.01 * 2f64.powf(bucket as f64 / 4.0)
}

impl Window {
    pub fn new() -> Window {
        Window {
            started: std::time::Instant::now(),
            slots: (0..SLOTS)
                .map(|_| Slot {
                    second: AtomicU64::new(u64::MAX),
                    count: AtomicU64::new(0),
                    buckets: std::array::from_fn(|_| AtomicU64::new(0)),
                })
                .collect(),
        }
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Counts one request that took `took`.
    pub fn record(&self, took: Duration) {
        self.record_at(self.now(), took);
    }

    fn record_at(&self, second: u64, took: Duration) {
        let slot = &self.slots[usize::try_from(second % SLOTS as u64).unwrap_or(0)];
        let seen = slot.second.load(Ordering::Acquire);
        if seen != second
            && slot
                .second
                .compare_exchange(seen, second, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            slot.count.store(0, Ordering::Relaxed);
            for b in &slot.buckets {
                b.store(0, Ordering::Relaxed);
            }
        }
        slot.count.fetch_add(1, Ordering::Relaxed);
        slot.buckets[bucket(took)].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests in each of the last `seconds` whole seconds, oldest first (the current second,
    /// still counting, left out).
    fn per_second(&self, now: u64, seconds: u64) -> Vec<u64> {
        (1..=seconds)
            .rev()
            .map(|back| {
                let Some(second) = now.checked_sub(back) else {
                    return 0;
                };
                let slot = &self.slots[usize::try_from(second % SLOTS as u64).unwrap_or(0)];
                if slot.second.load(Ordering::Acquire) == second {
                    slot.count.load(Ordering::Relaxed)
                } else {
                    0
                }
            })
            .collect()
    }

    /// The latency percentiles (`quantiles`, in 0..1) of the requests of the last `seconds`
    /// seconds and the current one, in milliseconds; `None` without a request.
    fn percentiles(&self, now: u64, seconds: u64, quantiles: &[f64]) -> Option<Vec<f64>> {
        let mut sum = [0u64; BUCKETS];
        for back in 0..=seconds {
            let Some(second) = now.checked_sub(back) else {
                break;
            };
            let slot = &self.slots[usize::try_from(second % SLOTS as u64).unwrap_or(0)];
            if slot.second.load(Ordering::Acquire) == second {
                for (s, b) in sum.iter_mut().zip(&slot.buckets) {
                    *s += b.load(Ordering::Relaxed);
                }
            }
        }
        let total: u64 = sum.iter().sum();
        if total == 0 {
            return None;
        }
        Some(
            quantiles
                .iter()
                .map(|q| {
                    // The rank of the quantile, 1-based: the smallest bucket reaching it.
                    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
                    let mut seen = 0;
                    let at = sum
                        .iter()
                        .position(|n| {
                            seen += n;
                            seen >= rank
                        })
                        .unwrap_or(BUCKETS - 1);
                    bound_ms(at)
                })
                .collect(),
        )
    }
}

/// The live figures (role `read`).
#[utoipa::path(get, path = "/v1/live", responses(
    (status = 200, description = "The live figures", body = crate::openapi::Live),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role does not allow it", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn live(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, Problem> {
    caller.require(Role::Read)?;
    let now = state.window.now();
    let per_second = state.window.per_second(now, RATE_SECONDS);
    let latency = state
        .window
        .percentiles(now, LATENCY_SECONDS, &[0.5, 0.9, 0.99])
        .map_or(
            json!(null),
            |p| json!({ "p50": p[0], "p90": p[1], "p99": p[2] }),
        );
    let (cache, _errors) = state.pipeline.cache_stats();
    let lookups = cache.hits + cache.misses;
    let health = crate::routes::blocking(&state, |p| p.health()).await?;
    let shards: Vec<_> = health
        .into_iter()
        .enumerate()
        .map(|(shard, h)| {
            json!({
                "shard": shard,
                "healthy": h.is_ok(),
                "error": h.err().map(|e| e.to_string()),
            })
        })
        .collect();
    let search = state.search.as_ref().map_or(json!(null), |s| {
        let lag = s.lag(&state.feed);
        json!({
            "docs": s.docs(),
            "lag_changes": lag.changes,
            "lag_seconds": lag.seconds,
            "ready": s.ready(),
            "error": s.failure(),
        })
    });
    Ok(Json(json!({
        "uptime_s": state.window.now(),
        "requests": {
            "total": state.requests.load(Ordering::Relaxed),
            "per_second": per_second,
        },
        "latency_ms": latency,
        "cache": {
            "hits": cache.hits,
            "misses": cache.misses,
            "hit_rate": if lookups == 0 { json!(null) } else { json!(cache.hits as f64 / lookups as f64) },
        },
        "shards": shards,
        "entries": state.metrics.entries(),
        "changes": state.feed.last(),
        "search": search,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_by_a_fourth_of_a_doubling() {
        assert_eq!(bucket(Duration::from_micros(1)), 0);
        assert_eq!(bucket(Duration::from_micros(10)), 0);
        assert_eq!(bucket(Duration::from_micros(20)), 4);
        assert_eq!(bucket(Duration::from_micros(21)), 5);
        assert_eq!(bucket(Duration::from_secs(3600)), BUCKETS - 1);
        for i in 1..BUCKETS - 1 {
            // Every latency lands in the bucket whose bound is at or just above it.
            let ms = bound_ms(i) * 0.999;
            assert_eq!(
                bucket(Duration::from_secs_f64(ms / 1000.0)),
                i,
                "bucket {i}"
            );
        }
    }

    #[test]
    fn rates_and_percentiles_cover_their_seconds_only() {
        let w = Window::new();
        for _ in 0..90 {
            w.record_at(100, Duration::from_micros(100));
        }
        for _ in 0..10 {
            w.record_at(100, Duration::from_millis(50));
        }
        for _ in 0..7 {
            w.record_at(101, Duration::from_micros(100));
        }
        assert_eq!(w.per_second(102, 3), [0, 100, 7]);
        let p = w.percentiles(101, 10, &[0.5, 0.9, 0.95]).expect("requests");
        assert!(p[0] >= 0.1 && p[0] < 0.12, "{p:?}");
        assert!(p[1] >= 0.1 && p[1] < 0.12, "{p:?}");
        assert!(p[2] >= 50.0 && p[2] < 60.0, "{p:?}");
        // 64 s later, in the same slot as second 100: it is cleared., in the same slot as second 164: cleared when 164 is counted.
        w.record_at(164, Duration::from_micros(10));
        assert_eq!(w.per_second(165, 2), [0, 1]);
        assert_eq!(w.per_second(102, 3), [0, 0, 7], "second 100 was cleared");
        assert_eq!(w.percentiles(300, 10, &[0.5]), None);
    }
}
