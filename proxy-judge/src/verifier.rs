//! `JudgeVerifier`: the exit IP of a proxy, from judges asked through it.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use proxy_core::{
    IpVerifier, JudgeFailure, Protocol, ProxyFailure, ProxyUrl, Settings, VerifiedExit,
    VerifyError, async_trait,
};
use reqwest::header::{ACCEPT, HeaderValue};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tracing::{debug, trace};

use crate::answer::{AnswerError, DEFAULT_MAX_ANSWER_BYTES, is_public, parse_answer};
use crate::classify::{AttemptError, Path, classify_status, classify_transport};
use crate::client::{ClientOptions, client_for, direct_client};
use crate::error::JudgeError;
use crate::health::{HealthTable, JudgeStatus};

/// Default deadline of one judge request.
pub const DEFAULT_JUDGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default wait for a judge's answer before the next judge is asked too.
pub const DEFAULT_HEDGE_DELAY: Duration = Duration::from_millis(1500);
/// Default number of failures in a row that demotes a judge.
pub const DEFAULT_DEMOTE_AFTER: u32 = 3;
/// Default time a demoted judge is asked last.
pub const DEFAULT_COOL_OFF: Duration = Duration::from_secs(300);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded tables stay consistent across a panic (plain counters).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Judge {
    url: reqwest::Url,
    label: String,
}

fn parse_judge(text: &str) -> Result<Judge, JudgeError> {
    let url = reqwest::Url::parse(text.trim()).map_err(|source| JudgeError::JudgeUrl {
        url: text.to_owned(),
        source,
    })?;
    let unusable = |reason| {
        let mut shown = url.clone();
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
        JudgeError::UnusableJudge {
            url: shown.to_string(),
            reason,
        }
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(unusable("a judge must be an http or https URL"));
    }
    if url.host().is_none() {
        return Err(unusable("a judge URL needs a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(unusable("a judge URL must not carry credentials"));
    }
    Ok(Judge {
        label: url.to_string(),
        url,
    })
}

/// Builds a [`JudgeVerifier`]; every setting has a default.
#[derive(Debug, Clone)]
#[must_use]
pub struct JudgeVerifierBuilder {
    judges: Vec<String>,
    timeout: Duration,
    hedge_delay: Duration,
    max_answer_bytes: usize,
    allow_private_ips: bool,
    anonymity_check: bool,
    own_ip: Option<IpAddr>,
    demote_after: u32,
    cool_off: Duration,
    client_options: ClientOptions,
}

impl Default for JudgeVerifierBuilder {
    fn default() -> Self {
        Self {
            judges: proxy_core::DEFAULT_JUDGES
                .iter()
                .map(|j| (*j).to_owned())
                .collect(),
            timeout: DEFAULT_JUDGE_TIMEOUT,
            hedge_delay: DEFAULT_HEDGE_DELAY,
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
            allow_private_ips: false,
            anonymity_check: false,
            own_ip: None,
            demote_after: DEFAULT_DEMOTE_AFTER,
            cool_off: DEFAULT_COOL_OFF,
            client_options: ClientOptions::default().max_redirects(3),
        }
    }
}

impl JudgeVerifierBuilder {
    /// The judges, in order of preference (default
    /// [`proxy_core::DEFAULT_JUDGES`]): http or https URLs answering in
    /// httpbin, ipify or plain-text form.
    pub fn judges<I, S>(mut self, judges: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.judges = judges.into_iter().map(Into::into).collect();
        self
    }

    /// Takes the judges from [`Settings::judges`].
    pub fn settings(self, settings: &Settings) -> Self {
        self.judges(settings.judges.iter().cloned())
    }

    /// Deadline of each judge request, connecting included (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long to wait for a judge before asking the next one in
    /// parallel (default 1.5 s). Zero asks all judges at once.
    pub fn hedge_delay(mut self, delay: Duration) -> Self {
        self.hedge_delay = delay;
        self
    }

    /// Longest answer accepted, in bytes (default 365).
    pub fn max_answer_bytes(mut self, bytes: usize) -> Self {
        self.max_answer_bytes = bytes;
        self
    }

    /// Accepts private, loopback and link-local exit addresses (default
    /// off; tests on loopback need it).
    pub fn allow_private_ips(mut self, allow: bool) -> Self {
        self.allow_private_ips = allow;
        self
    }

    /// Rejects a proxy whose exit address is our own (default off). Our
    /// own address is asked from the judges directly, once per verifier,
    /// unless given with [`JudgeVerifierBuilder::own_ip`].
    pub fn anonymity_check(mut self, check: bool) -> Self {
        self.anonymity_check = check;
        self
    }

    /// Our own address for the anonymity check (turns the check on).
    pub fn own_ip(mut self, ip: IpAddr) -> Self {
        self.anonymity_check = true;
        self.own_ip = Some(ip.to_canonical());
        self
    }

    /// Failures in a row that demote a judge (default 3).
    pub fn demote_after(mut self, failures: u32) -> Self {
        self.demote_after = failures;
        self
    }

    /// How long a demoted judge is asked last (default 5 minutes).
    pub fn cool_off(mut self, cool_off: Duration) -> Self {
        self.cool_off = cool_off;
        self
    }

    /// Client settings (user agent, extra root certificates, …). Their
    /// timeout is replaced by [`JudgeVerifierBuilder::timeout`].
    pub fn client_options(mut self, options: ClientOptions) -> Self {
        self.client_options = options;
        self
    }

    /// Checks the settings and builds the verifier.
    pub fn build(self) -> Result<JudgeVerifier, JudgeError> {
        if self.judges.is_empty() {
            return Err(JudgeError::NoJudges);
        }
        let judges = self
            .judges
            .iter()
            .map(|j| parse_judge(j))
            .collect::<Result<Vec<_>, _>>()?;
        if self.timeout.is_zero() {
            return Err(JudgeError::InvalidSetting {
                name: "timeout",
                reason: "must be positive",
            });
        }
        if self.max_answer_bytes == 0 {
            return Err(JudgeError::InvalidSetting {
                name: "max_answer_bytes",
                reason: "must be positive",
            });
        }
        if self.demote_after == 0 {
            return Err(JudgeError::InvalidSetting {
                name: "demote_after",
                reason: "must be at least 1",
            });
        }
        let mut client_options = self.client_options;
        client_options.timeout = Some(self.timeout);
        client_options.connect_timeout = Some(
            client_options
                .connect_timeout
                .map_or(self.timeout, |c| c.min(self.timeout)),
        );
        let anonymity = if self.anonymity_check {
            let own_ip = match self.own_ip {
                Some(ip) => OnceCell::new_with(Some(ip)),
                None => OnceCell::new(),
            };
            Some(Anonymity {
                own_ip,
                direct: direct_client(&client_options)?,
            })
        } else {
            None
        };
        let labels = judges.iter().map(|j| j.label.clone()).collect();
        Ok(JudgeVerifier {
            inner: Arc::new(Inner {
                health: Mutex::new(HealthTable::new(
                    judges.len(),
                    self.demote_after,
                    self.cool_off,
                )),
                judges,
                labels,
                client_options,
                timeout: self.timeout,
                hedge_delay: self.hedge_delay,
                max_answer_bytes: self.max_answer_bytes,
                allow_private_ips: self.allow_private_ips,
                anonymity,
            }),
        })
    }
}

struct Anonymity {
    own_ip: OnceCell<IpAddr>,
    direct: reqwest::Client,
}

struct Inner {
    judges: Vec<Judge>,
    labels: Vec<String>,
    client_options: ClientOptions,
    timeout: Duration,
    hedge_delay: Duration,
    max_answer_bytes: usize,
    allow_private_ips: bool,
    anonymity: Option<Anonymity>,
    health: Mutex<HealthTable>,
}

/// Finds a proxy's real exit IP by asking proxy judges through it.
///
/// For each [`verify`](IpVerifier::verify) it builds a client for that one
/// proxy URL ([`client_for`]) and asks the judges in order of health:
///
/// - **Hedging**: when a judge has not answered within the hedge delay,
///   the next one is asked in parallel; the first valid answer wins and
///   the other requests are cancelled. A judge that fails outright hands
///   over to the next one at once. A hung judge costs the hedge delay, not
///   the timeout.
/// - **Sanity checks**: the answer must be short (365 bytes by default),
///   in httpbin, ipify or plain-text form, and a public IP address unless
///   private ones are allowed. A comma-separated list means the proxy
///   forwarded our own address: the proxy is rejected as transparent.
/// - **Failure classes** for the acquire loop: the gateway refused our
///   credentials (407, SOCKS5 authentication) → [`VerifyError::Configuration`]
///   at once; the proxy cannot be reached or hung up →
///   [`ProxyFailure::Unreachable`] at once; a chain → [`ProxyFailure::Transparent`]
///   at once. A gateway error (502, 503, 522, 525, a provider error header
///   such as `x-brd-error`, a refused CONNECT tunnel, a SOCKS5 failure
///   reply) may only mean that judge is down, so the next judge is asked;
///   if no judge answers, it is [`ProxyFailure::Gateway`]. Every judge
///   timed out → [`ProxyFailure::Timeout`]; otherwise
///   [`VerifyError::JudgesFailed`].
/// - **Judge health**: a judge that failed several times in a row is asked
///   last for a cool-off period, so a dead judge stops costing anything.
///   Losing a hedged race it had a head start in counts as a failure.
/// - **Anonymity check** (optional): a proxy whose exit is our own address
///   is rejected as transparent.
///
/// Cheap to clone; clones share judge health.
///
/// ```no_run
/// use proxy_core::{IpVerifier, ProxyUrl};
/// use proxy_judge::JudgeVerifier;
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let verifier = JudgeVerifier::builder().build()?; // the public judges
/// let proxy = ProxyUrl::parse("http://user-session-abc:secret@gate.example:7000")?;
/// let exit = verifier.verify(&proxy).await?;
/// println!("{} (from {})", exit.ip, exit.judge);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JudgeVerifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for JudgeVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JudgeVerifier")
            .field("judges", &self.inner.labels)
            .field("timeout", &self.inner.timeout)
            .field("hedge_delay", &self.inner.hedge_delay)
            .field("max_answer_bytes", &self.inner.max_answer_bytes)
            .field("allow_private_ips", &self.inner.allow_private_ips)
            .field("anonymity_check", &self.inner.anonymity.is_some())
            .finish_non_exhaustive()
    }
}

/// Where requests go: through the proxy being verified, or direct.
#[derive(Clone, Copy)]
enum Route {
    /// Through a proxy; `forwarding` when it is an HTTP(S) gateway that
    /// forwards plain-HTTP requests itself.
    Proxy {
        forwarding: bool,
    },
    Direct,
}

impl Route {
    fn path(self, judge: &Judge) -> Path {
        match self {
            Route::Direct => Path::Direct,
            Route::Proxy { forwarding: true } if judge.url.scheme() == "http" => {
                Path::ForwardedByGateway
            }
            Route::Proxy { .. } => Path::Tunnelled,
        }
    }
}

impl JudgeVerifier {
    /// A builder with the defaults (public judges, 10 s timeout, 1.5 s
    /// hedge delay, 365-byte answers, public addresses only).
    pub fn builder() -> JudgeVerifierBuilder {
        JudgeVerifierBuilder::default()
    }

    /// A verifier asking the judges of `settings`, other settings default.
    pub fn from_settings(settings: &Settings) -> Result<Self, JudgeError> {
        Self::builder().settings(settings).build()
    }

    /// The judge URLs, in configured order.
    pub fn judges(&self) -> &[String] {
        &self.inner.labels
    }

    /// Each judge's health, in configured order.
    pub fn judge_health(&self) -> Vec<JudgeStatus> {
        lock(&self.inner.health).report(&self.inner.labels, Instant::now())
    }

    /// Our own address as the judges see it without a proxy: what the
    /// anonymity check compares with. Asked once, then remembered; `None`
    /// when the anonymity check is off.
    pub async fn own_ip(&self) -> Option<Result<IpAddr, VerifyError>> {
        let anonymity = self.inner.anonymity.as_ref()?;
        Some(self.own_ip_of(anonymity).await)
    }

    async fn own_ip_of(&self, anonymity: &Anonymity) -> Result<IpAddr, VerifyError> {
        anonymity
            .own_ip
            .get_or_try_init(|| async {
                self.ask_judges(&anonymity.direct, Route::Direct)
                    .await
                    .map(|exit| exit.ip)
            })
            .await
            .copied()
    }

    /// Asks one judge; the address it saw, or why not.
    async fn ask_one(
        &self,
        client: &reqwest::Client,
        judge: &Judge,
        path: Path,
    ) -> Result<IpAddr, AttemptError> {
        let limit = self.inner.max_answer_bytes;
        let mut response = client
            .get(judge.url.clone())
            .header(
                ACCEPT,
                HeaderValue::from_static("application/json, text/plain;q=0.9, */*;q=0.1"),
            )
            .send()
            .await
            .map_err(|e| classify_transport(path, &e))?;
        if let Some(error) = classify_status(path, response.status(), response.headers()) {
            return Err(error);
        }
        let too_long = || AttemptError::judge(AnswerError::TooLong { limit }.to_string());
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(too_long());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| classify_transport(path, &e))?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_long());
            }
            body.extend_from_slice(&chunk);
        }
        match parse_answer(&body, limit) {
            Ok(ip) if !self.inner.allow_private_ips && !is_public(ip) => Err(AttemptError::judge(
                format!("answered {ip}, which is not a public address"),
            )),
            Ok(ip) => Ok(ip),
            Err(error @ AnswerError::Chain { .. }) if path != Path::Direct => {
                Err(AttemptError::Session(VerifyError::Proxy {
                    failure: ProxyFailure::Transparent,
                    status: None,
                    detail: format!("{}: {error}", judge.label),
                }))
            }
            Err(error) => Err(AttemptError::judge(error.to_string())),
        }
    }

    /// Asks the judges, hedged, in order of health.
    async fn ask_judges(
        &self,
        client: &reqwest::Client,
        route: Route,
    ) -> Result<VerifiedExit, VerifyError> {
        let inner = &*self.inner;
        let order = lock(&inner.health).order(Instant::now());
        let launch = |slot: usize| {
            let judge = order.get(slot).and_then(|&i| inner.judges.get(i));
            async move {
                let result = match judge {
                    Some(judge) => self.ask_one(client, judge, route.path(judge)).await,
                    None => Err(AttemptError::judge("no such judge")),
                };
                (slot, result)
            }
        };
        let judge_index = |slot: usize| order.get(slot).copied().unwrap_or(usize::MAX);
        let label = |slot: usize| {
            inner
                .labels
                .get(judge_index(slot))
                .cloned()
                .unwrap_or_default()
        };

        let mut pending = FuturesUnordered::new();
        pending.push(launch(0));
        let mut launched = 1;
        let mut finished = vec![false; order.len()];
        let mut failures: Vec<(usize, JudgeFailure)> = Vec::new();
        let mut all_timed_out = true;
        let mut gateway_errors: Vec<(usize, Option<u16>, String)> = Vec::new();
        let hedge = tokio::time::sleep(inner.hedge_delay);
        tokio::pin!(hedge);

        loop {
            tokio::select! {
                Some((slot, result)) = pending.next() => {
                    if let Some(done) = finished.get_mut(slot) {
                        *done = true;
                    }
                    match result {
                        Ok(ip) => {
                            let now = Instant::now();
                            let mut health = lock(&inner.health);
                            health.record_answer(judge_index(slot));
                            // Another judge answered, so the gateway errors were
                            // about their judges, not about the session.
                            for (failed, _, _) in &gateway_errors {
                                health.record_failure(judge_index(*failed), now);
                            }
                            // A judge started earlier and still silent lost a race it
                            // had a head start in: slow, which counts as a failure.
                            for earlier in (0..slot).filter(|&s| !finished[s]) {
                                health.record_failure(judge_index(earlier), now);
                            }
                            let failovers = u32::try_from(slot).unwrap_or(u32::MAX);
                            debug!(%ip, judge = %label(slot), failovers, "exit verified");
                            return Ok(VerifiedExit::new(ip, label(slot), failovers));
                        }
                        Err(AttemptError::Session(error)) => {
                            debug!(judge = %label(slot), %error, "verification failed");
                            return Err(error);
                        }
                        Err(AttemptError::Gateway { status, detail }) => {
                            debug!(judge = %label(slot), ?status, %detail, "gateway error");
                            gateway_errors.push((slot, status, detail));
                        }
                        Err(AttemptError::Judge { reason, timeout }) => {
                            debug!(judge = %label(slot), %reason, "judge failed");
                            lock(&inner.health).record_failure(judge_index(slot), Instant::now());
                            all_timed_out &= timeout;
                            failures.push((slot, JudgeFailure { judge: label(slot), reason }));
                        }
                    }
                    // A failed judge hands over at once, without the hedge delay.
                    if launched < order.len() {
                        pending.push(launch(launched));
                        launched += 1;
                        hedge.as_mut().reset(Instant::now() + inner.hedge_delay);
                    }
                }
                () = &mut hedge, if launched < order.len() => {
                    trace!(judge = %label(launched), "no answer yet: asking the next judge too");
                    pending.push(launch(launched));
                    launched += 1;
                    hedge.as_mut().reset(Instant::now() + inner.hedge_delay);
                }
                else => break,
            }
        }

        gateway_errors.sort_by_key(|(slot, _, _)| *slot);
        if let Some((_, status, detail)) = gateway_errors.first() {
            let asked = gateway_errors.len() + failures.len();
            return Err(VerifyError::Proxy {
                failure: ProxyFailure::Gateway,
                status: *status,
                detail: format!(
                    "{detail} ({} of {asked} judges got a gateway error)",
                    gateway_errors.len()
                ),
            });
        }
        failures.sort_by_key(|(slot, _)| *slot);
        let failures: Vec<JudgeFailure> = failures.into_iter().map(|(_, f)| f).collect();
        if all_timed_out && !failures.is_empty() {
            return Err(VerifyError::Proxy {
                failure: ProxyFailure::Timeout,
                status: None,
                detail: format!(
                    "no judge answered within {:?} ({} asked)",
                    inner.timeout,
                    failures.len()
                ),
            });
        }
        Err(VerifyError::JudgesFailed { failures })
    }
}

#[async_trait]
impl IpVerifier for JudgeVerifier {
    async fn verify(&self, proxy: &ProxyUrl) -> Result<VerifiedExit, VerifyError> {
        // One client per session URL: reqwest pools by target host, so a
        // shared client could leave through another session's exit.
        let client = client_for(proxy, &self.inner.client_options)?;
        let forwarding = matches!(proxy.protocol(), Protocol::Http | Protocol::Https);
        let through_proxy = self.ask_judges(&client, Route::Proxy { forwarding });
        let Some(anonymity) = &self.inner.anonymity else {
            return through_proxy.await;
        };
        let (exit, own_ip) = tokio::join!(through_proxy, self.own_ip_of(anonymity));
        let exit = exit?;
        let own_ip = own_ip.map_err(|error| match error {
            VerifyError::JudgesFailed { failures } => VerifyError::JudgesFailed {
                failures: failures
                    .into_iter()
                    .map(|f| JudgeFailure {
                        judge: f.judge,
                        reason: format!("asked directly for our own address: {}", f.reason),
                    })
                    .collect(),
            },
            other => other,
        })?;
        if exit.ip == own_ip {
            return Err(VerifyError::Proxy {
                failure: ProxyFailure::Transparent,
                status: None,
                detail: format!("{} saw our own address {own_ip}", exit.judge),
            });
        }
        Ok(exit)
    }
}
