//! The store's error type and how driver errors are classified.

use proxy_core::StoreError;

/// Backend name used in [`StoreError`]s and [`proxy_core::StoreInfo`].
pub(crate) const STORE_NAME: &str = "postgres";

/// What went wrong in the PostgreSQL store.
///
/// Converts into [`StoreError`] (the core's error) with the driver error
/// kept as the source; match on this type when you call the store's own
/// methods ([`PostgresStore::connect`](crate::PostgresStore::connect),
/// [`PostgresStore::migrate`](crate::PostgresStore::migrate)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresStoreError {
    /// A schema or table name that the store does not accept.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidIdentifier {
        /// `"schema"` or `"table"`.
        kind: &'static str,
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The connection URL could not be parsed (the URL is not repeated
    /// here: it may hold a password).
    #[error("invalid PostgreSQL connection URL")]
    InvalidUrl {
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// No connection could be had (server unreachable, pool exhausted past
    /// its acquire timeout, pool closed): the statement was never sent.
    #[error("PostgreSQL unavailable for {operation}; nothing was sent")]
    Unavailable {
        /// The store operation (`"try_reserve"`, `"list"`…).
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The connection was lost, or `statement_timeout`/`lock_timeout` fired
    /// or the statement was cancelled, after the statement was sent: a write
    /// may or may not have taken effect.
    #[error(
        "PostgreSQL {operation}: connection lost or timed out mid-statement; \
         it may or may not have taken effect"
    )]
    OutcomeUnknown {
        /// The store operation.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The reservation table (or its schema, or a column) does not exist or
    /// has an unexpected shape.
    #[error("reservation table {table} is missing or outdated: run PostgresStore::migrate()")]
    SchemaMissing {
        /// The configured table, schema-qualified if a schema was set.
        table: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The server refused for a reason retrying will not fix (authentication,
    /// permissions, unknown database).
    #[error("PostgreSQL refused {operation}: {reason}")]
    Refused {
        /// The store operation.
        operation: &'static str,
        /// What was refused, in words.
        reason: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Creating or upgrading the reservation table failed.
    #[error("migrating reservation table {table} failed")]
    Migrate {
        /// The configured table, schema-qualified if a schema was set.
        table: String,
        /// The driver's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A row the store cannot read back (written by something else, e.g. an
    /// application of the original design with a non-canonical IP).
    #[error("row {id} of {table} has an invalid {column}: {value:?}")]
    InvalidRow {
        /// The configured table.
        table: String,
        /// The row id.
        id: i64,
        /// The offending column.
        column: &'static str,
        /// The stored value.
        value: String,
    },
    /// Any other database error.
    #[error("PostgreSQL {operation} failed")]
    Query {
        /// The store operation.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

impl From<PostgresStoreError> for StoreError {
    fn from(error: PostgresStoreError) -> Self {
        use PostgresStoreError as E;
        let configuration =
            |message: String, source: Option<proxy_core::BoxError>| StoreError::Configuration {
                store: STORE_NAME,
                message,
                source,
            };
        match error {
            E::InvalidIdentifier { .. } => configuration(error.to_string(), None),
            E::InvalidUrl { .. }
            | E::SchemaMissing { .. }
            | E::Refused { .. }
            | E::Migrate { .. } => {
                let message = error.to_string();
                configuration(message, Some(Box::new(error)))
            }
            E::Unavailable { .. } => StoreError::Unavailable {
                store: STORE_NAME,
                source: Box::new(error),
            },
            E::OutcomeUnknown { .. } => StoreError::OutcomeUnknown {
                store: STORE_NAME,
                source: Box::new(error),
            },
            E::InvalidRow { .. } | E::Query { .. } => StoreError::backend(STORE_NAME, error),
        }
    }
}

/// Whether an operation writes: decides what a lost connection means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// A lost connection leaves the outcome unknown.
    Write,
    /// A lost connection just means "try again".
    Read,
}

/// A store operation, for error messages and classification.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operation {
    pub(crate) name: &'static str,
    pub(crate) effect: Effect,
}

impl Operation {
    pub(crate) const fn write(name: &'static str) -> Self {
        Self {
            name,
            effect: Effect::Write,
        }
    }

    pub(crate) const fn read(name: &'static str) -> Self {
        Self {
            name,
            effect: Effect::Read,
        }
    }
}

/// The SQLSTATE of a PostgreSQL error, if it is one.
pub(crate) fn sqlstate(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .map(|pg| pg.code()),
        _ => None,
    }
}

/// The constraint a PostgreSQL error names, if any.
pub(crate) fn constraint(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

/// Classifies an error from taking a connection out of the pool (which may
/// open a new one): nothing has been sent yet.
pub(crate) fn classify_acquire(operation: Operation, error: sqlx::Error) -> PostgresStoreError {
    if let Some(reason) = refusal(&error) {
        return PostgresStoreError::Refused {
            operation: operation.name,
            reason,
            source: error,
        };
    }
    PostgresStoreError::Unavailable {
        operation: operation.name,
        source: error,
    }
}

/// Classifies an error returned after the statement was handed to the
/// connection.
pub(crate) fn classify_statement(
    operation: Operation,
    table: &str,
    error: sqlx::Error,
) -> PostgresStoreError {
    let lost = match &error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        // A pool error cannot happen on a connection we already hold, but if
        // it did, nothing was sent.
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            return PostgresStoreError::Unavailable {
                operation: operation.name,
                source: error,
            };
        }
        sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::TypeNotFound { .. } => {
            return PostgresStoreError::SchemaMissing {
                table: table.to_owned(),
                source: error,
            };
        }
        _ => match sqlstate(&error) {
            Some(code) => interrupted(code),
            None => false,
        },
    };
    if lost {
        return match operation.effect {
            Effect::Write => PostgresStoreError::OutcomeUnknown {
                operation: operation.name,
                source: error,
            },
            Effect::Read => PostgresStoreError::Unavailable {
                operation: operation.name,
                source: error,
            },
        };
    }
    match sqlstate(&error) {
        // undefined_table, invalid_schema_name, undefined_column,
        // undefined_object (e.g. the sequence)
        Some("42P01" | "3F000" | "42703" | "42704") => PostgresStoreError::SchemaMissing {
            table: table.to_owned(),
            source: error,
        },
        _ => match refusal(&error) {
            Some(reason) => PostgresStoreError::Refused {
                operation: operation.name,
                reason,
                source: error,
            },
            None => PostgresStoreError::Query {
                operation: operation.name,
                source: error,
            },
        },
    }
}

/// SQLSTATEs meaning the statement was interrupted rather than refused:
/// a cancel or `statement_timeout` (57014), `lock_timeout` (55P03), the
/// server shutting down or terminating the session (57P0x), or a
/// connection failure (class 08).
fn interrupted(code: &str) -> bool {
    matches!(code, "57014" | "55P03") || code.starts_with("57P") || code.starts_with("08")
}

/// Errors retrying will not fix.
fn refusal(error: &sqlx::Error) -> Option<&'static str> {
    match error {
        sqlx::Error::Configuration(_) => Some("invalid connection settings"),
        sqlx::Error::Tls(_) => Some("TLS negotiation failed"),
        _ => match sqlstate(error)? {
            code if code.starts_with("28") => Some("authentication failed"),
            "3D000" => Some("the database does not exist"),
            "42501" => Some("insufficient privilege"),
            _ => None,
        },
    }
}
