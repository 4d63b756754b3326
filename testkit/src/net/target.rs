//! `FakeTarget`: a site to scrape that bans source addresses by rules.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::time::Instant;

use super::NetError;
use super::server::{
    Abort, Body, Connection, Handler, ShutdownOnDrop, Tasks, bind_loopback, full, lock,
    spawn_http_server,
};
use super::tls::acceptor_for;

/// A fixed-window rate limit per source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests served per window.
    pub requests: u64,
    /// Window length; a source's window starts with its first served
    /// request.
    pub window: Duration,
    /// What `Retry-After` says (whole seconds, rounded up).
    pub retry_after: Duration,
}

/// What a [`FakeTarget`] does to each source address. Every counter is per
/// source address and counts that source's earlier requests of any outcome.
///
/// Rules are checked in this order: forced behaviour
/// ([`FakeTarget::force`]), `reset_after`, `forbid_after`, `captcha_after`,
/// `rate_limit`; otherwise the page is served (after `delay`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TargetRules {
    /// After this many requests, answer 403 Forbidden (a ban).
    pub forbid_after: Option<u64>,
    /// After this many requests, answer a Cloudflare-style CAPTCHA page
    /// (403, `cf-mitigated: challenge`, "Just a moment...").
    pub captcha_after: Option<u64>,
    /// After this many requests, reset the connection.
    pub reset_after: Option<u64>,
    /// Answer 429 with `Retry-After` above this rate.
    pub rate_limit: Option<RateLimit>,
    /// Wait this long before serving a page.
    pub delay: Option<Duration>,
    /// Size of the page body in bytes.
    pub page_bytes: usize,
}

impl Default for TargetRules {
    fn default() -> Self {
        Self {
            forbid_after: None,
            captcha_after: None,
            reset_after: None,
            rate_limit: None,
            delay: None,
            page_bytes: 1024,
        }
    }
}

impl TargetRules {
    /// Serves every request (no bans).
    pub fn open() -> Self {
        Self::default()
    }

    /// 403 after `n` requests from a source.
    pub fn forbid_after(mut self, n: u64) -> Self {
        self.forbid_after = Some(n);
        self
    }

    /// CAPTCHA page after `n` requests from a source.
    pub fn captcha_after(mut self, n: u64) -> Self {
        self.captcha_after = Some(n);
        self
    }

    /// Connection reset after `n` requests from a source.
    pub fn reset_after(mut self, n: u64) -> Self {
        self.reset_after = Some(n);
        self
    }

    /// 429 above `requests` per `window` per source, with `Retry-After`.
    pub fn rate_limit(mut self, requests: u64, window: Duration, retry_after: Duration) -> Self {
        self.rate_limit = Some(RateLimit {
            requests,
            window,
            retry_after,
        });
        self
    }

    /// Pages come after `delay`.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Page body size.
    pub fn page_bytes(mut self, bytes: usize) -> Self {
        self.page_bytes = bytes;
        self
    }
}

/// A behaviour forced on one source address (see [`FakeTarget::force`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetBehavior {
    /// Serve the page.
    Page,
    /// 403 Forbidden.
    Forbidden,
    /// 429 with `Retry-After` of this many seconds.
    RateLimited {
        /// `Retry-After` in seconds.
        retry_after_secs: u64,
    },
    /// The CAPTCHA page.
    Captcha,
    /// Reset the connection.
    Reset,
    /// Serve the page after this delay.
    Slow(Duration),
}

/// What a [`FakeTarget`] did for one source address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceStats {
    /// Requests received.
    pub requests: u64,
    /// Pages served (200).
    pub ok: u64,
    /// 403 Forbidden answers (not counting CAPTCHA pages).
    pub forbidden: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// CAPTCHA pages.
    pub captcha: u64,
    /// Connections reset.
    pub resets: u64,
    /// Response body bytes sent, all answers together.
    pub bytes: u64,
}

/// What a [`FakeTarget`] did, per source address and in total.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TargetStats {
    /// Per source address.
    pub per_source: BTreeMap<IpAddr, SourceStats>,
    /// All sources together.
    pub total: SourceStats,
}

impl TargetStats {
    /// The counters of one source address (zero if it never came).
    pub fn source(&self, ip: IpAddr) -> SourceStats {
        self.per_source.get(&ip).cloned().unwrap_or_default()
    }
}

#[derive(Default)]
struct Window {
    started: Option<Instant>,
    served: u64,
}

struct TargetInner {
    rules: TargetRules,
    forced: HashMap<IpAddr, TargetBehavior>,
    windows: HashMap<IpAddr, Window>,
    stats: TargetStats,
}

struct TargetState {
    inner: Mutex<TargetInner>,
}

/// Outcome of one request, decided under the lock and counted at once so
/// the counters are exact.
enum Decision {
    Page {
        delay: Option<Duration>,
        bytes: usize,
    },
    Forbidden,
    RateLimited {
        retry_after_secs: u64,
    },
    Captcha,
    Reset,
}

/// A site to scrape, on loopback, that applies ban rules per source
/// address and counts exactly what it served to each.
///
/// Any path answers; the page names the source address. Stops when dropped.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use testkit::net::{FakeTarget, TargetRules};
/// let target = FakeTarget::start(TargetRules::open().forbid_after(3)).await?;
/// let url = target.url("/products?page=1");
/// assert!(url.starts_with("http://127.0.0.1:"));
/// # Ok(()) }
/// ```
pub struct FakeTarget {
    state: Arc<TargetState>,
    addr: SocketAddr,
    tls: bool,
    _shutdown: ShutdownOnDrop,
}

impl std::fmt::Debug for FakeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTarget")
            .field("url", &self.url("/"))
            .finish_non_exhaustive()
    }
}

impl FakeTarget {
    /// Starts a plain-HTTP target on `127.0.0.1`.
    pub async fn start(rules: TargetRules) -> Result<Self, NetError> {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), rules, false).await
    }

    /// Starts an HTTPS target on `127.0.0.1` (certificate from the test CA).
    pub async fn start_tls(rules: TargetRules) -> Result<Self, NetError> {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), rules, true).await
    }

    /// Starts a target on a chosen loopback address.
    pub async fn start_on(ip: IpAddr, rules: TargetRules, tls: bool) -> Result<Self, NetError> {
        let listener = bind_loopback(ip, "target listener").await?;
        let addr = listener.local_addr().map_err(|source| NetError::Io {
            what: "target listener",
            source,
        })?;
        let acceptor = if tls { Some(acceptor_for(ip)?) } else { None };
        let state = Arc::new(TargetState {
            inner: Mutex::new(TargetInner {
                rules,
                forced: HashMap::new(),
                windows: HashMap::new(),
                stats: TargetStats::default(),
            }),
        });
        let tasks = Tasks::default();
        let handler_state = state.clone();
        let handler: Handler = Arc::new(move |request, connection| {
            let state = handler_state.clone();
            Box::pin(async move { state.serve(request, connection).await })
        });
        spawn_http_server(listener, &tasks, acceptor, handler);
        Ok(Self {
            state,
            addr,
            tls,
            _shutdown: ShutdownOnDrop::new(tasks),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The target's origin, e.g. `http://127.0.0.1:41234`.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// A URL on the target; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// Replaces the rules (counters and windows stay).
    pub fn set_rules(&self, rules: TargetRules) {
        lock(&self.state.inner).rules = rules;
    }

    /// Forces a behaviour on one source address, ahead of the rules;
    /// `None` lifts it.
    pub fn force(&self, source: IpAddr, behavior: Option<TargetBehavior>) {
        let mut inner = lock(&self.state.inner);
        match behavior {
            Some(behavior) => inner.forced.insert(source, behavior),
            None => inner.forced.remove(&source),
        };
    }

    /// What the target did so far.
    pub fn stats(&self) -> TargetStats {
        lock(&self.state.inner).stats.clone()
    }

    /// Zeroes the counters and rate-limit windows (forced behaviours and
    /// rules stay).
    pub fn reset_stats(&self) {
        let mut inner = lock(&self.state.inner);
        inner.stats = TargetStats::default();
        inner.windows.clear();
    }
}

const CAPTCHA_PAGE: &str = "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title>\
<meta http-equiv=\"refresh\" content=\"360\"></head><body><div class=\"main-wrapper\" role=\"main\">\
<div class=\"main-content\"><noscript>Enable JavaScript and cookies to continue</noscript>\
</div></div><script src=\"/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1\"></script></body></html>";

const FORBIDDEN_PAGE: &str = "<!DOCTYPE html><html><head><title>403 Forbidden</title></head>\
<body><h1>Forbidden</h1><p>Access denied.</p></body></html>";

const RATE_LIMITED_PAGE: &str = "<!DOCTYPE html><html><head><title>429 Too Many Requests</title></head>\
<body><h1>Too Many Requests</h1></body></html>";

/// A page of exactly `bytes` bytes naming the source.
fn page(source: IpAddr, path: &str, bytes: usize) -> String {
    let mut page = format!(
        "<!DOCTYPE html><html><head><title>Fake target</title></head><body>\
         <p>source {source}</p><p>path {path}</p>"
    );
    let end = "</body></html>\n";
    let fill = bytes.saturating_sub(page.len() + end.len());
    page.push_str(&"x".repeat(fill));
    page.push_str(end);
    page.truncate(bytes);
    page
}

fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

impl TargetInner {
    fn decide(&mut self, source: IpAddr, now: Instant) -> Decision {
        let earlier = self.stats.source(source).requests;
        let rules = &self.rules;
        let page = |delay| Decision::Page {
            delay,
            bytes: rules.page_bytes,
        };
        let decision = if let Some(forced) = self.forced.get(&source) {
            match *forced {
                TargetBehavior::Page => page(None),
                TargetBehavior::Forbidden => Decision::Forbidden,
                TargetBehavior::RateLimited { retry_after_secs } => {
                    Decision::RateLimited { retry_after_secs }
                }
                TargetBehavior::Captcha => Decision::Captcha,
                TargetBehavior::Reset => Decision::Reset,
                TargetBehavior::Slow(delay) => page(Some(delay)),
            }
        } else if rules.reset_after.is_some_and(|n| earlier >= n) {
            Decision::Reset
        } else if rules.forbid_after.is_some_and(|n| earlier >= n) {
            Decision::Forbidden
        } else if rules.captcha_after.is_some_and(|n| earlier >= n) {
            Decision::Captcha
        } else if let Some(limit) = rules.rate_limit {
            let window = self.windows.entry(source).or_default();
            let fresh = window
                .started
                .is_none_or(|started| now.duration_since(started) >= limit.window);
            if fresh {
                window.started = Some(now);
                window.served = 0;
            }
            if window.served >= limit.requests {
                let retry =
                    limit.retry_after.as_secs() + u64::from(limit.retry_after.subsec_nanos() > 0);
                Decision::RateLimited {
                    retry_after_secs: retry,
                }
            } else {
                window.served += 1;
                page(rules.delay)
            }
        } else {
            page(rules.delay)
        };
        let body_bytes = match &decision {
            Decision::Page { bytes, .. } => *bytes,
            Decision::Forbidden => FORBIDDEN_PAGE.len(),
            Decision::RateLimited { .. } => RATE_LIMITED_PAGE.len(),
            Decision::Captcha => CAPTCHA_PAGE.len(),
            Decision::Reset => 0,
        };
        for counters in [
            &mut self.stats.total,
            self.stats.per_source.entry(source).or_default(),
        ] {
            counters.requests += 1;
            counters.bytes += body_bytes as u64;
            match decision {
                Decision::Page { .. } => counters.ok += 1,
                Decision::Forbidden => counters.forbidden += 1,
                Decision::RateLimited { .. } => counters.rate_limited += 1,
                Decision::Captcha => counters.captcha += 1,
                Decision::Reset => counters.resets += 1,
            }
        }
        decision
    }
}

impl TargetState {
    async fn serve(
        &self,
        request: Request<Incoming>,
        connection: Connection,
    ) -> Result<Response<Body>, Abort> {
        let source = connection.peer.ip().to_canonical();
        let decision = lock(&self.inner).decide(source, Instant::now());
        Ok(match decision {
            Decision::Page { delay, bytes } => {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                html(StatusCode::OK, page(source, request.uri().path(), bytes))
            }
            Decision::Forbidden => html(StatusCode::FORBIDDEN, FORBIDDEN_PAGE.to_owned()),
            Decision::RateLimited { retry_after_secs } => {
                let mut response =
                    html(StatusCode::TOO_MANY_REQUESTS, RATE_LIMITED_PAGE.to_owned());
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                response
            }
            Decision::Captcha => {
                let mut response = html(StatusCode::FORBIDDEN, CAPTCHA_PAGE.to_owned());
                response
                    .headers_mut()
                    .insert("cf-mitigated", HeaderValue::from_static("challenge"));
                response
                    .headers_mut()
                    .insert(header::SERVER, HeaderValue::from_static("cloudflare"));
                response
            }
            Decision::Reset => return Err(Abort::Reset),
        })
    }
}
