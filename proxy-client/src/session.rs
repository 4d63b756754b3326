//! One worker's proxy: requests through it, ban handling, rotation.

use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use proxy_core::{KeepAlive, Proxy, ProxyManager, ReleaseOutcome, TargetDomain};
use proxy_judge::{ClientOptions, TransportFailureKind, classify_transport_error};
use reqwest::{Method, Request};
use serde::Serialize;
use tracing::{debug, info, warn};
use url::Url;

use crate::captcha::{CaptchaChallenge, CaptchaOutcome, CaptchaSolver};
use crate::classify::{Classifier, Signal, SignalKind};
use crate::error::ClientError;
use crate::metrics::{Attempt, RequestMetrics};
use crate::page::Page;
use crate::policy::SessionPolicy;

/// Something a [`ProxySession`] did, for observers (demos, audits, custom
/// metrics). Proxies carry no readable password (`Debug` redacts it).
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionEvent<'a> {
    /// A proxy was acquired and is now in use.
    Acquired {
        /// The proxy.
        proxy: &'a Proxy,
    },
    /// A request attempt finished.
    Attempt {
        /// The proxy it went through.
        proxy: &'a Proxy,
        /// What it told us.
        signal: &'a Signal,
        /// How long it took.
        latency: Duration,
    },
    /// The session stops using a proxy and is about to release it (with a
    /// cooldown, or plainly). The hold ends here: nothing is sent through
    /// it afterwards.
    Releasing {
        /// The proxy.
        proxy: &'a Proxy,
        /// The cooldown, if any.
        cooldown: Option<Duration>,
        /// The signal that caused it; `None` for a release by the caller.
        reason: Option<&'a Signal>,
    },
    /// The lease was lost (expired or taken over while held): the session
    /// stopped using the proxy without releasing it.
    LeaseLost {
        /// The proxy.
        proxy: &'a Proxy,
    },
}

/// Receives every [`SessionEvent`], synchronously, in order.
pub trait SessionObserver: Send + Sync + Debug + 'static {
    /// Called for each event; keep it quick.
    fn on_event(&self, event: &SessionEvent<'_>);
}

/// What a session did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SessionStats {
    /// Calls of `send`/`get`.
    pub requests: u64,
    /// HTTP attempts (including retries).
    pub attempts: u64,
    /// Proxies acquired.
    pub acquisitions: u64,
    /// Collisions met while acquiring.
    pub collisions: u64,
    /// Judge failovers met while acquiring.
    pub judge_failovers: u64,
    /// Rotations, by the signal that caused them.
    pub rotations: BTreeMap<SignalKind, u64>,
    /// Releases with a cooldown.
    pub cooldowns: u64,
    /// Releases (with or without cooldown).
    pub releases: u64,
    /// Leases lost while held.
    pub leases_lost: u64,
}

impl SessionStats {
    /// Rotations of every kind.
    pub fn total_rotations(&self) -> u64 {
        self.rotations.values().sum()
    }
}

struct Held {
    proxy: Proxy,
    client: reqwest::Client,
    keep_alive: Option<KeepAlive>,
}

/// What a worker uses while scraping one domain: a verified, reserved proxy
/// and an HTTP client bound to it, with the ban table applied to every
/// response.
///
/// A proxy is acquired on the first request (or with
/// [`acquire`](Self::acquire)); 403s, CAPTCHAs, proxy failures and
/// persistent timeouts or rate limits rotate it as [`SessionPolicy`] says.
/// Call [`finish`](Self::finish) when done; a session dropped while
/// holding a proxy releases it in the background (best effort) if a Tokio
/// runtime is running.
pub struct ProxySession {
    manager: ProxyManager,
    held: Option<Held>,
    client_options: ClientOptions,
    classifier: Arc<Classifier>,
    metrics: Option<Arc<RequestMetrics>>,
    solver: Option<Arc<dyn CaptchaSolver>>,
    observer: Option<Arc<dyn SessionObserver>>,
    policy: SessionPolicy,
    keep_alive: bool,
    stats: SessionStats,
}

impl Debug for ProxySession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxySession")
            .field("domain", self.manager.domain())
            .field(
                "proxy",
                &self.held.as_ref().map(|h| (&h.proxy.label, h.proxy.ip)),
            )
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ProxySession`].
#[must_use]
pub struct ProxySessionBuilder {
    manager: ProxyManager,
    client_options: ClientOptions,
    classifier: Classifier,
    metrics: Option<Arc<RequestMetrics>>,
    solver: Option<Arc<dyn CaptchaSolver>>,
    observer: Option<Arc<dyn SessionObserver>>,
    policy: SessionPolicy,
    keep_alive: bool,
}

impl Debug for ProxySessionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxySessionBuilder")
            .field("domain", self.manager.domain())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ProxySessionBuilder {
    /// Options of the HTTP client built for each proxy (timeouts, user
    /// agent, extra root certificates).
    pub fn client_options(mut self, options: ClientOptions) -> Self {
        self.client_options = options;
        self
    }

    /// The response classifier (defaults to [`Classifier::default`]).
    pub fn classifier(mut self, classifier: Classifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// Shared metrics to record every attempt into; also enables the
    /// circuit breaker check before each attempt.
    pub fn metrics(mut self, metrics: Arc<RequestMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// A CAPTCHA solver.
    pub fn captcha_solver(mut self, solver: Arc<dyn CaptchaSolver>) -> Self {
        self.solver = Some(solver);
        self
    }

    /// An observer of session events.
    pub fn observer(mut self, observer: Arc<dyn SessionObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The ban-handling policy.
    pub fn policy(mut self, policy: SessionPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Renew each held lease in the background (default on), so long
    /// sessions keep their reservation; a lost lease makes the session
    /// acquire a new proxy before the next attempt.
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.keep_alive = on;
        self
    }

    /// Builds the session (no I/O; the first request acquires a proxy).
    pub fn build(self) -> ProxySession {
        ProxySession {
            manager: self.manager,
            held: None,
            client_options: self.client_options,
            classifier: Arc::new(self.classifier),
            metrics: self.metrics,
            solver: self.solver,
            observer: self.observer,
            policy: self.policy,
            keep_alive: self.keep_alive,
            stats: SessionStats::default(),
        }
    }
}

/// What one attempt produced.
struct AttemptResult {
    signal: Signal,
    page: Option<Page>,
}

impl ProxySession {
    /// Starts building a session on `manager`.
    pub fn builder(manager: ProxyManager) -> ProxySessionBuilder {
        ProxySessionBuilder {
            manager,
            client_options: ClientOptions::default(),
            classifier: Classifier::default(),
            metrics: None,
            solver: None,
            observer: None,
            policy: SessionPolicy::default(),
            keep_alive: true,
        }
    }

    /// The proxy in use, if one is held.
    pub fn proxy(&self) -> Option<&Proxy> {
        self.held.as_ref().map(|h| &h.proxy)
    }

    /// The HTTP client bound to the proxy in use, if one is held.
    pub fn client(&self) -> Option<&reqwest::Client> {
        self.held.as_ref().map(|h| &h.client)
    }

    /// What the session did so far.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// The manager (domain, store, settings).
    pub fn manager(&self) -> &ProxyManager {
        &self.manager
    }

    /// Whether the target's circuit breaker is open (always false without
    /// shared metrics).
    pub fn should_abort(&self) -> bool {
        self.metrics
            .as_ref()
            .is_some_and(|m| m.should_abort(self.manager.domain().as_str()))
    }

    /// Acquires a proxy if none is held, and returns it.
    pub async fn acquire(&mut self) -> Result<&Proxy, ClientError> {
        self.ensure_proxy().await?;
        self.held
            .as_ref()
            .map(|h| &h.proxy)
            .ok_or_else(|| ClientError::Configuration {
                reason: "no proxy after acquire".to_owned(),
            })
    }

    /// `GET url`.
    pub async fn get(&mut self, url: &str) -> Result<Page, ClientError> {
        let url = Url::parse(url).map_err(|e| ClientError::InvalidRequest {
            reason: format!("{url:?}: {e}"),
        })?;
        self.send(Request::new(Method::GET, url)).await
    }

    /// Sends `request` through the session's proxy, applying the ban
    /// table: returns the page, or a typed error once the policy gives up.
    ///
    /// The request is cloned for each attempt, so its body must be
    /// cloneable (not a stream).
    pub async fn send(&mut self, request: Request) -> Result<Page, ClientError> {
        self.check_host(request.url())?;
        self.stats.requests += 1;
        let domain = self.manager.domain().as_str().to_owned();
        let mut rotations = 0u32;
        let mut rate_limits_in_a_row = 0u32;
        let mut timeouts_in_a_row = 0u32;
        let mut captcha_retried = false;
        loop {
            if self.should_abort() {
                return Err(ClientError::TargetUnhealthy { target: domain });
            }
            self.ensure_proxy().await?;
            let attempt_request = request.try_clone().ok_or(ClientError::NotRetryable)?;
            let AttemptResult { signal, page } = self.attempt(attempt_request).await?;
            match &signal {
                Signal::Success | Signal::TargetError { .. } => {
                    return page.ok_or_else(|| ClientError::InvalidRequest {
                        reason: "answer without a page".to_owned(),
                    });
                }
                Signal::ProxyAuthRequired => {
                    self.let_go(None, Some(&signal)).await;
                    return Err(ClientError::Configuration {
                        reason: "the gateway refused the proxy credentials (407)".to_owned(),
                    });
                }
                Signal::RateLimited { retry_after } => {
                    rate_limits_in_a_row += 1;
                    let too_long = retry_after.is_some_and(|d| d > self.policy.max_retry_after);
                    if rate_limits_in_a_row <= self.policy.rate_limit_retries && !too_long {
                        let wait = retry_after
                            .unwrap_or_else(|| self.policy.backoff(rate_limits_in_a_row - 1));
                        debug!(domain = %domain, wait_ms = wait.as_millis() as u64, "rate limited; waiting on the same proxy");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    let cooldown = retry_after
                        .filter(|d| !d.is_zero())
                        .unwrap_or(self.policy.rate_limit_cooldown);
                    self.rotate(&signal, Some(cooldown), &mut rotations).await?;
                }
                Signal::Blocked { .. } => {
                    let cooldown = self.policy.block_cooldown;
                    self.rotate(&signal, Some(cooldown), &mut rotations).await?;
                }
                Signal::Captcha { vendor } => {
                    if let (Some(solver), Some(page), false) =
                        (self.solver.clone(), page.as_ref(), captcha_retried)
                    {
                        match self.solve(solver.as_ref(), *vendor, page).await {
                            CaptchaOutcome::Page(solved) => return Ok(*solved),
                            CaptchaOutcome::Retry => {
                                captcha_retried = true;
                                continue;
                            }
                            CaptchaOutcome::Unsolved => {}
                        }
                    }
                    captcha_retried = false;
                    let cooldown = self.policy.captcha_cooldown;
                    self.rotate(&signal, Some(cooldown), &mut rotations).await?;
                }
                Signal::Timeout => {
                    timeouts_in_a_row += 1;
                    if timeouts_in_a_row <= self.policy.timeout_retries {
                        debug!(domain = %domain, "timeout; retrying on the same proxy");
                        continue;
                    }
                    self.rotate(&signal, None, &mut rotations).await?;
                }
                Signal::ProxyFailed | Signal::GatewayError { .. } => {
                    self.rotate(&signal, None, &mut rotations).await?;
                }
            }
            // A new proxy starts with a clean slate.
            rate_limits_in_a_row = 0;
            timeouts_in_a_row = 0;
        }
    }

    /// Releases the proxy in use (if any) so others may use its IP for this
    /// domain; the next request acquires a new one.
    pub async fn release(&mut self) -> Result<Option<ReleaseOutcome>, ClientError> {
        Ok(self.give_back(None, None).await.transpose()?)
    }

    /// Stops using the proxy in use and cools its IP down for this domain
    /// (for bans your own code detects).
    pub async fn release_with_cooldown(
        &mut self,
        cooldown: Duration,
    ) -> Result<Option<ReleaseOutcome>, ClientError> {
        Ok(self.give_back(Some(cooldown), None).await.transpose()?)
    }

    /// Releases the proxy in use and ends the session.
    pub async fn finish(mut self) -> Result<SessionStats, ClientError> {
        self.release().await?;
        Ok(std::mem::take(&mut self.stats))
    }

    fn check_host(&self, url: &Url) -> Result<(), ClientError> {
        let host = url.host_str().ok_or_else(|| ClientError::InvalidRequest {
            reason: format!("URL without a host: {url}"),
        })?;
        if self.policy.allow_other_hosts {
            return Ok(());
        }
        let host = TargetDomain::parse(host).map_err(|e| ClientError::InvalidRequest {
            reason: e.to_string(),
        })?;
        let domain = self.manager.domain().as_str();
        let inside = host.as_str() == domain
            || host
                .as_str()
                .strip_suffix(domain)
                .is_some_and(|prefix| prefix.ends_with('.'));
        if inside {
            Ok(())
        } else {
            Err(ClientError::OutsideReservedDomain {
                host: host.to_string(),
                domain: domain.to_owned(),
            })
        }
    }

    fn emit(&self, event: &SessionEvent<'_>) {
        if let Some(observer) = &self.observer {
            observer.on_event(event);
        }
    }

    /// Makes sure a live proxy is held.
    async fn ensure_proxy(&mut self) -> Result<(), ClientError> {
        if let Some(held) = &self.held {
            if !held.keep_alive.as_ref().is_some_and(KeepAlive::is_lost) {
                return Ok(());
            }
            warn!(domain = %held.proxy.domain, ip = %held.proxy.ip, "lease lost while held; acquiring a new proxy");
            self.emit(&SessionEvent::LeaseLost { proxy: &held.proxy });
            self.stats.leases_lost += 1;
            self.held = None;
        }
        let proxy = self.manager.acquire().await?;
        let client = proxy_judge::client_for(&proxy.url, &self.client_options).map_err(|e| {
            ClientError::Configuration {
                reason: e.to_string(),
            }
        })?;
        self.stats.acquisitions += 1;
        self.stats.collisions += u64::from(proxy.stats.collisions);
        self.stats.judge_failovers += u64::from(proxy.stats.judge_failovers);
        let keep_alive = self.keep_alive.then(|| self.manager.keep_alive(&proxy));
        self.emit(&SessionEvent::Acquired { proxy: &proxy });
        self.held = Some(Held {
            proxy,
            client,
            keep_alive,
        });
        Ok(())
    }

    /// Sends one attempt through the held proxy, reads the body, classifies
    /// and records it.
    async fn attempt(&mut self, request: Request) -> Result<AttemptResult, ClientError> {
        let Some(held) = &self.held else {
            return Err(ClientError::Configuration {
                reason: "no proxy held".to_owned(),
            });
        };
        let started = Instant::now();
        let mut bytes = 0u64;
        let outcome = match held.client.execute(request).await {
            Err(error) => Err(error),
            Ok(mut response) => {
                let status = response.status();
                let headers = response.headers().clone();
                let url = response.url().clone();
                let mut body = BytesMut::new();
                let read = loop {
                    match response.chunk().await {
                        Ok(Some(chunk)) => {
                            if body.len() + chunk.len() > self.policy.max_body_bytes {
                                return Err(ClientError::BodyTooLarge {
                                    limit: self.policy.max_body_bytes,
                                });
                            }
                            body.extend_from_slice(&chunk);
                        }
                        Ok(None) => break Ok(()),
                        Err(error) => break Err(error),
                    }
                };
                bytes = body.len() as u64;
                read.map(|()| (status, headers, url, body.freeze()))
            }
        };
        let latency = started.elapsed();
        let result = match outcome {
            Ok((status, headers, url, body)) => {
                let signal = self.classifier.classify(status, &headers, &body);
                let page = Page::new(status, headers, body, url, held.proxy.ip, latency);
                AttemptResult {
                    signal,
                    page: Some(page),
                }
            }
            Err(error) => {
                let failure = classify_transport_error(&error);
                debug!(ip = %held.proxy.ip, kind = ?failure.kind, detail = %failure.detail, "request failed");
                let signal = match failure.kind {
                    TransportFailureKind::Timeout => Signal::Timeout,
                    TransportFailureKind::ProxyAuthRejected => Signal::ProxyAuthRequired,
                    TransportFailureKind::GatewayRefused => Signal::GatewayError {
                        status: None,
                        provider_error: None,
                    },
                    _ => Signal::ProxyFailed,
                };
                AttemptResult { signal, page: None }
            }
        };
        self.stats.attempts += 1;
        if let Some(metrics) = &self.metrics {
            metrics.record(&Attempt {
                proxy: &held.proxy.label,
                target: self.manager.domain().as_str(),
                signal: result.signal.kind(),
                latency,
                bytes,
            });
        }
        self.emit(&SessionEvent::Attempt {
            proxy: &held.proxy,
            signal: &result.signal,
            latency,
        });
        Ok(result)
    }

    async fn solve(
        &self,
        solver: &dyn CaptchaSolver,
        vendor: crate::classify::CaptchaVendor,
        page: &Page,
    ) -> CaptchaOutcome {
        let Some(held) = &self.held else {
            return CaptchaOutcome::Unsolved;
        };
        let challenge = CaptchaChallenge {
            vendor,
            page,
            proxy: &held.proxy,
            client: &held.client,
        };
        match solver.solve(&challenge).await {
            Ok(outcome) => outcome,
            Err(error) => {
                warn!(ip = %held.proxy.ip, %vendor, %error, "CAPTCHA solver failed");
                CaptchaOutcome::Unsolved
            }
        }
    }

    /// Gives up the held proxy because of `signal` and counts a rotation;
    /// fails once the policy's rotation budget is spent.
    async fn rotate(
        &mut self,
        signal: &Signal,
        cooldown: Option<Duration>,
        rotations: &mut u32,
    ) -> Result<(), ClientError> {
        self.let_go(cooldown, Some(signal)).await;
        *rotations += 1;
        *self.stats.rotations.entry(signal.kind()).or_insert(0) += 1;
        if *rotations > self.policy.max_rotations {
            let rotations = *rotations - 1;
            return Err(match signal {
                Signal::Blocked { status } => ClientError::Blocked {
                    status: *status,
                    rotations,
                },
                Signal::RateLimited { retry_after } => ClientError::RateLimited {
                    retry_after: *retry_after,
                    rotations,
                },
                Signal::Captcha { vendor } => ClientError::CaptchaUnsolved {
                    vendor: *vendor,
                    rotations,
                },
                other => ClientError::RotationsExhausted {
                    rotations,
                    last: other.clone(),
                },
            });
        }
        info!(domain = %self.manager.domain(), signal = %signal, rotation = *rotations, "rotating proxy");
        Ok(())
    }

    /// Stops using the held proxy: releases it, with a cooldown if given.
    /// A store error is logged, not returned: the lease expires by its TTL.
    async fn let_go(&mut self, cooldown: Option<Duration>, reason: Option<&Signal>) {
        let ip = self.held.as_ref().map(|h| h.proxy.ip);
        if let (Some(Err(error)), Some(ip)) = (self.give_back(cooldown, reason).await, ip) {
            warn!(domain = %self.manager.domain(), %ip, %error, "release failed; the lease will expire by its TTL");
        }
    }

    /// The one way the held proxy is given back: the `Releasing` event, the
    /// counters, then the store (with a cooldown if given). `None` when no
    /// proxy was held.
    async fn give_back(
        &mut self,
        cooldown: Option<Duration>,
        reason: Option<&Signal>,
    ) -> Option<Result<ReleaseOutcome, proxy_core::StoreError>> {
        let held = self.held.take()?;
        self.emit(&SessionEvent::Releasing {
            proxy: &held.proxy,
            cooldown,
            reason,
        });
        self.stats.releases += 1;
        Some(match cooldown {
            Some(d) => {
                self.stats.cooldowns += 1;
                self.manager.release_with_cooldown(&held.proxy, d).await
            }
            None => self.manager.release(&held.proxy).await,
        })
    }
}

impl Drop for ProxySession {
    fn drop(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        self.emit(&SessionEvent::Releasing {
            proxy: &held.proxy,
            cooldown: None,
            reason: None,
        });
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let manager = self.manager.clone();
                runtime.spawn(async move {
                    if let Err(error) = manager.release(&held.proxy).await {
                        warn!(ip = %held.proxy.ip, %error, "release of a dropped session failed; the lease will expire by its TTL");
                    }
                });
            }
            Err(_) => {
                warn!(ip = %held.proxy.ip, "session dropped outside a Tokio runtime; the lease will expire by its TTL");
            }
        }
    }
}
