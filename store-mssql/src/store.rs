//! [`MssqlStore`]: the [`ReservationStore`] on SQL Server.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use proxy_core::{
    AppId, Lease, LeaseId, ListFilter, ReleaseOutcome, RenewOutcome, Reservation, ReservationKey,
    ReservationState, ReservationStore, ReserveOutcome, StoreError, StoreInfo, TargetDomain, Ttl,
};
use tiberius::{Row, ToSql};

use crate::connection::{Connection, ConnectionManager, LastErrorSink, Target};
use crate::error::{
    DEADLOCK_VICTIM, DUPLICATE_KEY_ROW, MssqlStoreError, STORE_NAME, UNIQUE_CONSTRAINT,
};
use crate::migrate;
use crate::options::MssqlStoreOptions;
use crate::sql::{ListQuery, Schema, Statements};

/// How often a reserve chosen as a deadlock victim is retried. A victim's
/// transaction is rolled back whole, so a retry cannot double-reserve.
const DEADLOCK_RETRIES: u32 = 2;

type Pool = bb8::Pool<ConnectionManager>;
type PooledConnection<'a> = bb8::PooledConnection<'a, ConnectionManager>;

/// A [`ReservationStore`] on SQL Server (2016 or later, Azure SQL).
///
/// The filtered unique index `uq_proxy_reservation_ip_address ON
/// proxy_reservation (ip_address, target_domain) WHERE released = 0` is the
/// arbiter; time is the server's `SYSUTCDATETIME()`. Each `try_reserve` is
/// one batch and one round trip. Cloning gives another handle on the same
/// connection pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use proxy_core::{AppId, ReservationKey, ReservationStore, ReserveOutcome, Ttl};
/// use store_mssql::MssqlStore;
///
/// let store = MssqlStore::connect(
///     "mssql://scraper:s3cret@db.internal:1433/proxies?trust_server_certificate=true",
/// )
/// .await?;
/// store.migrate().await?;
///
/// let key = ReservationKey::parse("203.0.113.7", "example.com")?;
/// let app = AppId::new("price-scraper")?;
/// if let ReserveOutcome::Reserved(lease) = store.try_reserve(&key, &app, Ttl::DEFAULT).await? {
///     // … scrape through 203.0.113.7 …
///     let _ = store.release(&lease).await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MssqlStore {
    pool: Pool,
    statements: Arc<Statements>,
    schema: Schema,
    server: Arc<str>,
    acquire_timeout: Duration,
    last_connect_error: Arc<Mutex<Option<Arc<MssqlStoreError>>>>,
}

impl fmt::Debug for MssqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.pool.state();
        f.debug_struct("MssqlStore")
            .field("server", &self.server)
            .field("schema", &self.schema)
            .field("connections", &state.connections)
            .field("idle_connections", &state.idle_connections)
            .finish()
    }
}

impl MssqlStore {
    /// Connects with default [`MssqlStoreOptions`].
    ///
    /// `ado_or_url` is an ADO.NET connection string
    /// (`server=tcp:db,1433;database=proxies;user id=scraper;password=…;TrustServerCertificate=true`),
    /// a JDBC URL (`jdbc:sqlserver://db:1433;…`), or a URL
    /// `mssql://user:password@host:port/database` with percent-encoded
    /// credentials and optional `encrypt`, `trust_server_certificate`,
    /// `trust_server_certificate_ca`, `application_name` and `instance`
    /// parameters. The connection string never appears in errors.
    ///
    /// One session is opened at once, so a wrong address, login or session
    /// setting fails here with its own error.
    pub async fn connect(ado_or_url: &str) -> Result<Self, MssqlStoreError> {
        Self::connect_with(ado_or_url, MssqlStoreOptions::new()).await
    }

    /// Connects with the given options.
    pub async fn connect_with(
        ado_or_url: &str,
        options: MssqlStoreOptions,
    ) -> Result<Self, MssqlStoreError> {
        Self::open(Target::parse(ado_or_url)?, options).await
    }

    /// Connects with a tiberius [`Config`](tiberius::Config) built in code
    /// (for settings no connection string expresses, such as an AAD token).
    pub async fn connect_config(
        config: tiberius::Config,
        options: MssqlStoreOptions,
    ) -> Result<Self, MssqlStoreError> {
        Self::open(Target::from_config(config), options).await
    }

    async fn open(target: Target, options: MssqlStoreOptions) -> Result<Self, MssqlStoreError> {
        let schema = Schema::new(&options.schema)?;
        let last_connect_error = Arc::new(Mutex::new(None));
        let server: Arc<str> = Arc::from(target.server.as_str());
        let acquire_timeout = options.acquire_timeout;
        let manager = ConnectionManager {
            target,
            options: options.clone(),
        };
        let pool = bb8::Pool::builder()
            .max_size(options.max_connections)
            .connection_timeout(options.acquire_timeout)
            .idle_timeout(options.idle_timeout)
            // A check-out test would cost a round trip per operation; broken
            // and abandoned connections are dropped instead (see
            // `Connection::suspect`).
            .test_on_check_out(false)
            .error_sink(Box::new(LastErrorSink(Arc::clone(&last_connect_error))))
            .build_unchecked(manager);
        // Open the first session now so that connect() reports what is wrong.
        let first = pool.dedicated_connection().await?;
        if pool.add(first).is_err() {
            tracing::debug!("SQL Server pool full at start; first session dropped");
        }
        Ok(Self {
            pool,
            statements: Arc::new(Statements::new(&schema)),
            schema,
            server,
            acquire_timeout,
            last_connect_error,
        })
    }

    /// Creates or updates the schema: runs the embedded
    /// `migrations/mssql/*.sql` scripts not yet recorded in
    /// `proxy_reservation_migrations`, each in one transaction. Safe to call
    /// on every start and from several processes at once (an application
    /// lock serialises them).
    ///
    /// Needs `CREATE TABLE`, `CREATE SEQUENCE` (and `CREATE SCHEMA` for a
    /// schema that does not exist yet); the store itself then needs only
    /// `SELECT`, `INSERT`, `UPDATE`, `DELETE` on the table and `UPDATE` on
    /// the sequence.
    pub async fn migrate(&self) -> Result<(), MssqlStoreError> {
        let mut connection = self.checkout().await?;
        migrate::run(&mut connection, &self.schema).await
    }

    /// The schema holding the table.
    pub fn schema(&self) -> &str {
        self.schema.name()
    }

    /// `host:port` of the server (never credentials).
    pub fn server(&self) -> &str {
        &self.server
    }

    async fn checkout(&self) -> Result<PooledConnection<'_>, MssqlStoreError> {
        self.pool.get().await.map_err(|error| match error {
            bb8::RunError::User(error) => error,
            bb8::RunError::TimedOut => MssqlStoreError::PoolTimeout {
                waited: self.acquire_timeout,
                last_error: self
                    .last_connect_error
                    .lock()
                    .ok()
                    .and_then(|last| last.clone()),
            },
        })
    }

    async fn rows(&self, sql: &str, params: &[&dyn ToSql]) -> Result<Vec<Row>, MssqlStoreError> {
        let mut connection = self.checkout().await?;
        let conn: &mut Connection = &mut connection;
        conn.rows(sql, params).await
    }
}

/// The row id inside a lease id; `None` for ids this store never issued.
fn row_id(id: &LeaseId) -> Option<i64> {
    id.as_str().parse::<i64>().ok().filter(|id| *id > 0)
}

fn unexpected(what: String) -> MssqlStoreError {
    MssqlStoreError::UnexpectedResult { what, source: None }
}

fn column<'a, T: tiberius::FromSql<'a>>(row: &'a Row, name: &str) -> Result<T, MssqlStoreError> {
    match row.try_get::<T, _>(name) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(unexpected(format!("column {name} is NULL"))),
        Err(source) => Err(MssqlStoreError::UnexpectedResult {
            what: format!("column {name} is missing or of another type"),
            source: Some(source),
        }),
    }
}

fn optional<'a, T: tiberius::FromSql<'a>>(
    row: &'a Row,
    name: &str,
) -> Result<Option<T>, MssqlStoreError> {
    row.try_get::<T, _>(name)
        .map_err(|source| MssqlStoreError::UnexpectedResult {
            what: format!("column {name} is missing or of another type"),
            source: Some(source),
        })
}

/// The lease a row of [`crate::sql::LEASE_COLUMNS`] describes.
fn lease_from_row(row: &Row) -> Result<Lease, MssqlStoreError> {
    let id: i64 = column(row, "id")?;
    let generation: i64 = column(row, "generation")?;
    let generation = u64::try_from(generation)
        .map_err(|_| unexpected(format!("row {id} has a negative generation {generation}")))?;
    let ip: &str = column(row, "ip_address")?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| unexpected(format!("row {id} has an unreadable ip_address {ip:?}")))?;
    let domain: &str = column(row, "target_domain")?;
    let domain = TargetDomain::parse(domain).map_err(|_| {
        unexpected(format!(
            "row {id} has an unreadable target_domain {domain:?}"
        ))
    })?;
    let app_id: &str = column(row, "app_id")?;
    let app_id = AppId::new(app_id)
        .map_err(|_| unexpected(format!("row {id} has an unreadable app_id {app_id:?}")))?;
    let reserved_at: DateTime<Utc> = column(row, "reserved_at")?;
    let expires_at: DateTime<Utc> = column(row, "expires_at")?;
    Ok(Lease::new(
        LeaseId::from(id),
        generation,
        &ReservationKey::new(ip, domain),
        app_id,
        reserved_at,
        expires_at,
    ))
}

/// A listed row: the lease and its state as of the listing's `now`.
fn reservation_from_row(row: &Row) -> Result<Reservation, MssqlStoreError> {
    let lease = lease_from_row(row)?;
    let now: DateTime<Utc> = column(row, "as_of")?;
    let released: bool = column(row, "released")?;
    let cooling_down: bool = column(row, "cooling_down")?;
    let released_at: Option<DateTime<Utc>> = optional(row, "released_at")?;
    let (state, released_at) = state_of(&lease, now, released, cooling_down, released_at);
    Ok(Reservation::new(lease, state, released_at))
}

/// What a row is at `now`, and when it ended if it did.
///
/// A takeover marks the expired row released at the moment it expired,
/// while a holder or operator can only release a row before that moment:
/// so a release time at or after the expiry means "expired".
fn state_of(
    lease: &Lease,
    now: DateTime<Utc>,
    released: bool,
    cooling_down: bool,
    released_at: Option<DateTime<Utc>>,
) -> (ReservationState, Option<DateTime<Utc>>) {
    if released {
        let state = match released_at {
            Some(at) if at >= lease.expires_at => ReservationState::Expired,
            _ => ReservationState::Released,
        };
        (state, released_at)
    } else if lease.expires_at <= now {
        // Expired, not yet taken over: it ended when its TTL ran out.
        (ReservationState::Expired, Some(lease.expires_at))
    } else if cooling_down {
        (ReservationState::CoolingDown, None)
    } else {
        (ReservationState::Held, None)
    }
}

#[async_trait]
impl ReservationStore for MssqlStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new(STORE_NAME, true)
    }

    async fn try_reserve(
        &self,
        key: &ReservationKey,
        app_id: &AppId,
        ttl: Ttl,
    ) -> Result<ReserveOutcome, StoreError> {
        let ip = key.ip().to_string();
        let domain = key.domain().as_str();
        let app = app_id.as_str();
        // Ttl is at most 30 days: always an int.
        let seconds = i32::try_from(ttl.as_secs()).unwrap_or(i32::MAX);
        let mut attempt = 0;
        loop {
            let result = self
                .rows(
                    &self.statements.reserve,
                    &[&ip.as_str(), &domain, &app, &seconds],
                )
                .await;
            return match result {
                Ok(rows) => match rows.first() {
                    None => Ok(ReserveOutcome::Taken),
                    Some(row) => {
                        let id: i64 = column(row, "id")?;
                        let generation: i64 = column(row, "generation")?;
                        let generation = u64::try_from(generation)
                            .map_err(|_| unexpected(format!("negative generation {generation}")))?;
                        Ok(ReserveOutcome::Reserved(Lease::new(
                            LeaseId::from(id),
                            generation,
                            key,
                            app_id.clone(),
                            column(row, "reserved_at")?,
                            column(row, "expires_at")?,
                        )))
                    }
                },
                // The batch catches these itself; should one still arrive,
                // XACT_ABORT has rolled everything back: nothing was written.
                Err(error)
                    if matches!(
                        error.server_error_number(),
                        Some(DUPLICATE_KEY_ROW | UNIQUE_CONSTRAINT)
                    ) =>
                {
                    Ok(ReserveOutcome::Taken)
                }
                Err(error)
                    if error.server_error_number() == Some(DEADLOCK_VICTIM)
                        && attempt < DEADLOCK_RETRIES =>
                {
                    attempt += 1;
                    tracing::debug!(key = %key, attempt, "reserve chosen as deadlock victim; retrying");
                    continue;
                }
                Err(error) => Err(error.into()),
            };
        }
    }

    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome, StoreError> {
        let (Some(id), Ok(generation)) = (row_id(&lease.id), i64::try_from(lease.generation))
        else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        let rows = self
            .rows(&self.statements.release, &[&id, &generation])
            .await?;
        Ok(if rows.is_empty() {
            ReleaseOutcome::NotHeld
        } else {
            ReleaseOutcome::Released
        })
    }

    async fn release_with_cooldown(
        &self,
        lease: &Lease,
        cooldown: Ttl,
    ) -> Result<ReleaseOutcome, StoreError> {
        let (Some(id), Ok(generation)) = (row_id(&lease.id), i64::try_from(lease.generation))
        else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        let seconds = i32::try_from(cooldown.as_secs()).unwrap_or(i32::MAX);
        let rows = self
            .rows(
                &self.statements.release_with_cooldown,
                &[&id, &generation, &seconds],
            )
            .await?;
        Ok(if rows.is_empty() {
            ReleaseOutcome::NotHeld
        } else {
            ReleaseOutcome::Released
        })
    }

    async fn renew(&self, lease: &Lease, ttl: Ttl) -> Result<RenewOutcome, StoreError> {
        let (Some(id), Ok(generation)) = (row_id(&lease.id), i64::try_from(lease.generation))
        else {
            return Ok(RenewOutcome::Lost);
        };
        let seconds = i32::try_from(ttl.as_secs()).unwrap_or(i32::MAX);
        let rows = self
            .rows(&self.statements.renew, &[&id, &generation, &seconds])
            .await?;
        match rows.first() {
            None => Ok(RenewOutcome::Lost),
            Some(row) => Ok(RenewOutcome::Renewed(lease_from_row(row)?)),
        }
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Reservation>, StoreError> {
        let query = ListQuery {
            domain: filter.domain.is_some(),
            app_id: filter.app_id.is_some(),
            include_released: filter.include_released,
            limit: filter.limit.is_some(),
        };
        let sql = self.statements.list(&query);
        let domain = filter.domain.as_ref().map(TargetDomain::as_str);
        let app = filter.app_id.as_ref().map(AppId::as_str);
        let limit = filter.limit.map(i64::from);
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(3);
        if let Some(domain) = &domain {
            params.push(domain);
        }
        if let Some(app) = &app {
            params.push(app);
        }
        if let Some(limit) = &limit {
            params.push(limit);
        }
        let rows = self.rows(&sql, &params).await?;
        let reservations = rows
            .iter()
            .map(reservation_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(reservations)
    }

    async fn release_by_id(&self, id: &LeaseId) -> Result<ReleaseOutcome, StoreError> {
        let Some(id) = row_id(id) else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        let rows = self.rows(&self.statements.release_by_id, &[&id]).await?;
        Ok(if rows.is_empty() {
            ReleaseOutcome::NotHeld
        } else {
            ReleaseOutcome::Released
        })
    }

    async fn purge_released(&self, older_than: Duration) -> Result<u64, StoreError> {
        let (seconds, millis) = match i32::try_from(older_than.as_secs()) {
            Ok(seconds) => (
                seconds,
                i32::try_from(older_than.subsec_millis()).unwrap_or(0),
            ),
            // Further back than any row can be: everything released.
            Err(_) => (i32::MAX, 0),
        };
        let rows = self
            .rows(&self.statements.purge, &[&seconds, &millis])
            .await?;
        let deleted: i64 = match rows.first() {
            Some(row) => column(row, "deleted")?,
            None => return Err(unexpected("purge returned no count".to_owned()).into()),
        };
        Ok(u64::try_from(deleted).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono::TimeZone;

    fn lease(reserved: i64, expires: i64) -> Lease {
        Lease::new(
            LeaseId::from(1_i64),
            1,
            &ReservationKey::parse("198.51.100.1", "example.com").unwrap(),
            AppId::new("app").unwrap(),
            Utc.timestamp_opt(reserved, 0).unwrap(),
            Utc.timestamp_opt(expires, 0).unwrap(),
        )
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(seconds, 0).unwrap()
    }

    #[test]
    fn row_states_follow_the_server_clock() {
        use ReservationState::*;
        let l = lease(100, 160);
        assert_eq!(state_of(&l, at(120), false, false, None), (Held, None));
        assert_eq!(
            state_of(&l, at(120), false, true, None),
            (CoolingDown, None)
        );
        // Past its expiry, unreleased: expired at its expiry.
        assert_eq!(
            state_of(&l, at(160), false, false, None),
            (Expired, Some(at(160)))
        );
        assert_eq!(
            state_of(&l, at(200), false, true, None),
            (Expired, Some(at(160)))
        );
        // Released by its holder before expiry, or taken over after it.
        assert_eq!(
            state_of(&l, at(300), true, false, Some(at(130))),
            (Released, Some(at(130)))
        );
        assert_eq!(
            state_of(&l, at(300), true, false, Some(at(160))),
            (Expired, Some(at(160)))
        );
        // Released by an application of the original design (no time).
        assert_eq!(state_of(&l, at(300), true, false, None), (Released, None));
    }

    #[test]
    fn only_positive_numeric_lease_ids_are_row_ids() {
        assert_eq!(row_id(&LeaseId::new("42")), Some(42));
        assert_eq!(row_id(&LeaseId::from(7_i64)), Some(7));
        for foreign in [
            "0",
            "-1",
            "no-such-lease",
            "",
            "1.5",
            "99999999999999999999",
        ] {
            assert_eq!(row_id(&LeaseId::new(foreign)), None, "{foreign:?}");
        }
    }
}
