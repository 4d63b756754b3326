//! `demo`: workers scraping a fake site through the real acquire loop and
//! `ProxySession`, then the summary and the exclusivity check.
//!
//! Everything runs in this process on loopback: testkit's fake gateway
//! (exits assigned at random, as a residential pool does, so workers
//! collide), three judges (the first one answers 503 throughout, so the
//! verifier fails over and demotes it) and a target site whose mood turns
//! against the exits in use now and then (403, CAPTCHA, 429 with a short
//! `Retry-After`), so the ban table has work to do.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use proxy_client::{
    ClientError, ClientOptions, MetricsSnapshot, ProxySession, RequestMetrics, SessionEvent,
    SessionObserver, SessionPolicy, SessionStats, SignalKind,
};
use proxy_core::{ProxyManager, Settings, TargetDomain};
use serde::Serialize;
use testkit::net::{
    ExitAssignment, FakeNetwork, FakeNetworkConfig, FakeTarget, JudgeFault, TargetBehavior,
    TargetRules,
};

use crate::cli::DemoArgs;
use crate::config::Config;
use crate::error::{CliError, is_fatal, one_line};
use crate::holds::{Hold, HoldLog, Overlap, distinct_ips, overlaps};
use crate::local_network;
use crate::output::{
    latency_histogram, max_ms, print, print_json, print_pairs, progress, quantile_ms,
    record_latency, round2, table,
};
use crate::store_url::{SqliteLocation, StoreUrl};

/// Pages served per proxy before a worker hands it back and acquires a new
/// one (as a scraper does between batches).
const JOBS_PER_LEASE: u32 = 5;
/// The signals after which a session may rotate (always listed in the
/// summary's `rotations`, zeros included).
const ROTATING_SIGNALS: [SignalKind; 6] = [
    SignalKind::Blocked,
    SignalKind::RateLimited,
    SignalKind::Captcha,
    SignalKind::GatewayError,
    SignalKind::ProxyFailed,
    SignalKind::Timeout,
];
/// How long the site takes to serve a page: a few seconds of scraping in
/// all, long enough for the site's mood to matter.
const PAGE_DELAY: Duration = Duration::from_millis(50);
/// How often the site may turn against one of the exits in use.
const MOOD_TICK: Duration = Duration::from_millis(150);

/// `demo`.
pub(crate) async fn run(config: &Config, args: &DemoArgs, json: bool) -> Result<(), CliError> {
    let temp_dir = tempfile::Builder::new()
        .prefix("proxyctl-demo-")
        .tempdir()
        .map_err(|source| CliError::Io {
            what: "creating a temporary directory for the demo store".to_owned(),
            source,
        })?;
    let url = match config.store_url_or(args.store.as_deref())? {
        Some(url) => url,
        None => StoreUrl::Sqlite(SqliteLocation::File(temp_dir.path().join("demo.db"))),
    };
    let store = url.open().await?;
    store.migrate().await?;

    let network = start_network(args.exits).await?;
    // One public judge being down is everyday life: the first fake judge
    // answers 503 throughout.
    if let Some(first) = network.judges.first() {
        first.set_fault(Some(JudgeFault::Status(503)));
    }
    let settings = demo_settings(&network)?;
    let verifier = local_network::verifier_for(&settings)?;
    let manager = ProxyManager::builder()
        .provider(local_network::provider_for(&network.gateway)?)
        .verifier(verifier)
        .store(store.shared())
        .target_domain(network.target.url("/"))
        .app_id("proxyctl-demo")
        .settings(settings)
        .build()
        .map_err(|e| CliError::BadValue {
            what: "demo settings",
            value: network.target.origin(),
            reason: e.to_string(),
        })?;
    let domain = manager.domain().clone();

    if !json {
        print(format!(
            "proxyctl demo: {} workers, {} jobs against {} through a fake gateway with {} exits; store {}",
            args.workers,
            args.jobs,
            network.target.origin(),
            args.exits,
            url
        ))?;
    }

    let ledger = Arc::new(Ledger::new()?);
    let metrics = Arc::new(RequestMetrics::new());
    let next_job = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let bar = progress(u64::from(args.jobs), "jobs", json);
    let started = Instant::now();

    let network = Arc::new(network);
    let mood = tokio::spawn(site_mood(
        Arc::clone(&network),
        Arc::clone(&ledger),
        Arc::clone(&stop),
    ));
    let workers: Vec<_> = (0..args.workers)
        .map(|worker| {
            let job = Job {
                worker,
                jobs: args.jobs,
                manager: manager.clone(),
                base: network.target.url("/item/"),
                ledger: Arc::clone(&ledger),
                metrics: Arc::clone(&metrics),
                next_job: Arc::clone(&next_job),
                stop: Arc::clone(&stop),
                bar: bar.clone(),
            };
            tokio::spawn(job.run())
        })
        .collect();
    let mut fatal = None;
    for worker in workers {
        match worker.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                fatal.get_or_insert(error);
            }
            Err(error) => {
                fatal.get_or_insert(CliError::Incomplete {
                    what: format!("a demo worker failed: {error}"),
                });
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let site_moods = mood.await.unwrap_or_default();
    let wall = started.elapsed();
    bar.finish_and_clear();
    if let Some(error) = fatal {
        return Err(error);
    }

    let facts = RunFacts {
        metrics: metrics.snapshot(),
        site_requests: network.target.stats().total.requests,
        site_moods,
        wall,
    };
    let summary = Summary::build(args, &url, &domain, &ledger, facts);
    if json {
        print_json(&summary)?;
    } else {
        summary.print()?;
    }
    if summary.overlaps > 0 {
        return Err(CliError::Overlaps {
            overlaps: summary.overlaps,
        });
    }
    Ok(())
}

/// The fake network of the demo: `exits` exits given out at random, three
/// judges, a target that serves pages after [`PAGE_DELAY`].
async fn start_network(exits: u8) -> Result<FakeNetwork, CliError> {
    let rules = TargetRules::open().delay(PAGE_DELAY).page_bytes(2048);
    let mut config = FakeNetworkConfig::with_exit_count(exits).target_rules(rules);
    config.gateway = config.gateway.assignment(ExitAssignment::Random);
    Ok(FakeNetwork::start_with(config).await?)
}

/// Short TTL and pauses so the demo finishes in seconds.
fn demo_settings(network: &FakeNetwork) -> Result<Settings, CliError> {
    let settings = Settings::from_toml_str(
        "ttl_seconds = 30\nacquire_timeout = 30\nrecheck_interval = 0.2\n\
         max_judge_failures = 3\ncollisions_before_backoff = 3",
    )?;
    local_network::settings_for(network, settings)
}

/// The ban policy of the demo: the design's table with short cooldowns.
fn demo_policy() -> SessionPolicy {
    SessionPolicy::default()
        .with_cooldowns(
            Duration::from_secs(2),
            Duration::from_secs(2),
            Duration::from_secs(1),
        )
        .with_rate_limit(2, Duration::from_millis(200), Duration::from_secs(2))
        .with_max_retry_after(Duration::from_secs(5))
}

/// Every few ticks, the site turns against one exit in use for a moment:
/// 403, a CAPTCHA page, or 429 with `Retry-After: 1`.
/// Returns how often it did each.
async fn site_mood(
    network: Arc<FakeNetwork>,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) -> BTreeMap<&'static str, u64> {
    let target: &FakeTarget = &network.target;
    let mut forced: HashMap<IpAddr, Instant> = HashMap::new();
    let mut moods: BTreeMap<&'static str, u64> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(MOOD_TICK).await;
        let now = Instant::now();
        forced.retain(|ip, until| {
            let keep = *until > now;
            if !keep {
                target.force(*ip, None);
            }
            keep
        });
        let calm: Vec<IpAddr> = ledger
            .held_ips()
            .into_iter()
            .filter(|ip| !forced.contains_key(ip))
            .collect();
        if calm.is_empty() {
            continue;
        }
        let ip = calm[rand::random_range(0..calm.len())];
        let (mood, behavior, lasts) = match rand::random_range(0..100u32) {
            0..35 => (
                "forbidden",
                TargetBehavior::Forbidden,
                Duration::from_millis(300),
            ),
            35..65 => (
                "captcha",
                TargetBehavior::Captcha,
                Duration::from_millis(300),
            ),
            // Some rate limits end before the retry, some outlast two.
            _ => (
                "rate_limited",
                TargetBehavior::RateLimited {
                    retry_after_secs: 1,
                },
                Duration::from_millis(rand::random_range(300..2500)),
            ),
        };
        *moods.entry(mood).or_default() += 1;
        target.force(ip, Some(behavior));
        forced.insert(ip, now + lasts);
    }
    for ip in forced.keys() {
        target.force(*ip, None);
    }
    moods
}

/// One worker: takes jobs until none are left, through a `ProxySession`
/// that it hands back every [`JOBS_PER_LEASE`] pages.
struct Job {
    worker: u32,
    jobs: u32,
    manager: ProxyManager,
    base: String,
    ledger: Arc<Ledger>,
    metrics: Arc<RequestMetrics>,
    next_job: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    bar: indicatif::ProgressBar,
}

impl Job {
    async fn run(self) -> Result<(), CliError> {
        let observer: Arc<dyn SessionObserver> = Arc::new(WorkerObserver {
            worker: self.worker,
            ledger: Arc::clone(&self.ledger),
        });
        let new_session = || {
            ProxySession::builder(self.manager.clone())
                .metrics(Arc::clone(&self.metrics))
                .observer(Arc::clone(&observer))
                .policy(demo_policy())
                .client_options(ClientOptions::default().timeout(Duration::from_secs(5)))
                .build()
        };
        let mut session = new_session();
        let mut pages_on_this_proxy = 0;
        let outcome = loop {
            if self.stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            let n = self.next_job.fetch_add(1, Ordering::Relaxed);
            if n >= self.jobs {
                break Ok(());
            }
            let result = self.fetch(&mut session, n).await;
            self.bar.inc(1);
            match result {
                Ok(()) => self.ledger.job_done(),
                Err(ClientError::Acquire(error)) if is_fatal(&error) => {
                    self.stop.store(true, Ordering::Relaxed);
                    break Err(CliError::Acquire(error));
                }
                Err(ClientError::Store(error)) => {
                    self.stop.store(true, Ordering::Relaxed);
                    break Err(CliError::Store(error));
                }
                Err(ClientError::Configuration { reason }) => {
                    self.stop.store(true, Ordering::Relaxed);
                    break Err(CliError::Incomplete {
                        what: format!("proxy configuration error: {reason}"),
                    });
                }
                Err(error) => {
                    tracing::warn!(worker = self.worker, job = n, error = %one_line(&error), "job failed");
                    self.ledger.job_failed(&error);
                }
            }
            pages_on_this_proxy += 1;
            if pages_on_this_proxy >= JOBS_PER_LEASE {
                pages_on_this_proxy = 0;
                self.ledger.add_session_stats(session.stats());
                let finished = std::mem::replace(&mut session, new_session());
                finished.finish().await.map_err(release_failed)?;
            }
        };
        self.ledger.add_session_stats(session.stats());
        session.finish().await.map_err(release_failed)?;
        outcome
    }

    /// Fetches one page and checks it came through the reserved exit.
    async fn fetch(&self, session: &mut ProxySession, n: u32) -> Result<(), ClientError> {
        let page = session.get(&format!("{}{n}", self.base)).await?;
        let expected = session.proxy().map(|p| p.ip);
        if expected != Some(page.exit_ip) || !page.text().contains(&page.exit_ip.to_string()) {
            self.ledger.wrong_exit();
        }
        Ok(())
    }
}

/// A release at the end of a session failed.
fn release_failed(error: ClientError) -> CliError {
    match error {
        ClientError::Store(error) => CliError::Store(error),
        other => CliError::Incomplete {
            what: format!("releasing a proxy failed: {}", one_line(&other)),
        },
    }
}

/// Feeds one worker's session events into the ledger.
#[derive(Debug)]
struct WorkerObserver {
    worker: u32,
    ledger: Arc<Ledger>,
}

impl SessionObserver for WorkerObserver {
    fn on_event(&self, event: &SessionEvent<'_>) {
        let now = Instant::now();
        match event {
            SessionEvent::Acquired { proxy } => {
                self.ledger.acquired(self.worker, proxy, now);
            }
            SessionEvent::Attempt { proxy, signal, .. } => {
                self.ledger.attempt(proxy.ip, signal.kind());
            }
            SessionEvent::Releasing { .. } | SessionEvent::LeaseLost { .. } => {
                self.ledger.released(self.worker, now);
            }
            _ => {}
        }
    }
}

/// Per exit IP counters.
#[derive(Debug, Default, Clone)]
struct ExitCounters {
    holds: u64,
    signals: BTreeMap<SignalKind, u64>,
}

#[derive(Debug)]
struct LedgerState {
    /// Holds in progress, by worker.
    open: HashMap<u32, (IpAddr, String, Instant)>,
    exits: BTreeMap<IpAddr, ExitCounters>,
    /// One sample per acquisition (its count is the acquisitions).
    acquire_latency_us: Histogram<u64>,
    collisions: u64,
    judge_failovers: u64,
    /// Proxies abandoned, by the signal that caused it.
    rotations: BTreeMap<SignalKind, u64>,
    /// Releases with a cooldown.
    cooldowns: u64,
    leases_lost: u64,
    jobs_done: u64,
    jobs_failed: u64,
    failures: BTreeMap<String, u64>,
    wrong_exit: u64,
}

/// What the workers did, recorded from their session events.
#[derive(Debug)]
struct Ledger {
    state: Mutex<LedgerState>,
    holds: HoldLog,
}

impl Ledger {
    fn new() -> Result<Self, CliError> {
        let state = LedgerState {
            open: HashMap::new(),
            exits: BTreeMap::new(),
            acquire_latency_us: latency_histogram()?,
            collisions: 0,
            judge_failovers: 0,
            rotations: BTreeMap::new(),
            cooldowns: 0,
            leases_lost: 0,
            jobs_done: 0,
            jobs_failed: 0,
            failures: BTreeMap::new(),
            wrong_exit: 0,
        };
        Ok(Self {
            state: Mutex::new(state),
            holds: HoldLog::default(),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut LedgerState) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }

    fn acquired(&self, worker: u32, proxy: &proxy_core::Proxy, now: Instant) {
        self.with(|s| {
            s.open
                .insert(worker, (proxy.ip, proxy.domain.to_string(), now));
            s.exits.entry(proxy.ip).or_default().holds += 1;
            record_latency(&mut s.acquire_latency_us, proxy.stats.elapsed);
            s.collisions += u64::from(proxy.stats.collisions);
            s.judge_failovers += u64::from(proxy.stats.judge_failovers);
        });
    }

    fn released(&self, worker: u32, now: Instant) {
        let hold = self.with(|s| s.open.remove(&worker));
        if let Some((ip, domain, acquired)) = hold {
            self.holds.record(Hold {
                worker,
                ip,
                domain,
                acquired,
                released: now,
            });
        }
    }

    fn attempt(&self, ip: IpAddr, kind: SignalKind) {
        self.with(|s| {
            *s.exits
                .entry(ip)
                .or_default()
                .signals
                .entry(kind)
                .or_default() += 1;
        });
    }

    fn held_ips(&self) -> Vec<IpAddr> {
        self.with(|s| s.open.values().map(|(ip, _, _)| *ip).collect())
    }

    /// Adds what the summary reads of a finished session's stats.
    fn add_session_stats(&self, stats: &SessionStats) {
        self.with(|s| {
            for (kind, n) in &stats.rotations {
                *s.rotations.entry(*kind).or_default() += n;
            }
            s.cooldowns += stats.cooldowns;
            s.leases_lost += stats.leases_lost;
        });
    }

    fn job_done(&self) {
        self.with(|s| s.jobs_done += 1);
    }

    fn job_failed(&self, error: &ClientError) {
        let kind = match error {
            ClientError::Blocked { .. } => "blocked",
            ClientError::RateLimited { .. } => "rate_limited",
            ClientError::CaptchaUnsolved { .. } => "captcha_unsolved",
            ClientError::RotationsExhausted { .. } => "rotations_exhausted",
            ClientError::TargetUnhealthy { .. } => "target_unhealthy",
            ClientError::Acquire(_) => "acquire",
            _ => "other",
        };
        self.with(|s| {
            s.jobs_failed += 1;
            *s.failures.entry(kind.to_owned()).or_default() += 1;
        });
    }

    fn wrong_exit(&self) {
        self.with(|s| s.wrong_exit += 1);
    }
}

/// One exit IP's line of the summary.
#[derive(Debug, Serialize)]
struct ExitLine {
    ip: IpAddr,
    holds: u64,
    requests: u64,
    signals: BTreeMap<SignalKind, u64>,
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Serialize)]
struct Percentiles {
    p50: f64,
    p99: f64,
    max: f64,
}

/// What the run measured besides the ledger.
struct RunFacts {
    metrics: MetricsSnapshot,
    /// Requests the fake site received.
    site_requests: u64,
    site_moods: BTreeMap<&'static str, u64>,
    wall: Duration,
}

/// What the demo prints.
#[derive(Debug, Serialize)]
struct Summary {
    store: String,
    domain: String,
    workers: u32,
    exits: u8,
    jobs: u32,
    jobs_done: u64,
    jobs_failed: u64,
    /// Failed jobs by error kind.
    failures: BTreeMap<String, u64>,
    wall_s: f64,
    acquisitions: u64,
    collisions: u64,
    judge_failovers: u64,
    acquire_latency_ms: Percentiles,
    /// Request attempts (including retries), by signal.
    signals: BTreeMap<SignalKind, u64>,
    /// Proxies abandoned, by the signal that caused it.
    rotations: BTreeMap<SignalKind, u64>,
    /// Releases with a cooldown.
    cooldowns: u64,
    leases_lost: u64,
    /// Pages that did not come from the exit the session had reserved.
    wrong_exit_pages: u64,
    /// Requests the fake site received.
    site_requests: u64,
    /// How often the site turned against an exit in use, by behaviour.
    site_moods: BTreeMap<&'static str, u64>,
    holds: usize,
    distinct_ips: usize,
    /// Pairs of workers that held one exit IP for the domain at once.
    overlaps: usize,
    overlap_details: Vec<Overlap>,
    per_exit: Vec<ExitLine>,
    /// `RequestMetrics` (per proxy label and per target).
    metrics: MetricsSnapshot,
}

impl Summary {
    fn build(
        args: &DemoArgs,
        url: &StoreUrl,
        domain: &TargetDomain,
        ledger: &Ledger,
        facts: RunFacts,
    ) -> Self {
        let RunFacts {
            metrics,
            site_requests,
            site_moods,
            wall,
        } = facts;
        let holds = ledger.holds.holds();
        let found = overlaps(&holds);
        ledger.with(|s| {
            // Every kind is listed, with zeros, so the JSON shape is stable.
            let mut signals: BTreeMap<SignalKind, u64> =
                SignalKind::ALL.iter().map(|k| (*k, 0)).collect();
            let mut rotations: BTreeMap<SignalKind, u64> =
                ROTATING_SIGNALS.iter().map(|k| (*k, 0)).collect();
            rotations.extend(s.rotations.iter().map(|(k, n)| (*k, *n)));
            for counters in s.exits.values() {
                for (kind, n) in &counters.signals {
                    *signals.entry(*kind).or_default() += n;
                }
            }
            Summary {
                store: url.redacted(),
                domain: domain.to_string(),
                workers: args.workers,
                exits: args.exits,
                jobs: args.jobs,
                jobs_done: s.jobs_done,
                jobs_failed: s.jobs_failed,
                failures: s.failures.clone(),
                wall_s: round2(wall.as_secs_f64()),
                acquisitions: s.acquire_latency_us.len(),
                collisions: s.collisions,
                judge_failovers: s.judge_failovers,
                acquire_latency_ms: Percentiles {
                    p50: quantile_ms(&s.acquire_latency_us, 0.50),
                    p99: quantile_ms(&s.acquire_latency_us, 0.99),
                    max: max_ms(&s.acquire_latency_us),
                },
                signals,
                rotations,
                cooldowns: s.cooldowns,
                leases_lost: s.leases_lost,
                wrong_exit_pages: s.wrong_exit,
                site_requests,
                site_moods,
                holds: holds.len(),
                distinct_ips: distinct_ips(&holds),
                overlaps: found.len(),
                overlap_details: found,
                per_exit: s
                    .exits
                    .iter()
                    .map(|(ip, c)| ExitLine {
                        ip: *ip,
                        holds: c.holds,
                        requests: c.signals.values().sum(),
                        signals: c.signals.clone(),
                    })
                    .collect(),
                metrics,
            }
        })
    }

    fn print(&self) -> Result<(), CliError> {
        let count = |map: &BTreeMap<SignalKind, u64>, kind| map.get(&kind).copied().unwrap_or(0);
        let by_signal = |map: &BTreeMap<SignalKind, u64>| {
            let parts: Vec<String> = map
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            if parts.is_empty() {
                return "none".to_owned();
            }
            format!(
                "{} ({} in all)",
                parts.join(", "),
                map.values().sum::<u64>()
            )
        };
        let failures = if self.failures.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = self
                .failures
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            format!(" ({})", parts.join(", "))
        };
        print_pairs(
            "demo summary",
            [
                ("store", self.store.clone()),
                (
                    "jobs",
                    format!(
                        "{} of {} done, {} failed{failures}, in {:.2} s",
                        self.jobs_done, self.jobs, self.jobs_failed, self.wall_s
                    ),
                ),
                (
                    "acquisitions",
                    format!(
                        "{} ({} collisions with exits held or cooling down, {} judge failovers)",
                        self.acquisitions, self.collisions, self.judge_failovers
                    ),
                ),
                (
                    "acquire latency",
                    format!(
                        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                        self.acquire_latency_ms.p50,
                        self.acquire_latency_ms.p99,
                        self.acquire_latency_ms.max
                    ),
                ),
                (
                    "site moods",
                    if self.site_moods.is_empty() {
                        "none".to_owned()
                    } else {
                        let parts: Vec<String> = self
                            .site_moods
                            .iter()
                            .map(|(k, n)| format!("{k} {n}"))
                            .collect();
                        format!(
                            "the site turned against an exit in use: {}",
                            parts.join(", ")
                        )
                    },
                ),
                ("signals seen", by_signal(&self.signals)),
                ("rotations", by_signal(&self.rotations)),
                (
                    "cooldowns",
                    format!(
                        "{} (blocked {}, captcha {}, rate limited {})",
                        self.cooldowns,
                        count(&self.rotations, SignalKind::Blocked),
                        count(&self.rotations, SignalKind::Captcha),
                        count(&self.rotations, SignalKind::RateLimited)
                    ),
                ),
                (
                    "holds",
                    format!(
                        "{} holds of {} exit IPs, {} leases lost, {} pages from an unexpected exit",
                        self.holds, self.distinct_ips, self.leases_lost, self.wrong_exit_pages
                    ),
                ),
            ],
        )?;

        let mut exits = table([
            "exit IP", "holds", "requests", "ok", "403", "captcha", "429", "other",
        ]);
        for line in &self.per_exit {
            let ok = count(&line.signals, SignalKind::Success);
            let blocked = count(&line.signals, SignalKind::Blocked);
            let captcha = count(&line.signals, SignalKind::Captcha);
            let limited = count(&line.signals, SignalKind::RateLimited);
            exits.add_row([
                line.ip.to_string(),
                line.holds.to_string(),
                line.requests.to_string(),
                ok.to_string(),
                blocked.to_string(),
                captcha.to_string(),
                limited.to_string(),
                (line.requests - ok - blocked - captcha - limited).to_string(),
            ]);
        }
        print("per exit IP:")?;
        print(exits)?;

        let mut labels = table([
            "proxy (label)",
            "requests",
            "success",
            "p50",
            "p95",
            "p99",
            "bytes",
        ]);
        for (label, c) in self
            .metrics
            .proxies
            .iter()
            .chain(self.metrics.targets.iter().map(|(t, s)| (t, &s.counters)))
        {
            labels.add_row([
                label.clone(),
                c.requests.to_string(),
                format!("{:.1} %", c.success_rate * 100.0),
                format!("{:.1} ms", c.latency_ms.p50),
                format!("{:.1} ms", c.latency_ms.p95),
                format!("{:.1} ms", c.latency_ms.p99),
                c.bytes.to_string(),
            ]);
        }
        print("request metrics (per proxy label, then per target):")?;
        print(labels)?;

        if self.overlaps == 0 {
            print(format!(
                "invariant OK: no two workers held the same exit IP for {} at the same time \
                 ({} holds checked pairwise per IP, 0 overlaps)",
                self.domain, self.holds
            ))
        } else {
            for overlap in &self.overlap_details {
                print(format!(
                    "OVERLAP: workers {} and {} both held {} for {} ({:.1} ms)",
                    overlap.workers.0,
                    overlap.workers.1,
                    overlap.ip,
                    overlap.domain,
                    overlap.overlap_ms
                ))?;
            }
            print(format!(
                "invariant VIOLATED: {} overlapping holds",
                self.overlaps
            ))
        }
    }
}
