//! SQLite-specific behaviour beyond the conformance suite: opening,
//! migrations, error mapping, generations across purges, history states.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use proxy_core::{
    AppId, Lease, ListFilter, ReleaseOutcome, ReservationKey, ReservationState, ReservationStore,
    ReserveOutcome, StoreError, TargetDomain, Ttl,
};
use store_sqlite::sqlx::{self, Connection};
use store_sqlite::{MIGRATIONS_TABLE, SqliteStore, SqliteStoreError, SqliteStoreOptions};

fn key(n: u8) -> ReservationKey {
    ReservationKey::parse(&format!("192.0.2.{n}"), "sqlite.store.test").unwrap()
}

fn app() -> AppId {
    AppId::new("sqlite-store-test").unwrap()
}

fn ttl(secs: u64) -> Ttl {
    Ttl::from_secs(secs).unwrap()
}

async fn must_reserve(store: &SqliteStore, key: &ReservationKey, secs: u64) -> Lease {
    match store.try_reserve(key, &app(), ttl(secs)).await.unwrap() {
        ReserveOutcome::Reserved(lease) => lease,
        ReserveOutcome::Taken => panic!("{key} unexpectedly Taken"),
    }
}

#[tokio::test]
async fn open_creates_and_migrates_and_migrate_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(path.exists(), "open creates the file");
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let lease = must_reserve(&store, &key(1), 60).await;
    store.close().await;

    // Reopening keeps the data and applies nothing twice.
    let store = SqliteStore::open(&path).await.unwrap();
    let applied: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {MIGRATIONS_TABLE}"
    )))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(applied, 1);
    let rows = store.list(&ListFilter::all()).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].lease.id, lease.id);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn open_in_a_missing_directory_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("x.db");
    match SqliteStore::open(&path).await {
        Err(SqliteStoreError::Open { database, .. }) => {
            assert!(database.contains("no-such-dir"), "{database}");
        }
        other => panic!("expected Open error, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_schema_is_a_configuration_error_naming_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStoreOptions::new()
        .run_migrations(false)
        .open(dir.path().join("bare.db"))
        .await
        .unwrap();
    match store.try_reserve(&key(1), &app(), ttl(60)).await {
        Err(StoreError::Configuration { message, .. }) => {
            assert!(message.contains("migrate()"), "{message}");
        }
        other => panic!("expected Configuration, got {other:?}"),
    }
    store.migrate().await.unwrap();
    must_reserve(&store, &key(1), 60).await;
}

/// A lock held by someone else past the busy timeout is an error, never
/// `Taken`, and nothing is written.
#[tokio::test]
async fn busy_database_is_unavailable_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let store = SqliteStoreOptions::new()
        .busy_timeout(Duration::from_millis(200))
        .open(&path)
        .await
        .unwrap();
    // Another "process": a separate connection holding the write lock.
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mut blocking = other.begin_with("BEGIN IMMEDIATE").await.unwrap();

    match store.try_reserve(&key(1), &app(), ttl(60)).await {
        Err(error @ StoreError::Unavailable { .. }) => assert!(error.is_transient()),
        other => panic!("expected Unavailable while locked, got {other:?}"),
    }
    sqlx::query("SELECT 1")
        .execute(&mut *blocking)
        .await
        .unwrap();
    blocking.rollback().await.unwrap();

    let rows = store
        .list(&ListFilter::all().with_released())
        .await
        .unwrap();
    assert!(rows.is_empty(), "nothing written while locked: {rows:?}");
    must_reserve(&store, &key(1), 60).await;
}

/// Opening a file that another process holds locked (say, while creating
/// it) waits for the lock instead of failing.
#[tokio::test]
async fn open_waits_for_a_locked_fresh_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let mut other =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
    let mut creating = other.begin_with("BEGIN EXCLUSIVE").await.unwrap();
    sqlx::query("CREATE TABLE unrelated (x INTEGER)")
        .execute(&mut *creating)
        .await
        .unwrap();

    let opening = tokio::spawn({
        let path = path.clone();
        async move {
            SqliteStoreOptions::new()
                .busy_timeout(Duration::from_secs(10))
                .open(&path)
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    creating.commit().await.unwrap();
    other.close().await.unwrap();

    let store = opening.await.unwrap().expect("open after the lock is gone");
    must_reserve(&store, &key(1), 60).await;
}

/// Generations come from a counter, so purging every row of a key does not
/// let them start over.
#[tokio::test]
async fn generation_keeps_increasing_after_purge() {
    let store = SqliteStore::in_memory().await.unwrap();
    let first = must_reserve(&store, &key(1), 60).await;
    assert_eq!(
        store.release(&first).await.unwrap(),
        ReleaseOutcome::Released
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.purge_released(Duration::ZERO).await.unwrap(), 1);
    let rows = store
        .list(&ListFilter::all().with_released())
        .await
        .unwrap();
    assert!(rows.is_empty(), "{rows:?}");
    let second = must_reserve(&store, &key(1), 60).await;
    assert!(
        second.generation > first.generation,
        "{} then {}",
        first.generation,
        second.generation
    );
    assert_ne!(second.id, first.id, "row ids are never reused");
}

/// History lists each ended row with why it ended; purge takes expired rows
/// nobody took over too, but never an active one.
#[tokio::test]
async fn history_states_and_purge_of_expired_rows() {
    let store = SqliteStore::in_memory().await.unwrap();
    let released = must_reserve(&store, &key(1), 60).await;
    assert_eq!(
        store.release(&released).await.unwrap(),
        ReleaseOutcome::Released
    );
    let expired = must_reserve(&store, &key(2), 1).await;
    let cooling = must_reserve(&store, &key(3), 60).await;
    assert_eq!(
        store
            .release_with_cooldown(&cooling, ttl(60))
            .await
            .unwrap(),
        ReleaseOutcome::Released
    );
    let held = must_reserve(&store, &key(4), 60).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;

    let rows = store
        .list(&ListFilter::all().with_released())
        .await
        .unwrap();
    let state_of = |lease: &Lease| {
        rows.iter()
            .find(|r| r.lease.id == lease.id)
            .map(|r| (r.state, r.released_at.is_some()))
            .unwrap()
    };
    assert_eq!(state_of(&released), (ReservationState::Released, true));
    assert_eq!(state_of(&expired), (ReservationState::Expired, true));
    assert_eq!(state_of(&cooling), (ReservationState::CoolingDown, false));
    assert_eq!(state_of(&held), (ReservationState::Held, false));
    let expired_row = rows.iter().find(|r| r.lease.id == expired.id).unwrap();
    assert_eq!(
        expired_row.released_at,
        Some(expired.expires_at),
        "an expired row ended at its expiry"
    );
    assert_eq!(
        store.release_by_id(&expired.id).await.unwrap(),
        ReleaseOutcome::NotHeld,
        "an expired row is not active"
    );

    // Both the released row and the expired one ended over a second ago.
    assert_eq!(
        store
            .purge_released(Duration::from_millis(500))
            .await
            .unwrap(),
        2
    );
    let left: Vec<_> = store
        .list(&ListFilter::all().with_released())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.lease.id)
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&cooling.id) && left.contains(&held.id));
    // The purged expired row freed its key.
    must_reserve(&store, &key(2), 60).await;
}

/// A lease from another store (an id that is not a row id here) is not held.
#[tokio::test]
async fn foreign_lease_ids_are_not_held() {
    let store = SqliteStore::in_memory().await.unwrap();
    let lease = must_reserve(&store, &key(1), 60).await;
    let foreign: Lease = serde_json::from_value({
        let mut value = serde_json::to_value(&lease).unwrap();
        value["id"] = serde_json::Value::from("redis:abc");
        value
    })
    .unwrap();
    assert_eq!(
        store.release(&foreign).await.unwrap(),
        ReleaseOutcome::NotHeld
    );
    assert_eq!(
        store.release(&lease).await.unwrap(),
        ReleaseOutcome::Released
    );
}

#[tokio::test]
async fn connect_accepts_file_and_memory_urls() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("url.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    must_reserve(&store, &key(1), 60).await;
    // Without a mode, a missing file is created too; with mode=rw it is not.
    let plain = format!("sqlite://{}", dir.path().join("plain.db").display());
    must_reserve(&SqliteStore::connect(&plain).await.unwrap(), &key(1), 60).await;
    let read_write = format!(
        "sqlite://{}?mode=rw",
        dir.path().join("absent.db").display()
    );
    assert!(SqliteStore::connect(&read_write).await.is_err());

    let memory = SqliteStore::connect("sqlite::memory:").await.unwrap();
    must_reserve(&memory, &key(1), 60).await;
    let domain = TargetDomain::parse("sqlite.store.test").unwrap();
    assert_eq!(
        memory
            .list(&ListFilter::domain(domain))
            .await
            .unwrap()
            .len(),
        1
    );

    match SqliteStore::connect("sqlite://x.db?mode=bogus").await {
        Err(SqliteStoreError::InvalidUrl { url, .. }) => assert!(url.contains("bogus")),
        other => panic!("expected InvalidUrl, got {other:?}"),
    }
}

/// Domains read back from the table equal the ones stored, IPv6 literals
/// and punycode included.
#[tokio::test]
async fn listed_domains_round_trip() {
    let store = SqliteStore::in_memory().await.unwrap();
    for (n, target) in ["[2001:db8::1]", "bücher.example", "203.0.113.9"]
        .into_iter()
        .enumerate()
    {
        let key = ReservationKey::parse(&format!("192.0.2.{n}"), target).unwrap();
        let lease = must_reserve(&store, &key, 60).await;
        let rows = store
            .list(&ListFilter::domain(key.domain().clone()))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{target}: {rows:?}");
        assert_eq!(rows[0].lease, lease, "{target}");
    }
}

#[tokio::test]
async fn info_names_sqlite_with_history() {
    let store = SqliteStore::in_memory().await.unwrap();
    let info = store.info();
    assert_eq!(info.name, "sqlite");
    assert!(info.keeps_history);
}

/// Every constructor's future can be spawned (a compile-time check).
#[tokio::test]
async fn constructor_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let options = SqliteStoreOptions::new();
    assert_send(&SqliteStore::open("unused.db"));
    assert_send(&SqliteStore::connect("sqlite::memory:"));
    assert_send(&SqliteStore::in_memory());
    assert_send(&options.open("unused.db"));
    assert_send(&options.in_memory());
    let store = SqliteStore::from_pool(sqlx::SqlitePool::connect_lazy("sqlite::memory:").unwrap());
    assert_send(&store.migrate());
}
