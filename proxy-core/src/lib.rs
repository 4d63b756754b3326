#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod input;
mod key;
mod manager;
mod memory;
mod provider;
mod proxy;
mod settings;
mod store;
mod verifier;

pub use input::InvalidInput;
pub use key::{
    AppId, MAX_APP_ID_BYTES, MAX_DOMAIN_BYTES, MAX_TTL, ReservationKey, TargetDomain, Ttl,
    normalize_ip,
};
pub use manager::{
    AcquireError, AcquireStats, BuildError, KeepAlive, LeaseStatus, Proxy, ProxyManager,
    ProxyManagerBuilder,
};
pub use memory::{DEFAULT_HISTORY_LIMIT, MemoryStore};
pub use provider::ProxyProvider;
pub use proxy::{
    MAX_SESSION_ID_BYTES, Protocol, ProxyData, ProxyUrl, SOCKS5_MAX_CREDENTIAL_BYTES, SessionId,
};
pub use settings::{DEFAULT_JUDGES, ENV_VARS, Settings, SettingsError};
pub use store::{
    BoxError, Lease, LeaseId, ListFilter, ReleaseOutcome, RenewOutcome, Reservation,
    ReservationState, ReservationStore, ReservationStoreExt, ReserveOutcome, StoreError, StoreInfo,
};
pub use verifier::{IpVerifier, JudgeFailure, ProxyFailure, VerifiedExit, VerifyError};

/// Re-exported so implementors of the async traits use the same version.
pub use async_trait::async_trait;
/// Re-exported so users can build and read [`ProxyData`] passwords.
pub use secrecy;
