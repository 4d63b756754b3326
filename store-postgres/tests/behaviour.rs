//! PostgreSQL-specific behaviour (`POSTGRES_URL`): custom names, concurrent
//! migrations, error mapping under timeouts and lost connections, and
//! sharing the table with applications of the original design.
//!
//! Each test works in its own schema, dropped at the end, so tests that
//! lock rows or tables never stall anyone else.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use proxy_core::{
    AppId, Lease, ListFilter, ReleaseOutcome, RenewOutcome, ReservationKey, ReservationState,
    ReservationStore, ReserveOutcome, StoreError, Ttl,
};
use store_postgres::sqlx::postgres::{PgConnection, PgPoolOptions};
use store_postgres::sqlx::{self, Connection, Row};
use store_postgres::{PostgresStore, PostgresStoreBuilder, StatementMode};

const EXAMPLE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema of its own for one test, dropped by `cleanup`.
struct Scratch {
    url: String,
    schema: String,
}

impl Scratch {
    /// `None` (test skipped) when `POSTGRES_URL` is unset or unreachable.
    async fn new(test: &str) -> Option<Self> {
        let url = testkit::backend::url_from_env("POSTGRES_URL", EXAMPLE_URL)?;
        if let Err(error) = PgConnection::connect(&url).await {
            return testkit::backend::unreachable("POSTGRES_URL", error);
        }
        let random = uuid::Uuid::new_v4().simple().to_string();
        Some(Self {
            url,
            schema: format!("t_{test}_{}", &random[..8]),
        })
    }

    fn builder(&self) -> PostgresStoreBuilder {
        PostgresStore::builder()
            .schema(&self.schema)
            .max_connections(4)
    }

    async fn store(&self, builder: PostgresStoreBuilder) -> PostgresStore {
        let store = builder.connect(&self.url).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }

    async fn connection(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.expect("connect")
    }

    async fn cleanup(self) {
        let mut conn = self.connection().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.schema
        )))
        .execute(&mut conn)
        .await
        .expect("drop scratch schema");
    }
}

fn key(n: u8) -> ReservationKey {
    ReservationKey::parse(&format!("198.51.100.{n}"), "behaviour.test").unwrap()
}

fn app(name: &str) -> AppId {
    AppId::new(name).unwrap()
}

fn ttl(secs: u64) -> Ttl {
    Ttl::from_secs(secs).unwrap()
}

async fn reserve(store: &PostgresStore, key: &ReservationKey, secs: u64) -> Lease {
    match store.try_reserve(key, &app("behaviour"), ttl(secs)).await {
        Ok(ReserveOutcome::Reserved(lease)) => lease,
        other => panic!("expected {key} to be reserved, got {other:?}"),
    }
}

/// An error's message with all its sources.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[tokio::test]
async fn custom_schema_and_table_are_created_named_and_separate() {
    let Some(scratch) = Scratch::new("custom").await else {
        return;
    };
    let store = scratch.store(scratch.builder().table("order")).await;
    // Idempotent: a second run finds the migration applied.
    store.migrate().await.expect("second migrate");
    assert_eq!(store.table_name(), format!("{}.order", scratch.schema));
    assert_eq!(store.unique_index_name(), "uq_order_ip_address");

    let mut conn = scratch.connection().await;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes \
         WHERE schemaname = $1 AND tablename = 'order' ORDER BY indexname",
    )
    .bind(&scratch.schema)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let names: Vec<&str> = indexes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "ix_order_app",
            "ix_order_domain",
            "ix_order_purge",
            "order_pkey",
            "uq_order_ip_address"
        ]
    );
    let unique = &indexes[4].1;
    assert!(
        unique.contains("UNIQUE") && unique.contains("WHERE (released = false)"),
        "{unique}"
    );
    let migrations: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{}\".order_migrations",
        scratch.schema
    )))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(migrations, 1);

    // A second table in the same schema is a separate key space.
    let other = scratch.store(scratch.builder().table("leases_b")).await;
    let a = reserve(&store, &key(1), 60).await;
    let b = reserve(&other, &key(1), 60).await;
    assert_eq!(store.release(&a).await.unwrap(), ReleaseOutcome::Released);
    assert_eq!(other.release(&b).await.unwrap(), ReleaseOutcome::Released);
    scratch.cleanup().await;
}

#[tokio::test]
async fn invalid_names_are_rejected_before_connecting() {
    // No server needed: validation happens first.
    for (builder, needle) in [
        (
            PostgresStore::builder().table("Proxy"),
            "invalid table name \"Proxy\"",
        ),
        (
            PostgresStore::builder().table("a\"; DROP TABLE x; --"),
            "invalid table name",
        ),
        (
            PostgresStore::builder().schema("pg_toast"),
            "invalid schema name",
        ),
        (
            PostgresStore::builder().schema(""),
            "invalid schema name \"\"",
        ),
    ] {
        let error = builder
            .connect("postgres://postgres@127.0.0.1:1/none")
            .await
            .unwrap_err();
        assert!(error.to_string().contains(needle), "{error}");
        match StoreError::from(error) {
            StoreError::Configuration { .. } => {}
            other => panic!("must be a configuration error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn concurrent_migrations_of_a_fresh_schema_all_succeed() {
    let Some(scratch) = Scratch::new("concurrent_migrate").await else {
        return;
    };
    let mut stores = Vec::new();
    for _ in 0..8 {
        stores.push(
            scratch
                .builder()
                .max_connections(1)
                .connect(&scratch.url)
                .await
                .unwrap(),
        );
    }
    let runs: Vec<_> = stores
        .iter()
        .cloned()
        .map(|store| tokio::spawn(async move { store.migrate().await }))
        .collect();
    for run in runs {
        run.await
            .unwrap()
            .expect("every concurrent migrate() succeeds");
    }
    let lease = reserve(&stores[3], &key(2), 60).await;
    assert_eq!(
        stores[5].release(&lease).await.unwrap(),
        ReleaseOutcome::Released
    );
    scratch.cleanup().await;
}

#[tokio::test]
async fn missing_table_is_a_configuration_error_naming_migrate() {
    let Some(scratch) = Scratch::new("missing").await else {
        return;
    };
    let store = scratch.builder().connect(&scratch.url).await.unwrap();
    let error = store
        .try_reserve(&key(1), &app("a"), ttl(60))
        .await
        .unwrap_err();
    match &error {
        StoreError::Configuration { message, .. } => {
            assert!(message.contains("migrate()"), "{message}");
            assert!(message.contains(&scratch.schema), "{message}");
        }
        other => panic!("expected Configuration, got {other:?}"),
    }
    assert!(
        chain(&error).contains("does not exist"),
        "{}",
        chain(&error)
    );
    let error = store.list(&ListFilter::all()).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Configuration { .. }),
        "{error:?}"
    );
    scratch.cleanup().await;
}

#[tokio::test]
async fn lock_timeout_behind_an_uncommitted_insert_is_outcome_unknown_not_taken() {
    let Some(scratch) = Scratch::new("lock_timeout").await else {
        return;
    };
    for mode in [StatementMode::Prepared, StatementMode::SimpleQuery] {
        let store = scratch
            .store(
                scratch
                    .builder()
                    .statement_mode(mode)
                    .lock_timeout(Some(Duration::from_millis(300)))
                    .statement_timeout(None),
            )
            .await;
        // Another session inserts the same key and does not commit: the
        // unique index makes our insert wait for that transaction.
        let mut other = scratch.connection().await;
        let mut tx = other.begin().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO \"{}\".proxy_reservation (ip_address, target_domain, app_id) \
             VALUES ('198.51.100.3', 'behaviour.test', 'other')",
            scratch.schema
        )))
        .execute(&mut *tx)
        .await
        .unwrap();
        let outcome = store.try_reserve(&key(3), &app("a"), ttl(60)).await;
        match &outcome {
            Err(error @ StoreError::OutcomeUnknown { .. }) => {
                assert!(
                    chain(error).contains("lock timeout"),
                    "{mode:?}: {}",
                    chain(error)
                );
                assert!(error.is_transient());
            }
            other => panic!("{mode:?}: expected OutcomeUnknown, got {other:?}"),
        }
        tx.rollback().await.unwrap();
        let lease = reserve(&store, &key(3), 60).await;
        assert_eq!(
            store.release(&lease).await.unwrap(),
            ReleaseOutcome::Released
        );
    }
    scratch.cleanup().await;
}

#[tokio::test]
async fn statement_timeout_on_a_locked_row_is_outcome_unknown_for_every_write() {
    let Some(scratch) = Scratch::new("statement_timeout").await else {
        return;
    };
    for mode in [StatementMode::Prepared, StatementMode::SimpleQuery] {
        let store = scratch
            .store(
                scratch
                    .builder()
                    .statement_mode(mode)
                    .lock_timeout(None)
                    .statement_timeout(Some(Duration::from_millis(300))),
            )
            .await;
        let lease = reserve(&store, &key(4), 60).await;
        // Another session holds the key's row lock.
        let mut other = scratch.connection().await;
        let mut tx = other.begin().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM \"{}\".proxy_reservation WHERE released = false FOR UPDATE",
            scratch.schema
        )))
        .fetch_all(&mut *tx)
        .await
        .unwrap();

        let reserve = store.try_reserve(&key(4), &app("b"), ttl(60)).await;
        let release = store.release(&lease).await;
        let renew = store.renew(&lease, ttl(60)).await.map(|_| ());
        let cooldown = store.release_with_cooldown(&lease, ttl(60)).await;
        let by_id = store.release_by_id(&lease.id).await;
        for (what, result) in [
            ("try_reserve", reserve.map(|_| ())),
            ("release", release.map(|_| ())),
            ("renew", renew),
            ("release_with_cooldown", cooldown.map(|_| ())),
            ("release_by_id", by_id.map(|_| ())),
        ] {
            match result {
                Err(error @ StoreError::OutcomeUnknown { .. }) => assert!(
                    chain(&error).contains("statement timeout"),
                    "{mode:?} {what}: {}",
                    chain(&error)
                ),
                other => panic!("{mode:?} {what}: expected OutcomeUnknown, got {other:?}"),
            }
        }
        tx.rollback().await.unwrap();
        // Nothing happened: the lease is still held and releasable.
        assert_eq!(
            store.release(&lease).await.unwrap(),
            ReleaseOutcome::Released
        );
    }
    scratch.cleanup().await;
}

#[tokio::test]
async fn connection_killed_mid_statement_is_outcome_unknown() {
    let Some(scratch) = Scratch::new("killed").await else {
        return;
    };
    let store = scratch
        .store(
            scratch
                .builder()
                .lock_timeout(None)
                .statement_timeout(None)
                .max_connections(1),
        )
        .await;
    let lease = reserve(&store, &key(5), 60).await;
    let mut locker = scratch.connection().await;
    let mut tx = locker.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM \"{}\".proxy_reservation WHERE released = false FOR UPDATE",
        scratch.schema
    )))
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let reserver = {
        let store = store.clone();
        tokio::spawn(async move { store.try_reserve(&key(5), &app("b"), ttl(60)).await })
    };
    // Find the reserver's session waiting for the lock, then end it.
    let mut admin = scratch.connection().await;
    let needle = format!("%INSERT INTO \"{}\".%", scratch.schema);
    let mut killed = false;
    for _ in 0..100 {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND query LIKE $1 LIMIT 1",
        )
        .bind(&needle)
        .fetch_optional(&mut admin)
        .await
        .unwrap();
        if let Some(pid) = pid {
            let _: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .fetch_one(&mut admin)
                .await
                .unwrap();
            killed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(killed, "the reserver never waited for the lock");
    match reserver.await.unwrap() {
        Err(error @ StoreError::OutcomeUnknown { .. }) => assert!(error.is_transient()),
        other => panic!("expected OutcomeUnknown, got {other:?}"),
    }
    tx.rollback().await.unwrap();
    // The broken connection was not returned to the pool: the next call
    // works on a fresh one.
    assert_eq!(
        store.release(&lease).await.unwrap(),
        ReleaseOutcome::Released
    );
    scratch.cleanup().await;
}

#[tokio::test]
async fn exhausted_pool_is_unavailable() {
    let Some(scratch) = Scratch::new("pool").await else {
        return;
    };
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect(&scratch.url)
        .await
        .unwrap();
    let store = scratch.builder().build(pool.clone()).unwrap();
    store.migrate().await.unwrap();
    let held = pool.acquire().await.unwrap();
    let error = store
        .try_reserve(&key(6), &app("a"), ttl(60))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    assert!(
        chain(&error).contains("nothing was sent"),
        "{}",
        chain(&error)
    );
    drop(held);
    let lease = reserve(&store, &key(6), 60).await;
    assert_eq!(
        store.release(&lease).await.unwrap(),
        ReleaseOutcome::Released
    );
    scratch.cleanup().await;
}

#[tokio::test]
async fn unreachable_server_is_unavailable_and_hides_the_password() {
    // The default acquire timeout: the refusal must come back as itself,
    // not as "pool timed out" after waiting for it.
    let error = PostgresStore::builder()
        .connect("postgres://postgres:hunter2@127.0.0.1:1/test")
        .await
        .unwrap_err();
    assert!(!format!("{error:?} {}", chain(&error)).contains("hunter2"));
    assert!(
        chain(&error).contains("refused"),
        "the cause is named: {}",
        chain(&error)
    );
    assert!(
        matches!(StoreError::from(error), StoreError::Unavailable { .. }),
        "connection refused must be Unavailable"
    );
}

#[tokio::test]
async fn expiry_renewal_and_cooldown_follow_the_original_rule() {
    let Some(scratch) = Scratch::new("original_rule").await else {
        return;
    };
    let store = scratch.store(scratch.builder()).await;
    let table = format!("\"{}\".proxy_reservation", scratch.schema);
    let mut conn = scratch.connection().await;
    // What an application of the original design computes as the expiry.
    let original_expiry = |id: i64| {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(sqlx::AssertSqlSafe(format!(
            "SELECT reserved_at + ttl_seconds * interval '1 second' FROM {table} WHERE id = $1"
        )))
        .bind(id)
    };

    let lease = reserve(&store, &key(7), 5).await;
    let id: i64 = lease.id.as_str().parse().unwrap();
    assert_eq!(
        original_expiry(id).fetch_one(&mut conn).await.unwrap(),
        lease.expires_at
    );
    let renewed = match store.renew(&lease, ttl(120)).await.unwrap() {
        RenewOutcome::Renewed(renewed) => renewed,
        RenewOutcome::Lost => panic!("live lease lost"),
    };
    assert_eq!(renewed.reserved_at, lease.reserved_at, "grant time kept");
    assert_eq!(
        original_expiry(id).fetch_one(&mut conn).await.unwrap(),
        renewed.expires_at,
        "renewal is visible to the original expiry rule"
    );
    let now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let left = (renewed.expires_at - now).num_milliseconds();
    assert!(
        (119_000..=122_000).contains(&left),
        "renewed for {left} ms, expected 120 s (+ < 1 s rounding)"
    );
    let listed = store
        .list(&ListFilter::domain(key(7).domain().clone()))
        .await
        .unwrap();
    assert_eq!(listed[0].lease, renewed);

    assert_eq!(
        store
            .release_with_cooldown(&renewed, ttl(30))
            .await
            .unwrap(),
        ReleaseOutcome::Released
    );
    let cooling = &store
        .list(&ListFilter::domain(key(7).domain().clone()))
        .await
        .unwrap()[0];
    assert_eq!(cooling.state, ReservationState::CoolingDown);
    assert_eq!(
        original_expiry(id).fetch_one(&mut conn).await.unwrap(),
        cooling.lease.expires_at,
        "a cooldown is an unreleased row the original design also respects"
    );
    scratch.cleanup().await;
}

#[tokio::test]
async fn rows_of_the_original_design_are_listed_and_taken_over_after_expiry() {
    let Some(scratch) = Scratch::new("original_rows").await else {
        return;
    };
    let store = scratch.store(scratch.builder()).await;
    let table = format!("\"{}\".proxy_reservation", scratch.schema);
    let mut conn = scratch.connection().await;
    // The original design's insert: its own columns only, reserved 10 s ago
    // for 1 s (expired) and another one live.
    let insert = |ip: &str, age: i32, ttl: i32| {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (ip_address, target_domain, app_id, reserved_at, ttl_seconds) \
             VALUES ($1, 'behaviour.test', 'legacy', now() - $2 * interval '1 second', $3) \
             RETURNING generation"
        )))
        .bind(ip.to_owned())
        .bind(age)
        .bind(ttl)
    };
    let expired_generation = insert("198.51.100.8", 10, 1)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    insert("198.51.100.9", 0, 600)
        .fetch_one(&mut conn)
        .await
        .unwrap();

    let rows = store
        .list(&ListFilter::domain(key(8).domain().clone()).with_released())
        .await
        .unwrap();
    let states: Vec<_> = rows
        .iter()
        .map(|r| (r.lease.ip.to_string(), r.state))
        .collect();
    assert_eq!(
        states,
        [
            ("198.51.100.9".to_owned(), ReservationState::Held),
            ("198.51.100.8".to_owned(), ReservationState::Expired),
        ]
    );
    assert!(matches!(
        store
            .try_reserve(&key(9), &app("a"), ttl(60))
            .await
            .unwrap(),
        ReserveOutcome::Taken
    ));
    let lease = reserve(&store, &key(8), 60).await;
    assert!(lease.generation as i64 > expired_generation);
    // The original design releases by IP and app id; our lease is then
    // no longer held.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET released = true \
         WHERE ip_address = '198.51.100.8' AND app_id = 'behaviour' AND released = false"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        store.release(&lease).await.unwrap(),
        ReleaseOutcome::NotHeld
    );
    // Released without released_at: purged by its grant time.
    assert_eq!(store.purge_released(Duration::ZERO).await.unwrap(), 1);
    scratch.cleanup().await;
}

#[tokio::test]
async fn foreign_rows_that_do_not_parse_are_reported_not_skipped() {
    let Some(scratch) = Scratch::new("foreign").await else {
        return;
    };
    let store = scratch.store(scratch.builder()).await;
    let mut conn = scratch.connection().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"{}\".proxy_reservation (ip_address, target_domain, app_id) \
         VALUES ('::FFFF:1.2.3.4', 'behaviour.test', 'legacy')",
        scratch.schema
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let error = store.list(&ListFilter::all()).await.unwrap_err();
    assert!(matches!(error, StoreError::Backend { .. }), "{error:?}");
    assert!(
        chain(&error).contains("invalid ip_address: \"::FFFF:1.2.3.4\""),
        "{}",
        chain(&error)
    );
    scratch.cleanup().await;
}

#[tokio::test]
async fn purge_uses_the_database_clock_and_keeps_active_rows() {
    let Some(scratch) = Scratch::new("purge").await else {
        return;
    };
    let store = scratch.store(scratch.builder()).await;
    let held = reserve(&store, &key(10), 600).await;
    let released = reserve(&store, &key(11), 600).await;
    assert_eq!(
        store.release(&released).await.unwrap(),
        ReleaseOutcome::Released
    );
    // Nothing is older than an hour.
    assert_eq!(
        store
            .purge_released(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    // A huge age is clamped, not an error.
    assert_eq!(store.purge_released(Duration::MAX).await.unwrap(), 0);
    assert_eq!(store.purge_released(Duration::ZERO).await.unwrap(), 1);
    let rows = store
        .list(&ListFilter::all().with_released())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].lease.id, held.id);
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) AS n FROM \"{}\".proxy_reservation",
        scratch.schema
    )))
    .fetch_one(&mut scratch.connection().await)
    .await
    .unwrap();
    assert_eq!(row.get::<i64, _>("n"), 1);
    scratch.cleanup().await;
}

/// What the README's pooler advice rests on (sqlx 0.9): a statement cache
/// of 0 does not make sqlx use unnamed statements. Every parameterised
/// query is still prepared as a *named* statement (`sqlx_s_N`) that is never
/// closed, so behind a transaction-mode pooler without prepared-statement
/// support names collide, and on a direct connection they pile up.
#[tokio::test]
async fn sqlx_statement_cache_zero_still_prepares_named_statements() {
    let Some(scratch) = Scratch::new("sqlx_cache").await else {
        return;
    };
    let options: sqlx::postgres::PgConnectOptions = scratch.url.parse().unwrap();
    let mut conn = PgConnection::connect_with(&options.statement_cache_capacity(0))
        .await
        .unwrap();
    for n in 0..3 {
        let _: i32 = sqlx::query_scalar("SELECT $1::int")
            .bind(n)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    }
    let names: Vec<String> = sqlx::raw_sql("SELECT name FROM pg_prepared_statements ORDER BY name")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>("name"))
        .collect();
    assert_eq!(names, ["sqlx_s_1", "sqlx_s_2", "sqlx_s_3"]);
}

#[tokio::test]
async fn every_connection_busy_is_unavailable_then_recovers() {
    let Some(scratch) = Scratch::new("busy").await else {
        return;
    };
    let store = scratch
        .store(
            scratch
                .builder()
                .max_connections(1)
                .acquire_timeout(Duration::from_millis(300))
                .lock_timeout(None)
                .statement_timeout(Some(Duration::from_secs(3))),
        )
        .await;
    let lease = reserve(&store, &key(12), 60).await;
    // The store's only connection waits on a row lock held elsewhere…
    let mut locker = scratch.connection().await;
    let mut tx = locker.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM \"{}\".proxy_reservation WHERE released = false FOR UPDATE",
        scratch.schema
    )))
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let blocked = {
        let store = store.clone();
        tokio::spawn(async move { store.try_reserve(&key(12), &app("b"), ttl(60)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // …so the next operation finds no connection and sends nothing.
    let error = store
        .try_reserve(&key(13), &app("c"), ttl(60))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    tx.rollback().await.unwrap();
    assert_eq!(blocked.await.unwrap().unwrap(), ReserveOutcome::Taken);
    // The connection is back for the next operation.
    assert_eq!(
        store.release(&lease).await.unwrap(),
        ReleaseOutcome::Released
    );
    scratch.cleanup().await;
}
