//! Backends in Docker for the backend test suites (feature `containers`).
//!
//! With this feature on, a backend test whose URL variable
//! (`POSTGRES_URL`, `REDIS_URL`, `MSSQL_URL`) is unset starts that server
//! with [testcontainers] when a Docker engine is reachable, instead of
//! skipping — see [`crate::backend`]. So a contributor with Docker runs
//! every backend's suite with
//!
//! ```text
//! cargo test --workspace --features testkit/containers
//! ```
//!
//! and nothing else. Without a reachable engine everything behaves as
//! without the feature: the tests skip with one line.
//!
//! Containers are started at most once per backend and test process, and
//! are **kept for reuse** under fixed names (`proxy-reserve-test-postgres`,
//! `…-redis`, `…-mssql`): every test binary and every later run uses the
//! same three containers instead of starting new ones (SQL Server takes
//! tens of seconds to start). Rust never drops statics, so a container
//! owned by the test process could not be removed at its exit anyway;
//! reuse keeps that to one container per backend. Remove them with
//! `docker rm -f proxy-reserve-test-postgres proxy-reserve-test-redis
//! proxy-reserve-test-mssql`.
//!
//! The SQL Server container is Microsoft's `mssql/server` image (Developer
//! edition): enabling this feature accepts its EULA
//! (`ACCEPT_EULA=Y`), as running that image requires. It is published for
//! x86-64 only.
//!
//! [testcontainers]: https://docs.rs/testcontainers

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerRequest, Image, ImageExt, ReuseDirective};
use testcontainers_modules::mssql_server::MssqlServer;
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::redis::Redis;

/// PostgreSQL image tag (the module's default is far older).
pub const POSTGRES_TAG: &str = "16-alpine";
/// Redis image tag (the module's default, 5.0, lacks RESP3).
pub const REDIS_TAG: &str = "7-alpine";
/// The `sa` password of the SQL Server container: the module's default,
/// which also exercises URL percent-encoding (`(`, `!`, `)`).
pub const MSSQL_SA_PASSWORD: &str = MssqlServer::DEFAULT_SA_PASSWORD;
/// How long a container may take to become ready (first runs pull images).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(300);

/// A server this module can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// PostgreSQL, for `POSTGRES_URL`.
    Postgres,
    /// Redis, for `REDIS_URL`.
    Redis,
    /// SQL Server, for `MSSQL_URL`.
    Mssql,
}

impl Backend {
    /// Every backend.
    pub const ALL: [Backend; 3] = [Backend::Postgres, Backend::Redis, Backend::Mssql];

    /// The backend whose URL lives in `var`, if this module can start it.
    pub fn for_var(var: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.var() == var)
    }

    /// The environment variable that names this backend's server.
    pub fn var(self) -> &'static str {
        match self {
            Backend::Postgres => "POSTGRES_URL",
            Backend::Redis => "REDIS_URL",
            Backend::Mssql => "MSSQL_URL",
        }
    }

    /// The name of the (reused) container.
    pub fn container_name(self) -> &'static str {
        match self {
            Backend::Postgres => "proxy-reserve-test-postgres",
            Backend::Redis => "proxy-reserve-test-redis",
            Backend::Mssql => "proxy-reserve-test-mssql",
        }
    }

    /// The URL of this backend's server at `host:port`, in the form its
    /// store's `connect` accepts.
    pub fn url(self, host: &str, port: u16) -> String {
        match self {
            Backend::Postgres => format!("postgres://postgres:postgres@{host}:{port}/postgres"),
            Backend::Redis => format!("redis://{host}:{port}"),
            // The image's certificate is self-signed.
            Backend::Mssql => format!(
                "mssql://sa:{}@{host}:{port}/master?trust_server_certificate=true",
                percent_encode(MSSQL_SA_PASSWORD)
            ),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Redis => "Redis",
            Backend::Mssql => "SQL Server",
        })
    }
}

/// Starting a backend's container failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContainerError {
    /// No Docker engine answered where testcontainers would look.
    #[error("no Docker engine reachable ({looked_at})")]
    NoDocker {
        /// Where we looked.
        looked_at: String,
    },
    /// testcontainers could not start the container or read its port.
    #[error("starting the {backend} container failed")]
    Start {
        /// Which backend.
        backend: Backend,
        /// testcontainers' error.
        #[source]
        source: testcontainers::TestcontainersError,
    },
    /// The runtime that drives testcontainers could not be built.
    #[error("cannot start a Tokio runtime for testcontainers")]
    Runtime(#[source] std::io::Error),
    /// The thread starting the container died.
    #[error("the thread starting the {0} container panicked")]
    Panicked(Backend),
}

/// Whether a Docker engine answers where testcontainers looks for one:
/// `DOCKER_HOST` if set, else the usual local sockets. Only opens (and
/// closes) a connection; sends nothing.
pub fn docker_available() -> bool {
    find_docker().is_ok()
}

fn find_docker() -> Result<(), ContainerError> {
    if let Some(host) = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
    {
        let host = host.trim();
        let reachable = if let Some(path) = host.strip_prefix("unix://") {
            unix_socket_answers(path)
        } else if let Some(address) = host.strip_prefix("tcp://") {
            tcp_answers(address)
        } else {
            // npipe://, ssh://…: nothing cheap to check; let testcontainers try.
            true
        };
        return if reachable {
            Ok(())
        } else {
            Err(ContainerError::NoDocker {
                looked_at: format!("DOCKER_HOST={host}"),
            })
        };
    }
    let candidates = local_sockets();
    if candidates.iter().any(|path| unix_socket_answers(path)) {
        Ok(())
    } else {
        Err(ContainerError::NoDocker {
            looked_at: if candidates.is_empty() {
                "DOCKER_HOST is unset".to_owned()
            } else {
                candidates.join(", ")
            },
        })
    }
}

/// The sockets testcontainers tries when `DOCKER_HOST` is unset, in order.
fn local_sockets() -> Vec<String> {
    if !cfg!(unix) {
        return Vec::new();
    }
    let mut paths = vec!["/var/run/docker.sock".to_owned()];
    if let Ok(dir) = std::env::var("XDG_RUNTIME_DIR") {
        paths.push(format!("{dir}/.docker/run/docker.sock"));
    }
    if let Ok(home) = std::env::var("HOME") {
        paths.push(format!("{home}/.docker/run/docker.sock"));
        paths.push(format!("{home}/.docker/desktop/docker.sock"));
    }
    paths
}

#[cfg(unix)]
fn unix_socket_answers(path: &str) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

#[cfg(not(unix))]
fn unix_socket_answers(_path: &str) -> bool {
    false
}

fn tcp_answers(address: &str) -> bool {
    use std::net::ToSocketAddrs;
    let address = address.trim_end_matches('/');
    address
        .to_socket_addrs()
        .map(|mut addrs| {
            addrs.any(|addr| {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
            })
        })
        .unwrap_or(false)
}

type Started = Result<String, Arc<ContainerError>>;

/// One start per backend and process; later callers get the same URL.
fn started() -> &'static Mutex<HashMap<Backend, Arc<OnceLock<Started>>>> {
    static STARTED: OnceLock<Mutex<HashMap<Backend, Arc<OnceLock<Started>>>>> = OnceLock::new();
    STARTED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The runtime that drives testcontainers, shared by every start so that
/// its Docker client never outlives the runtime it was made on.
fn runtime() -> Result<&'static tokio::runtime::Runtime, ContainerError> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("testkit-containers")
        .enable_all()
        .build()
        .map_err(ContainerError::Runtime)?;
    // A racing caller may have set it first; theirs is as good as ours.
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// The URL of a running `backend` container, starting (or reusing) it on
/// the first call in this process. Blocks until the server is ready.
///
/// Safe to call from inside an async runtime: the start runs on its own
/// thread and runtime.
pub fn url_for(backend: Backend) -> Result<String, Arc<ContainerError>> {
    let cell = {
        let mut map = started().lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(backend).or_default())
    };
    if let Some(result) = cell.get() {
        return result.clone();
    }
    // Started on a fresh thread: blocking inside a caller's runtime thread is
    // allowed, nesting block_on there is not.
    let starter = std::thread::Builder::new()
        .name(format!("testkit-start-{}", backend.container_name()))
        .spawn(move || {
            cell.get_or_init(|| start(backend).map_err(Arc::new))
                .clone()
        });
    match starter {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|_| Err(Arc::new(ContainerError::Panicked(backend)))),
        Err(e) => Err(Arc::new(ContainerError::Runtime(e))),
    }
}

/// [`url_for`] without blocking the calling task's thread.
pub async fn url_for_async(backend: Backend) -> Result<String, Arc<ContainerError>> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("testkit-await-container".to_owned())
        .spawn(move || {
            let _ = sender.send(url_for(backend));
        });
    if let Err(e) = spawned {
        return Err(Arc::new(ContainerError::Runtime(e)));
    }
    receiver
        .await
        .unwrap_or_else(|_| Err(Arc::new(ContainerError::Panicked(backend))))
}

/// The hook behind [`crate::backend::url_from_env`] for an unset `var`:
/// `None` when no container applies (not a backend of this module, or no
/// Docker engine), so the caller skips as usual; `Some(Some(url))` for a
/// running container; `Some(None)` when the engine is there but the start
/// failed (said once, or a failure under `PROXY_TEST_STRICT=1`).
pub(crate) fn url_for_unset_var(var: &str) -> Option<Option<String>> {
    let backend = Backend::for_var(var)?;
    if !docker_available() {
        return None;
    }
    Some(match url_for(backend) {
        Ok(url) => {
            crate::backend::say_once(&format!(
                "{var} is unset: testing against the Docker container {}",
                backend.container_name()
            ));
            Some(url)
        }
        Err(error) => crate::backend::unreachable(var, crate::backend::error_chain(&*error)),
    })
}

/// `postgres://…` of a running PostgreSQL container (see [`url_for`]).
pub fn postgres_url() -> Result<String, Arc<ContainerError>> {
    url_for(Backend::Postgres)
}

/// `redis://…` of a running Redis container (see [`url_for`]).
pub fn redis_url() -> Result<String, Arc<ContainerError>> {
    url_for(Backend::Redis)
}

/// `mssql://…` of a running SQL Server container (see [`url_for`]).
pub fn mssql_url() -> Result<String, Arc<ContainerError>> {
    url_for(Backend::Mssql)
}

fn start(backend: Backend) -> Result<String, ContainerError> {
    find_docker()?;
    let runtime = runtime()?;
    runtime.block_on(async {
        match backend {
            Backend::Postgres => {
                let request = Postgres::default().with_tag(POSTGRES_TAG);
                run(backend, request, 5432).await
            }
            Backend::Redis => run(backend, Redis::default().with_tag(REDIS_TAG), 6379).await,
            Backend::Mssql => run(backend, MssqlServer::default().with_accept_eula(), 1433).await,
        }
    })
}

async fn run<I: Image>(
    backend: Backend,
    request: impl Into<ContainerRequest<I>>,
    port: u16,
) -> Result<String, ContainerError> {
    let error = |source| ContainerError::Start { backend, source };
    let container = request
        .into()
        .with_container_name(backend.container_name())
        .with_label("org.proxy-reserve.testkit", backend.container_name())
        // Kept after this process: see the module documentation.
        .with_reuse(ReuseDirective::Always)
        .with_startup_timeout(STARTUP_TIMEOUT)
        .start()
        .await
        .map_err(error)?;
    let host = container.get_host().await.map_err(error)?;
    let port = container
        .get_host_port_ipv4(port.tcp())
        .await
        .map_err(error)?;
    // Dropping a reused container's handle leaves it running.
    drop(container);
    Ok(backend.url(&host.to_string(), port))
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for URL
/// user info.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_are_found_by_their_variable() {
        for backend in Backend::ALL {
            assert_eq!(Backend::for_var(backend.var()), Some(backend));
            assert!(backend.container_name().starts_with("proxy-reserve-test-"));
        }
        assert_eq!(Backend::for_var("REDIS_CLUSTER_URLS"), None);
        assert_eq!(Backend::for_var("SQLITE_URL"), None);
    }

    #[test]
    fn urls_have_the_form_each_store_connects_with() {
        assert_eq!(
            Backend::Postgres.url("localhost", 49153),
            "postgres://postgres:postgres@localhost:49153/postgres"
        );
        assert_eq!(
            Backend::Redis.url("localhost", 49154),
            "redis://localhost:49154"
        );
        assert_eq!(
            Backend::Mssql.url("localhost", 49155),
            "mssql://sa:yourStrong%28%21%29Password@localhost:49155/master?trust_server_certificate=true"
        );
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("aZ0-._~"), "aZ0-._~");
        assert_eq!(percent_encode("p@ss:w/rd%"), "p%40ss%3Aw%2Frd%25");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn an_unreachable_docker_host_is_reported_not_started() {
        // A loopback port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        assert!(!tcp_answers(&format!("127.0.0.1:{port}")));
        #[cfg(unix)]
        assert!(!unix_socket_answers("/nonexistent/docker.sock"));
    }
}
