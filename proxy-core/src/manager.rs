//! The acquire loop: fresh session → verified exit IP → exclusive reservation.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::input::InvalidInput;
use crate::key::{AppId, MAX_APP_ID_BYTES, ReservationKey, TargetDomain, Ttl};
use crate::provider::ProxyProvider;
use crate::proxy::{ProxyUrl, SessionId};
use crate::settings::Settings;
use crate::store::{
    Lease, ReleaseOutcome, RenewOutcome, ReservationStore, ReserveOutcome, StoreError,
};
use crate::verifier::{IpVerifier, VerifyError};

/// What one [`ProxyManager::acquire`] call went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AcquireStats {
    /// Sessions tried (each one verification).
    pub attempts: u32,
    /// Reservations refused because another worker held the exit IP.
    pub collisions: u32,
    /// Verifications that failed (proxy or judges).
    pub verification_failures: u32,
    /// Judges that had to be skipped or hedged before one answered, summed.
    pub judge_failovers: u32,
    /// Time spent in `acquire`.
    #[serde(serialize_with = "serialize_millis", rename = "elapsed_ms")]
    pub elapsed: Duration,
}

fn serialize_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// A verified, reserved proxy: what [`ProxyManager::acquire`] hands a worker.
///
/// Use [`url`](Proxy::url) for every request against [`domain`](Proxy::domain)
/// and give the proxy back with [`ProxyManager::release`] when done. A proxy
/// that is never released stays reserved until its lease expires.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Proxy {
    /// The proxy URL for this session (`Debug`/`Display` redact the password).
    pub url: ProxyUrl,
    /// The verified exit IP.
    pub ip: IpAddr,
    /// The provider session pinned to that IP.
    pub session_id: SessionId,
    /// The target domain the IP is reserved for.
    pub domain: TargetDomain,
    /// The reservation.
    pub lease: Lease,
    /// The provider's credential-free label (`provider:country:port`).
    pub label: String,
    /// The judge that verified the IP.
    pub judge: String,
    /// How the acquisition went.
    pub stats: AcquireStats,
}

/// Why [`ProxyManager::acquire`] gave up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// The proxy configuration is wrong (for example the gateway answered
    /// 407): no session can succeed, so the loop stopped at once.
    #[error("proxy configuration error while acquiring for {domain}")]
    Configuration {
        /// The target domain.
        domain: TargetDomain,
        /// What the verifier reported.
        #[source]
        source: VerifyError,
    },
    /// Verification failed `failures` times in a row.
    #[error("judges unavailable for {domain}: {failures} consecutive verification failures")]
    JudgesUnavailable {
        /// The target domain.
        domain: TargetDomain,
        /// Consecutive failures.
        failures: u32,
        /// The last failure.
        #[source]
        last: VerifyError,
    },
    /// No exclusive proxy was found within the acquire timeout.
    #[error(
        "no exclusive proxy for {domain} within {timeout:?} ({} attempts, {} collisions)",
        stats.attempts, stats.collisions
    )]
    Timeout {
        /// The target domain.
        domain: TargetDomain,
        /// The configured timeout.
        timeout: Duration,
        /// What was tried.
        stats: AcquireStats,
    },
    /// The reservation store failed.
    #[error("reservation store failed while acquiring for {domain}")]
    Store {
        /// The target domain.
        domain: TargetDomain,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The provider could not build a proxy URL.
    #[error("provider {label} could not build a proxy URL")]
    Provider {
        /// The provider's label.
        label: String,
        /// Why.
        #[source]
        source: InvalidInput,
    },
}

/// A [`ProxyManagerBuilder`] was missing a part or had an invalid value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A required part was not given.
    #[error("ProxyManager needs a {0}")]
    Missing(&'static str),
    /// A value was invalid.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
}

/// Hands out verified, exclusive proxies for one target domain.
///
/// Cheap to clone; clones share the provider, verifier and store. Build one
/// with [`ProxyManager::builder`].
///
/// ```
/// # use std::sync::Arc;
/// # use proxy_core::*;
/// # #[derive(Debug)] struct P;
/// # impl ProxyProvider for P {
/// #     fn build_proxy_url(&self, s: &SessionId) -> Result<ProxyUrl, InvalidInput> {
/// #         ProxyUrl::new(Protocol::Http, "127.0.0.1", 1)?.with_credentials(format!("u-session-{s}"), "p")
/// #     }
/// # }
/// # #[derive(Debug)] struct V;
/// # #[async_trait::async_trait]
/// # impl IpVerifier for V {
/// #     async fn verify(&self, _: &ProxyUrl) -> Result<VerifiedExit, VerifyError> {
/// #         Ok(VerifiedExit::new("203.0.113.7".parse().unwrap(), "scripted", 0))
/// #     }
/// # }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = ProxyManager::builder()
///     .provider(P)
///     .verifier(V)
///     .store(MemoryStore::new())
///     .target_domain("example.com")
///     .app_id("docs")
///     .build()?;
/// let proxy = manager.acquire().await?;
/// // ... scrape example.com through proxy.url ...
/// manager.release(&proxy).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ProxyManager {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Arc<dyn ProxyProvider>,
    verifier: Arc<dyn IpVerifier>,
    store: Arc<dyn ReservationStore>,
    domain: TargetDomain,
    app_id: AppId,
    settings: Settings,
}

impl fmt::Debug for ProxyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyManager")
            .field("provider", &self.inner.provider.label())
            .field("store", &self.inner.store.info().name)
            .field("domain", &self.inner.domain)
            .field("app_id", &self.inner.app_id)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ProxyManager`]; provider, verifier, store and target domain
/// are required.
#[derive(Default)]
#[must_use]
pub struct ProxyManagerBuilder {
    provider: Option<Arc<dyn ProxyProvider>>,
    verifier: Option<Arc<dyn IpVerifier>>,
    store: Option<Arc<dyn ReservationStore>>,
    domain: Option<String>,
    app_id: Option<String>,
    settings: Settings,
}

impl fmt::Debug for ProxyManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyManagerBuilder")
            .field("domain", &self.domain)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

impl ProxyManagerBuilder {
    /// The provider that builds proxy URLs.
    pub fn provider(mut self, provider: impl ProxyProvider) -> Self {
        self.provider = Some(Arc::new(provider));
        self
    }

    /// The verifier that finds the exit IP (usually `proxy_judge::JudgeVerifier`).
    pub fn verifier(mut self, verifier: impl IpVerifier) -> Self {
        self.verifier = Some(Arc::new(verifier));
        self
    }

    /// The reservation store (an `Arc<dyn ReservationStore>` works too).
    pub fn store(mut self, store: impl ReservationStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The site the proxies are for (normalised when built).
    pub fn target_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The application id recorded with each reservation. Defaults to the
    /// executable name and process id (`scraper:4242`).
    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }

    /// Settings (TTL, timeouts, backoff); defaults to [`Settings::default`].
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Validates and builds the manager.
    pub fn build(self) -> Result<ProxyManager, BuildError> {
        let provider = self.provider.ok_or(BuildError::Missing("provider"))?;
        let verifier = self.verifier.ok_or(BuildError::Missing("verifier"))?;
        let store = self.store.ok_or(BuildError::Missing("store"))?;
        let domain =
            TargetDomain::parse(&self.domain.ok_or(BuildError::Missing("target domain"))?)?;
        let app_id = match self.app_id {
            Some(app_id) => AppId::new(app_id)?,
            None => default_app_id(),
        };
        Ok(ProxyManager {
            inner: Arc::new(Inner {
                provider,
                verifier,
                store,
                domain,
                app_id,
                settings: self.settings,
            }),
        })
    }
}

/// `executable:pid`, cut to fit an app id.
fn default_app_id() -> AppId {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "proxy-reserve".to_owned());
    let suffix = format!(":{}", std::process::id());
    let mut name: String = exe
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .collect();
    while name.len() + suffix.len() > MAX_APP_ID_BYTES {
        name.pop();
    }
    AppId::new(format!("{name}{suffix}"))
        .or_else(|_| AppId::new(suffix.trim_start_matches(':')))
        .unwrap_or_else(|_| AppId(String::from("proxy-reserve")))
}

impl ProxyManager {
    /// Starts building a manager.
    pub fn builder() -> ProxyManagerBuilder {
        ProxyManagerBuilder::default()
    }

    /// The target domain (normalised).
    pub fn domain(&self) -> &TargetDomain {
        &self.inner.domain
    }

    /// The app id recorded with reservations.
    pub fn app_id(&self) -> &AppId {
        &self.inner.app_id
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The reservation store.
    pub fn store(&self) -> &Arc<dyn ReservationStore> {
        &self.inner.store
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<dyn ProxyProvider> {
        &self.inner.provider
    }

    /// Acquires a verified proxy whose exit IP is reserved for the target
    /// domain.
    ///
    /// Each attempt takes a fresh session, verifies its exit IP and tries to
    /// reserve it. A collision (another worker holds that IP for this
    /// domain) is retried at once with a new session; only after
    /// [`Settings::collisions_before_backoff`] collisions in a row does the
    /// loop pause for a jittered [`Settings::recheck_interval`].
    ///
    /// # Errors
    ///
    /// - [`AcquireError::Configuration`] at once when the verifier reports a
    ///   configuration error (such as a 407 from the gateway);
    /// - [`AcquireError::JudgesUnavailable`] after
    ///   [`Settings::max_judge_failures`] verification failures in a row;
    /// - [`AcquireError::Timeout`] when [`Settings::acquire_timeout`] runs out;
    /// - [`AcquireError::Store`] on the first store error (an error during
    ///   a reserve may have left a reservation that expires with its TTL);
    /// - [`AcquireError::Provider`] when the provider cannot build a URL.
    pub async fn acquire(&self) -> Result<Proxy, AcquireError> {
        let inner = &*self.inner;
        let settings = &inner.settings;
        let started = Instant::now();
        let deadline = started + settings.acquire_timeout;
        let mut stats = AcquireStats::default();
        let mut failures_in_a_row = 0u32;
        let mut collisions_in_a_row = 0u32;
        let timeout = |mut stats: AcquireStats| {
            stats.elapsed = started.elapsed();
            AcquireError::Timeout {
                domain: inner.domain.clone(),
                timeout: settings.acquire_timeout,
                stats,
            }
        };
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(timeout(stats));
            }
            stats.attempts += 1;
            let attempt = stats.attempts;
            let session = inner.provider.new_session_id();
            let url = inner.provider.build_proxy_url(&session).map_err(|source| {
                AcquireError::Provider {
                    label: inner.provider.label(),
                    source,
                }
            })?;
            let verified = match tokio::time::timeout(remaining, inner.verifier.verify(&url)).await
            {
                Err(_) => return Err(timeout(stats)),
                Ok(Ok(verified)) => verified,
                Ok(Err(error)) if error.is_configuration() => {
                    warn!(domain = %inner.domain, session = %session, attempt, %error, "proxy configuration error; not retrying");
                    return Err(AcquireError::Configuration {
                        domain: inner.domain.clone(),
                        source: error,
                    });
                }
                Ok(Err(error)) => {
                    stats.verification_failures += 1;
                    failures_in_a_row += 1;
                    debug!(domain = %inner.domain, session = %session, attempt, %error, "verification failed");
                    if failures_in_a_row >= settings.max_judge_failures {
                        warn!(domain = %inner.domain, failures = failures_in_a_row, %error, "giving up: judges unavailable");
                        return Err(AcquireError::JudgesUnavailable {
                            domain: inner.domain.clone(),
                            failures: failures_in_a_row,
                            last: error,
                        });
                    }
                    continue;
                }
            };
            failures_in_a_row = 0;
            stats.judge_failovers += verified.failovers;
            let key = ReservationKey::new(verified.ip, inner.domain.clone());
            let outcome = inner
                .store
                .try_reserve(&key, &inner.app_id, settings.ttl)
                .await
                .map_err(|source| AcquireError::Store {
                    domain: inner.domain.clone(),
                    source,
                })?;
            match outcome {
                ReserveOutcome::Reserved(lease) => {
                    stats.elapsed = started.elapsed();
                    info!(
                        domain = %inner.domain, ip = %verified.ip, session = %session, attempt,
                        lease = %lease.id, generation = lease.generation, proxy = %inner.provider.label(),
                        "proxy acquired"
                    );
                    return Ok(Proxy {
                        url,
                        ip: verified.ip,
                        session_id: session,
                        domain: inner.domain.clone(),
                        lease,
                        label: inner.provider.label(),
                        judge: verified.judge,
                        stats,
                    });
                }
                ReserveOutcome::Taken => {
                    stats.collisions += 1;
                    collisions_in_a_row += 1;
                    debug!(domain = %inner.domain, ip = %verified.ip, session = %session, attempt, "exit IP already reserved; trying a new session");
                    if collisions_in_a_row >= settings.collisions_before_backoff.max(1) {
                        let pause = jittered(settings.recheck_interval);
                        let remaining = deadline.saturating_duration_since(Instant::now());
                        tokio::time::sleep(pause.min(remaining)).await;
                    }
                }
            }
        }
    }

    /// Releases `proxy`'s reservation. Returns
    /// [`ReleaseOutcome::NotHeld`] if it had already expired or been
    /// released.
    pub async fn release(&self, proxy: &Proxy) -> Result<ReleaseOutcome, StoreError> {
        let outcome = self.inner.store.release(&proxy.lease).await?;
        debug!(domain = %proxy.domain, ip = %proxy.ip, session = %proxy.session_id, ?outcome, "proxy released");
        Ok(outcome)
    }

    /// Releases `proxy` into a cooldown: nobody may reserve its exit IP for
    /// this domain for `cooldown` (use after a 403 or 429).
    pub async fn release_with_cooldown(
        &self,
        proxy: &Proxy,
        cooldown: Duration,
    ) -> Result<ReleaseOutcome, StoreError> {
        let cooldown = Ttl::new("cooldown", cooldown)?;
        let outcome = self
            .inner
            .store
            .release_with_cooldown(&proxy.lease, cooldown)
            .await?;
        debug!(domain = %proxy.domain, ip = %proxy.ip, session = %proxy.session_id, %cooldown, ?outcome, "proxy cooling down");
        Ok(outcome)
    }

    /// Keeps `proxy`'s lease alive in the background, renewing it with the
    /// configured TTL every third of that TTL, until the returned handle is
    /// dropped or the lease is lost. Needs a Tokio runtime.
    pub fn keep_alive(&self, proxy: &Proxy) -> KeepAlive {
        KeepAlive::spawn(
            Arc::clone(&self.inner.store),
            proxy.lease.clone(),
            self.inner.settings.ttl,
        )
    }
}

/// `base` scaled by a random factor in [0.5, 1.5).
fn jittered(base: Duration) -> Duration {
    base.mul_f64(rand::random_range(0.5..1.5))
}

/// The state of a lease kept alive by [`KeepAlive`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseStatus {
    /// Renewed; this is the current lease.
    Held(Lease),
    /// The lease was lost: expired, released or taken over. The worker
    /// should stop using the proxy.
    Lost,
}

/// Background renewal of one lease; see [`ProxyManager::keep_alive`].
///
/// Dropping the handle stops the renewals (the lease is not released).
#[derive(Debug)]
pub struct KeepAlive {
    status: watch::Receiver<LeaseStatus>,
    task: JoinHandle<()>,
}

impl KeepAlive {
    /// Renews `lease` with `ttl` every `ttl / 3` on `store`.
    pub fn spawn(store: Arc<dyn ReservationStore>, lease: Lease, ttl: Ttl) -> Self {
        let (tx, status) = watch::channel(LeaseStatus::Held(lease.clone()));
        let task = tokio::spawn(renew_loop(store, lease, ttl, tx));
        Self { status, task }
    }

    /// Whether the lease has been lost.
    pub fn is_lost(&self) -> bool {
        matches!(*self.status.borrow(), LeaseStatus::Lost)
    }

    /// The current status.
    pub fn status(&self) -> LeaseStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn subscribe(&self) -> watch::Receiver<LeaseStatus> {
        self.status.clone()
    }

    /// Waits until the lease is lost.
    pub async fn lost(&mut self) {
        // An error means the task ended, which it only does after Lost.
        let _ = self
            .status
            .wait_for(|s| matches!(s, LeaseStatus::Lost))
            .await;
    }

    /// Stops renewing.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn renew_loop(
    store: Arc<dyn ReservationStore>,
    mut lease: Lease,
    ttl: Ttl,
    tx: watch::Sender<LeaseStatus>,
) {
    let period = ttl.as_duration() / 3;
    let retry = (ttl.as_duration() / 10).max(Duration::from_millis(100));
    let mut wait = period;
    loop {
        tokio::time::sleep(wait).await;
        match store.renew(&lease, ttl).await {
            Ok(RenewOutcome::Renewed(renewed)) => {
                lease = renewed;
                wait = period;
                tx.send_replace(LeaseStatus::Held(lease.clone()));
            }
            Ok(RenewOutcome::Lost) => {
                warn!(domain = %lease.domain, ip = %lease.ip, lease = %lease.id, "lease lost");
                tx.send_replace(LeaseStatus::Lost);
                return;
            }
            Err(error) => {
                // The store's clock decides; without an answer assume the
                // worst once the last known expiry has passed.
                if chrono::Utc::now() >= lease.expires_at {
                    warn!(domain = %lease.domain, ip = %lease.ip, lease = %lease.id, %error, "lease presumed lost: store unreachable past expiry");
                    tx.send_replace(LeaseStatus::Lost);
                    return;
                }
                warn!(domain = %lease.domain, ip = %lease.ip, lease = %lease.id, %error, "lease renewal failed; retrying");
                wait = retry;
            }
        }
    }
}
