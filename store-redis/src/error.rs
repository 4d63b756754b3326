//! The crate's error type and its mapping onto [`StoreError`].

use proxy_core::StoreError;
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// The backend name reported in [`StoreError`]s and [`proxy_core::StoreInfo`].
pub(crate) const STORE_NAME: &str = "redis";

/// What the store was doing when Redis failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `try_reserve`.
    Reserve,
    /// `release`.
    Release,
    /// `release_with_cooldown`.
    Cooldown,
    /// `renew`.
    Renew,
    /// `release_by_id`.
    ReleaseById,
    /// `list` (index reads, `SCAN`, topology discovery).
    List,
}

impl Operation {
    /// Whether the operation writes: a write whose connection dropped may or
    /// may not have happened.
    pub fn writes(self) -> bool {
        !matches!(self, Operation::List)
    }

    fn name(self) -> &'static str {
        match self {
            Operation::Reserve => "reserve",
            Operation::Release => "release",
            Operation::Cooldown => "cooldown",
            Operation::Renew => "renew",
            Operation::ReleaseById => "release by id",
            Operation::List => "list",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors of the Redis store.
///
/// Messages never contain the connection URL (it may carry a password).
/// Converts into [`StoreError`]: a dropped connection or timeout during a
/// write becomes [`StoreError::OutcomeUnknown`], a refused connection or a
/// cluster that is down or resharding [`StoreError::Unavailable`], bad
/// settings or credentials [`StoreError::Configuration`], anything else
/// [`StoreError::Backend`]; the driver's error is kept as the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The configured key prefix cannot be used.
    #[error("invalid Redis key prefix {prefix:?}: {reason}")]
    InvalidKeyPrefix {
        /// The rejected prefix.
        prefix: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// `connect_cluster` was given no node URL.
    #[error("no Redis Cluster node URL given")]
    NoClusterNodes,
    /// A connection URL did not parse (the URL is not repeated here: it may
    /// hold a password).
    #[error("invalid Redis URL")]
    InvalidUrl {
        /// The driver's error.
        #[source]
        source: RedisError,
    },
    /// The first connection could not be established.
    #[error("cannot connect to Redis")]
    Connect {
        /// The driver's error.
        #[source]
        source: RedisError,
    },
    /// A command or script failed.
    #[error("Redis {operation} failed")]
    Command {
        /// What the store was doing.
        operation: Operation,
        /// The driver's error.
        #[source]
        source: RedisError,
    },
    /// Redis answered something the store did not write or expect (another
    /// program writing under this store's key prefix, or a version mismatch).
    #[error("unexpected Redis reply to {operation}: {detail}")]
    UnexpectedReply {
        /// What the store was doing.
        operation: Operation,
        /// What was wrong with the reply.
        detail: String,
    },
}

impl RedisStoreError {
    pub(crate) fn command(operation: Operation) -> impl FnOnce(RedisError) -> Self {
        move |source| RedisStoreError::Command { operation, source }
    }

    pub(crate) fn unexpected(operation: Operation, detail: impl Into<String>) -> Self {
        RedisStoreError::UnexpectedReply {
            operation,
            detail: detail.into(),
        }
    }

    /// How the error should be reported through the store contract.
    fn class(&self) -> Class {
        match self {
            RedisStoreError::InvalidKeyPrefix { .. }
            | RedisStoreError::NoClusterNodes
            | RedisStoreError::InvalidUrl { .. } => Class::Configuration,
            RedisStoreError::Connect { source } => match classify(source) {
                Class::Configuration => Class::Configuration,
                _ => Class::Unavailable,
            },
            RedisStoreError::Command { operation, source } => match classify(source) {
                Class::OutcomeUnknown if !operation.writes() => Class::Unavailable,
                class => class,
            },
            RedisStoreError::UnexpectedReply { .. } => Class::Backend,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Configuration,
    Unavailable,
    OutcomeUnknown,
    Backend,
}

/// Sorts a driver error by what a caller can do about it.
fn classify(error: &RedisError) -> Class {
    // Refused: nothing was sent. Checked before the other I/O cases, which
    // include refusals among "dropped".
    if error.is_connection_refusal() {
        return Class::Unavailable;
    }
    match error.kind() {
        ErrorKind::AuthenticationFailed
        | ErrorKind::InvalidClientConfig
        | ErrorKind::Server(ServerErrorKind::NoPerm) => Class::Configuration,
        // The server refused before running anything: down, loading, moving
        // slots, or a write reached a replica. Retrying later can succeed.
        ErrorKind::Server(
            ServerErrorKind::ClusterDown
            | ServerErrorKind::TryAgain
            | ServerErrorKind::MasterDown
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask
            | ServerErrorKind::ReadOnly,
        )
        | ErrorKind::ClusterConnectionNotFound => Class::Unavailable,
        // The request may have reached the server before the connection
        // dropped or the reply timed out.
        ErrorKind::Io => Class::OutcomeUnknown,
        _ => Class::Backend,
    }
}

impl From<RedisStoreError> for StoreError {
    fn from(error: RedisStoreError) -> Self {
        match error.class() {
            Class::Configuration => StoreError::Configuration {
                store: STORE_NAME,
                message: error.to_string(),
                source: Some(Box::new(error)),
            },
            Class::Unavailable => StoreError::Unavailable {
                store: STORE_NAME,
                source: Box::new(error),
            },
            Class::OutcomeUnknown => StoreError::OutcomeUnknown {
                store: STORE_NAME,
                source: Box::new(error),
            },
            Class::Backend => StoreError::backend(STORE_NAME, error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn io_error(kind: io::ErrorKind) -> RedisError {
        RedisError::from(io::Error::new(kind, "test"))
    }

    fn command(operation: Operation, source: RedisError) -> StoreError {
        RedisStoreError::Command { operation, source }.into()
    }

    #[test]
    fn dropped_connection_during_a_write_is_outcome_unknown() {
        for kind in [
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::TimedOut,
        ] {
            for op in [
                Operation::Reserve,
                Operation::Release,
                Operation::Cooldown,
                Operation::Renew,
                Operation::ReleaseById,
            ] {
                let error = command(op, io_error(kind));
                assert!(
                    matches!(error, StoreError::OutcomeUnknown { .. }),
                    "{op} {kind:?}: {error:?}"
                );
            }
            // A read that failed changed nothing.
            assert!(matches!(
                command(Operation::List, io_error(kind)),
                StoreError::Unavailable { .. }
            ));
        }
    }

    #[test]
    fn refused_connection_is_unavailable() {
        let error = command(
            Operation::Reserve,
            io_error(io::ErrorKind::ConnectionRefused),
        );
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
        assert!(error.is_transient());
        let error: StoreError = RedisStoreError::Connect {
            source: io_error(io::ErrorKind::ConnectionRefused),
        }
        .into();
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    }

    #[test]
    fn a_cluster_that_is_down_or_moving_is_unavailable() {
        for kind in [
            ServerErrorKind::ClusterDown,
            ServerErrorKind::TryAgain,
            ServerErrorKind::MasterDown,
            ServerErrorKind::BusyLoading,
            ServerErrorKind::Moved,
            ServerErrorKind::Ask,
            ServerErrorKind::ReadOnly,
        ] {
            let error = command(
                Operation::Reserve,
                RedisError::from((ErrorKind::Server(kind), "test")),
            );
            assert!(
                matches!(error, StoreError::Unavailable { .. }),
                "{kind:?}: {error:?}"
            );
        }
        let script = RedisError::from((ErrorKind::Server(ServerErrorKind::ResponseError), "ERR"));
        assert!(matches!(
            command(Operation::Reserve, script),
            StoreError::Backend { .. }
        ));
    }

    #[test]
    fn configuration_errors_are_not_transient() {
        let error: StoreError = RedisStoreError::NoClusterNodes.into();
        assert!(matches!(error, StoreError::Configuration { .. }));
        assert!(!error.is_transient());
        let auth = RedisError::from((ErrorKind::AuthenticationFailed, "bad password"));
        let error = command(Operation::Reserve, auth);
        assert!(
            matches!(error, StoreError::Configuration { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn other_errors_are_backend_errors_with_sources_kept() {
        let error: StoreError = RedisStoreError::unexpected(Operation::Reserve, "x").into();
        assert!(matches!(error, StoreError::Backend { .. }));
        let parse = RedisError::from((ErrorKind::UnexpectedReturnType, "type"));
        let error = command(Operation::Renew, parse);
        assert!(matches!(error, StoreError::Backend { .. }), "{error:?}");
        let source = std::error::Error::source(&error).unwrap();
        let ours = source.downcast_ref::<RedisStoreError>().unwrap();
        assert!(std::error::Error::source(ours).is_some());
    }
}
