//! The crate's error type and how SQLite's result codes map onto it.

use proxy_core::StoreError;

/// Backend name used in [`StoreError`]s.
pub(crate) const STORE_NAME: &str = "sqlite";

// Primary SQLite result codes (the low byte of an extended code).
// https://www.sqlite.org/rescode.html
const SQLITE_ERROR: i32 = 1;
const SQLITE_PERM: i32 = 3;
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_READONLY: i32 = 8;
const SQLITE_CANTOPEN: i32 = 14;
const SQLITE_AUTH: i32 = 23;
const SQLITE_NOTADB: i32 = 26;

/// What went wrong in the SQLite store.
///
/// Converts into [`StoreError`] for the [`ReservationStore`] methods; the
/// constructors ([`SqliteStore::open`] and friends) return it directly. The
/// sqlx error is always kept as the source.
///
/// [`ReservationStore`]: proxy_core::ReservationStore
/// [`SqliteStore::open`]: crate::SqliteStore::open
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteStoreError {
    /// The connection URL is not a valid SQLite URL.
    #[error("invalid SQLite connection URL {url:?}")]
    InvalidUrl {
        /// The URL as given (SQLite URLs carry no credentials).
        url: String,
        /// The parse error.
        #[source]
        source: sqlx::Error,
    },
    /// The database file could not be opened or created (missing directory,
    /// permissions, not a database).
    #[error("cannot open SQLite database {database}")]
    Open {
        /// The file name or URL.
        database: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The reservation tables are missing: the database was never migrated.
    #[error("SQLite reservation schema missing: run SqliteStore::migrate()")]
    SchemaMissing {
        /// The driver's error (`no such table`).
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("SQLite migration failed")]
    Migrate {
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The database cannot be written: opened read-only, or the file or its
    /// directory is not writable by this process.
    #[error("SQLite database is not writable")]
    NotWritable {
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Another connection or process kept the database locked for longer than
    /// the busy timeout; nothing was written. Retrying later may succeed.
    #[error("SQLite database stayed locked longer than the busy timeout")]
    Busy {
        /// The driver's error (`SQLITE_BUSY` / `SQLITE_LOCKED`).
        #[source]
        source: sqlx::Error,
    },
    /// No pooled connection became free in time, or the pool was closed.
    #[error("no SQLite connection available")]
    PoolUnavailable {
        /// The pool's error.
        #[source]
        source: sqlx::Error,
    },
    /// A commit failed or the connection's worker died mid-operation: the
    /// change may or may not have been stored.
    #[error("SQLite write interrupted: the outcome is unknown")]
    OutcomeUnknown {
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A stored row holds a value this crate cannot read (written by
    /// something other than this crate).
    #[error("proxy_reservation row {id} has an unreadable {column}: {value:?}")]
    CorruptRow {
        /// The row id.
        id: i64,
        /// The column.
        column: &'static str,
        /// The stored text.
        value: String,
    },
    /// Any other SQLite error (disk full, I/O error, corruption…).
    #[error("SQLite error")]
    Database {
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

impl SqliteStoreError {
    /// Classifies an error from a statement or a pool checkout.
    pub(crate) fn from_sqlx(source: sqlx::Error) -> Self {
        match &source {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                SqliteStoreError::PoolUnavailable { source }
            }
            sqlx::Error::WorkerCrashed => SqliteStoreError::OutcomeUnknown { source },
            sqlx::Error::Database(db) => {
                let code = db
                    .code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .unwrap_or_default();
                match code & 0xff {
                    SQLITE_BUSY | SQLITE_LOCKED => SqliteStoreError::Busy { source },
                    SQLITE_READONLY | SQLITE_PERM | SQLITE_AUTH => {
                        SqliteStoreError::NotWritable { source }
                    }
                    SQLITE_ERROR if is_missing_schema(db.message()) => {
                        SqliteStoreError::SchemaMissing { source }
                    }
                    _ => SqliteStoreError::Database { source },
                }
            }
            _ => SqliteStoreError::Database { source },
        }
    }

    /// Classifies an error from opening a database: anything that is not a
    /// lock is a problem with the file or its settings.
    pub(crate) fn from_open(database: &str, source: sqlx::Error) -> Self {
        let code = source
            .as_database_error()
            .and_then(|db| db.code())
            .and_then(|c| c.parse::<i32>().ok())
            .unwrap_or_default();
        match code & 0xff {
            SQLITE_BUSY | SQLITE_LOCKED => SqliteStoreError::Busy { source },
            SQLITE_READONLY | SQLITE_PERM | SQLITE_AUTH => SqliteStoreError::NotWritable { source },
            SQLITE_CANTOPEN | SQLITE_NOTADB => SqliteStoreError::Open {
                database: database.to_owned(),
                source,
            },
            _ => match Self::from_sqlx(source) {
                SqliteStoreError::Database { source } => SqliteStoreError::Open {
                    database: database.to_owned(),
                    source,
                },
                other => other,
            },
        }
    }

    /// Classifies a migration error, keeping lock errors recognisable so a
    /// concurrent first open can be retried.
    pub(crate) fn from_migrate(source: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError;
        match source {
            MigrateError::Execute(inner) | MigrateError::ExecuteMigration(inner, _)
                if Self::is_lock_error(&inner) =>
            {
                SqliteStoreError::Busy { source: inner }
            }
            source => SqliteStoreError::Migrate { source },
        }
    }

    /// Classifies an error from `COMMIT`: the write may or may not be
    /// durable, unless SQLite says the database was locked (then nothing was
    /// committed).
    pub(crate) fn from_commit(source: sqlx::Error) -> Self {
        match Self::from_sqlx(source) {
            SqliteStoreError::Database { source } => SqliteStoreError::OutcomeUnknown { source },
            other => other,
        }
    }

    /// Whether this is SQLite saying the database is locked.
    pub fn is_busy(&self) -> bool {
        matches!(self, SqliteStoreError::Busy { .. })
    }

    fn is_lock_error(error: &sqlx::Error) -> bool {
        error
            .as_database_error()
            .and_then(|db| db.code())
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
    }
}

fn is_missing_schema(message: &str) -> bool {
    message.starts_with("no such table") || message.starts_with("no such column")
}

impl From<sqlx::Error> for SqliteStoreError {
    fn from(source: sqlx::Error) -> Self {
        Self::from_sqlx(source)
    }
}

impl From<SqliteStoreError> for StoreError {
    fn from(error: SqliteStoreError) -> Self {
        match error {
            SqliteStoreError::Busy { .. } | SqliteStoreError::PoolUnavailable { .. } => {
                StoreError::Unavailable {
                    store: STORE_NAME,
                    source: Box::new(error),
                }
            }
            SqliteStoreError::OutcomeUnknown { .. } => StoreError::OutcomeUnknown {
                store: STORE_NAME,
                source: Box::new(error),
            },
            SqliteStoreError::InvalidUrl { .. }
            | SqliteStoreError::Open { .. }
            | SqliteStoreError::SchemaMissing { .. }
            | SqliteStoreError::Migrate { .. }
            | SqliteStoreError::NotWritable { .. } => StoreError::Configuration {
                store: STORE_NAME,
                message: error.to_string(),
                source: Some(Box::new(error)),
            },
            SqliteStoreError::CorruptRow { .. } | SqliteStoreError::Database { .. } => {
                StoreError::backend(STORE_NAME, error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn pool_errors_are_unavailable_and_transient() {
        let error: StoreError = SqliteStoreError::from_sqlx(sqlx::Error::PoolTimedOut).into();
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
        assert!(error.is_transient());
    }

    #[test]
    fn crashed_worker_is_outcome_unknown() {
        let error: StoreError = SqliteStoreError::from_sqlx(sqlx::Error::WorkerCrashed).into();
        assert!(
            matches!(error, StoreError::OutcomeUnknown { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn configuration_errors_keep_their_source() {
        let error: StoreError = SqliteStoreError::Migrate {
            source: sqlx::migrate::MigrateError::VersionMissing(7),
        }
        .into();
        match &error {
            StoreError::Configuration {
                message, source, ..
            } => {
                assert!(message.contains("migration"), "{message}");
                let source = source.as_ref().expect("source kept");
                assert!(source.downcast_ref::<SqliteStoreError>().is_some());
            }
            other => panic!("expected Configuration, got {other:?}"),
        }
        assert!(!error.is_transient());
    }

    #[test]
    fn missing_schema_messages() {
        assert!(is_missing_schema("no such table: proxy_reservation"));
        assert!(is_missing_schema("no such column: generation"));
        assert!(!is_missing_schema("near \"SELEC\": syntax error"));
    }
}
