//! How a [`PostgresStore`] is configured: names, timeouts, pool, and how
//! statements travel.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::connections::Connections;
use crate::error::PostgresStoreError;
use crate::identifier::Identifier;
use crate::schema::DEFAULT_TABLE;
use crate::sql::QualifiedTable;
use crate::store::PostgresStore;

/// Default [`PostgresStoreBuilder::lock_timeout`].
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`PostgresStoreBuilder::statement_timeout`].
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`PostgresStoreBuilder::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// Default [`PostgresStoreBuilder::acquire_timeout`].
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the store sends its statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StatementMode {
    /// Named prepared statements, cached per connection (sqlx's default).
    ///
    /// After a statement's first use on a connection (one extra round trip
    /// to prepare it) every operation is one round trip: Bind, Execute,
    /// Sync. For direct connections, session-mode poolers, and PgBouncer
    /// 1.21+ in transaction mode with `max_prepared_statements` above 0
    /// (it tracks protocol-level prepared statements across server
    /// connections). Timeouts are sent as startup options on the
    /// connections the store opens.
    #[default]
    Prepared,
    /// The simple-query protocol, values inlined as escaped literals.
    ///
    /// For transaction-mode poolers that do not track prepared statements
    /// (PgBouncer before 1.21 or with `max_prepared_statements = 0`, and
    /// similar). sqlx 0.9 sends every parameterised query as *two*
    /// synchronised exchanges (Parse, Describe and Sync; then Bind, Execute
    /// and Sync), also for unnamed statements and with
    /// `statement_cache_capacity(0)`, and a transaction-mode pooler may
    /// hand the second exchange to another server connection. Here each
    /// operation is one Query message, so it stays on one server connection
    /// and is one round trip; the timeouts travel in it as `SET LOCAL`, so
    /// they hold on whichever server connection the pooler picks. Run
    /// [`PostgresStore::migrate`] over a direct connection: sqlx's migrator
    /// needs prepared statements and a session advisory lock.
    SimpleQuery,
}

/// Builds a [`PostgresStore`]: schema and table names, timeouts, pool
/// size, statement mode.
///
/// ```no_run
/// # async fn demo() -> Result<(), store_postgres::PostgresStoreError> {
/// use std::time::Duration;
/// use store_postgres::PostgresStore;
///
/// let store = PostgresStore::builder()
///     .schema("scraping")
///     .table("proxy_reservation")
///     .lock_timeout(Some(Duration::from_secs(2)))
///     .max_connections(20)
///     .connect("postgres://app@db.internal/app")
///     .await?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStoreBuilder {
    schema: Option<String>,
    table: String,
    lock_timeout: Option<Duration>,
    statement_timeout: Option<Duration>,
    statement_mode: StatementMode,
    max_connections: u32,
    acquire_timeout: Duration,
}

impl Default for PostgresStoreBuilder {
    fn default() -> Self {
        Self {
            schema: None,
            table: DEFAULT_TABLE.to_owned(),
            lock_timeout: Some(DEFAULT_LOCK_TIMEOUT),
            statement_timeout: Some(DEFAULT_STATEMENT_TIMEOUT),
            statement_mode: StatementMode::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
        }
    }
}

impl PostgresStoreBuilder {
    /// The defaults: table `proxy_reservation` in the connection's
    /// `search_path`, lock timeout 5 s, statement timeout 30 s, prepared
    /// statements, 10 connections, 10 s to get one.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts the table in this schema (created by
    /// [`PostgresStore::migrate`] if missing) instead of the first schema of
    /// the `search_path`. Validated when the store is built (see
    /// [`Identifier`]).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Names the reservation table (default `proxy_reservation`). The
    /// unique index is then `uq_<table>_ip_address`, the other indexes and
    /// the sequence are named after the table too.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// How long a statement may wait for a row or table lock (another
    /// transaction holding the key's row, an uncommitted insert of the same
    /// key) before it fails with an unknown outcome; `None` leaves the
    /// server's setting. Default 5 s.
    pub fn lock_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// How long any statement may run before it fails with an unknown
    /// outcome; `None` leaves the server's setting. Default 30 s.
    pub fn statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// How statements travel; see [`StatementMode`].
    pub fn statement_mode(mut self, mode: StatementMode) -> Self {
        self.statement_mode = mode;
        self
    }

    /// Pool size for [`connect`](Self::connect) (default 10).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// How long an operation waits for a pooled connection before failing
    /// as unavailable (default 10 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The timeouts as `(setting, milliseconds)` pairs.
    fn timeout_settings(&self) -> Vec<(&'static str, u64)> {
        // 0 would mean "no timeout" to PostgreSQL, so round up to 1 ms; the
        // server's maximum is i32::MAX ms.
        let millis = |d: Duration| (d.as_millis().max(1)).min(i32::MAX as u128) as u64;
        [
            ("lock_timeout", self.lock_timeout),
            ("statement_timeout", self.statement_timeout),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|d| (name, millis(d))))
        .collect()
    }

    /// `SET LOCAL` statements for the timeouts, for simple-query mode.
    pub(crate) fn set_local_prefix(&self) -> String {
        self.timeout_settings()
            .into_iter()
            .map(|(name, ms)| format!("SET LOCAL {name} = {ms}; "))
            .collect()
    }

    /// Adds what the store needs to `options`: in [`StatementMode::Prepared`]
    /// the timeouts as startup options (`-c lock_timeout=…`, applied by the
    /// server to every session opened with them; they override timeouts
    /// given in the URL's `options`); in [`StatementMode::SimpleQuery`]
    /// nothing (the timeouts travel with each statement, and a pooler may
    /// reject the startup `options` parameter).
    ///
    /// Use it when you build your own pool for
    /// [`build`](Self::build) / [`PostgresStore::from_pool`].
    pub fn apply_to(&self, options: PgConnectOptions) -> PgConnectOptions {
        match self.statement_mode {
            StatementMode::Prepared => {
                let settings = self.timeout_settings();
                if settings.is_empty() {
                    options
                } else {
                    options.options(settings)
                }
            }
            StatementMode::SimpleQuery => options,
        }
    }

    /// Parses `url` and [applies](Self::apply_to) the store's settings.
    pub fn connect_options(&self, url: &str) -> Result<PgConnectOptions, PostgresStoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|source| PostgresStoreError::InvalidUrl { source })?;
        Ok(self.apply_to(options))
    }

    /// Pool settings for [`connect`](Self::connect): the size and acquire
    /// timeout set here, and no ping before each acquire (sqlx's default
    /// pings, an extra round trip per operation; a dead connection shows up
    /// as an error of the statement instead).
    pub fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .test_before_acquire(false)
    }

    /// Connects to `url` (one connection is opened at once, so an
    /// unreachable server fails here) and builds the store.
    pub async fn connect(self, url: &str) -> Result<PostgresStore, PostgresStoreError> {
        // Parsed only: `connect_with` applies the settings (applying them
        // twice would send every `-c` option twice).
        let options = PgConnectOptions::from_str(url)
            .map_err(|source| PostgresStoreError::InvalidUrl { source })?;
        self.connect_with(options).await
    }

    /// Like [`connect`](Self::connect), from parsed options (the store's
    /// settings are [applied](Self::apply_to) to them).
    pub async fn connect_with(
        self,
        options: PgConnectOptions,
    ) -> Result<PostgresStore, PostgresStoreError> {
        let table = self.qualified_table()?;
        let options = self.apply_to(options);
        // One direct connection first: the pool retries failed connects
        // until its acquire timeout and then reports only "pool timed out",
        // hiding a refused connection, a wrong password or a missing
        // database behind a long wait.
        let failed =
            |error| crate::error::classify_acquire(crate::error::Operation::read("connect"), error);
        let probe = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
            .await
            .map_err(failed)?;
        let _ = sqlx::Connection::close(probe).await;
        let pool = self
            .pool_options()
            .connect_with(options)
            .await
            .map_err(failed)?;
        let connections = Connections::owned(pool, self.max_connections, self.acquire_timeout);
        Ok(PostgresStore::assemble(connections, table, &self))
    }

    /// Builds the store on an existing pool, as it is: in
    /// [`StatementMode::Prepared`] the timeouts set here are *not* applied
    /// (they are connection settings: use [`apply_to`](Self::apply_to) on
    /// the pool's connect options, or `ALTER ROLE … SET lock_timeout`).
    /// A pool that pings before each acquire (sqlx's default,
    /// `test_before_acquire(true)`) costs an extra round trip per
    /// operation; [`pool_options`](Self::pool_options) turns that off.
    pub fn build(self, pool: PgPool) -> Result<PostgresStore, PostgresStoreError> {
        let table = self.qualified_table()?;
        if pool.options().get_test_before_acquire() {
            tracing::debug!(
                "store-postgres: the pool pings before every acquire, \
                 one extra round trip per operation"
            );
        }
        Ok(PostgresStore::assemble(
            Connections::shared(pool),
            table,
            &self,
        ))
    }

    pub(crate) fn mode(&self) -> StatementMode {
        self.statement_mode
    }

    fn qualified_table(&self) -> Result<QualifiedTable, PostgresStoreError> {
        let schema = self
            .schema
            .as_deref()
            .map(|s| Identifier::new("schema", s))
            .transpose()?;
        let table = Identifier::new("table", &self.table)?;
        Ok(QualifiedTable::new(schema, table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_mode_sends_timeouts_as_startup_options() {
        let builder = PostgresStoreBuilder::new()
            .lock_timeout(Some(Duration::from_millis(1500)))
            .statement_timeout(Some(Duration::from_micros(10)));
        let options = builder
            .connect_options("postgres://u:secret@127.0.0.1/db")
            .unwrap();
        assert_eq!(
            options.get_options(),
            Some("-c lock_timeout=1500 -c statement_timeout=1")
        );
        let none = PostgresStoreBuilder::new()
            .lock_timeout(None)
            .statement_timeout(None);
        assert_eq!(
            none.connect_options("postgres://127.0.0.1/db")
                .unwrap()
                .get_options(),
            None
        );
    }

    #[test]
    fn simple_query_mode_sets_timeouts_per_statement() {
        let builder = PostgresStoreBuilder::new()
            .statement_mode(StatementMode::SimpleQuery)
            .statement_timeout(None);
        let options = builder.connect_options("postgres://127.0.0.1/db").unwrap();
        assert_eq!(options.get_options(), None);
        assert_eq!(
            builder.set_local_prefix(),
            "SET LOCAL lock_timeout = 5000; "
        );
    }

    #[test]
    fn bad_names_fail_before_connecting() {
        let error = PostgresStoreBuilder::new()
            .table("Bad-Name")
            .qualified_table()
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("invalid table name \"Bad-Name\""),
            "{error}"
        );
        let error = PostgresStoreBuilder::new()
            .schema("pg_catalog")
            .qualified_table()
            .unwrap_err();
        assert!(error.to_string().contains("schema"), "{error}");
    }

    #[test]
    fn bad_url_error_does_not_repeat_the_url() {
        let error = PostgresStoreBuilder::new()
            .connect_options("postgres://user:hunter2@[::1/db")
            .unwrap_err();
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(s) = source {
            text.push_str(&s.to_string());
            source = s.source();
        }
        assert!(!text.contains("hunter2"), "{text}");
    }
}
