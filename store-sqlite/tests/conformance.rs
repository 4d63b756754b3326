//! The `ReservationStore` conformance suite against SQLite: every property
//! on a fresh temporary database file, and again on an in-memory database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use async_trait::async_trait;
use proxy_core::{
    AppId, Lease, LeaseId, ListFilter, ReleaseOutcome, RenewOutcome, Reservation, ReservationKey,
    ReservationStore, ReserveOutcome, StoreError, StoreInfo, Ttl,
};
use store_sqlite::SqliteStore;

/// A store on its own database file; the temporary directory holding the
/// file (and its WAL) is removed when the store is dropped.
#[derive(Debug)]
struct TempFileStore {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

async fn file_store() -> Option<TempFileStore> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("reservations.db"))
        .await
        .expect("open SQLite store");
    Some(TempFileStore { store, _dir: dir })
}

testkit::conformance_tests!(file_store);

mod in_memory {
    async fn memory_store() -> Option<store_sqlite::SqliteStore> {
        Some(
            store_sqlite::SqliteStore::in_memory()
                .await
                .expect("open in-memory SQLite store"),
        )
    }

    testkit::conformance_tests!(memory_store);
}

#[async_trait]
impl ReservationStore for TempFileStore {
    fn info(&self) -> StoreInfo {
        self.store.info()
    }
    async fn try_reserve(
        &self,
        key: &ReservationKey,
        app_id: &AppId,
        ttl: Ttl,
    ) -> Result<ReserveOutcome, StoreError> {
        self.store.try_reserve(key, app_id, ttl).await
    }
    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome, StoreError> {
        self.store.release(lease).await
    }
    async fn release_with_cooldown(
        &self,
        lease: &Lease,
        cooldown: Ttl,
    ) -> Result<ReleaseOutcome, StoreError> {
        self.store.release_with_cooldown(lease, cooldown).await
    }
    async fn renew(&self, lease: &Lease, ttl: Ttl) -> Result<RenewOutcome, StoreError> {
        self.store.renew(lease, ttl).await
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Reservation>, StoreError> {
        self.store.list(filter).await
    }
    async fn release_by_id(&self, id: &LeaseId) -> Result<ReleaseOutcome, StoreError> {
        self.store.release_by_id(id).await
    }
    async fn purge_released(&self, older_than: Duration) -> Result<u64, StoreError> {
        self.store.purge_released(older_than).await
    }
}
