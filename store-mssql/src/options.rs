//! Store options that a connection string does not carry.

use std::fmt;
use std::time::Duration;

/// Schema that holds the reservation table unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "dbo";
/// Default size of the connection pool.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// Default `SET LOCK_TIMEOUT`: how long a statement waits for a row lock
/// before SQL Server gives up and rolls it back.
///
/// Shorter than [`DEFAULT_COMMAND_TIMEOUT`] on purpose: a lock wait that ends
/// in error 1222 is rolled back (a known outcome), while a client-side
/// timeout leaves the outcome unknown.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit for opening one connection (TCP, TLS and login).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Default limit for waiting on a free pooled connection.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default limit for the server to answer one round trip (tiberius's command
/// timeout).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How the store uses its server: schema, pool size and timeouts.
///
/// Everything here has a default; the connection string only says where
/// the server is and how to log in.
///
/// ```
/// use std::time::Duration;
/// use store_mssql::MssqlStoreOptions;
///
/// let options = MssqlStoreOptions::new()
///     .schema("proxy")
///     .max_connections(32)
///     .lock_timeout(Duration::from_secs(5));
/// assert_eq!(options.schema_name(), "proxy");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct MssqlStoreOptions {
    pub(crate) schema: String,
    pub(crate) max_connections: u32,
    pub(crate) lock_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) acquire_timeout: Duration,
    pub(crate) command_timeout: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
}

impl Default for MssqlStoreOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl MssqlStoreOptions {
    /// The defaults: schema `dbo`, 10 connections, 10 s lock timeout.
    pub fn new() -> Self {
        Self {
            schema: DEFAULT_SCHEMA.to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            command_timeout: Some(DEFAULT_COMMAND_TIMEOUT),
            idle_timeout: Some(Duration::from_secs(300)),
        }
    }

    /// The schema that holds the table, its sequence and the migrations
    /// table. A regular identifier (letters, digits, `_`, not starting with
    /// a digit, at most 128 characters); checked when connecting.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Most connections the pool opens (at least 1).
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// `SET LOCK_TIMEOUT` for every session, rounded to milliseconds (see
    /// [`DEFAULT_LOCK_TIMEOUT`]).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Limit for opening one connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Limit for waiting on a free pooled connection.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Limit for the server to answer one round trip; `None` waits forever.
    /// A timed-out write is reported as an unknown outcome.
    pub fn command_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Closes connections idle for this long; `None` keeps them.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The configured schema name (unvalidated).
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// `SET LOCK_TIMEOUT` argument in milliseconds, within what SQL Server
    /// accepts (an `int`).
    pub(crate) fn lock_timeout_millis(&self) -> i32 {
        i32::try_from(self.lock_timeout.as_millis()).unwrap_or(i32::MAX)
    }
}

impl fmt::Debug for MssqlStoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MssqlStoreOptions")
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("lock_timeout", &self.lock_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_builders() {
        let options = MssqlStoreOptions::new();
        assert_eq!(options.schema_name(), "dbo");
        assert_eq!(options.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(options.lock_timeout_millis(), 10_000);
        assert!(options.lock_timeout < options.command_timeout.unwrap_or(Duration::MAX));

        let options = MssqlStoreOptions::new()
            .max_connections(0)
            .lock_timeout(Duration::from_millis(1500))
            .schema("proxy");
        assert_eq!(options.max_connections, 1, "at least one connection");
        assert_eq!(options.lock_timeout_millis(), 1500);
        assert_eq!(options.schema_name(), "proxy");
        let huge = MssqlStoreOptions::new().lock_timeout(Duration::from_secs(u64::MAX / 2));
        assert_eq!(huge.lock_timeout_millis(), i32::MAX);
    }
}
