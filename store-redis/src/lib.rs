#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod connection;
mod error;
mod grant;
mod keys;
mod scripts;
mod store;

pub use error::{Operation, RedisStoreError};
pub use keys::DEFAULT_KEY_PREFIX;
pub use store::{
    DEFAULT_CONNECTION_TIMEOUT, DEFAULT_CONNECTIONS, DEFAULT_GENERATION_MEMORY,
    DEFAULT_RESPONSE_TIMEOUT, RedisStore, RedisStoreBuilder,
};

/// The Redis driver this store is built on, so callers use the same version
/// (for [`RedisStoreBuilder::with_connection_manager`] and friends).
pub use redis;
