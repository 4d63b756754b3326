//! How a [`SqliteStore`] opens its database.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::SqliteStoreError;
use crate::store::SqliteStore;

/// How long a statement waits for another connection or process to finish
/// writing before it fails with [`SqliteStoreError::Busy`].
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pooled connections of a file database. Writes take turns on one of them
/// (SQLite allows one writer at a time); the others serve listings.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;

/// Pause between attempts when a fresh database is being created by several
/// processes at once (switching a new file to WAL cannot wait on the busy
/// handler).
const FIRST_OPEN_RETRY_PAUSE: Duration = Duration::from_millis(25);

/// Settings for opening a [`SqliteStore`]; the defaults suit most uses.
///
/// ```no_run
/// # async fn example() -> Result<(), store_sqlite::SqliteStoreError> {
/// use std::time::Duration;
/// use store_sqlite::SqliteStoreOptions;
///
/// let store = SqliteStoreOptions::new()
///     .busy_timeout(Duration::from_secs(10))
///     .open("/var/lib/scraper/reservations.db")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStoreOptions {
    busy_timeout: Duration,
    max_connections: u32,
    run_migrations: bool,
}

impl Default for SqliteStoreOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SqliteStoreOptions {
    /// Busy timeout [`DEFAULT_BUSY_TIMEOUT`], [`DEFAULT_MAX_CONNECTIONS`]
    /// connections, migrations applied on open.
    pub fn new() -> Self {
        Self {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            run_migrations: true,
        }
    }

    /// How long to wait for a lock held by another connection or process
    /// before failing with [`SqliteStoreError::Busy`].
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Pool size for file databases (at least 1; in-memory stores always
    /// use one connection).
    pub fn max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// Whether opening applies the embedded migrations (the default). Turn it
    /// off when the schema is managed elsewhere; then call
    /// [`SqliteStore::migrate`] yourself.
    pub fn run_migrations(mut self, run: bool) -> Self {
        self.run_migrations = run;
        self
    }

    /// Opens (creating it if missing) the database file at `path` in WAL
    /// mode.
    pub async fn open(&self, path: impl AsRef<Path>) -> Result<SqliteStore, SqliteStoreError> {
        let path = path.as_ref();
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        self.open_file(connect, &path.display().to_string()).await
    }

    /// Opens the database named by a `sqlite:` URL (`sqlite://data.db`,
    /// `sqlite:///abs/path.db?mode=rwc`, `sqlite::memory:`).
    ///
    /// A missing file is created, as with [`open`](Self::open), unless the
    /// URL sets its own `mode=` (`ro`, `rw`, `rwc`), which then applies. An
    /// in-memory URL gives the same store as [`in_memory`](Self::in_memory).
    pub async fn connect(&self, url: &str) -> Result<SqliteStore, SqliteStoreError> {
        let mut connect =
            SqliteConnectOptions::from_str(url).map_err(|source| SqliteStoreError::InvalidUrl {
                url: url.to_owned(),
                source,
            })?;
        if !url.contains("mode=") {
            connect = connect.create_if_missing(true);
        }
        if is_memory_url(url) {
            self.open_memory(connect).await
        } else {
            self.open_file(connect, url).await
        }
    }

    /// A private in-memory database: gone when the store (and its clones) are
    /// dropped, shared by nothing outside this process.
    pub async fn in_memory(&self) -> Result<SqliteStore, SqliteStoreError> {
        self.open_memory(SqliteConnectOptions::new().in_memory(true))
            .await
    }

    async fn open_file(
        &self,
        connect: SqliteConnectOptions,
        database: &str,
    ) -> Result<SqliteStore, SqliteStoreError> {
        let connect = connect
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL is durable against application crashes and
            // corruption-free on power loss; FULL only adds an fsync per commit.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(self.busy_timeout);
        let pool_options = SqlitePoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout());
        let started = Instant::now();
        loop {
            let attempt = async {
                let pool = pool_options
                    .clone()
                    .connect_with(connect.clone())
                    .await
                    .map_err(|e| SqliteStoreError::from_open(database, e))?;
                let store = SqliteStore::from_pool(pool);
                if self.run_migrations {
                    store.migrate().await?;
                }
                Ok::<_, SqliteStoreError>(store)
            };
            match attempt.await {
                Err(error) if error.is_busy() && started.elapsed() < self.busy_timeout => {
                    tracing::debug!(database, "SQLite database busy while opening; retrying");
                    tokio::time::sleep(FIRST_OPEN_RETRY_PAUSE).await;
                }
                result => return result,
            }
        }
    }

    async fn open_memory(
        &self,
        connect: SqliteConnectOptions,
    ) -> Result<SqliteStore, SqliteStoreError> {
        // Each connection to a private in-memory database is a database of its
        // own, so the pool holds exactly one connection for the store's whole
        // life: never reaped, never replaced.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(self.acquire_timeout())
            .connect_with(connect.busy_timeout(self.busy_timeout))
            .await
            .map_err(|e| SqliteStoreError::from_open(":memory:", e))?;
        let store = SqliteStore::from_pool(pool);
        if self.run_migrations {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Waiting for a pooled connection: as long as a statement may wait for
    /// a lock, plus room for the queue ahead of it.
    fn acquire_timeout(&self) -> Duration {
        self.busy_timeout
            .saturating_mul(2)
            .max(Duration::from_secs(30))
    }
}

fn is_memory_url(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_urls_are_recognised() {
        assert!(is_memory_url("sqlite::memory:"));
        assert!(is_memory_url("sqlite://shared?mode=memory&cache=shared"));
        assert!(!is_memory_url("sqlite://data.db"));
        assert!(!is_memory_url("sqlite:///var/lib/x.db?mode=rwc"));
    }

    #[test]
    fn at_least_one_connection() {
        assert_eq!(
            SqliteStoreOptions::new().max_connections(0).max_connections,
            1
        );
    }
}
