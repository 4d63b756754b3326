#![doc = include_str!("../README.md")]

mod connections;
mod error;
mod identifier;
mod options;
mod schema;
mod sql;
mod store;

pub use error::PostgresStoreError;
pub use identifier::{Identifier, MAX_IDENTIFIER_BYTES};
pub use options::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_LOCK_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_STATEMENT_TIMEOUT, PostgresStoreBuilder, StatementMode,
};
/// The sqlx version this crate is built on, so callers can build pools and
/// options with the matching types.
pub use sqlx;
pub use store::PostgresStore;
