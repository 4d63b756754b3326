//! What the fake servers share: accept loops, connection tasks that stop when
//! the server's handle is dropped, HTTP/1 serving with optional TLS, and
//! connections that can be closed with a reset.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::NetError;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body every fake server sends.
pub(crate) type Body = BoxBody<Bytes, BoxError>;

pub(crate) fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not take the fake network down with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The tasks of one fake server: its accept loops, connections and tunnels.
#[derive(Clone, Default)]
pub(crate) struct Tasks(Arc<Mutex<JoinSet<()>>>);

impl Tasks {
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut set = lock(&self.0);
        // Reap finished tasks so a long benchmark does not accumulate them.
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    fn abort_all(&self) {
        lock(&self.0).abort_all();
    }
}

/// Stops every task of a server when dropped: the server's handle owns one.
pub(crate) struct ShutdownOnDrop(Tasks);

impl ShutdownOnDrop {
    pub(crate) fn new(tasks: Tasks) -> Self {
        Self(tasks)
    }
}

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.abort_all();
    }
}

/// Binds a listener on `ip` (a loopback address) and a free port.
pub(crate) async fn bind_loopback(ip: IpAddr, what: &'static str) -> Result<TcpListener, NetError> {
    if !ip.is_loopback() {
        return Err(NetError::NotLoopback { what, ip });
    }
    TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .map_err(|source| NetError::Io { what, source })
}

/// Accepts connections on `listener` and runs `on_connection` for each as a
/// task of `tasks`.
pub(crate) fn spawn_accept_loop<F, Fut>(listener: TcpListener, tasks: &Tasks, on_connection: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let connections = tasks.clone();
    tasks.spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(on_connection(stream, peer));
                }
                // Out of file descriptors or similar: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
}

/// Connects to `target` from `source` (port chosen by the system), so the
/// other side sees `source` as the peer address.
pub(crate) async fn connect_from(source: IpAddr, target: SocketAddr) -> io::Result<TcpStream> {
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(target).await?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// How a handler ends a connection without answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abort {
    /// Close the connection (FIN).
    Close,
    /// Reset the connection (RST).
    Reset,
}

#[derive(Debug)]
struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection aborted by the fake server")
    }
}

impl std::error::Error for Aborted {}

/// The connection a request came in on.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    /// The client's address as the server sees it.
    pub(crate) peer: SocketAddr,
}

/// Handles one request; `Err` ends the connection without a response.
pub(crate) type Handler = Arc<
    dyn Fn(Request<Incoming>, Connection) -> BoxFuture<'static, Result<Response<Body>, Abort>>
        + Send
        + Sync,
>;

/// Serves HTTP/1 on every connection of `listener` (TLS first when
/// `tls` is set), with upgrades (CONNECT) enabled.
pub(crate) fn spawn_http_server(
    listener: TcpListener,
    tasks: &Tasks,
    tls: Option<TlsAcceptor>,
    handler: Handler,
) {
    spawn_accept_loop(listener, tasks, move |stream, peer| {
        let handler = handler.clone();
        let tls = tls.clone();
        async move {
            let reset = Arc::new(AtomicBool::new(false));
            let stream = ResettableStream {
                stream,
                reset: reset.clone(),
            };
            match tls {
                None => serve_http(stream, peer, reset, handler).await,
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_http(stream, peer, reset, handler).await;
                    }
                }
            }
        }
    });
}

async fn serve_http<I>(io: I, peer: SocketAddr, reset: Arc<AtomicBool>, handler: Handler)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = Connection { peer };
    let service = service_fn(move |request| {
        let handler = handler.clone();
        let connection = connection.clone();
        let reset = reset.clone();
        async move {
            match handler(request, connection).await {
                Ok(response) => Ok(response),
                Err(abort) => {
                    if abort == Abort::Reset {
                        reset.store(true, Ordering::SeqCst);
                    }
                    Err(Aborted)
                }
            }
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
}

/// A TCP stream that is reset instead of closed when dropped after a
/// handler asked for [`Abort::Reset`].
struct ResettableStream {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            // SO_LINGER 0: closing sends RST and never blocks.
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
