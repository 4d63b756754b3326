//! The reservation store: who may use which exit IP against which site.

use std::fmt::{self, Debug};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::input::InvalidInput;
use crate::key::{AppId, ReservationKey, TargetDomain, Ttl, normalize_ip};

/// The boxed error a backend keeps as the source of a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A store-issued lease id.
///
/// Opaque text: SQL stores use the row id, other stores their own scheme.
/// Operators pass it back to [`ReservationStore::release_by_id`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseId(String);

impl LeaseId {
    /// Wraps a store's id text.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<i64> for LeaseId {
    fn from(value: i64) -> Self {
        Self(value.to_string())
    }
}

impl From<u64> for LeaseId {
    fn from(value: u64) -> Self {
        Self(value.to_string())
    }
}

impl fmt::Debug for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A granted reservation: proof that its holder may use `ip` against
/// `domain` until `expires_at` (on the store's clock).
///
/// `id` and `generation` together identify this grant: release, renew and
/// cooldown act only on the grant they are given, never on a later holder's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Lease {
    /// The store-issued id.
    pub id: LeaseId,
    /// Fencing generation: strictly greater than that of every earlier lease
    /// of the same key.
    pub generation: u64,
    /// The exit IP (canonical).
    pub ip: IpAddr,
    /// The target domain (normalised).
    pub domain: TargetDomain,
    /// The application holding the lease.
    pub app_id: AppId,
    /// When the store granted it, on the store's clock.
    pub reserved_at: DateTime<Utc>,
    /// When it expires unless renewed, on the store's clock.
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    /// Assembles a lease; for store implementations.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: LeaseId,
        generation: u64,
        key: &ReservationKey,
        app_id: AppId,
        reserved_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            generation,
            ip: key.ip(),
            domain: key.domain().clone(),
            app_id,
            reserved_at,
            expires_at,
        }
    }

    /// The key this lease reserves.
    pub fn key(&self) -> ReservationKey {
        ReservationKey::new(self.ip, self.domain.clone())
    }

    /// The lifetime granted, `expires_at - reserved_at`.
    pub fn ttl(&self) -> Duration {
        (self.expires_at - self.reserved_at)
            .to_std()
            .unwrap_or(Duration::ZERO)
    }
}

/// What kind of hold a listed reservation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReservationState {
    /// Held by a worker.
    Held,
    /// A cooldown hold owned by nobody (see
    /// [`ReservationStore::release_with_cooldown`]).
    CoolingDown,
    /// Released (history; only with [`ListFilter::include_released`]).
    Released,
    /// Expired without release (history; only with
    /// [`ListFilter::include_released`]).
    Expired,
}

impl fmt::Display for ReservationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReservationState::Held => "held",
            ReservationState::CoolingDown => "cooling_down",
            ReservationState::Released => "released",
            ReservationState::Expired => "expired",
        })
    }
}

/// One row of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Reservation {
    /// The lease as granted (for a cooldown, the lease it came from, with
    /// the cooldown's own generation and expiry).
    pub lease: Lease,
    /// Held, cooling down, or history.
    pub state: ReservationState,
    /// When it was released, for released rows.
    pub released_at: Option<DateTime<Utc>>,
}

impl Reservation {
    /// Assembles a listing row; for store implementations.
    pub fn new(lease: Lease, state: ReservationState, released_at: Option<DateTime<Utc>>) -> Self {
        Self {
            lease,
            state,
            released_at,
        }
    }
}

/// Which reservations to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListFilter {
    /// Only this domain.
    pub domain: Option<TargetDomain>,
    /// Only this app.
    pub app_id: Option<AppId>,
    /// Include released and expired rows (stores that keep history only;
    /// see [`StoreInfo::keeps_history`]).
    pub include_released: bool,
    /// At most this many rows (newest first); `None` for all.
    pub limit: Option<u32>,
}

impl ListFilter {
    /// Every active reservation.
    pub fn all() -> Self {
        Self::default()
    }

    /// Active reservations of one domain.
    pub fn domain(domain: TargetDomain) -> Self {
        Self {
            domain: Some(domain),
            ..Self::default()
        }
    }

    /// Active reservations of one app.
    pub fn app(app_id: AppId) -> Self {
        Self {
            app_id: Some(app_id),
            ..Self::default()
        }
    }

    /// Also list released and expired rows.
    pub fn with_released(mut self) -> Self {
        self.include_released = true;
        self
    }

    /// Restricts to one app.
    pub fn with_app(mut self, app_id: AppId) -> Self {
        self.app_id = Some(app_id);
        self
    }

    /// Caps the number of rows.
    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Whether `reservation` passes the domain and app conditions (the state
    /// condition is the store's business).
    pub fn matches(&self, lease: &Lease) -> bool {
        self.domain.as_ref().is_none_or(|d| *d == lease.domain)
            && self.app_id.as_ref().is_none_or(|a| *a == lease.app_id)
    }
}

/// The result of [`ReservationStore::try_reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum ReserveOutcome {
    /// The key is yours until the lease expires.
    Reserved(Lease),
    /// Someone else holds the key (or it is cooling down).
    Taken,
}

/// The result of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[must_use]
pub enum ReleaseOutcome {
    /// The lease was live and is now released (or turned into a cooldown).
    Released,
    /// The lease was no longer held: already released, expired, taken over
    /// or unknown. Nothing changed.
    NotHeld,
}

/// The result of [`ReservationStore::renew`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum RenewOutcome {
    /// The lease was live; here it is with its new expiry.
    Renewed(Lease),
    /// The lease had expired, been released or taken over; nothing changed.
    Lost,
}

/// What a store is and what it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreInfo {
    /// Short backend name (`"memory"`, `"sqlite"`, `"postgres"`…).
    pub name: &'static str,
    /// Whether released rows are kept until purged (SQL stores) or dropped
    /// at once (Redis).
    pub keeps_history: bool,
}

impl StoreInfo {
    /// Describes a backend.
    pub const fn new(name: &'static str, keeps_history: bool) -> Self {
        Self {
            name,
            keeps_history,
        }
    }
}

/// A store operation failed.
///
/// Backends keep their driver's error as the source. A connection lost or a
/// timeout during a write is [`StoreError::OutcomeUnknown`]: the write may or
/// may not have happened, so it is never reported as `Taken` or as success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The input was rejected before anything was sent.
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),
    /// The store could not be reached; nothing was attempted.
    #[error("{store} store unavailable")]
    Unavailable {
        /// Backend name.
        store: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The connection was lost or timed out mid-operation: the operation may
    /// or may not have taken effect.
    #[error("{store} store: outcome unknown")]
    OutcomeUnknown {
        /// Backend name.
        store: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The store is misconfigured (missing schema, wrong settings,
    /// permissions); retrying will not help.
    #[error("{store} store misconfigured: {message}")]
    Configuration {
        /// Backend name.
        store: &'static str,
        /// What is wrong.
        message: String,
        /// The driver's error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other backend error.
    #[error("{store} store error")]
    Backend {
        /// Backend name.
        store: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// Wraps a driver error that is neither a connectivity nor a
    /// configuration problem.
    pub fn backend(store: &'static str, source: impl Into<BoxError>) -> Self {
        StoreError::Backend {
            store,
            source: source.into(),
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable { .. } | StoreError::OutcomeUnknown { .. }
        )
    }
}

/// Where reservations live: the one arbiter of which worker may use which
/// exit IP against which site.
///
/// # Contract
///
/// Every implementation keeps these rules; the conformance suite in the
/// `testkit` crate checks them, and third-party stores should run it too.
///
/// A reservation is an **efficiency lease, not a correctness lock**: a target
/// site cannot check fencing tokens, so a holder that stalls past its TTL can
/// overlap with the next holder. Within that:
///
/// - **Key.** A reservation is for one [`ReservationKey`]: a canonical exit IP
///   and a normalised target domain. Normalisation happens in the key types,
///   so a store never sees two spellings of one key.
/// - **Exclusion.** At most one active reservation (held or cooling down)
///   exists per key. The store enforces this itself (a unique
///   partial/filtered index, `SET NX`, a mutex), never by a read followed by
///   a write. Of K concurrent `try_reserve` calls on a free key, exactly one
///   returns [`ReserveOutcome::Reserved`]; the rest return
///   [`ReserveOutcome::Taken`].
/// - **Lease identity.** A successful reserve returns a [`Lease`] with a
///   store-issued id and a fencing `generation` that strictly increases per
///   key. `release`, `release_with_cooldown` and `renew` act only on the
///   grant identified by (id, generation): a stale holder can never release,
///   cool down or extend a later holder's reservation.
/// - **Time.** The store's clock decides expiry (`now()`,
///   `SYSUTCDATETIME()`, Redis key TTL, the process clock for in-memory
///   stores); no application-server clock enters an expiry decision.
///   `reserved_at` and `expires_at` are reported as the store's clock saw
///   them.
/// - **Expiry.** A reservation is not takeable before its TTL has run and is
///   takeable right after. Taking over an expired reservation is atomic: of
///   K concurrent reservers exactly one wins, with a new generation.
/// - **Renewal.** `renew` sets a live lease to expire `ttl` from now. After
///   expiry, release or takeover it returns [`RenewOutcome::Lost`] and never
///   revives the lease.
/// - **Cooldown.** `release_with_cooldown` turns a live lease into a hold
///   owned by nobody for the given duration: the key stays unavailable to
///   every reserver until it ends, and the former holder can no longer
///   release or renew it.
/// - **Outcomes.** A lost connection or timeout during a write is an error
///   ([`StoreError::OutcomeUnknown`]), never `Taken` and never success.
/// - **Idempotence.** Releasing a lease that is no longer held returns
///   [`ReleaseOutcome::NotHeld`] and changes nothing.
/// - **Housekeeping.** `list` returns exactly the active reservations that
///   match (plus history if asked and kept); `release_by_id` is the operator's
///   release of whatever grant currently has that id; `purge_released`
///   deletes released (and expired) history older than the cutoff and
///   nothing else.
///
/// The trait is object-safe: `Arc<dyn ReservationStore>` is the usual way to
/// share a store between workers. Convenience methods live in
/// [`ReservationStoreExt`].
#[async_trait]
pub trait ReservationStore: Send + Sync + Debug + 'static {
    /// Names the backend and what it keeps.
    fn info(&self) -> StoreInfo;

    /// Reserves `key` for `app_id` for `ttl`, unless it is actively held or
    /// cooling down. An expired reservation of the key is taken over in the
    /// same atomic step.
    async fn try_reserve(
        &self,
        key: &ReservationKey,
        app_id: &AppId,
        ttl: Ttl,
    ) -> Result<ReserveOutcome, StoreError>;

    /// Releases `lease` if it is still the live grant of its key.
    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome, StoreError>;

    /// Turns `lease`, if still live, into a cooldown hold owned by nobody
    /// that keeps its key unavailable for `cooldown`.
    async fn release_with_cooldown(
        &self,
        lease: &Lease,
        cooldown: Ttl,
    ) -> Result<ReleaseOutcome, StoreError>;

    /// Extends a live `lease` to expire `ttl` from now (store clock).
    async fn renew(&self, lease: &Lease, ttl: Ttl) -> Result<RenewOutcome, StoreError>;

    /// Lists reservations matching `filter`, newest first.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Reservation>, StoreError>;

    /// Operator action: releases the active reservation (held or cooling
    /// down) with this id, whatever its generation.
    async fn release_by_id(&self, id: &LeaseId) -> Result<ReleaseOutcome, StoreError>;

    /// Deletes released and expired history older than `older_than` (by
    /// the store's clock). Returns how many rows were removed; active
    /// reservations are never touched. Stores that keep no history return 0.
    async fn purge_released(&self, older_than: Duration) -> Result<u64, StoreError>;
}

/// Convenience methods for every [`ReservationStore`].
#[async_trait]
pub trait ReservationStoreExt: ReservationStore {
    /// Normalises raw text and reserves; invalid input is rejected before
    /// the store is touched.
    async fn try_reserve_raw(
        &self,
        ip: &str,
        domain: &str,
        app_id: &str,
        ttl: Duration,
    ) -> Result<ReserveOutcome, StoreError> {
        let key = ReservationKey::new(normalize_ip(ip)?, TargetDomain::parse(domain)?);
        let app_id = AppId::new(app_id)?;
        let ttl = Ttl::new("ttl", ttl)?;
        self.try_reserve(&key, &app_id, ttl).await
    }

    /// Active reservations of one domain.
    async fn list_by_domain(&self, domain: &TargetDomain) -> Result<Vec<Reservation>, StoreError> {
        self.list(&ListFilter::domain(domain.clone())).await
    }

    /// Active reservations of one app.
    async fn list_by_app(&self, app_id: &AppId) -> Result<Vec<Reservation>, StoreError> {
        self.list(&ListFilter::app(app_id.clone())).await
    }
}

impl<T: ReservationStore + ?Sized> ReservationStoreExt for T {}

macro_rules! forward_store {
    ($ty:ty) => {
        #[async_trait]
        impl<T: ReservationStore + ?Sized> ReservationStore for $ty {
            fn info(&self) -> StoreInfo {
                (**self).info()
            }
            async fn try_reserve(
                &self,
                key: &ReservationKey,
                app_id: &AppId,
                ttl: Ttl,
            ) -> Result<ReserveOutcome, StoreError> {
                (**self).try_reserve(key, app_id, ttl).await
            }
            async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome, StoreError> {
                (**self).release(lease).await
            }
            async fn release_with_cooldown(
                &self,
                lease: &Lease,
                cooldown: Ttl,
            ) -> Result<ReleaseOutcome, StoreError> {
                (**self).release_with_cooldown(lease, cooldown).await
            }
            async fn renew(&self, lease: &Lease, ttl: Ttl) -> Result<RenewOutcome, StoreError> {
                (**self).renew(lease, ttl).await
            }
            async fn list(&self, filter: &ListFilter) -> Result<Vec<Reservation>, StoreError> {
                (**self).list(filter).await
            }
            async fn release_by_id(&self, id: &LeaseId) -> Result<ReleaseOutcome, StoreError> {
                (**self).release_by_id(id).await
            }
            async fn purge_released(&self, older_than: Duration) -> Result<u64, StoreError> {
                (**self).purge_released(older_than).await
            }
        }
    };
}

forward_store!(Arc<T>);
forward_store!(Box<T>);
