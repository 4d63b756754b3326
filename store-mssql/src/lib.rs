#![doc = include_str!("../README.md")]

mod connection;
mod error;
mod migrate;
mod options;
mod sql;
mod store;

pub use connection::DEFAULT_PORT;
pub use error::MssqlStoreError;
pub use options::{
    DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_LOCK_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_SCHEMA, MssqlStoreOptions,
};
pub use sql::{GENERATION_SEQUENCE, MIGRATIONS_TABLE, TABLE};
pub use store::MssqlStore;

/// The tiberius version this crate is built on, for
/// [`MssqlStore::connect_config`] and for matching error types.
pub use tiberius;
