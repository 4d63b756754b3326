//! [`SqliteStore`]: the reservation contract on one SQLite file.

use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use proxy_core::{
    AppId, Lease, LeaseId, ListFilter, ReleaseOutcome, RenewOutcome, Reservation, ReservationKey,
    ReservationState, ReservationStore, ReserveOutcome, StoreError, StoreInfo, TargetDomain, Ttl,
};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{Sqlite, SqlitePool};
use sqlx::{QueryBuilder, SqliteConnection};
use tokio::sync::Mutex;

use crate::error::{STORE_NAME, SqliteStoreError};
use crate::options::SqliteStoreOptions;

/// The table in which [`SqliteStore::migrate`] records applied migrations.
///
/// Not sqlx's default `_sqlx_migrations`, so an application that keeps its
/// own sqlx migrations in the same file does not collide with ours.
pub const MIGRATIONS_TABLE: &str = "_proxy_reserve_migrations";

/// SQLite's clock in whole milliseconds since the Unix epoch. Within one
/// statement every use sees the same instant.
macro_rules! now_ms {
    () => {
        "CAST(ROUND(unixepoch('subsec') * 1000) AS INTEGER)"
    };
}

/// Grants a lease unless an unreleased row holds the key; the partial unique
/// index decides, and a trigger records the generation in the counter in the
/// same statement. ?1 ip, ?2 domain, ?3 app, ?4 TTL seconds.
const INSERT_LEASE: &str = concat!(
    "INSERT INTO proxy_reservation
         (ip_address, target_domain, app_id, generation, reserved_at, expires_at, ttl_seconds)
     VALUES (?1, ?2, ?3,
             (SELECT last_generation + 1 FROM proxy_generation_counter WHERE id = 1),
             ",
    now_ms!(),
    ", ",
    now_ms!(),
    " + ?4 * 1000, ?4)
     ON CONFLICT (ip_address, target_domain) WHERE released = 0 DO NOTHING
     RETURNING id, generation, reserved_at, expires_at"
);

/// Retires the key's unreleased row if it has expired, freeing the index
/// slot for a takeover. ?1 ip, ?2 domain.
const RETIRE_EXPIRED: &str = concat!(
    "UPDATE proxy_reservation
     SET released = 1, release_reason = 'expired', released_at = expires_at
     WHERE ip_address = ?1 AND target_domain = ?2 AND released = 0 AND expires_at <= ",
    now_ms!()
);

/// Conditions naming one live grant: ?1 id, ?2 generation, ?3 ip, ?4 domain.
macro_rules! live_grant {
    () => {
        concat!(
            " WHERE id = ?1 AND generation = ?2 AND ip_address = ?3 AND target_domain = ?4
               AND released = 0 AND cooling_down = 0 AND expires_at > ",
            now_ms!()
        )
    };
}

const RELEASE: &str = concat!(
    "UPDATE proxy_reservation SET released = 1, release_reason = 'released', released_at = ",
    now_ms!(),
    live_grant!()
);

/// ?5 TTL seconds.
const RENEW: &str = concat!(
    "UPDATE proxy_reservation SET expires_at = ",
    now_ms!(),
    " + ?5 * 1000, ttl_seconds = ?5",
    live_grant!(),
    " RETURNING reserved_at, expires_at"
);

/// The row stays unreleased (so the index keeps the key blocked) with a new
/// generation, which fences off the former holder; a trigger records the
/// generation in the counter. ?5 cooldown seconds.
const START_COOLDOWN: &str = concat!(
    "UPDATE proxy_reservation
     SET cooling_down = 1,
         generation = (SELECT last_generation + 1 FROM proxy_generation_counter WHERE id = 1),
         reserved_at = ",
    now_ms!(),
    ", expires_at = ",
    now_ms!(),
    " + ?5 * 1000, ttl_seconds = ?5",
    live_grant!()
);

/// ?1 id.
const RELEASE_BY_ID: &str = concat!(
    "UPDATE proxy_reservation SET released = 1, release_reason = 'released', released_at = ",
    now_ms!(),
    " WHERE id = ?1 AND released = 0 AND expires_at > ",
    now_ms!()
);

/// Released rows, and expired rows nobody took over, that ended before the
/// cutoff. An unreleased row qualifies only once it has expired, so no
/// active reservation is ever deleted. ?1 age in milliseconds.
const PURGE: &str = concat!(
    "DELETE FROM proxy_reservation
     WHERE (released = 1 AND released_at < ",
    now_ms!(),
    " - ?1)
        OR (released = 0 AND expires_at < ",
    now_ms!(),
    " - ?1)"
);

const LIST: &str = concat!(
    "WITH clock (now_ms) AS (SELECT ",
    now_ms!(),
    ")
     SELECT r.id, r.ip_address, r.target_domain, r.app_id, r.generation, r.reserved_at,
            r.expires_at, r.cooling_down, r.released, r.release_reason, r.released_at,
            clock.now_ms
     FROM proxy_reservation AS r, clock
     WHERE 1 = 1"
);

/// The [`ReservationStore`] on SQLite: one database file shared by every
/// thread and process of one machine.
///
/// Exclusion comes from the partial unique index on `(ip_address,
/// target_domain) WHERE released = 0`; expiry from SQLite's clock. Every
/// write is a single autocommit statement (a grant is one `INSERT … ON
/// CONFLICT DO NOTHING RETURNING`), which takes the file's write lock when it
/// starts and waits for it up to the busy timeout; a statement never acts on
/// a stale snapshot. Within one process writes also queue on an async mutex,
/// which is fairer and faster than SQLite's sleep-and-retry busy handler;
/// between processes the busy handler does the waiting. A lock held past the
/// busy timeout is an error ([`StoreError::Unavailable`]), never `Taken`.
///
/// Cloning gives another handle to the same pool. Open a file once per
/// process and clone the store, rather than opening it twice.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    // SQLite admits one writer at a time; queueing our own writers here
    // keeps them off the busy handler, which polls with sleeps.
    writer: Arc<Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating it if missing) the database file at `path` in WAL mode
    /// with the default [`SqliteStoreOptions`], and applies the migrations.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), store_sqlite::SqliteStoreError> {
    /// let store = store_sqlite::SqliteStore::open("reservations.db").await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, SqliteStoreError> {
        SqliteStoreOptions::new().open(path).await
    }

    /// A private, migrated in-memory database for tests and single-process
    /// use; it lives as long as the store and its clones.
    pub async fn in_memory() -> Result<Self, SqliteStoreError> {
        SqliteStoreOptions::new().in_memory().await
    }

    /// Opens a `sqlite:` URL with the default options and applies the
    /// migrations; see [`SqliteStoreOptions::connect`].
    pub async fn connect(url: &str) -> Result<Self, SqliteStoreError> {
        SqliteStoreOptions::new().connect(url).await
    }

    /// Wraps an existing pool as is: no migrations are run (call
    /// [`migrate`](Self::migrate)) and no settings are changed.
    ///
    /// For several processes to share a file, the pool's connections should
    /// use WAL and a busy timeout; an in-memory pool must hold a single
    /// connection (each connection to `:memory:` is a database of its own).
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self {
            pool,
            writer: Arc::new(Mutex::new(())),
        }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool; later calls fail with
    /// [`SqliteStoreError::PoolUnavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Applies the embedded migrations (`migrations/sqlite/`) that are not yet
    /// applied, recording them in [`MIGRATIONS_TABLE`]. Idempotent, and safe
    /// when several processes migrate the same file at once: the whole run
    /// holds SQLite's write lock.
    pub async fn migrate(&self) -> Result<(), SqliteStoreError> {
        let mut migrator = sqlx::migrate!("../migrations/sqlite");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        let _turn = self.writer.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(SqliteStoreError::from_sqlx)?;
        run_migrator(&migrator, &mut tx)
            .await
            .map_err(SqliteStoreError::from_migrate)?;
        tx.commit().await.map_err(SqliteStoreError::from_commit)
    }

    async fn reserve(
        &self,
        key: &ReservationKey,
        app_id: &AppId,
        ttl: Ttl,
    ) -> Result<ReserveOutcome, SqliteStoreError> {
        let ip = key.ip().to_string();
        let domain = key.domain().as_str();
        let _turn = self.writer.lock().await;
        // Each statement is atomic on its own and the unique index arbitrates
        // every insert, so no transaction is needed: whoever retires an
        // expired row, exactly one concurrent insert can win the key.
        let mut granted = self.insert_lease(&ip, domain, app_id, ttl).await?;
        if granted.is_none() {
            let retired = sqlx::query(RETIRE_EXPIRED)
                .bind(&ip)
                .bind(domain)
                .execute(&self.pool)
                .await?
                .rows_affected();
            if retired > 0 {
                granted = self.insert_lease(&ip, domain, app_id, ttl).await?;
            }
        }
        let Some((id, generation, reserved_at, expires_at)) = granted else {
            return Ok(ReserveOutcome::Taken);
        };
        Ok(ReserveOutcome::Reserved(Lease::new(
            LeaseId::from(id),
            generation_of(id, generation)?,
            key,
            app_id.clone(),
            timestamp(id, "reserved_at", reserved_at)?,
            timestamp(id, "expires_at", expires_at)?,
        )))
    }

    async fn insert_lease(
        &self,
        ip: &str,
        domain: &str,
        app_id: &AppId,
        ttl: Ttl,
    ) -> Result<Option<(i64, i64, i64, i64)>, sqlx::Error> {
        sqlx::query_as(INSERT_LEASE)
            .bind(ip)
            .bind(domain)
            .bind(app_id.as_str())
            .bind(i64::from(ttl.as_secs()))
            .fetch_optional(&self.pool)
            .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<ReleaseOutcome, SqliteStoreError> {
        let Some(grant) = Grant::of(lease) else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        let _turn = self.writer.lock().await;
        let released = sqlx::query(RELEASE)
            .bind(grant.id)
            .bind(grant.generation)
            .bind(&grant.ip)
            .bind(&grant.domain)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(release_outcome(released))
    }

    async fn cool_down(
        &self,
        lease: &Lease,
        cooldown: Ttl,
    ) -> Result<ReleaseOutcome, SqliteStoreError> {
        let Some(grant) = Grant::of(lease) else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        let _turn = self.writer.lock().await;
        let cooled = sqlx::query(START_COOLDOWN)
            .bind(grant.id)
            .bind(grant.generation)
            .bind(&grant.ip)
            .bind(&grant.domain)
            .bind(i64::from(cooldown.as_secs()))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(release_outcome(cooled))
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Ttl) -> Result<RenewOutcome, SqliteStoreError> {
        let Some(grant) = Grant::of(lease) else {
            return Ok(RenewOutcome::Lost);
        };
        let _turn = self.writer.lock().await;
        let renewed: Option<(i64, i64)> = sqlx::query_as(RENEW)
            .bind(grant.id)
            .bind(grant.generation)
            .bind(&grant.ip)
            .bind(&grant.domain)
            .bind(i64::from(ttl.as_secs()))
            .fetch_optional(&self.pool)
            .await?;
        let Some((reserved_at, expires_at)) = renewed else {
            return Ok(RenewOutcome::Lost);
        };
        Ok(RenewOutcome::Renewed(Lease::new(
            lease.id.clone(),
            lease.generation,
            &lease.key(),
            lease.app_id.clone(),
            timestamp(grant.id, "reserved_at", reserved_at)?,
            timestamp(grant.id, "expires_at", expires_at)?,
        )))
    }

    async fn list_rows(&self, filter: &ListFilter) -> Result<Vec<Reservation>, SqliteStoreError> {
        let mut query = QueryBuilder::<Sqlite>::new(LIST);
        if let Some(domain) = &filter.domain {
            query
                .push(" AND r.target_domain = ")
                .push_bind(domain.as_str().to_owned());
        }
        if let Some(app_id) = &filter.app_id {
            query
                .push(" AND r.app_id = ")
                .push_bind(app_id.as_str().to_owned());
        }
        if !filter.include_released {
            query.push(" AND r.released = 0 AND r.expires_at > clock.now_ms");
        }
        query.push(" ORDER BY r.reserved_at DESC, r.generation DESC");
        if let Some(limit) = filter.limit {
            query.push(" LIMIT ").push_bind(i64::from(limit));
        }
        let rows: Vec<ListedRow> = query.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(ListedRow::into_reservation).collect()
    }

    async fn release_id(&self, id: &LeaseId) -> Result<ReleaseOutcome, SqliteStoreError> {
        // Ids are row ids; any other text names no reservation here.
        let Ok(id) = id.as_str().parse::<i64>() else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        let _turn = self.writer.lock().await;
        let released = sqlx::query(RELEASE_BY_ID)
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(release_outcome(released))
    }

    async fn purge(&self, older_than: Duration) -> Result<u64, SqliteStoreError> {
        let age_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let _turn = self.writer.lock().await;
        Ok(sqlx::query(PURGE)
            .bind(age_ms)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

/// The (id, generation, key) of a lease as bound to the `live_grant!`
/// parameters.
struct Grant {
    id: i64,
    generation: i64,
    ip: String,
    domain: String,
}

impl Grant {
    /// `None` when the lease cannot name a row of this store (foreign id or a
    /// generation beyond SQLite's integers): such a lease is not held here.
    fn of(lease: &Lease) -> Option<Self> {
        Some(Self {
            id: lease.id.as_str().parse().ok()?,
            generation: i64::try_from(lease.generation).ok()?,
            ip: lease.ip.to_string(),
            domain: lease.domain.as_str().to_owned(),
        })
    }
}

/// `Migrator::run` takes an `Acquire<'a>` whose bound is higher-ranked for
/// `&mut SqliteConnection`, which makes every future awaiting it fail the
/// `Send` check (so `SqliteStore::open` could not be spawned).
/// `run_direct` is sqlx's own way around that: the same migration run on a
/// connection we already hold.
fn run_migrator<'c>(
    migrator: &'c Migrator,
    conn: &'c mut SqliteConnection,
) -> impl Future<Output = Result<(), MigrateError>> + Send + 'c {
    migrator.run_direct(None, conn, false)
}

fn release_outcome(rows: u64) -> ReleaseOutcome {
    if rows > 0 {
        ReleaseOutcome::Released
    } else {
        ReleaseOutcome::NotHeld
    }
}

fn timestamp(id: i64, column: &'static str, ms: i64) -> Result<DateTime<Utc>, SqliteStoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| SqliteStoreError::CorruptRow {
        id,
        column,
        value: ms.to_string(),
    })
}

fn generation_of(id: i64, generation: i64) -> Result<u64, SqliteStoreError> {
    u64::try_from(generation).map_err(|_| SqliteStoreError::CorruptRow {
        id,
        column: "generation",
        value: generation.to_string(),
    })
}

/// One row of [`LIST`].
#[derive(sqlx::FromRow)]
struct ListedRow {
    id: i64,
    ip_address: String,
    target_domain: String,
    app_id: String,
    generation: i64,
    reserved_at: i64,
    expires_at: i64,
    cooling_down: bool,
    released: bool,
    release_reason: Option<String>,
    released_at: Option<i64>,
    now_ms: i64,
}

impl ListedRow {
    fn into_reservation(self) -> Result<Reservation, SqliteStoreError> {
        let id = self.id;
        let corrupt = |column: &'static str, value: &str| SqliteStoreError::CorruptRow {
            id,
            column,
            value: value.to_owned(),
        };
        let ip: IpAddr = self
            .ip_address
            .parse()
            .map_err(|_| corrupt("ip_address", &self.ip_address))?;
        let domain = TargetDomain::parse(&self.target_domain)
            .map_err(|_| corrupt("target_domain", &self.target_domain))?;
        let app_id =
            AppId::new(self.app_id.as_str()).map_err(|_| corrupt("app_id", &self.app_id))?;
        let (state, released_at) = if self.released {
            let state = match self.release_reason.as_deref() {
                Some("expired") => ReservationState::Expired,
                _ => ReservationState::Released,
            };
            (state, self.released_at)
        } else if self.expires_at <= self.now_ms {
            (ReservationState::Expired, Some(self.expires_at))
        } else if self.cooling_down {
            (ReservationState::CoolingDown, None)
        } else {
            (ReservationState::Held, None)
        };
        let released_at = released_at
            .map(|ms| timestamp(id, "released_at", ms))
            .transpose()?;
        let lease = Lease::new(
            LeaseId::from(id),
            generation_of(id, self.generation)?,
            &ReservationKey::new(ip, domain),
            app_id,
            timestamp(id, "reserved_at", self.reserved_at)?,
            timestamp(id, "expires_at", self.expires_at)?,
        );
        Ok(Reservation::new(lease, state, released_at))
    }
}

#[async_trait]
impl ReservationStore for SqliteStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new(STORE_NAME, true)
    }

    async fn try_reserve(
        &self,
        key: &ReservationKey,
        app_id: &AppId,
        ttl: Ttl,
    ) -> Result<ReserveOutcome, StoreError> {
        Ok(self.reserve(key, app_id, ttl).await?)
    }

    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome, StoreError> {
        Ok(self.release_lease(lease).await?)
    }

    async fn release_with_cooldown(
        &self,
        lease: &Lease,
        cooldown: Ttl,
    ) -> Result<ReleaseOutcome, StoreError> {
        Ok(self.cool_down(lease, cooldown).await?)
    }

    async fn renew(&self, lease: &Lease, ttl: Ttl) -> Result<RenewOutcome, StoreError> {
        Ok(self.renew_lease(lease, ttl).await?)
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Reservation>, StoreError> {
        Ok(self.list_rows(filter).await?)
    }

    async fn release_by_id(&self, id: &LeaseId) -> Result<ReleaseOutcome, StoreError> {
        Ok(self.release_id(id).await?)
    }

    async fn purge_released(&self, older_than: Duration) -> Result<u64, StoreError> {
        Ok(self.purge(older_than).await?)
    }
}
