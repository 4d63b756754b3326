//! [`PostgresStore`]: the [`ReservationStore`] contract on one PostgreSQL
//! table.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use proxy_core::{
    AppId, Lease, LeaseId, ListFilter, ReleaseOutcome, RenewOutcome, Reservation, ReservationKey,
    ReservationState, ReservationStore, ReserveOutcome, StoreError, StoreInfo, TargetDomain, Ttl,
};
use sqlx::postgres::{PgArguments, PgConnection, PgPool, PgQueryResult, PgRow};
use sqlx::{AssertSqlSafe, Postgres, Row, SqlSafeStr, SqlStr};

use crate::connections::{Checkout, Connections};
use crate::error::{
    Operation, PostgresStoreError, STORE_NAME, classify_acquire, classify_statement, constraint,
    sqlstate,
};
use crate::identifier::Identifier;
use crate::options::{PostgresStoreBuilder, StatementMode};
use crate::schema::{self, DEFAULT_TABLE};
use crate::sql::{Param, QualifiedTable, Statements, inline};

/// The longest history `purge_released` is asked to keep, in microseconds
/// (100 years): beyond it the cutoff would leave PostgreSQL's date range.
const MAX_PURGE_AGE_MICROS: i64 = 100 * 366 * 24 * 3600 * 1_000_000;

/// A [`ReservationStore`] on a PostgreSQL table shared by every process and
/// server that points at it.
///
/// Exclusion is enforced by the table's unique partial index
/// `uq_proxy_reservation_ip_address ON (ip_address, target_domain) WHERE
/// released = false`; every reserve attempt is one `INSERT … ON CONFLICT …
/// DO UPDATE … WHERE <expired>` statement, one round trip. Expiry is
/// decided by the database clock. Cloning gives another handle to the same
/// pool. See the crate documentation for the schema, timeouts and poolers.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    connections: Connections,
    table: QualifiedTable,
    statements: Statements,
    mode: StatementMode,
    /// `SET LOCAL …; ` for the timeouts, sent before each statement in
    /// simple-query mode.
    set_local: String,
}

impl fmt::Debug for PostgresStore {
    // The pool's connect options may hold a password: show only what is
    // safe.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.inner.table.display)
            .field("mode", &self.inner.mode)
            .field("pool_size", &self.inner.connections.pool().size())
            .finish_non_exhaustive()
    }
}

/// Why a statement failed: before or after it was handed to a connection.
#[derive(Debug)]
enum Failure {
    Acquire(sqlx::Error),
    Statement(sqlx::Error),
}

impl Failure {
    fn classify(self, operation: Operation, table: &QualifiedTable) -> PostgresStoreError {
        match self {
            Failure::Acquire(error) => classify_acquire(operation, error),
            Failure::Statement(error) => classify_statement(operation, &table.display, error),
        }
    }
}

const TRY_RESERVE: Operation = Operation::write("try_reserve");
const RELEASE: Operation = Operation::write("release");
const RELEASE_WITH_COOLDOWN: Operation = Operation::write("release_with_cooldown");
const RENEW: Operation = Operation::write("renew");
const RELEASE_BY_ID: Operation = Operation::write("release_by_id");
const PURGE_RELEASED: Operation = Operation::write("purge_released");
const LIST: Operation = Operation::read("list");
const MIGRATE: Operation = Operation::write("migrate");

impl PostgresStore {
    /// Connects to `url` with the default settings (see
    /// [`PostgresStoreBuilder`]). Call [`migrate`](Self::migrate) once
    /// before the first use of a new database.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), store_postgres::PostgresStoreError> {
    /// let store = store_postgres::PostgresStore::connect("postgres://app@db.internal/app").await?;
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, PostgresStoreError> {
        PostgresStoreBuilder::new().connect(url).await
    }

    /// Uses an existing pool with the default table name, as it is (see
    /// [`PostgresStoreBuilder::build`] for what that means for timeouts).
    pub fn from_pool(pool: PgPool) -> Self {
        let table = QualifiedTable::new(None, Identifier::trusted(DEFAULT_TABLE));
        Self::assemble(
            Connections::shared(pool),
            table,
            &PostgresStoreBuilder::new(),
        )
    }

    /// Settings for a store: names, timeouts, pool, statement mode.
    pub fn builder() -> PostgresStoreBuilder {
        PostgresStoreBuilder::new()
    }

    pub(crate) fn assemble(
        connections: Connections,
        table: QualifiedTable,
        builder: &PostgresStoreBuilder,
    ) -> Self {
        let mode = builder.mode();
        let set_local = match mode {
            StatementMode::SimpleQuery => builder.set_local_prefix(),
            StatementMode::Prepared => String::new(),
        };
        Self {
            inner: Arc::new(Inner {
                statements: Statements::new(&table),
                connections,
                table,
                mode,
                set_local,
            }),
        }
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &PgPool {
        self.inner.connections.pool()
    }

    /// The reservation table, `schema.table` or `table`.
    pub fn table_name(&self) -> &str {
        &self.inner.table.display
    }

    /// The name of the unique partial index that arbitrates exclusion.
    pub fn unique_index_name(&self) -> &str {
        &self.inner.table.unique_index
    }

    /// Creates or upgrades the reservation table (and its schema, if one is
    /// configured) with the embedded migrations of `migrations/postgres/`.
    ///
    /// Safe to call from many processes at once: sqlx serialises migrators
    /// with a PostgreSQL advisory lock. Applied versions are recorded in
    /// `<table>_migrations` next to the table. Needs a direct connection
    /// (or a session-mode pooler), not a transaction-mode pooler.
    pub async fn migrate(&self) -> Result<(), PostgresStoreError> {
        let migrator = schema::migrator(&self.inner.table);
        let mut checkout = self
            .inner
            .connections
            .checkout()
            .await
            .map_err(|error| classify_acquire(MIGRATE, error))?;
        // Migrators queue on sqlx's advisory lock and a first migration of a
        // large existing table may rewrite it: the store's timeouts are for
        // reservations, not for this. The session is closed afterwards, so
        // the pool never sees these settings.
        checkout.close();
        let conn = Self::connection(&mut checkout)
            .map_err(|failure| failure.classify(MIGRATE, &self.inner.table))?;
        sqlx::raw_sql("SET lock_timeout = 0; SET statement_timeout = 0")
            .execute(&mut *conn)
            .await
            .map_err(|error| classify_statement(MIGRATE, &self.inner.table.display, error))?;
        // `run_direct` is what `Migrator::run` calls after acquiring; called
        // on the connection itself, the future stays `Send` (sqlx's own
        // workaround for "implementation of `Acquire` is not general
        // enough"). Closing the session also ends sqlx's session-level
        // advisory lock, which a failed migration leaves held.
        let result = migrator.run_direct(None, conn, false).await;
        result.map_err(|source| PostgresStoreError::Migrate {
            table: self.inner.table.display.clone(),
            source,
        })
    }

    fn query<'q>(
        sql: &SqlStr,
        params: &[Param<'q>],
    ) -> sqlx::query::Query<'q, Postgres, PgArguments> {
        params
            .iter()
            .fold(sqlx::query(sql.clone()), |query, param| match *param {
                Param::Text(text) => query.bind(text),
                Param::Int(value) => query.bind(value),
                Param::NullInt => query.bind(None::<i64>),
            })
    }

    /// In simple-query mode, the statement as one Query message with the
    /// timeouts first; `None` in prepared mode.
    fn simple_query(&self, sql: &SqlStr, params: &[Param<'_>]) -> Result<Option<SqlStr>, Failure> {
        if self.inner.mode != StatementMode::SimpleQuery {
            return Ok(None);
        }
        let text = inline(sql.as_str(), params).map_err(Failure::Statement)?;
        Ok(Some(
            AssertSqlSafe(format!("{}{text}", self.inner.set_local)).into_sql_str(),
        ))
    }

    async fn checkout(&self) -> Result<Checkout<'_>, Failure> {
        self.inner
            .connections
            .checkout()
            .await
            .map_err(Failure::Acquire)
    }

    /// The checked-out connection (always there until the checkout drops).
    fn connection<'c>(checkout: &'c mut Checkout<'_>) -> Result<&'c mut PgConnection, Failure> {
        checkout
            .connection()
            .ok_or(Failure::Acquire(sqlx::Error::PoolClosed))
    }

    async fn fetch_optional(
        &self,
        sql: &SqlStr,
        params: &[Param<'_>],
    ) -> Result<Option<PgRow>, Failure> {
        let simple = self.simple_query(sql, params)?;
        let mut checkout = self.checkout().await?;
        let conn = Self::connection(&mut checkout)?;
        let result = match simple {
            None => Self::query(sql, params).fetch_optional(conn).await,
            Some(text) => sqlx::raw_sql(text).fetch_optional(conn).await,
        };
        checkout.finished(result.as_ref().err());
        result.map_err(Failure::Statement)
    }

    async fn fetch_all(&self, sql: &SqlStr, params: &[Param<'_>]) -> Result<Vec<PgRow>, Failure> {
        let simple = self.simple_query(sql, params)?;
        let mut checkout = self.checkout().await?;
        let conn = Self::connection(&mut checkout)?;
        let result = match simple {
            None => Self::query(sql, params).fetch_all(conn).await,
            Some(text) => sqlx::raw_sql(text).fetch_all(conn).await,
        };
        checkout.finished(result.as_ref().err());
        result.map_err(Failure::Statement)
    }

    async fn execute(&self, sql: &SqlStr, params: &[Param<'_>]) -> Result<u64, Failure> {
        let simple = self.simple_query(sql, params)?;
        let mut checkout = self.checkout().await?;
        let conn = Self::connection(&mut checkout)?;
        let result: Result<PgQueryResult, sqlx::Error> = match simple {
            None => Self::query(sql, params).execute(conn).await,
            Some(text) => sqlx::raw_sql(text).execute(conn).await,
        };
        checkout.finished(result.as_ref().err());
        result
            .map(|done| done.rows_affected())
            .map_err(Failure::Statement)
    }

    fn invalid_row(&self, id: i64, column: &'static str, value: String) -> PostgresStoreError {
        PostgresStoreError::InvalidRow {
            table: self.inner.table.display.clone(),
            id,
            column,
            value,
        }
    }

    fn generation(&self, id: i64, generation: i64) -> Result<u64, PostgresStoreError> {
        u64::try_from(generation)
            .map_err(|_| self.invalid_row(id, "generation", generation.to_string()))
    }

    /// Reads a listed row back into a [`Reservation`].
    fn reservation(&self, row: &PgRow) -> Result<Reservation, PostgresStoreError> {
        let get = |error: sqlx::Error| classify_statement(LIST, &self.inner.table.display, error);
        let id: i64 = row.try_get("id").map_err(get)?;
        let generation: i64 = row.try_get("generation").map_err(get)?;
        let ip: String = row.try_get("ip_address").map_err(get)?;
        let domain: String = row.try_get("target_domain").map_err(get)?;
        let app_id: String = row.try_get("app_id").map_err(get)?;
        let reserved_at: DateTime<Utc> = row.try_get("reserved_at").map_err(get)?;
        let expires_at: DateTime<Utc> = row.try_get("expires_at").map_err(get)?;
        let released: bool = row.try_get("released").map_err(get)?;
        let released_at: Option<DateTime<Utc>> = row.try_get("released_at").map_err(get)?;
        let cooling_down: bool = row.try_get("cooling_down").map_err(get)?;
        let expired: bool = row.try_get("expired").map_err(get)?;

        let ip = proxy_core::normalize_ip(&ip)
            .ok()
            .filter(|parsed: &IpAddr| parsed.to_string() == ip)
            .ok_or_else(|| self.invalid_row(id, "ip_address", ip.clone()))?;
        let domain = TargetDomain::parse(&domain)
            .ok()
            .filter(|parsed| parsed.as_str() == domain)
            .ok_or_else(|| self.invalid_row(id, "target_domain", domain.clone()))?;
        let app_id =
            AppId::new(app_id.clone()).map_err(|_| self.invalid_row(id, "app_id", app_id))?;
        let key = ReservationKey::new(ip, domain);
        let lease = Lease::new(
            LeaseId::from(id),
            self.generation(id, generation)?,
            &key,
            app_id,
            reserved_at,
            expires_at,
        );
        let (state, released_at) = if released {
            (ReservationState::Released, released_at)
        } else if expired {
            (ReservationState::Expired, Some(expires_at))
        } else if cooling_down {
            (ReservationState::CoolingDown, None)
        } else {
            (ReservationState::Held, None)
        };
        Ok(Reservation::new(lease, state, released_at))
    }

    async fn try_reserve_inner(
        &self,
        key: &ReservationKey,
        app_id: &AppId,
        ttl: Ttl,
    ) -> Result<ReserveOutcome, PostgresStoreError> {
        let ip = key.ip().to_string();
        let params = [
            Param::Text(&ip),
            Param::Text(key.domain().as_str()),
            Param::Text(app_id.as_str()),
            Param::Int(i64::from(ttl.as_secs())),
        ];
        let row = match self
            .fetch_optional(&self.inner.statements.try_reserve, &params)
            .await
        {
            Ok(Some(row)) => row,
            // The key's row is live (held or cooling down): the WHERE of
            // the DO UPDATE refused the takeover.
            Ok(None) => return Ok(ReserveOutcome::Taken),
            Err(Failure::Statement(error))
                if sqlstate(&error) == Some("23505")
                    && constraint(&error) == Some(self.inner.table.unique_index.as_str()) =>
            {
                // ON CONFLICT handles conflicts on its arbiter index, so this
                // should not happen; if it does, the index says "taken".
                return Ok(ReserveOutcome::Taken);
            }
            Err(failure) => return Err(failure.classify(TRY_RESERVE, &self.inner.table)),
        };
        let get = |error| classify_statement(TRY_RESERVE, &self.inner.table.display, error);
        let id: i64 = row.try_get("id").map_err(get)?;
        let generation: i64 = row.try_get("generation").map_err(get)?;
        let reserved_at: DateTime<Utc> = row.try_get("reserved_at").map_err(get)?;
        let expires_at: DateTime<Utc> = row.try_get("expires_at").map_err(get)?;
        Ok(ReserveOutcome::Reserved(Lease::new(
            LeaseId::from(id),
            self.generation(id, generation)?,
            key,
            app_id.clone(),
            reserved_at,
            expires_at,
        )))
    }

    /// The row id and generation a lease names, if it could name a row.
    fn grant(lease: &Lease) -> Option<(String, i64, i64)> {
        let id = lease.id.as_str().parse::<i64>().ok()?;
        let generation = i64::try_from(lease.generation).ok()?;
        Some((lease.ip.to_string(), id, generation))
    }

    async fn released(
        &self,
        operation: Operation,
        sql: &SqlStr,
        params: &[Param<'_>],
    ) -> Result<ReleaseOutcome, PostgresStoreError> {
        let rows = self
            .execute(sql, params)
            .await
            .map_err(|f| f.classify(operation, &self.inner.table))?;
        Ok(if rows > 0 {
            ReleaseOutcome::Released
        } else {
            ReleaseOutcome::NotHeld
        })
    }
}

#[async_trait]
impl ReservationStore for PostgresStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new(STORE_NAME, true)
    }

    async fn try_reserve(
        &self,
        key: &ReservationKey,
        app_id: &AppId,
        ttl: Ttl,
    ) -> Result<ReserveOutcome, StoreError> {
        Ok(self.try_reserve_inner(key, app_id, ttl).await?)
    }

    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome, StoreError> {
        let Some((ip, id, generation)) = Self::grant(lease) else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        let params = [
            Param::Text(&ip),
            Param::Text(lease.domain.as_str()),
            Param::Int(id),
            Param::Int(generation),
        ];
        Ok(self
            .released(RELEASE, &self.inner.statements.release, &params)
            .await?)
    }

    async fn release_with_cooldown(
        &self,
        lease: &Lease,
        cooldown: Ttl,
    ) -> Result<ReleaseOutcome, StoreError> {
        let Some((ip, id, generation)) = Self::grant(lease) else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        let params = [
            Param::Text(&ip),
            Param::Text(lease.domain.as_str()),
            Param::Int(id),
            Param::Int(generation),
            Param::Int(i64::from(cooldown.as_secs())),
        ];
        Ok(self
            .released(
                RELEASE_WITH_COOLDOWN,
                &self.inner.statements.release_with_cooldown,
                &params,
            )
            .await?)
    }

    async fn renew(&self, lease: &Lease, ttl: Ttl) -> Result<RenewOutcome, StoreError> {
        let Some((ip, id, generation)) = Self::grant(lease) else {
            return Ok(RenewOutcome::Lost);
        };
        let params = [
            Param::Text(&ip),
            Param::Text(lease.domain.as_str()),
            Param::Int(id),
            Param::Int(generation),
            Param::Int(i64::from(ttl.as_secs())),
        ];
        let row = self
            .fetch_optional(&self.inner.statements.renew, &params)
            .await
            .map_err(|f| f.classify(RENEW, &self.inner.table))?;
        let Some(row) = row else {
            return Ok(RenewOutcome::Lost);
        };
        let get = |error| classify_statement(RENEW, &self.inner.table.display, error);
        let mut renewed = lease.clone();
        renewed.reserved_at = row.try_get("reserved_at").map_err(get)?;
        renewed.expires_at = row.try_get("expires_at").map_err(get)?;
        Ok(RenewOutcome::Renewed(renewed))
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Reservation>, StoreError> {
        let sql = self.inner.statements.list(
            filter.domain.is_some(),
            filter.app_id.is_some(),
            filter.include_released,
        );
        let mut params = Vec::with_capacity(3);
        if let Some(domain) = &filter.domain {
            params.push(Param::Text(domain.as_str()));
        }
        if let Some(app_id) = &filter.app_id {
            params.push(Param::Text(app_id.as_str()));
        }
        params.push(match filter.limit {
            Some(limit) => Param::Int(i64::from(limit)),
            None => Param::NullInt,
        });
        let rows = self
            .fetch_all(sql, &params)
            .await
            .map_err(|f| f.classify(LIST, &self.inner.table))?;
        Ok(rows
            .iter()
            .map(|row| self.reservation(row))
            .collect::<Result<_, _>>()?)
    }

    async fn release_by_id(&self, id: &LeaseId) -> Result<ReleaseOutcome, StoreError> {
        // Our ids are row ids; anything else names no row.
        let Ok(id) = id.as_str().parse::<i64>() else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        Ok(self
            .released(
                RELEASE_BY_ID,
                &self.inner.statements.release_by_id,
                &[Param::Int(id)],
            )
            .await?)
    }

    async fn purge_released(&self, older_than: Duration) -> Result<u64, StoreError> {
        let micros = i64::try_from(older_than.as_micros())
            .unwrap_or(i64::MAX)
            .min(MAX_PURGE_AGE_MICROS);
        let rows = self
            .execute(&self.inner.statements.purge_released, &[Param::Int(micros)])
            .await
            .map_err(|f| f.classify(PURGE_RELEASED, &self.inner.table))?;
        Ok(rows)
    }
}
