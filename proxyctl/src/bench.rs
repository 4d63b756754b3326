//! `bench store` and `bench acquire`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use proxy_core::{ProxyManager, TargetDomain};
use serde::Serialize;
use testkit::bench::{StoreBenchConfig, StoreBenchReport, run_store_bench};
use testkit::net::{ExitAssignment, FakeNetwork, FakeNetworkConfig};
use tokio::sync::Mutex;

use crate::cli::{BenchAcquireArgs, BenchStoreArgs};
use crate::config::{Config, seconds};
use crate::error::{CliError, is_fatal, one_line};
use crate::holds::{Hold, HoldLog, distinct_ips, overlaps};
use crate::local_network;
use crate::output::{
    latency_histogram, max_ms, max_rss_mb, print_json, print_pairs, progress, quantile_ms,
    record_latency, round2,
};

/// What `bench store` prints.
#[derive(Debug, Serialize)]
struct StoreBench {
    #[serde(flatten)]
    report: StoreBenchReport,
    /// The store URL, password redacted.
    store_url: String,
    /// Peak resident memory of the process, MiB.
    max_rss_mb: Option<f64>,
}

/// `bench store`.
pub(crate) async fn store(
    config: &Config,
    args: &BenchStoreArgs,
    json: bool,
) -> Result<(), CliError> {
    let duration = seconds("--seconds", args.seconds)?;
    let (url, store) = config.open_store(&args.store).await?;
    let store = store.shared();
    let bench_config = StoreBenchConfig::new(args.clients as usize, duration, args.keys);
    let bar = progress(duration.as_secs().max(1), "bench", json);
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                bar.inc(1);
            }
        })
    };
    let report = run_store_bench(store, &bench_config).await;
    ticker.abort();
    bar.finish_and_clear();
    let result = StoreBench {
        report,
        store_url: url.redacted(),
        max_rss_mb: max_rss_mb(),
    };
    if json {
        return print_json(&result);
    }
    let r = &result.report;
    print_pairs(
        "store bench",
        [
            ("store", format!("{} ({})", result.store_url, r.store)),
            ("clients / keys", format!("{} / {}", r.clients, r.keys)),
            ("attempts", format!("{} in {:.2} s", r.attempts, r.wall_s)),
            ("attempts/s", format!("{:.0}", r.attempts_per_s)),
            ("reserved / taken", format!("{} / {}", r.reserved, r.taken)),
            (
                "errors",
                match &r.first_error {
                    Some(first) => format!("{} (first: {first})", r.errors),
                    None => r.errors.to_string(),
                },
            ),
            (
                "try_reserve p50 / p90 / p99 / max",
                format!(
                    "{:.3} / {:.3} / {:.3} / {:.3} ms",
                    r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms
                ),
            ),
            (
                "max RSS",
                result
                    .max_rss_mb
                    .map_or_else(|| "unknown".to_owned(), |mb| format!("{mb:.1} MiB")),
            ),
        ],
    )
}

/// What `bench acquire` prints.
#[derive(Debug, Serialize)]
struct AcquireBench {
    store: String,
    backend: &'static str,
    gateway: String,
    domain: String,
    workers: u32,
    hold_ms: u64,
    /// Successful acquisitions.
    acquisitions: u64,
    /// Acquisitions that failed.
    errors: u64,
    first_error: Option<String>,
    wall_s: f64,
    acq_per_s: f64,
    /// `acquire` latency percentiles, milliseconds.
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Sessions tried, in all.
    attempts: u64,
    /// Reservations refused because another worker held the IP.
    collisions: u64,
    verification_failures: u64,
    judge_failovers: u64,
    /// Distinct exit IPs held.
    distinct_ips: usize,
    /// Overlapping holds of one IP seen by the bench itself (must be 0).
    duplicates: usize,
    max_rss_mb: Option<f64>,
}

#[derive(Debug)]
struct Tally {
    acquisitions: u64,
    errors: u64,
    first_error: Option<String>,
    attempts: u64,
    collisions: u64,
    verification_failures: u64,
    judge_failovers: u64,
    latency_us: Histogram<u64>,
}

impl Tally {
    fn new() -> Result<Self, CliError> {
        Ok(Self {
            acquisitions: 0,
            errors: 0,
            first_error: None,
            attempts: 0,
            collisions: 0,
            verification_failures: 0,
            judge_failovers: 0,
            latency_us: latency_histogram()?,
        })
    }
}

/// `bench acquire`.
pub(crate) async fn acquire(
    config: &Config,
    args: &BenchAcquireArgs,
    json: bool,
) -> Result<(), CliError> {
    let domain = TargetDomain::parse(&args.domain).map_err(|source| CliError::InvalidArgument {
        what: "--domain",
        source,
    })?;
    let (url, store) = config.open_store(&args.store).await?;
    let store = store.shared();
    let mut network = None;
    let (provider, verifier, settings, gateway) = if let Some(gateway) = &args.provider.gateway {
        let settings = config.settings(&args.judges)?;
        let provider = config.provider(&args.provider)?;
        let verifier = config.verifier(&settings, &args.judges)?;
        (provider, verifier, settings, gateway.clone())
    } else {
        let exits = args
            .exits
            .unwrap_or_else(|| u8::try_from((args.workers * 2).clamp(16, 254)).unwrap_or(254));
        let mut network_config = FakeNetworkConfig::with_exit_count(exits);
        if args.random_exits {
            network_config.gateway = network_config.gateway.assignment(ExitAssignment::Random);
        }
        let started = FakeNetwork::start_with(network_config).await?;
        let settings = local_network::settings_for(&started, config.settings(&args.judges)?)?;
        let provider = local_network::provider_for(&started.gateway)?;
        let verifier = local_network::verifier_for(&settings)?;
        let gateway = format!(
            "in-process fake gateway ({exits} exits, {})",
            if args.random_exits {
                "random"
            } else {
                "in turn"
            }
        );
        network = Some(started);
        (provider, verifier, settings, gateway)
    };
    let manager = ProxyManager::builder()
        .provider(provider)
        .verifier(verifier)
        .store(store)
        .target_domain(domain.as_str())
        .app_id("proxyctl-bench")
        .settings(settings)
        .build()
        .map_err(|e| CliError::BadValue {
            what: "bench settings",
            value: domain.to_string(),
            reason: e.to_string(),
        })?;

    let remaining = Arc::new(AtomicU64::new(args.acquisitions));
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(HoldLog::default());
    let tally = Arc::new(Mutex::new(Tally::new()?));
    let hold = Duration::from_millis(args.hold_ms);
    let bar = progress(args.acquisitions, "acquire", json);
    let started = Instant::now();
    let workers: Vec<_> = (0..args.workers)
        .map(|worker| {
            let (manager, remaining, stop, log, tally, bar) = (
                manager.clone(),
                Arc::clone(&remaining),
                Arc::clone(&stop),
                Arc::clone(&log),
                Arc::clone(&tally),
                bar.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed)
                    && remaining
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                        .is_ok()
                {
                    let asked = Instant::now();
                    let result = manager.acquire().await;
                    let latency = asked.elapsed();
                    bar.inc(1);
                    let proxy = match result {
                        Ok(proxy) => proxy,
                        Err(error) => {
                            let fatal = is_fatal(&error);
                            let mut t = tally.lock().await;
                            t.errors += 1;
                            t.first_error.get_or_insert_with(|| one_line(&error));
                            if fatal {
                                stop.store(true, Ordering::Relaxed);
                            }
                            continue;
                        }
                    };
                    let held_from = Instant::now();
                    tokio::time::sleep(hold).await;
                    let held_to = Instant::now();
                    log.record(Hold {
                        worker,
                        ip: proxy.ip,
                        domain: proxy.domain.to_string(),
                        acquired: held_from,
                        released: held_to,
                    });
                    let released = manager.release(&proxy).await;
                    let mut t = tally.lock().await;
                    t.acquisitions += 1;
                    t.attempts += u64::from(proxy.stats.attempts);
                    t.collisions += u64::from(proxy.stats.collisions);
                    t.verification_failures += u64::from(proxy.stats.verification_failures);
                    t.judge_failovers += u64::from(proxy.stats.judge_failovers);
                    record_latency(&mut t.latency_us, latency);
                    if let Err(error) = released {
                        t.errors += 1;
                        t.first_error
                            .get_or_insert_with(|| format!("release: {}", one_line(&error)));
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        if let Err(error) = worker.await {
            let mut t = tally.lock().await;
            t.errors += 1;
            t.first_error
                .get_or_insert_with(|| format!("worker task failed: {error}"));
        }
    }
    let wall = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    drop(network);
    let holds = log.holds();
    let duplicates = overlaps(&holds).len();
    let t = tally.lock().await;
    let report = AcquireBench {
        store: url.redacted(),
        backend: url.backend(),
        gateway,
        domain: domain.to_string(),
        workers: args.workers,
        hold_ms: args.hold_ms,
        acquisitions: t.acquisitions,
        errors: t.errors,
        first_error: t.first_error.clone(),
        wall_s: round2(wall),
        acq_per_s: if wall > 0.0 {
            round2(t.acquisitions as f64 / wall)
        } else {
            0.0
        },
        p50_ms: quantile_ms(&t.latency_us, 0.50),
        p90_ms: quantile_ms(&t.latency_us, 0.90),
        p99_ms: quantile_ms(&t.latency_us, 0.99),
        max_ms: max_ms(&t.latency_us),
        attempts: t.attempts,
        collisions: t.collisions,
        verification_failures: t.verification_failures,
        judge_failovers: t.judge_failovers,
        distinct_ips: distinct_ips(&holds),
        duplicates,
        max_rss_mb: max_rss_mb(),
    };
    if json {
        print_json(&report)?;
    } else {
        print_pairs(
            "acquire bench",
            [
                ("store", format!("{} ({})", report.store, report.backend)),
                ("gateway", report.gateway.clone()),
                (
                    "workers / hold",
                    format!("{} / {} ms", report.workers, report.hold_ms),
                ),
                (
                    "acquisitions",
                    format!("{} in {:.2} s", report.acquisitions, report.wall_s),
                ),
                ("acquisitions/s", format!("{:.1}", report.acq_per_s)),
                (
                    "acquire p50 / p90 / p99 / max",
                    format!(
                        "{:.2} / {:.2} / {:.2} / {:.2} ms",
                        report.p50_ms, report.p90_ms, report.p99_ms, report.max_ms
                    ),
                ),
                (
                    "attempts / collisions",
                    format!("{} / {}", report.attempts, report.collisions),
                ),
                (
                    "verification failures / judge failovers",
                    format!(
                        "{} / {}",
                        report.verification_failures, report.judge_failovers
                    ),
                ),
                ("distinct exit IPs", report.distinct_ips.to_string()),
                ("duplicates (must be 0)", report.duplicates.to_string()),
                (
                    "errors",
                    match &report.first_error {
                        Some(first) => format!("{} (first: {first})", report.errors),
                        None => report.errors.to_string(),
                    },
                ),
                (
                    "max RSS",
                    report
                        .max_rss_mb
                        .map_or_else(|| "unknown".to_owned(), |mb| format!("{mb:.1} MiB")),
                ),
            ],
        )?;
    }
    if duplicates > 0 {
        return Err(CliError::Overlaps {
            overlaps: duplicates,
        });
    }
    if report.acquisitions == 0 {
        return Err(CliError::Incomplete {
            what: format!(
                "no acquisition succeeded: {}",
                report.first_error.as_deref().unwrap_or("no error recorded")
            ),
        });
    }
    Ok(())
}
