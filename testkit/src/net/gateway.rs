//! `FakeGateway`: a provider's super-proxy on loopback.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use proxy_core::{InvalidInput, Protocol, ProxyUrl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::NetError;
use super::server::{
    Abort, Body, BoxError, Connection, Handler, ShutdownOnDrop, Tasks, bind_loopback, connect_from,
    empty, full, lock, spawn_accept_loop, spawn_http_server,
};
use super::session::{password_matches, session_from_credentials};

/// The password a [`FakeGateway`] expects unless configured otherwise.
pub const DEFAULT_GATEWAY_PASSWORD: &str = "testkit-password";

/// The username [`FakeGateway::proxy_url`] builds on (Decodo's format).
const URL_USERNAME: &str = "user-testkit";

/// How a [`FakeGateway`] is set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Exit addresses sessions are pinned to (each a loopback address the
    /// gateway binds its outbound sockets to).
    pub exits: Vec<IpAddr>,
    /// The password clients must send; `None` accepts anyone without
    /// credentials (an IP-allow-listed gateway). Any username is accepted.
    pub password: Option<String>,
    /// The address the gateway listens on (HTTP and SOCKS5 ports).
    pub listen: IpAddr,
    /// How a new session is given its exit.
    pub assignment: ExitAssignment,
}

/// How a [`FakeGateway`] picks the exit of a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ExitAssignment {
    /// In turn over the pool: predictable, for tests that need distinct
    /// exits.
    #[default]
    RoundRobin,
    /// Uniformly at random, as real residential pools behave: sessions
    /// collide on exits by chance.
    Random,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self::with_exit_count(4)
    }
}

impl GatewayConfig {
    /// `count` exits `127.0.10.1`, `127.0.10.2`, … (at least one, at most
    /// 254), the default password, listening on `127.0.0.1`.
    pub fn with_exit_count(count: u8) -> Self {
        let count = count.clamp(1, 254);
        Self {
            exits: (1..=count)
                .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 10, n)))
                .collect(),
            password: Some(DEFAULT_GATEWAY_PASSWORD.to_owned()),
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            assignment: ExitAssignment::RoundRobin,
        }
    }

    /// Gives new sessions their exits this way.
    pub fn assignment(mut self, assignment: ExitAssignment) -> Self {
        self.assignment = assignment;
        self
    }

    /// Uses these exit addresses (loopback addresses only).
    pub fn exits(mut self, exits: impl IntoIterator<Item = IpAddr>) -> Self {
        self.exits = exits.into_iter().collect();
        self
    }

    /// Expects this password.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Accepts clients without credentials.
    pub fn without_auth(mut self) -> Self {
        self.password = None;
        self
    }
}

/// A fault a [`FakeGateway`] injects into every request until cleared
/// (see [`FakeGateway::set_fault`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayFault {
    /// Refuse the credentials: HTTP 407 (also on CONNECT), SOCKS5
    /// authentication failure.
    RejectCredentials,
    /// Answer with this error instead of proxying: the status and headers
    /// on plain-HTTP requests and CONNECT, a general failure on SOCKS5.
    /// Invalid header names or values are left out.
    Error {
        /// HTTP status (502, 503, 522, 525, …).
        status: u16,
        /// Provider error headers, e.g. `x-brd-error`.
        headers: Vec<(String, String)>,
        /// Response body.
        body: String,
    },
    /// Close the client connection without answering.
    DropConnection,
    /// Wait this long, then proxy normally.
    Delay(Duration),
    /// Proxy normally but add `X-Forwarded-For: <client address>` to
    /// plain-HTTP requests, as a transparent proxy does.
    Transparent,
}

impl GatewayFault {
    /// Bright Data's "no peers available": 502 with `x-brd-err-code`,
    /// `x-brd-error` and the legacy `X-Luminati-Error`.
    pub fn bright_data_no_peers() -> Self {
        Self::Error {
            status: 502,
            headers: vec![
                ("x-brd-err-code".to_owned(), "client_10000".to_owned()),
                ("x-brd-error".to_owned(), "No peers available".to_owned()),
                (
                    "x-luminati-error".to_owned(),
                    "Proxy Error: No peers available".to_owned(),
                ),
            ],
            body: "Proxy Error: No peers available".to_owned(),
        }
    }

    /// Oxylabs' 525 "no exit found" with `X-Error-Description`.
    pub fn oxylabs_no_exit() -> Self {
        Self::Error {
            status: 525,
            headers: vec![("x-error-description".to_owned(), "No exit found".to_owned())],
            body: String::new(),
        }
    }

    /// IPRoyal's 503 "No Exits Available" (no error header).
    pub fn iproyal_no_exits() -> Self {
        Self::Error {
            status: 503,
            headers: Vec::new(),
            body: "No Exits Available".to_owned(),
        }
    }

    /// A bare 502 Bad Gateway with an RFC 9209 `Proxy-Status` header.
    pub fn bad_gateway() -> Self {
        Self::Error {
            status: 502,
            headers: vec![(
                "proxy-status".to_owned(),
                "testkit; error=connection_refused".to_owned(),
            )],
            body: "Bad Gateway".to_owned(),
        }
    }
}

/// What a [`FakeGateway`] has done since it started (or since
/// [`FakeGateway::reset_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayStats {
    /// Requests and SOCKS5 connections that reached the gateway.
    pub requests: u64,
    /// Plain-HTTP (absolute-form) requests forwarded.
    pub forwarded: u64,
    /// CONNECT tunnels opened.
    pub tunnels: u64,
    /// SOCKS5 tunnels opened.
    pub socks_tunnels: u64,
    /// Requests refused with 407 (or SOCKS5 authentication failure).
    pub rejected_credentials: u64,
    /// Requests answered by an injected fault other than a delay.
    pub faults: u64,
    /// Distinct sessions pinned to an exit.
    pub sessions: u64,
    /// Requests without a session (each sent through a random exit).
    pub rotating: u64,
    /// Requests routed through each exit address.
    pub per_exit: BTreeMap<IpAddr, u64>,
}

struct GatewayState {
    exits: Vec<IpAddr>,
    assignment: ExitAssignment,
    password: Option<String>,
    inner: Mutex<GatewayInner>,
    tasks: Tasks,
}

#[derive(Default)]
struct GatewayInner {
    fault: Option<GatewayFault>,
    sessions: HashMap<String, IpAddr>,
    next_exit: usize,
    stats: GatewayStats,
}

/// A provider's super-proxy on loopback: an HTTP forward proxy
/// (absolute-form requests and CONNECT tunnels) and a SOCKS5 proxy
/// (RFC 1928/1929: no auth or username/password, CONNECT, IPv4, IPv6 and
/// domain addresses) on a second port.
///
/// It checks Basic proxy credentials, reads the session id from them in
/// every shipped provider's format ([`session_from_credentials`]), pins each
/// session to an exit address (round robin over the pool, or at random;
/// see [`ExitAssignment`]) and **binds its
/// outbound socket to that address**, so the server on the other side sees
/// a different source IP per session. A request without a session leaves
/// through a random exit. It only connects to loopback destinations.
///
/// Everything stops when the handle is dropped.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use testkit::net::{FakeGateway, GatewayConfig};
/// let gateway = FakeGateway::start(GatewayConfig::with_exit_count(2)).await?;
/// let proxy = gateway.proxy_url(Some("abc"))?; // http://user-testkit-session-abc:…@127.0.0.1:port
/// assert_eq!(proxy.username(), Some("user-testkit-session-abc"));
/// # Ok(()) }
/// ```
pub struct FakeGateway {
    state: Arc<GatewayState>,
    addr: SocketAddr,
    socks_addr: SocketAddr,
    _shutdown: ShutdownOnDrop,
}

impl std::fmt::Debug for FakeGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGateway")
            .field("addr", &self.addr)
            .field("socks_addr", &self.socks_addr)
            .field("exits", &self.state.exits)
            .finish_non_exhaustive()
    }
}

impl FakeGateway {
    /// Starts a gateway; its HTTP and SOCKS5 ports are free ports on
    /// `config.listen`.
    pub async fn start(config: GatewayConfig) -> Result<Self, NetError> {
        if config.exits.is_empty() {
            return Err(NetError::NoExits);
        }
        if let Some(ip) = config.exits.iter().find(|ip| !ip.is_loopback()) {
            return Err(NetError::NotLoopback {
                what: "gateway exit",
                ip: *ip,
            });
        }
        let http = bind_loopback(config.listen, "gateway HTTP listener").await?;
        let socks = bind_loopback(config.listen, "gateway SOCKS5 listener").await?;
        let local = |listener: &tokio::net::TcpListener, what| {
            listener
                .local_addr()
                .map_err(|source| NetError::Io { what, source })
        };
        let addr = local(&http, "gateway HTTP listener")?;
        let socks_addr = local(&socks, "gateway SOCKS5 listener")?;
        let tasks = Tasks::default();
        let state = Arc::new(GatewayState {
            exits: config.exits,
            assignment: config.assignment,
            password: config.password,
            inner: Mutex::new(GatewayInner::default()),
            tasks: tasks.clone(),
        });
        let http_state = state.clone();
        let handler: Handler = Arc::new(move |request, connection| {
            let state = http_state.clone();
            Box::pin(async move { state.handle_http(request, connection).await })
        });
        spawn_http_server(http, &tasks, None, handler);
        let socks_state = state.clone();
        spawn_accept_loop(socks, &tasks, move |stream, _peer| {
            let state = socks_state.clone();
            async move {
                let _ = state.handle_socks(stream).await;
            }
        });
        Ok(Self {
            state,
            addr,
            socks_addr,
            _shutdown: ShutdownOnDrop::new(tasks),
        })
    }

    /// The HTTP proxy address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The SOCKS5 proxy address.
    pub fn socks_addr(&self) -> SocketAddr {
        self.socks_addr
    }

    /// The exit address pool.
    pub fn exits(&self) -> &[IpAddr] {
        &self.state.exits
    }

    /// The password the gateway expects, if any.
    pub fn password(&self) -> Option<&str> {
        self.state.password.as_deref()
    }

    /// An `http://` proxy URL for this gateway with the session in Decodo's
    /// username format (`user-testkit-session-<id>`), or a rotating one.
    pub fn proxy_url(&self, session: Option<&str>) -> Result<ProxyUrl, InvalidInput> {
        self.url(Protocol::Http, self.addr, session)
    }

    /// A `socks5h://` proxy URL for the SOCKS5 port (see
    /// [`FakeGateway::proxy_url`]).
    pub fn socks_url(&self, session: Option<&str>) -> Result<ProxyUrl, InvalidInput> {
        self.url(Protocol::Socks5h, self.socks_addr, session)
    }

    fn url(
        &self,
        protocol: Protocol,
        addr: SocketAddr,
        session: Option<&str>,
    ) -> Result<ProxyUrl, InvalidInput> {
        let url = ProxyUrl::new(protocol, &addr.ip().to_string(), addr.port())?;
        let username = match session {
            Some(id) => format!("{URL_USERNAME}-session-{id}"),
            None => URL_USERNAME.to_owned(),
        };
        let password = self.state.password.clone().unwrap_or_default();
        url.with_credentials(username, password)
    }

    /// Injects `fault` into every request from now on; `None` clears it.
    pub fn set_fault(&self, fault: Option<GatewayFault>) {
        lock(&self.state.inner).fault = fault;
    }

    /// The exit `session` is pinned to, if it has been seen (or pinned).
    pub fn exit_of(&self, session: &str) -> Option<IpAddr> {
        lock(&self.state.inner).sessions.get(session).copied()
    }

    /// Pins `session` to `exit` (which need not be in the pool, but must be
    /// a loopback address the gateway can bind), e.g. to make two sessions
    /// share an exit.
    pub fn pin_session(&self, session: &str, exit: IpAddr) {
        let mut inner = lock(&self.state.inner);
        if inner.sessions.insert(session.to_owned(), exit).is_none() {
            inner.stats.sessions += 1;
        }
    }

    /// Moves `session` to the next exit of the pool, as a provider does
    /// when the peer behind a session goes away. Returns the new exit, or
    /// `None` if the session was never seen.
    pub fn repin(&self, session: &str) -> Option<IpAddr> {
        let state = &self.state;
        let mut inner = lock(&state.inner);
        let current = *inner.sessions.get(session)?;
        let position = state.exits.iter().position(|ip| *ip == current);
        let next = match position {
            Some(i) => state.exits[(i + 1) % state.exits.len()],
            None => state.exits[0],
        };
        inner.sessions.insert(session.to_owned(), next);
        Some(next)
    }

    /// What the gateway has done so far.
    pub fn stats(&self) -> GatewayStats {
        lock(&self.state.inner).stats.clone()
    }

    /// Zeroes the counters (sessions stay pinned).
    pub fn reset_stats(&self) {
        lock(&self.state.inner).stats = GatewayStats::default();
    }
}

/// A user name and password from a `Proxy-Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::PROXY_AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASE64.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some((username.to_owned(), password.to_owned()))
}

fn text_response(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(full(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn proxy_auth_required() -> Response<Body> {
    let mut response = text_response(
        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        "Proxy Authentication Required",
    );
    response.headers_mut().insert(
        header::PROXY_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"testkit\""),
    );
    response
}

fn fault_response(status: u16, headers: &[(String, String)], body: &str) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = text_response(status, body);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// Our own gateway errors carry `x-testkit-error` so tests can tell them
/// from injected ones.
fn gateway_error(reason: impl Into<String>) -> Response<Body> {
    let reason = reason.into();
    let mut response = text_response(StatusCode::BAD_GATEWAY, reason.clone());
    if let Ok(value) = HeaderValue::from_str(&reason) {
        response.headers_mut().insert("x-testkit-error", value);
    }
    response
}

/// Headers that belong to one hop and are not forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    HeaderName::from_static("proxy-connection"),
];

/// Resolves `host:port` to a loopback address of the same family as `exit`;
/// the fake network never sends traffic elsewhere.
async fn resolve_loopback(host: &str, port: u16, exit: IpAddr) -> Result<SocketAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let candidates: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| format!("cannot resolve {bare}: {e}"))?
            .collect(),
    };
    candidates
        .iter()
        .find(|addr| addr.ip().is_loopback() && addr.is_ipv4() == exit.is_ipv4())
        .copied()
        .ok_or_else(|| format!("destination {bare}:{port} is not on loopback"))
}

impl GatewayState {
    /// Counts a request and returns the fault in force.
    fn begin_request(&self) -> Option<GatewayFault> {
        let mut inner = lock(&self.inner);
        inner.stats.requests += 1;
        inner.fault.clone()
    }

    fn count(&self, update: impl FnOnce(&mut GatewayStats)) {
        update(&mut lock(&self.inner).stats);
    }

    fn accepts(&self, credentials: Option<&(String, String)>) -> bool {
        match (&self.password, credentials) {
            (None, _) => true,
            (Some(expected), Some((username, password))) => {
                !username.is_empty() && password_matches(password, expected)
            }
            (Some(_), None) => false,
        }
    }

    /// The exit for a request: the session's pinned exit (pinning it on
    /// first sight), or a random one without a session.
    fn exit_for(&self, session: Option<&str>) -> IpAddr {
        let mut inner = lock(&self.inner);
        let exit = match session {
            Some(id) => match inner.sessions.get(id) {
                Some(exit) => *exit,
                None => {
                    let exit = match self.assignment {
                        ExitAssignment::RoundRobin => {
                            let exit = self.exits[inner.next_exit % self.exits.len()];
                            inner.next_exit = inner.next_exit.wrapping_add(1);
                            exit
                        }
                        ExitAssignment::Random => {
                            self.exits[rand::random_range(0..self.exits.len())]
                        }
                    };
                    inner.sessions.insert(id.to_owned(), exit);
                    inner.stats.sessions += 1;
                    exit
                }
            },
            None => {
                inner.stats.rotating += 1;
                self.exits[rand::random_range(0..self.exits.len())]
            }
        };
        *inner.stats.per_exit.entry(exit).or_default() += 1;
        exit
    }

    async fn handle_http(
        self: Arc<Self>,
        request: Request<Incoming>,
        connection: Connection,
    ) -> Result<Response<Body>, Abort> {
        let fault = self.begin_request();
        match &fault {
            Some(GatewayFault::Delay(delay)) => tokio::time::sleep(*delay).await,
            Some(GatewayFault::DropConnection) => {
                self.count(|s| s.faults += 1);
                return Err(Abort::Close);
            }
            _ => {}
        }
        let credentials = basic_credentials(request.headers());
        let reject = fault == Some(GatewayFault::RejectCredentials);
        if reject || !self.accepts(credentials.as_ref()) {
            self.count(|s| {
                s.rejected_credentials += 1;
                s.faults += u64::from(reject);
            });
            return Ok(proxy_auth_required());
        }
        if let Some(GatewayFault::Error {
            status,
            headers,
            body,
        }) = &fault
        {
            self.count(|s| s.faults += 1);
            return Ok(fault_response(*status, headers, body));
        }
        let session = credentials.and_then(|(u, p)| session_from_credentials(&u, &p));
        let exit = self.exit_for(session.as_deref());
        if request.method() == Method::CONNECT {
            Ok(self.tunnel(request, exit).await)
        } else {
            let client = (fault == Some(GatewayFault::Transparent)).then_some(connection.peer.ip());
            Ok(self.forward(request, exit, client).await)
        }
    }

    async fn tunnel(&self, mut request: Request<Incoming>, exit: IpAddr) -> Response<Body> {
        let Some((host, port)) = request
            .uri()
            .authority()
            .and_then(|a| Some((a.host().to_owned(), a.port_u16()?)))
        else {
            return text_response(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
        };
        let target = match resolve_loopback(&host, port, exit).await {
            Ok(target) => target,
            Err(reason) => return gateway_error(reason),
        };
        let mut upstream = match connect_from(exit, target).await {
            Ok(stream) => stream,
            Err(e) => return gateway_error(format!("connect to {target} failed: {e}")),
        };
        self.count(|s| s.tunnels += 1);
        let upgrade = hyper::upgrade::on(&mut request);
        self.tasks.spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut client = TokioIo::new(upgraded);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
        Response::new(empty())
    }

    async fn forward(
        &self,
        request: Request<Incoming>,
        exit: IpAddr,
        forwarded_for: Option<IpAddr>,
    ) -> Response<Body> {
        let uri = request.uri();
        let Some(authority) = uri.authority().cloned() else {
            return text_response(StatusCode::BAD_REQUEST, "absolute-form URI required");
        };
        if uri.scheme_str() != Some("http") {
            return text_response(StatusCode::BAD_REQUEST, "only http:// URIs are forwarded");
        }
        let port = authority.port_u16().unwrap_or(80);
        let target = match resolve_loopback(authority.host(), port, exit).await {
            Ok(target) => target,
            Err(reason) => return gateway_error(reason),
        };
        let upstream = match connect_from(exit, target).await {
            Ok(stream) => stream,
            Err(e) => return gateway_error(format!("connect to {target} failed: {e}")),
        };
        let (mut sender, connection) = match hyper::client::conn::http1::handshake::<_, Incoming>(
            TokioIo::new(upstream),
        )
        .await
        {
            Ok(pair) => pair,
            Err(e) => return gateway_error(format!("upstream handshake failed: {e}")),
        };
        self.tasks.spawn(async move {
            let _ = connection.await;
        });

        let (mut parts, body) = request.into_parts();
        let origin_form = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        parts.uri = match origin_form.parse::<Uri>() {
            Ok(uri) => uri,
            Err(_) => return text_response(StatusCode::BAD_REQUEST, "bad request target"),
        };
        for name in &HOP_BY_HOP {
            parts.headers.remove(name);
        }
        if !parts.headers.contains_key(header::HOST)
            && let Ok(host) = HeaderValue::from_str(authority.as_str())
        {
            parts.headers.insert(header::HOST, host);
        }
        if let Some(client) = forwarded_for {
            let chain = match parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(existing) => format!("{existing}, {client}"),
                None => client.to_string(),
            };
            if let Ok(value) = HeaderValue::from_str(&chain) {
                parts.headers.insert("x-forwarded-for", value);
            }
        }
        self.count(|s| s.forwarded += 1);
        match sender.send_request(Request::from_parts(parts, body)).await {
            Ok(response) => response.map(|body| body.map_err(BoxError::from).boxed()),
            Err(e) => gateway_error(format!("upstream request failed: {e}")),
        }
    }

    /// One SOCKS5 connection (RFC 1928, username/password per RFC 1929).
    async fn handle_socks(&self, mut stream: TcpStream) -> std::io::Result<()> {
        const VERSION: u8 = 5;
        const NO_AUTH: u8 = 0;
        const USER_PASS: u8 = 2;
        const NO_ACCEPTABLE_METHOD: u8 = 0xFF;

        let fault = self.begin_request();
        match &fault {
            Some(GatewayFault::Delay(delay)) => tokio::time::sleep(*delay).await,
            Some(GatewayFault::DropConnection) => {
                self.count(|s| s.faults += 1);
                return Ok(());
            }
            _ => {}
        }

        let mut greeting = [0u8; 2];
        stream.read_exact(&mut greeting).await?;
        if greeting[0] != VERSION {
            return Ok(());
        }
        let mut methods = vec![0u8; usize::from(greeting[1])];
        stream.read_exact(&mut methods).await?;

        let credentials = if self.password.is_some() {
            if !methods.contains(&USER_PASS) {
                stream.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await?;
                return Ok(());
            }
            stream.write_all(&[VERSION, USER_PASS]).await?;
            let credentials = read_socks_credentials(&mut stream).await?;
            let reject = fault == Some(GatewayFault::RejectCredentials);
            if reject || !self.accepts(Some(&credentials)) {
                self.count(|s| {
                    s.rejected_credentials += 1;
                    s.faults += u64::from(reject);
                });
                stream.write_all(&[1, 1]).await?;
                return Ok(());
            }
            stream.write_all(&[1, 0]).await?;
            Some(credentials)
        } else {
            if !methods.contains(&NO_AUTH) {
                stream.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await?;
                return Ok(());
            }
            stream.write_all(&[VERSION, NO_AUTH]).await?;
            None
        };

        let mut head = [0u8; 4];
        stream.read_exact(&mut head).await?;
        let [version, command, _reserved, address_type] = head;
        if version != VERSION {
            return Ok(());
        }
        let host = match address_type {
            1 => {
                let mut octets = [0u8; 4];
                stream.read_exact(&mut octets).await?;
                Ipv4Addr::from(octets).to_string()
            }
            3 => {
                let length = stream.read_u8().await?;
                let mut name = vec![0u8; usize::from(length)];
                stream.read_exact(&mut name).await?;
                String::from_utf8_lossy(&name).into_owned()
            }
            4 => {
                let mut octets = [0u8; 16];
                stream.read_exact(&mut octets).await?;
                std::net::Ipv6Addr::from(octets).to_string()
            }
            _ => return socks_reply(&mut stream, SocksReply::AddressTypeNotSupported, None).await,
        };
        let port = stream.read_u16().await?;
        if command != 1 {
            return socks_reply(&mut stream, SocksReply::CommandNotSupported, None).await;
        }
        if let Some(GatewayFault::Error { .. }) = &fault {
            self.count(|s| s.faults += 1);
            return socks_reply(&mut stream, SocksReply::GeneralFailure, None).await;
        }

        let session = credentials.and_then(|(u, p)| session_from_credentials(&u, &p));
        let exit = self.exit_for(session.as_deref());
        let Ok(target) = resolve_loopback(&host, port, exit).await else {
            return socks_reply(&mut stream, SocksReply::NotAllowed, None).await;
        };
        let mut upstream = match connect_from(exit, target).await {
            Ok(upstream) => upstream,
            Err(_) => return socks_reply(&mut stream, SocksReply::ConnectionRefused, None).await,
        };
        self.count(|s| s.socks_tunnels += 1);
        socks_reply(
            &mut stream,
            SocksReply::Succeeded,
            upstream.local_addr().ok(),
        )
        .await?;
        tokio::io::copy_bidirectional(&mut stream, &mut upstream).await?;
        Ok(())
    }
}

async fn read_socks_credentials(stream: &mut TcpStream) -> std::io::Result<(String, String)> {
    let _subnegotiation_version = stream.read_u8().await?;
    let username_length = stream.read_u8().await?;
    let mut username = vec![0u8; usize::from(username_length)];
    stream.read_exact(&mut username).await?;
    let password_length = stream.read_u8().await?;
    let mut password = vec![0u8; usize::from(password_length)];
    stream.read_exact(&mut password).await?;
    Ok((
        String::from_utf8_lossy(&username).into_owned(),
        String::from_utf8_lossy(&password).into_owned(),
    ))
}

#[derive(Clone, Copy)]
#[repr(u8)]
enum SocksReply {
    Succeeded = 0,
    GeneralFailure = 1,
    NotAllowed = 2,
    ConnectionRefused = 5,
    CommandNotSupported = 7,
    AddressTypeNotSupported = 8,
}

async fn socks_reply(
    stream: &mut TcpStream,
    reply: SocksReply,
    bound: Option<SocketAddr>,
) -> std::io::Result<()> {
    let mut message = vec![5, reply as u8, 0];
    match bound.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))) {
        SocketAddr::V4(v4) => {
            message.push(1);
            message.extend_from_slice(&v4.ip().octets());
            message.extend_from_slice(&v4.port().to_be_bytes());
        }
        SocketAddr::V6(v6) => {
            message.push(4);
            message.extend_from_slice(&v6.ip().octets());
            message.extend_from_slice(&v6.port().to_be_bytes());
        }
    }
    stream.write_all(&message).await
}
