#![doc = include_str!("../README.md")]

mod error;
mod options;
mod store;

pub use error::SqliteStoreError;
pub use options::{DEFAULT_BUSY_TIMEOUT, DEFAULT_MAX_CONNECTIONS, SqliteStoreOptions};
pub use store::{MIGRATIONS_TABLE, SqliteStore};

/// The sqlx version this crate is built on, so callers can build a pool for
/// [`SqliteStore::from_pool`] without a version mismatch.
pub use sqlx;
