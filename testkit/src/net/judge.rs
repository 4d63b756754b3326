//! `FakeJudge`: a proxy judge on loopback that answers with the caller's
//! address, with faults on demand.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::NetError;
use super::server::{
    Abort, Body, Connection, Handler, ShutdownOnDrop, Tasks, bind_loopback, full, lock,
    spawn_http_server,
};
use super::tls::acceptor_for;

/// The answer formats of the public judges. A [`FakeJudge`] serves all of
/// them, one per path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JudgeShape {
    /// httpbin.org/ip: `{"origin": "a.b.c.d"}` at `/ip`.
    Httpbin,
    /// api.ipify.org?format=json: `{"ip":"a.b.c.d"}` at `/json` (and at
    /// any path with `format=json` in the query).
    Ipify,
    /// ifconfig.me/ip, icanhazip.com: the address and a newline at `/`.
    PlainText,
}

impl JudgeShape {
    /// Every shape.
    pub const ALL: [JudgeShape; 3] = [
        JudgeShape::Httpbin,
        JudgeShape::Ipify,
        JudgeShape::PlainText,
    ];

    /// The path a [`FakeJudge`] answers this shape at.
    pub fn path(self) -> &'static str {
        match self {
            JudgeShape::Httpbin => "/ip",
            JudgeShape::Ipify => "/json",
            JudgeShape::PlainText => "/",
        }
    }

    fn of_request(path: &str, query: Option<&str>) -> Self {
        if query.is_some_and(|q| q.split('&').any(|kv| kv == "format=json")) {
            return JudgeShape::Ipify;
        }
        match path {
            "/ip" => JudgeShape::Httpbin,
            "/json" => JudgeShape::Ipify,
            _ => JudgeShape::PlainText,
        }
    }

    fn render(self, address: &str) -> (String, &'static str) {
        match self {
            JudgeShape::Httpbin => (
                format!("{{\n  \"origin\": \"{address}\"\n}}\n"),
                "application/json",
            ),
            JudgeShape::Ipify => (format!("{{\"ip\":\"{address}\"}}"), "application/json"),
            JudgeShape::PlainText => (format!("{address}\n"), "text/plain; charset=utf-8"),
        }
    }
}

/// A fault a [`FakeJudge`] injects into every answer until cleared (see
/// [`FakeJudge::set_fault`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JudgeFault {
    /// A 200 HTML error page longer than 365 bytes.
    HtmlErrorPage,
    /// A 200 answer that is not an address in any shape.
    Garbage,
    /// An address that does not parse (`999.1.2.3`), in the request's shape.
    InvalidAddress,
    /// A comma-separated chain `203.0.113.7, <peer>`, as httpbin answers
    /// when a transparent proxy forwarded the caller's address.
    Chain,
    /// This text as the address, in the request's shape (e.g. a private
    /// address).
    Address(String),
    /// Answer correctly after this delay.
    Slow(Duration),
    /// Read the request and never answer.
    NeverAnswer,
    /// Answer with this HTTP status and a short body.
    Status(u16),
    /// Close the connection without answering.
    CloseConnection,
}

/// What a [`FakeJudge`] has answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JudgeStats {
    /// Requests received.
    pub requests: u64,
    /// Requests received per peer address.
    pub per_peer: BTreeMap<IpAddr, u64>,
}

struct JudgeState {
    fault: Mutex<Option<JudgeFault>>,
    stats: Mutex<JudgeStats>,
}

/// A proxy judge on loopback: answers `/ip` (httpbin), `/json` (ipify) and
/// `/` (plain text) with the peer address it sees, over HTTP or HTTPS (a
/// certificate signed by the test CA, see [`test_ca_pem`](super::test_ca_pem)).
/// Like httpbin, the `/ip` answer puts an `X-Forwarded-For` header in front
/// of the peer address, so a transparent proxy shows as a chain.
///
/// Stops when dropped.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use testkit::net::{FakeJudge, JudgeShape};
/// let judge = FakeJudge::start(JudgeShape::Ipify).await?;
/// assert!(judge.url().starts_with("http://127.0.0.1:"));
/// assert!(judge.url().ends_with("/json"));
/// # Ok(()) }
/// ```
pub struct FakeJudge {
    state: Arc<JudgeState>,
    addr: SocketAddr,
    shape: JudgeShape,
    tls: bool,
    _shutdown: ShutdownOnDrop,
}

impl std::fmt::Debug for FakeJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeJudge")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl FakeJudge {
    /// Starts a plain-HTTP judge on `127.0.0.1`; [`FakeJudge::url`] points
    /// at `shape`'s path.
    pub async fn start(shape: JudgeShape) -> Result<Self, NetError> {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), shape, false).await
    }

    /// Starts an HTTPS judge on `127.0.0.1`.
    pub async fn start_tls(shape: JudgeShape) -> Result<Self, NetError> {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), shape, true).await
    }

    /// Starts a judge on a chosen loopback address.
    pub async fn start_on(ip: IpAddr, shape: JudgeShape, tls: bool) -> Result<Self, NetError> {
        let listener = bind_loopback(ip, "judge listener").await?;
        let addr = listener.local_addr().map_err(|source| NetError::Io {
            what: "judge listener",
            source,
        })?;
        let acceptor = if tls { Some(acceptor_for(ip)?) } else { None };
        let state = Arc::new(JudgeState {
            fault: Mutex::new(None),
            stats: Mutex::new(JudgeStats::default()),
        });
        let tasks = Tasks::default();
        let handler_state = state.clone();
        let handler: Handler = Arc::new(move |request, connection| {
            let state = handler_state.clone();
            Box::pin(async move { state.answer(request, connection).await })
        });
        spawn_http_server(listener, &tasks, acceptor, handler);
        Ok(Self {
            state,
            addr,
            shape,
            tls,
            _shutdown: ShutdownOnDrop::new(tasks),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the judge speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The shape [`FakeJudge::url`] asks for.
    pub fn shape(&self) -> JudgeShape {
        self.shape
    }

    /// The judge URL for its shape, e.g. `https://127.0.0.1:41234/ip`.
    pub fn url(&self) -> String {
        self.url_for(self.shape)
    }

    /// The judge URL for any shape.
    pub fn url_for(&self, shape: JudgeShape) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, shape.path())
    }

    /// Injects `fault` into every answer from now on; `None` clears it.
    pub fn set_fault(&self, fault: Option<JudgeFault>) {
        *lock(&self.state.fault) = fault;
    }

    /// What the judge has answered so far.
    pub fn stats(&self) -> JudgeStats {
        lock(&self.state.stats).clone()
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An error page well over the 365 bytes a verifier accepts.
fn html_error_page() -> String {
    let filler = "<p>The upstream server is temporarily unable to service your request. \
                  Please try again later.</p>\n"
        .repeat(6);
    format!(
        "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n\
         <body><h1>Bad Gateway</h1>\n{filler}</body></html>\n"
    )
}

impl JudgeState {
    async fn answer(
        &self,
        request: Request<Incoming>,
        connection: Connection,
    ) -> Result<Response<Body>, Abort> {
        let peer = connection.peer.ip().to_canonical();
        {
            let mut stats = lock(&self.stats);
            stats.requests += 1;
            *stats.per_peer.entry(peer).or_default() += 1;
        }
        let fault = lock(&self.fault).clone();
        let shape = JudgeShape::of_request(request.uri().path(), request.uri().query());
        let mut address = peer.to_string();
        if shape == JudgeShape::Httpbin
            && let Some(forwarded) = request
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
        {
            address = format!("{forwarded}, {address}");
        }
        match fault {
            None => {}
            Some(JudgeFault::HtmlErrorPage) => {
                return Ok(respond(StatusCode::OK, "text/html", html_error_page()));
            }
            Some(JudgeFault::Garbage) => {
                return Ok(respond(
                    StatusCode::OK,
                    "text/plain",
                    "Welcome to nginx! %$#@".to_owned(),
                ));
            }
            Some(JudgeFault::InvalidAddress) => address = "999.1.2.3".to_owned(),
            Some(JudgeFault::Chain) => address = format!("203.0.113.7, {address}"),
            Some(JudgeFault::Address(text)) => address = text,
            Some(JudgeFault::Slow(delay)) => tokio::time::sleep(delay).await,
            Some(JudgeFault::NeverAnswer) => std::future::pending::<()>().await,
            Some(JudgeFault::Status(status)) => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                return Ok(respond(status, "text/plain", status.to_string()));
            }
            Some(JudgeFault::CloseConnection) => return Err(Abort::Close),
        }
        let (body, content_type) = shape.render(&address);
        Ok(respond(StatusCode::OK, content_type, body))
    }
}
