//! The crate's error type, and how SQL Server's error numbers map onto it.

use std::sync::Arc;
use std::time::Duration;

use proxy_core::StoreError;

/// Backend name used in [`StoreError`]s.
pub(crate) const STORE_NAME: &str = "mssql";

// SQL Server error numbers this crate acts on.
// https://learn.microsoft.com/sql/relational-databases/errors-events/database-engine-events-and-errors
/// Cannot insert duplicate key row in object with unique index.
pub(crate) const DUPLICATE_KEY_ROW: u32 = 2601;
/// Violation of PRIMARY KEY / UNIQUE constraint.
pub(crate) const UNIQUE_CONSTRAINT: u32 = 2627;
/// A statement failed because the session's SET options do not allow
/// writing a table with a filtered index.
pub(crate) const WRONG_SET_OPTIONS: u32 = 1934;
/// Invalid object name.
const INVALID_OBJECT_NAME: u32 = 208;
/// Invalid column name.
const INVALID_COLUMN_NAME: u32 = 207;
/// Cannot find the object (sequence, schema…) or no permission on it.
const OBJECT_NOT_FOUND: u32 = 2812;
/// Permission denied on object / schema / database.
const PERMISSION_CODES: [u32; 6] = [229, 230, 262, 297, 300, 916];
/// Login failed; cannot open the requested database.
const LOGIN_CODES: [u32; 6] = [18456, 18452, 18486, 18487, 18488, 4060];
/// Deadlock victim.
pub(crate) const DEADLOCK_VICTIM: u32 = 1205;
/// Lock request time out period exceeded (`SET LOCK_TIMEOUT`).
const LOCK_TIMEOUT_EXCEEDED: u32 = 1222;
/// Azure SQL / failover errors after which the session is gone.
const FAILOVER_CODES: [u32; 8] = [40197, 40501, 40613, 49918, 49919, 49920, 4221, 10928];
/// Errors of this severity or higher close the connection.
const FATAL_SEVERITY: u8 = 20;

/// What went wrong in the SQL Server store.
///
/// The constructors ([`MssqlStore::connect`](crate::MssqlStore::connect) and
/// friends) and [`MssqlStore::migrate`](crate::MssqlStore::migrate) return it
/// directly; the [`ReservationStore`](proxy_core::ReservationStore) methods
/// convert it into [`StoreError`], keeping it as the source. The tiberius
/// error is always kept as the source, except for a connection string that
/// fails to parse (the parser's message may quote part of a password).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MssqlStoreError {
    /// The connection string or URL could not be parsed. The text itself is
    /// never shown: it may hold a password.
    #[error("invalid SQL Server connection string: {reason}")]
    InvalidConnectionString {
        /// What is wrong, without quoting the text.
        reason: String,
    },
    /// A store option has a value the store cannot use.
    #[error("invalid store option {option} = {value:?}: {reason}")]
    InvalidOption {
        /// The option (`schema`, `max_connections`…).
        option: &'static str,
        /// The rejected value (never a credential).
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The TCP connection to the server could not be opened.
    #[error("cannot reach SQL Server at {server}")]
    Unreachable {
        /// `host:port` (never credentials).
        server: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Opening the connection took longer than the connect timeout.
    #[error("connecting to SQL Server at {server} timed out after {after:?}")]
    ConnectTimeout {
        /// `host:port`.
        server: String,
        /// The connect timeout.
        after: Duration,
    },
    /// The TLS handshake or the TDS login failed for a reason other than
    /// the credentials (server closed the connection, certificate rejected…).
    #[error("cannot open a session on SQL Server at {server}")]
    Handshake {
        /// `host:port`.
        server: String,
        /// The driver's error.
        #[source]
        source: tiberius::error::Error,
    },
    /// The server refused the login or the database: wrong user or password,
    /// unknown database, or no access to it.
    #[error("SQL Server at {server} refused the login or the database")]
    LoginFailed {
        /// `host:port`.
        server: String,
        /// The server's error (it names the user, never the password).
        #[source]
        source: tiberius::error::Error,
    },
    /// A session SET option that filtered indexes require has the wrong
    /// value even after the store set it (a logon trigger, a proxy or a
    /// server default overriding it).
    #[error(
        "SQL Server session option {option} is {found}, but the filtered unique index needs it {expected}"
    )]
    SessionOption {
        /// The SET option (`QUOTED_IDENTIFIER`, `ANSI_NULLS`…).
        option: &'static str,
        /// What `SESSIONPROPERTY` reported (`ON`, `OFF` or `unknown`).
        found: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// The server rejected a write because SET options required by the
    /// filtered index were wrong (error 1934).
    #[error(
        "SQL Server rejected the write: SET options {options:?} have incorrect settings for the filtered index"
    )]
    WrongSetOptions {
        /// The options named in the server's message.
        options: Vec<String>,
        /// The server's error.
        #[source]
        source: tiberius::error::Error,
    },
    /// The reservation table, its sequence or a column is missing: the
    /// database was not migrated (or not to this version).
    #[error("SQL Server reservation schema missing or outdated: run MssqlStore::migrate()")]
    SchemaMissing {
        /// The server's error (invalid object or column name).
        #[source]
        source: tiberius::error::Error,
    },
    /// The login lacks a permission the store needs.
    #[error("SQL Server denied a permission the reservation store needs")]
    PermissionDenied {
        /// The server's error.
        #[source]
        source: tiberius::error::Error,
    },
    /// The statement was chosen as a deadlock victim or waited longer than
    /// the lock timeout; its transaction was rolled back, nothing changed.
    /// Retrying later may succeed.
    #[error("SQL Server lock wait failed; the statement was rolled back")]
    Busy {
        /// The server's error (1205 or 1222).
        #[source]
        source: tiberius::error::Error,
    },
    /// The connection broke, timed out or lost sync mid-operation: a write
    /// may or may not have taken effect.
    #[error("SQL Server connection lost mid-operation: the outcome is unknown")]
    ConnectionLost {
        /// The driver's error.
        #[source]
        source: tiberius::error::Error,
    },
    /// No pooled connection became available in time.
    #[error("no SQL Server connection available after {waited:?}")]
    PoolTimeout {
        /// The pool's connection timeout.
        waited: Duration,
        /// The last error seen while opening a connection, if any.
        #[source]
        last_error: Option<Arc<MssqlStoreError>>,
    },
    /// A stored migration differs from the one embedded in this crate.
    #[error(
        "SQL Server migration {version} ({name}) was applied with different contents (checksum {applied}, this build has {embedded})"
    )]
    MigrationChanged {
        /// The migration version.
        version: i32,
        /// The migration name.
        name: &'static str,
        /// The checksum recorded when it was applied.
        applied: String,
        /// The checksum of the embedded script.
        embedded: String,
    },
    /// The database holds a migration newer than this build knows.
    #[error(
        "SQL Server schema is at migration {found}, newer than this build's {known}: upgrade store-mssql"
    )]
    UnknownMigration {
        /// The newest migration recorded in the database.
        found: i32,
        /// The newest migration this build embeds.
        known: i32,
    },
    /// Applying a migration failed.
    #[error("SQL Server migration {version} ({name}) failed")]
    Migration {
        /// The migration version.
        version: i32,
        /// The migration name.
        name: &'static str,
        /// What went wrong.
        #[source]
        source: Box<MssqlStoreError>,
    },
    /// A result did not have the expected shape (a column missing or of
    /// another type): the table was changed by something other than this
    /// crate.
    #[error("unexpected SQL Server result: {what}")]
    UnexpectedResult {
        /// What was expected.
        what: String,
        /// The driver's error, if any.
        #[source]
        source: Option<tiberius::error::Error>,
    },
    /// Any other server or driver error.
    #[error("SQL Server error")]
    Server {
        /// The driver's error.
        #[source]
        source: tiberius::error::Error,
    },
}

/// How an error number from the server is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerErrorKind {
    /// A unique index or constraint refused a duplicate (2601, 2627).
    UniqueViolation,
    /// Wrong SET options for the filtered index (1934).
    WrongSetOptions,
    /// Table, column or sequence missing (208, 207, 2812).
    SchemaMissing,
    /// No permission.
    PermissionDenied,
    /// Login or database refused.
    LoginFailed,
    /// Deadlock victim or lock timeout: rolled back, nothing changed.
    Busy,
    /// The session is gone (fatal severity, failover).
    ConnectionLost,
    /// Anything else.
    Other,
}

/// Classifies a server error by number and severity (class).
pub(crate) fn classify_server_error(code: u32, class: u8) -> ServerErrorKind {
    match code {
        DUPLICATE_KEY_ROW | UNIQUE_CONSTRAINT => ServerErrorKind::UniqueViolation,
        WRONG_SET_OPTIONS => ServerErrorKind::WrongSetOptions,
        INVALID_OBJECT_NAME | INVALID_COLUMN_NAME | OBJECT_NOT_FOUND => {
            ServerErrorKind::SchemaMissing
        }
        DEADLOCK_VICTIM | LOCK_TIMEOUT_EXCEEDED => ServerErrorKind::Busy,
        c if PERMISSION_CODES.contains(&c) => ServerErrorKind::PermissionDenied,
        c if LOGIN_CODES.contains(&c) => ServerErrorKind::LoginFailed,
        c if FAILOVER_CODES.contains(&c) => ServerErrorKind::ConnectionLost,
        _ if class >= FATAL_SEVERITY => ServerErrorKind::ConnectionLost,
        _ => ServerErrorKind::Other,
    }
}

/// The SET option names quoted in a 1934 message, e.g. `INSERT failed
/// because the following SET options have incorrect settings:
/// 'QUOTED_IDENTIFIER, ANSI_NULLS'. Verify that …`.
pub(crate) fn set_options_in_message(message: &str) -> Vec<String> {
    const OPTIONS: [&str; 7] = [
        "ANSI_NULLS",
        "ANSI_PADDING",
        "ANSI_WARNINGS",
        "ARITHABORT",
        "CONCAT_NULL_YIELDS_NULL",
        "NUMERIC_ROUNDABORT",
        "QUOTED_IDENTIFIER",
    ];
    // Only the part before "Verify that…", which names every option anyway.
    let named = message.split("Verify").next().unwrap_or(message);
    let mut found: Vec<(usize, &str)> = OPTIONS
        .iter()
        .filter_map(|option| named.find(option).map(|at| (at, *option)))
        .collect();
    found.sort_unstable();
    found.into_iter().map(|(_, o)| o.to_owned()).collect()
}

impl MssqlStoreError {
    /// Classifies an error from a statement on an established connection.
    pub(crate) fn from_tiberius(source: tiberius::error::Error) -> Self {
        use tiberius::error::Error as E;
        match &source {
            E::Server(token) => match classify_server_error(token.code(), token.class()) {
                ServerErrorKind::WrongSetOptions => MssqlStoreError::WrongSetOptions {
                    options: set_options_in_message(token.message()),
                    source,
                },
                ServerErrorKind::SchemaMissing => MssqlStoreError::SchemaMissing { source },
                ServerErrorKind::PermissionDenied => MssqlStoreError::PermissionDenied { source },
                ServerErrorKind::Busy => MssqlStoreError::Busy { source },
                ServerErrorKind::ConnectionLost => MssqlStoreError::ConnectionLost { source },
                ServerErrorKind::LoginFailed
                | ServerErrorKind::UniqueViolation
                | ServerErrorKind::Other => MssqlStoreError::Server { source },
            },
            // The wire is in an unknown state: whatever was sent may or may
            // not have been executed.
            E::Io { .. } | E::Protocol(_) | E::Tls(_) | E::Routing { .. } => {
                MssqlStoreError::ConnectionLost { source }
            }
            _ => MssqlStoreError::Server { source },
        }
    }

    /// Classifies an error from opening a session on `server`.
    pub(crate) fn from_login(server: &str, source: tiberius::error::Error) -> Self {
        let server = server.to_owned();
        match &source {
            tiberius::error::Error::Server(token)
                if classify_server_error(token.code(), token.class())
                    == ServerErrorKind::LoginFailed =>
            {
                MssqlStoreError::LoginFailed { server, source }
            }
            _ => MssqlStoreError::Handshake { server, source },
        }
    }

    /// The server's error number, if this error came from the server.
    pub fn server_error_number(&self) -> Option<u32> {
        match self {
            MssqlStoreError::Handshake { source, .. }
            | MssqlStoreError::LoginFailed { source, .. }
            | MssqlStoreError::WrongSetOptions { source, .. }
            | MssqlStoreError::SchemaMissing { source }
            | MssqlStoreError::PermissionDenied { source }
            | MssqlStoreError::Busy { source }
            | MssqlStoreError::ConnectionLost { source }
            | MssqlStoreError::Server { source } => source.code(),
            MssqlStoreError::Migration { source, .. } => source.server_error_number(),
            _ => None,
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind(), Kind::Unavailable | Kind::OutcomeUnknown)
    }

    /// What the caller should do about a configuration problem; `None` when
    /// this is not one.
    fn remedy(&self) -> Option<&'static str> {
        Some(match self {
            MssqlStoreError::InvalidConnectionString { .. } => "fix the connection string",
            MssqlStoreError::InvalidOption { .. } => "fix the store options",
            MssqlStoreError::LoginFailed { .. } => {
                "check the user, password and database in the connection string"
            }
            MssqlStoreError::SessionOption { .. } | MssqlStoreError::WrongSetOptions { .. } => {
                "the filtered unique index needs ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, \
                 ARITHABORT, CONCAT_NULL_YIELDS_NULL and QUOTED_IDENTIFIER ON and \
                 NUMERIC_ROUNDABORT OFF; find what overrides them (logon trigger, \
                 server 'user options')"
            }
            MssqlStoreError::SchemaMissing { .. } => "run MssqlStore::migrate()",
            MssqlStoreError::PermissionDenied { .. } => {
                "grant the login SELECT, INSERT, UPDATE, DELETE on the reservation table \
                 and UPDATE on its sequence"
            }
            MssqlStoreError::MigrationChanged { .. } | MssqlStoreError::UnknownMigration { .. } => {
                "use the store-mssql version that created this schema"
            }
            MssqlStoreError::Migration { source, .. } => return source.remedy(),
            _ => return None,
        })
    }

    /// Which [`StoreError`] variant this becomes.
    fn kind(&self) -> Kind {
        if self.remedy().is_some() {
            return Kind::Configuration;
        }
        match self {
            MssqlStoreError::Unreachable { .. }
            | MssqlStoreError::ConnectTimeout { .. }
            | MssqlStoreError::Handshake { .. }
            | MssqlStoreError::PoolTimeout { .. }
            | MssqlStoreError::Busy { .. } => Kind::Unavailable,
            MssqlStoreError::ConnectionLost { .. } => Kind::OutcomeUnknown,
            _ => Kind::Backend,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Configuration,
    Unavailable,
    OutcomeUnknown,
    Backend,
}

impl From<MssqlStoreError> for StoreError {
    fn from(error: MssqlStoreError) -> Self {
        if let Some(remedy) = error.remedy() {
            return StoreError::Configuration {
                store: STORE_NAME,
                message: remedy.to_owned(),
                source: Some(Box::new(error)),
            };
        }
        let kind = error.kind();
        let source = Box::new(error);
        match kind {
            Kind::Unavailable => StoreError::Unavailable {
                store: STORE_NAME,
                source,
            },
            Kind::OutcomeUnknown => StoreError::OutcomeUnknown {
                store: STORE_NAME,
                source,
            },
            Kind::Configuration | Kind::Backend => StoreError::Backend {
                store: STORE_NAME,
                source,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::error::Error as _;

    #[test]
    fn server_error_numbers_are_classified() {
        let cases = [
            (2601, 14, ServerErrorKind::UniqueViolation),
            (2627, 14, ServerErrorKind::UniqueViolation),
            (1934, 16, ServerErrorKind::WrongSetOptions),
            (208, 16, ServerErrorKind::SchemaMissing),
            (207, 16, ServerErrorKind::SchemaMissing),
            (2812, 16, ServerErrorKind::SchemaMissing),
            (229, 14, ServerErrorKind::PermissionDenied),
            (262, 14, ServerErrorKind::PermissionDenied),
            (18456, 14, ServerErrorKind::LoginFailed),
            (4060, 11, ServerErrorKind::LoginFailed),
            (1205, 13, ServerErrorKind::Busy),
            (1222, 16, ServerErrorKind::Busy),
            (40613, 17, ServerErrorKind::ConnectionLost),
            (40197, 17, ServerErrorKind::ConnectionLost),
            (9002, 17, ServerErrorKind::Other),
            (50000, 16, ServerErrorKind::Other),
            (823, 24, ServerErrorKind::ConnectionLost),
            (3621, 20, ServerErrorKind::ConnectionLost),
        ];
        for (code, class, expected) in cases {
            assert_eq!(classify_server_error(code, class), expected, "error {code}");
        }
    }

    #[test]
    fn set_options_are_read_from_a_1934_message() {
        let message = "INSERT failed because the following SET options have incorrect \
                       settings: 'QUOTED_IDENTIFIER, ANSI_NULLS'. Verify that SET options \
                       are correct for use with indexed views and/or indexes on computed \
                       columns and/or filtered indexes and/or query notifications and/or \
                       XML data type methods and/or spatial index operations.";
        assert_eq!(
            set_options_in_message(message),
            vec!["QUOTED_IDENTIFIER".to_owned(), "ANSI_NULLS".to_owned()]
        );
        let single = "UPDATE failed because the following SET options have incorrect \
                      settings: 'ARITHABORT'. Verify that SET options are correct";
        assert_eq!(
            set_options_in_message(single),
            vec!["ARITHABORT".to_owned()]
        );
        assert!(set_options_in_message("something else").is_empty());
    }

    #[test]
    fn io_and_protocol_errors_mean_the_outcome_is_unknown() {
        for source in [
            tiberius::error::Error::Io {
                kind: std::io::ErrorKind::ConnectionReset,
                message: "connection reset by peer".into(),
            },
            tiberius::error::Error::Io {
                kind: std::io::ErrorKind::TimedOut,
                message: "command timed out".into(),
            },
            tiberius::error::Error::Protocol("invalid token type 0".into()),
        ] {
            let error = MssqlStoreError::from_tiberius(source);
            assert!(
                matches!(error, MssqlStoreError::ConnectionLost { .. }),
                "{error:?}"
            );
            let store = StoreError::from(error);
            assert!(
                matches!(store, StoreError::OutcomeUnknown { store: "mssql", .. }),
                "{store:?}"
            );
            assert!(store.is_transient());
            // The driver's error stays reachable through the source chain.
            let ours = store.source().expect("our error");
            assert!(ours.source().is_some(), "tiberius error kept");
        }
    }

    #[test]
    fn conversion_errors_are_backend_errors() {
        let error = MssqlStoreError::from_tiberius(tiberius::error::Error::Conversion(
            "cannot convert".into(),
        ));
        assert!(matches!(error, MssqlStoreError::Server { .. }));
        assert!(matches!(
            StoreError::from(error),
            StoreError::Backend { store: "mssql", .. }
        ));
    }

    #[test]
    fn login_errors_other_than_credentials_are_handshake_failures() {
        let error = MssqlStoreError::from_login(
            "db.example:1433",
            tiberius::error::Error::Tls("certificate rejected".into()),
        );
        assert!(matches!(error, MssqlStoreError::Handshake { .. }));
        assert!(error.to_string().contains("db.example:1433"));
        assert!(matches!(
            StoreError::from(error),
            StoreError::Unavailable { .. }
        ));
    }

    #[test]
    fn configuration_problems_name_the_remedy() {
        let error = MssqlStoreError::SessionOption {
            option: "QUOTED_IDENTIFIER",
            found: "OFF",
            expected: "ON",
        };
        assert!(error.to_string().contains("QUOTED_IDENTIFIER is OFF"));
        assert!(!error.is_transient());
        match StoreError::from(error) {
            StoreError::Configuration {
                store,
                message,
                source,
            } => {
                assert_eq!(store, "mssql");
                assert!(message.contains("QUOTED_IDENTIFIER"), "{message}");
                let source = source.expect("source kept");
                assert!(source.to_string().contains("QUOTED_IDENTIFIER is OFF"));
            }
            other => panic!("{other:?}"),
        }
        let migrate = MssqlStoreError::Migration {
            version: 1,
            name: "proxy_reservation",
            source: Box::new(MssqlStoreError::PermissionDenied {
                source: tiberius::error::Error::Conversion("x".into()),
            }),
        };
        assert!(matches!(
            StoreError::from(migrate),
            StoreError::Configuration { .. }
        ));
    }

    #[test]
    fn unavailable_and_busy_are_transient() {
        let busy = MssqlStoreError::PoolTimeout {
            waited: Duration::from_secs(30),
            last_error: Some(Arc::new(MssqlStoreError::ConnectTimeout {
                server: "127.0.0.1:1433".into(),
                after: Duration::from_secs(15),
            })),
        };
        assert!(busy.is_transient());
        let store = StoreError::from(busy);
        assert!(matches!(store, StoreError::Unavailable { .. }));
        // The last connect error is reachable as the pool error's source.
        let mut chain = Vec::new();
        let mut next: Option<&dyn std::error::Error> = Some(&store);
        while let Some(error) = next {
            chain.push(error.to_string());
            next = error.source();
        }
        assert!(
            chain
                .iter()
                .any(|line| line.contains("timed out after 15s")),
            "{chain:?}"
        );
    }
}
