//! A self-hostable proxy judge: run your own instead of depending on
//! public ones.
//!
//! It answers with the address of the TCP peer that called it:
//!
//! | path | answer | like |
//! |---|---|---|
//! | `/ip` | `{"origin": "a.b.c.d"}` | httpbin.org/ip |
//! | `/json`, or any path with `?format=json` | `{"ip":"a.b.c.d"}` | api.ipify.org |
//! | `/` | `a.b.c.d` and a newline | ifconfig.me/ip, icanhazip.com |
//!
//! Other paths get 404, methods other than GET and HEAD 405. Like httpbin,
//! `/ip` puts the request's `X-Forwarded-For` in front of the peer address
//! (a comma-separated chain), so a proxy that forwards its client's address
//! is caught as transparent; turn that off with
//! [`JudgeServerConfig::echo_forwarded_for`] when the judge itself sits
//! behind a reverse proxy. The other shapes always report the peer address.
//!
//! ```
//! # async fn demo() -> Result<(), proxy_judge::JudgeError> {
//! let server = proxy_judge::server::bind("127.0.0.1:0".parse().unwrap()).await?;
//! println!("judge at http://{}/ip", server.local_addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::JudgeError;

/// How long [`JudgeServer::shutdown`] waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Settings of the judge server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JudgeServerConfig {
    /// Put `X-Forwarded-For` in front of the peer address on `/ip`, like
    /// httpbin (default on).
    pub echo_forwarded_for: bool,
    /// How long a client may take to send its request headers (default
    /// 10 s), so idle connections cannot pile up.
    pub header_read_timeout: Duration,
}

impl Default for JudgeServerConfig {
    fn default() -> Self {
        Self {
            echo_forwarded_for: true,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

impl JudgeServerConfig {
    /// Sets [`JudgeServerConfig::echo_forwarded_for`].
    pub fn echo_forwarded_for(mut self, echo: bool) -> Self {
        self.echo_forwarded_for = echo;
        self
    }

    /// Sets [`JudgeServerConfig::header_read_timeout`].
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }
}

/// A running judge server. Dropping it stops accepting at once (requests
/// in flight finish); [`JudgeServer::shutdown`] also waits for them.
#[derive(Debug)]
pub struct JudgeServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl JudgeServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits (up to 5 s) for requests in flight, and
    /// returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for JudgeServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds `addr` and serves the judge with default settings.
pub async fn bind(addr: SocketAddr) -> Result<JudgeServer, JudgeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| JudgeError::Server {
            what: "bind",
            source,
        })?;
    serve(listener)
}

/// Serves the judge on `listener` with default settings. Must be called
/// inside a Tokio runtime.
pub fn serve(listener: TcpListener) -> Result<JudgeServer, JudgeError> {
    serve_with(listener, JudgeServerConfig::default())
}

/// Serves the judge on `listener`. Must be called inside a Tokio runtime.
pub fn serve_with(
    listener: TcpListener,
    config: JudgeServerConfig,
) -> Result<JudgeServer, JudgeError> {
    let addr = listener.local_addr().map_err(|source| JudgeError::Server {
        what: "local address",
        source,
    })?;
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let echo = config.echo_forwarded_for;
                        let service = service_fn(move |request| async move {
                            Ok::<_, Infallible>(answer(&request, peer, echo))
                        });
                        let connection = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(config.header_read_timeout)
                            .serve_connection(TokioIo::new(stream), service);
                        let watched = graceful.watch(connection);
                        tokio::spawn(async move {
                            let _ = watched.await;
                        });
                    }
                    // Out of file descriptors or similar: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                },
                _ = &mut stopped => break,
            }
        }
        drop(listener);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    });
    Ok(JudgeServer {
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The judge's answer to one request from `peer`.
fn answer(
    request: &Request<Incoming>,
    peer: SocketAddr,
    echo_forwarded_for: bool,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n".to_owned(),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let ip = peer.ip().to_canonical();
    let wants_json = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair == "format=json"));
    match request.uri().path() {
        _ if wants_json => json_ip(ip),
        "/json" => json_ip(ip),
        "/ip" => {
            let forwarded = request
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .filter(|_| echo_forwarded_for)
                .map(str::trim)
                .filter(|v| !v.is_empty());
            let origin = match forwarded {
                Some(chain) => format!("{chain}, {ip}"),
                None => ip.to_string(),
            };
            let body = serde_json::json!({ "origin": origin });
            respond(StatusCode::OK, "application/json", format!("{body:#}\n"))
        }
        "/" => respond(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            format!("{ip}\n"),
        ),
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /ip, /json or /\n".to_owned(),
        ),
    }
}

fn json_ip(ip: std::net::IpAddr) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "ip": ip.to_string() });
    respond(StatusCode::OK, "application/json", body.to_string())
}
