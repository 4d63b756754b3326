//! Store throughput harness: N concurrent clients for S seconds, each
//! looping "pick a random key of K, `try_reserve`, `release` if reserved".
//!
//! Used by the backend crates' measurements and by `proxyctl bench store`.
//! An *attempt* is one `try_reserve`; its latency is what the percentiles
//! describe. The release that follows a successful reserve is not timed in
//! the percentiles but is part of the loop (and of the attempts per second).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use proxy_core::{AppId, ReservationKey, ReservationStore, ReserveOutcome, TargetDomain, Ttl};
use serde::Serialize;

/// What to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreBenchConfig {
    /// Concurrent clients (tasks).
    pub clients: usize,
    /// How long to run.
    pub duration: Duration,
    /// Size of the key space.
    pub keys: u32,
    /// Domains the key space is spread over (keys vary by IP within each).
    pub domains: u32,
    /// TTL of each reservation.
    pub ttl: Ttl,
}

impl Default for StoreBenchConfig {
    fn default() -> Self {
        Self {
            clients: 8,
            duration: Duration::from_secs(10),
            keys: 100_000,
            domains: 64,
            ttl: Ttl::from_secs(30).unwrap_or_default(),
        }
    }
}

impl StoreBenchConfig {
    /// `clients` clients for `duration` over `keys` keys.
    pub fn new(clients: usize, duration: Duration, keys: u32) -> Self {
        Self {
            clients,
            duration,
            keys,
            ..Self::default()
        }
    }
}

/// What the harness measured.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StoreBenchReport {
    /// Backend name.
    pub store: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Key space size.
    pub keys: u32,
    /// `try_reserve` calls made.
    pub attempts: u64,
    /// Attempts that returned `Reserved`.
    pub reserved: u64,
    /// Attempts that returned `Taken`.
    pub taken: u64,
    /// Attempts or releases that failed.
    pub errors: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Wall time of the run in seconds.
    pub wall_s: f64,
    /// Attempts per second of wall time.
    pub attempts_per_s: f64,
    /// Median `try_reserve` latency, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile, milliseconds.
    pub p90_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Slowest attempt, milliseconds.
    pub max_ms: f64,
}

#[derive(Debug)]
struct ClientTally {
    attempts: u64,
    reserved: u64,
    taken: u64,
    errors: u64,
    first_error: Option<String>,
    latency_us: Histogram<u64>,
}

impl ClientTally {
    #[allow(clippy::expect_used)]
    fn new() -> Self {
        Self {
            attempts: 0,
            reserved: 0,
            taken: 0,
            errors: 0,
            first_error: None,
            // Constant, valid bounds (1 µs to 60 s, 3 significant digits):
            // this cannot fail.
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }
}

/// The run's domains, parsed once (parsing is not part of what is measured).
fn bench_domains(run: &str, domains: u32) -> Vec<TargetDomain> {
    (0..domains.max(1))
        .filter_map(|d| TargetDomain::parse(&format!("d{d}.{run}.bench.test")).ok())
        .collect()
}

/// The key for index `n` of the key space: IP from 10.0.0.0/8, domain
/// `n mod domains.len()`.
fn bench_key(domains: &[TargetDomain], n: u32) -> Option<ReservationKey> {
    let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff)));
    let domain = domains.get(n as usize % domains.len().max(1))?;
    Some(ReservationKey::new(ip, domain.clone()))
}

/// Runs the harness against `store`.
pub async fn run_store_bench(
    store: Arc<dyn ReservationStore>,
    config: &StoreBenchConfig,
) -> StoreBenchReport {
    let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let keys = config.keys.clamp(1, 0x00ff_ffff);
    let started = Instant::now();
    let deadline = started + config.duration;
    let domains = Arc::new(bench_domains(&run, config.domains));
    let tasks: Vec<_> = (0..config.clients.max(1))
        .map(|client| {
            let store = Arc::clone(&store);
            let run = run.clone();
            let domains = Arc::clone(&domains);
            let ttl = config.ttl;
            tokio::spawn(async move {
                let app = AppId::new(format!("bench-{run}-{client}")).ok();
                let mut tally = ClientTally::new();
                let Some(app) = app else { return tally };
                let note = |tally: &mut ClientTally, e: String| {
                    tally.errors += 1;
                    tally.first_error.get_or_insert(e);
                };
                while Instant::now() < deadline {
                    let n = rand::random_range(0..keys);
                    let Some(key) = bench_key(&domains, n) else {
                        continue;
                    };
                    let t0 = Instant::now();
                    let outcome = store.try_reserve(&key, &app, ttl).await;
                    let micros = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                    tally.latency_us.saturating_record(micros.max(1));
                    tally.attempts += 1;
                    match outcome {
                        Ok(ReserveOutcome::Reserved(lease)) => {
                            tally.reserved += 1;
                            if let Err(e) = store.release(&lease).await {
                                note(&mut tally, format!("release: {e}"));
                            }
                        }
                        Ok(ReserveOutcome::Taken) => tally.taken += 1,
                        Err(e) => note(&mut tally, format!("try_reserve: {e}")),
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = ClientTally::new();
    for task in tasks {
        match task.await {
            Ok(t) => {
                total.attempts += t.attempts;
                total.reserved += t.reserved;
                total.taken += t.taken;
                total.errors += t.errors;
                if total.first_error.is_none() {
                    total.first_error = t.first_error;
                }
                let _ = total.latency_us.add(&t.latency_us);
            }
            Err(e) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert(format!("client task failed: {e}"));
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let ms = |q: f64| total.latency_us.value_at_quantile(q) as f64 / 1000.0;
    StoreBenchReport {
        store: store.info().name.to_owned(),
        clients: config.clients,
        keys,
        attempts: total.attempts,
        reserved: total.reserved,
        taken: total.taken,
        errors: total.errors,
        first_error: total.first_error,
        wall_s: wall,
        attempts_per_s: if wall > 0.0 {
            total.attempts as f64 / wall
        } else {
            0.0
        },
        p50_ms: ms(0.50),
        p90_ms: ms(0.90),
        p99_ms: ms(0.99),
        max_ms: total.latency_us.max() as f64 / 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxy_core::MemoryStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_add_up() {
        let store: Arc<dyn ReservationStore> = Arc::new(MemoryStore::new());
        let config = StoreBenchConfig::new(4, Duration::from_millis(200), 10);
        let report = run_store_bench(store, &config).await;
        assert!(report.attempts > 0);
        assert_eq!(report.attempts, report.reserved + report.taken);
        assert_eq!(report.errors, 0, "{:?}", report.first_error);
        assert!(report.p50_ms <= report.p99_ms && report.p99_ms <= report.max_ms);
    }

    #[test]
    fn keys_are_valid_and_spread() {
        let domains = bench_domains("r", 64);
        let a = bench_key(&domains, 1).unwrap();
        let b = bench_key(&domains, 65).unwrap();
        assert_eq!(a.domain(), b.domain());
        assert_ne!(a.ip(), b.ip());
        assert_eq!(a.ip().to_string(), "10.0.0.1");
    }
}
