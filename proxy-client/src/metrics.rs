//! Per-proxy and per-target request metrics, shared by every worker, and the
//! target-health circuit breaker.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tracing::info;

use crate::classify::SignalKind;

/// When the circuit breaker of a target opens.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// How many recent attempts per target are considered.
    pub window: usize,
    /// No verdict before this many attempts are in the window.
    pub min_samples: usize,
    /// Open when failures / attempts in the window exceed this.
    pub failure_ratio: f64,
    /// Attempts older than this leave the window, so an open breaker closes
    /// again once the site has been left alone for that long.
    pub max_age: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: 50,
            min_samples: 20,
            failure_ratio: 0.8,
            max_age: Duration::from_secs(300),
        }
    }
}

impl BreakerConfig {
    /// A breaker over the last `window` attempts, deciding after
    /// `min_samples`, opening above `failure_ratio`.
    pub fn new(window: usize, min_samples: usize, failure_ratio: f64) -> Self {
        Self {
            window: window.max(1),
            min_samples: min_samples.max(1),
            failure_ratio: failure_ratio.clamp(0.0, 1.0),
            ..Self::default()
        }
    }

    /// Sets how long an attempt stays in the window.
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }
}

/// One request attempt, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The proxy's credential-free label (`provider:country:port`).
    pub proxy: &'a str,
    /// The target host.
    pub target: &'a str,
    /// What the attempt told us.
    pub signal: SignalKind,
    /// Time from sending to the end of the body (or the failure).
    pub latency: Duration,
    /// Body bytes received.
    pub bytes: u64,
}

#[derive(Debug)]
struct Counters {
    requests: u64,
    signals: BTreeMap<SignalKind, u64>,
    bytes: u64,
    latency_us: Histogram<u64>,
}

impl Counters {
    #[allow(clippy::expect_used)]
    fn new() -> Self {
        Self {
            requests: 0,
            signals: BTreeMap::new(),
            bytes: 0,
            // Constant, valid bounds (1 µs to 10 min, 3 digits): cannot fail.
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }

    fn record(&mut self, attempt: &Attempt<'_>) {
        self.requests += 1;
        *self.signals.entry(attempt.signal).or_insert(0) += 1;
        self.bytes += attempt.bytes;
        let micros = u64::try_from(attempt.latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.saturating_record(micros.max(1));
    }

    fn snapshot(&self) -> CounterSnapshot {
        let successes = self.signals.get(&SignalKind::Success).copied().unwrap_or(0);
        let ms = |q: f64| self.latency_us.value_at_quantile(q) as f64 / 1000.0;
        CounterSnapshot {
            requests: self.requests,
            successes,
            success_rate: if self.requests == 0 {
                0.0
            } else {
                successes as f64 / self.requests as f64
            },
            signals: self
                .signals
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), *v))
                .collect(),
            bytes: self.bytes,
            latency_ms: LatencySnapshot {
                p50: ms(0.50),
                p95: ms(0.95),
                p99: ms(0.99),
                max: self.latency_us.max() as f64 / 1000.0,
            },
        }
    }
}

#[derive(Debug)]
struct Target {
    counters: Counters,
    /// (when, failed) of the most recent attempts.
    window: VecDeque<(Instant, bool)>,
}

#[derive(Debug)]
struct State {
    proxies: BTreeMap<String, Counters>,
    targets: BTreeMap<String, Target>,
}

/// Request metrics shared by all workers (wrap in an `Arc`).
///
/// Counts, per proxy label and per target host: attempts, successes, each
/// signal, bytes and a latency histogram; and keeps a sliding window of
/// outcomes per target for the circuit breaker ([`should_abort`]).
/// Labels never contain credentials.
///
/// [`should_abort`]: RequestMetrics::should_abort
#[derive(Debug)]
pub struct RequestMetrics {
    state: Mutex<State>,
    breaker: BreakerConfig,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestMetrics {
    /// Empty metrics with the default breaker.
    pub fn new() -> Self {
        Self::with_breaker(BreakerConfig::default())
    }

    /// Empty metrics with a custom breaker.
    pub fn with_breaker(breaker: BreakerConfig) -> Self {
        Self {
            state: Mutex::new(State {
                proxies: BTreeMap::new(),
                targets: BTreeMap::new(),
            }),
            breaker,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Counters stay consistent under a poisoned lock (each update is a
        // few additions), so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one attempt.
    pub fn record(&self, attempt: &Attempt<'_>) {
        let now = Instant::now();
        let mut state = self.state();
        // Look up by &str first: an owned key is allocated only the first
        // time a label or target is seen, not on every attempt.
        if !state.proxies.contains_key(attempt.proxy) {
            state
                .proxies
                .insert(attempt.proxy.to_owned(), Counters::new());
        }
        if let Some(counters) = state.proxies.get_mut(attempt.proxy) {
            counters.record(attempt);
        }
        if !state.targets.contains_key(attempt.target) {
            let target = Target {
                counters: Counters::new(),
                window: VecDeque::new(),
            };
            state.targets.insert(attempt.target.to_owned(), target);
        }
        let Some(target) = state.targets.get_mut(attempt.target) else {
            return;
        };
        target.counters.record(attempt);
        if attempt.signal != SignalKind::ProxyAuthRequired {
            target
                .window
                .push_back((now, attempt.signal.is_target_failure()));
            while target.window.len() > self.breaker.window {
                target.window.pop_front();
            }
        }
    }

    /// Whether workers should stop hitting `target`: more than
    /// [`BreakerConfig::failure_ratio`] of the recent attempts failed (and
    /// there are at least [`BreakerConfig::min_samples`] of them).
    pub fn should_abort(&self, target: &str) -> bool {
        let mut state = self.state();
        match state.targets.get_mut(target) {
            Some(t) => self.breaker_open(t, Instant::now()),
            None => false,
        }
    }

    fn breaker_open(&self, target: &mut Target, now: Instant) -> bool {
        let (samples, failures) = self.window_counts(target, now);
        self.verdict(samples, failures)
    }

    /// Open when there are enough samples and too many failed.
    fn verdict(&self, samples: usize, failures: usize) -> bool {
        samples >= self.breaker.min_samples
            && failures as f64 / samples as f64 > self.breaker.failure_ratio
    }

    /// Drops attempts older than the breaker's max age; returns the
    /// (samples, failures) left in the window.
    fn window_counts(&self, target: &mut Target, now: Instant) -> (usize, usize) {
        while target
            .window
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > self.breaker.max_age)
        {
            target.window.pop_front();
        }
        let failures = target.window.iter().filter(|(_, failed)| *failed).count();
        (target.window.len(), failures)
    }

    /// Forgets the breaker window of `target` (for example after an
    /// operator checked the site).
    pub fn reset_breaker(&self, target: &str) {
        if let Some(t) = self.state().targets.get_mut(target) {
            t.window.clear();
        }
    }

    /// A copy of every counter, serialisable to JSON.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let now = Instant::now();
        let mut state = self.state();
        let proxies = state
            .proxies
            .iter()
            .map(|(label, c)| (label.clone(), c.snapshot()))
            .collect();
        let mut targets = BTreeMap::new();
        for (name, t) in state.targets.iter_mut() {
            let (samples, failures) = self.window_counts(t, now);
            let ratio = if samples == 0 {
                0.0
            } else {
                failures as f64 / samples as f64
            };
            targets.insert(
                name.clone(),
                TargetSnapshot {
                    counters: t.counters.snapshot(),
                    window_samples: samples,
                    window_failure_ratio: ratio,
                    breaker_open: self.verdict(samples, failures),
                },
            );
        }
        MetricsSnapshot { proxies, targets }
    }

    /// Logs one `info` event per proxy label and per target.
    pub fn log_stats(&self) {
        let snapshot = self.snapshot();
        for (label, c) in &snapshot.proxies {
            info!(
                proxy = %label, requests = c.requests, successes = c.successes,
                success_rate = c.success_rate, bytes = c.bytes,
                p50_ms = c.latency_ms.p50, p95_ms = c.latency_ms.p95, p99_ms = c.latency_ms.p99,
                signals = ?c.signals, "proxy stats"
            );
        }
        for (target, t) in &snapshot.targets {
            info!(
                target_host = %target, requests = t.counters.requests, successes = t.counters.successes,
                success_rate = t.counters.success_rate, bytes = t.counters.bytes,
                p50_ms = t.counters.latency_ms.p50, p95_ms = t.counters.latency_ms.p95,
                p99_ms = t.counters.latency_ms.p99, signals = ?t.counters.signals,
                breaker_open = t.breaker_open, "target stats"
            );
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySnapshot {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// Counters of one proxy label or target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterSnapshot {
    /// Attempts.
    pub requests: u64,
    /// Attempts classified as success.
    pub successes: u64,
    /// successes / requests.
    pub success_rate: f64,
    /// Attempts per signal (snake_case names).
    pub signals: BTreeMap<String, u64>,
    /// Body bytes received.
    pub bytes: u64,
    /// Latency percentiles.
    pub latency_ms: LatencySnapshot,
}

impl CounterSnapshot {
    /// The count of one signal.
    pub fn signal(&self, kind: SignalKind) -> u64 {
        self.signals.get(kind.as_str()).copied().unwrap_or(0)
    }
}

/// Counters and breaker state of one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetSnapshot {
    /// The counters.
    #[serde(flatten)]
    pub counters: CounterSnapshot,
    /// Attempts in the breaker window.
    pub window_samples: usize,
    /// Failure ratio in the window.
    pub window_failure_ratio: f64,
    /// Whether [`RequestMetrics::should_abort`] is true.
    pub breaker_open: bool,
}

/// Everything [`RequestMetrics`] knows, for JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// Per proxy label.
    pub proxies: BTreeMap<String, CounterSnapshot>,
    /// Per target host.
    pub targets: BTreeMap<String, TargetSnapshot>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(signal: SignalKind) -> Attempt<'static> {
        Attempt {
            proxy: "brightdata:us:33335",
            target: "shop.example",
            signal,
            latency: Duration::from_millis(20),
            bytes: 100,
        }
    }

    #[test]
    fn counts_per_label_and_target() {
        let metrics = RequestMetrics::new();
        metrics.record(&attempt(SignalKind::Success));
        metrics.record(&attempt(SignalKind::Success));
        metrics.record(&attempt(SignalKind::Blocked));
        metrics.record(&Attempt {
            proxy: "oxylabs:de:7777",
            ..attempt(SignalKind::Timeout)
        });
        let s = metrics.snapshot();
        let bd = &s.proxies["brightdata:us:33335"];
        assert_eq!((bd.requests, bd.successes, bd.bytes), (3, 2, 300));
        assert_eq!(bd.signal(SignalKind::Blocked), 1);
        assert!((bd.success_rate - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.proxies["oxylabs:de:7777"].signal(SignalKind::Timeout), 1);
        let t = &s.targets["shop.example"];
        assert_eq!(t.counters.requests, 4);
        assert!((19.0..=21.0).contains(&t.counters.latency_ms.p50));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["targets"]["shop.example"]["requests"], 4);
        assert_eq!(
            json["proxies"]["brightdata:us:33335"]["signals"]["blocked"],
            1
        );
    }

    #[test]
    fn breaker_opens_on_failure_ratio_and_needs_samples() {
        let metrics = RequestMetrics::with_breaker(BreakerConfig::new(10, 5, 0.5));
        for _ in 0..4 {
            metrics.record(&attempt(SignalKind::Blocked));
        }
        assert!(!metrics.should_abort("shop.example"), "too few samples");
        metrics.record(&attempt(SignalKind::Blocked));
        assert!(metrics.should_abort("shop.example"));
        assert!(!metrics.should_abort("other.example"));
        for _ in 0..6 {
            metrics.record(&attempt(SignalKind::Success));
        }
        // Window of 10: 4 blocked, 6 successes → 0.4 ≤ 0.5.
        assert!(!metrics.should_abort("shop.example"));
        assert!(!metrics.snapshot().targets["shop.example"].breaker_open);
    }

    #[test]
    fn breaker_forgets_old_attempts() {
        let metrics = RequestMetrics::with_breaker(
            BreakerConfig::new(10, 2, 0.5).with_max_age(Duration::ZERO),
        );
        metrics.record(&attempt(SignalKind::Blocked));
        metrics.record(&attempt(SignalKind::Blocked));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!metrics.should_abort("shop.example"));
        let metrics = RequestMetrics::with_breaker(BreakerConfig::new(10, 2, 0.5));
        metrics.record(&attempt(SignalKind::Blocked));
        metrics.record(&attempt(SignalKind::Blocked));
        assert!(metrics.should_abort("shop.example"));
        metrics.reset_breaker("shop.example");
        assert!(!metrics.should_abort("shop.example"));
    }

    #[test]
    fn configuration_errors_do_not_trip_the_breaker() {
        let metrics = RequestMetrics::with_breaker(BreakerConfig::new(10, 1, 0.0));
        metrics.record(&attempt(SignalKind::ProxyAuthRequired));
        assert!(!metrics.should_abort("shop.example"));
    }
}
