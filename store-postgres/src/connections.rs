//! The connections a store runs its statements on.
//!
//! sqlx 0.9 pings every connection that goes back to its pool (a Sync and
//! its ReadyForQuery: `Floating::return_to_pool`, not configurable) and
//! spawns a task to do it: one extra round trip per operation, which on a
//! small machine costs a third of the throughput. A store that owns its
//! pool therefore keeps connections that finished an operation cleanly
//! checked out and reuses them directly; sqlx still opens, counts and
//! closes them. A connection whose operation was cut short (future dropped)
//! or failed with a broken session goes back through sqlx, which checks or
//! closes it. A store on a pool it was given returns every connection, so
//! it never holds capacity others may need.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

type Idle = Mutex<Vec<PoolConnection<Postgres>>>;

fn lock(idle: &Idle) -> MutexGuard<'_, Vec<PoolConnection<Postgres>>> {
    // Pushing or popping cannot leave the vector half-updated.
    idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Connections kept checked out of the pool between operations.
///
/// Operations wait here, for one of `max` permits, rather than in the pool:
/// a kept connection is "in use" to sqlx, so an operation waiting in the
/// pool would never see it. With a permit in hand, either a kept
/// connection is free or the pool has room (all the pool's connections
/// that are out are held by permit holders or kept), so `pool.acquire()`
/// only ever waits for a connection to open.
#[derive(Debug)]
struct Keeper {
    idle: Idle,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
}

/// The pool plus, if the store owns it, the connections kept between
/// operations.
#[derive(Debug)]
pub(crate) struct Connections {
    pool: PgPool,
    keeper: Option<Keeper>,
}

impl Connections {
    /// A store's own pool (of at most `max` connections): connections are
    /// kept between operations.
    pub(crate) fn owned(pool: PgPool, max: u32, acquire_timeout: Duration) -> Self {
        Self {
            pool,
            keeper: Some(Keeper {
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(max.max(1) as usize)),
                acquire_timeout,
            }),
        }
    }

    /// A pool the store was given: every connection goes back after each
    /// operation.
    pub(crate) fn shared(pool: PgPool) -> Self {
        Self { pool, keeper: None }
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A kept connection, or one from the pool (which may open one).
    pub(crate) async fn checkout(&self) -> Result<Checkout<'_>, sqlx::Error> {
        let Some(keeper) = &self.keeper else {
            return Ok(Checkout {
                conn: Some(self.pool.acquire().await?),
                idle: None,
                reusable: false,
                _permit: None,
            });
        };
        let permit = tokio::time::timeout(
            keeper.acquire_timeout,
            Arc::clone(&keeper.permits).acquire_owned(),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
        .map_err(|_| sqlx::Error::PoolClosed)?;
        let kept = lock(&keeper.idle).pop();
        let conn = match kept {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        Ok(Checkout {
            conn: Some(conn),
            idle: Some(&keeper.idle),
            reusable: false,
            _permit: Some(permit),
        })
    }
}

/// A connection out for one operation.
pub(crate) struct Checkout<'a> {
    /// `Some` until dropped.
    conn: Option<PoolConnection<Postgres>>,
    /// Where to keep it afterwards, if the store keeps connections.
    idle: Option<&'a Idle>,
    /// Set when the operation ran to its end on a healthy session.
    reusable: bool,
    /// Released after the connection is back (fields drop after `drop`).
    _permit: Option<OwnedSemaphorePermit>,
}

impl Checkout<'_> {
    /// The connection; `None` cannot happen before drop.
    pub(crate) fn connection(&mut self) -> Option<&mut PgConnection> {
        self.conn.as_deref_mut()
    }

    /// Records how the operation ended: a broken session is closed, a
    /// healthy one may be kept.
    pub(crate) fn finished(&mut self, error: Option<&sqlx::Error>) {
        if error.is_some_and(broken_session) {
            self.close();
        } else {
            self.reusable = true;
        }
    }
}

impl Checkout<'_> {
    /// Closes the session instead of reusing it.
    pub(crate) fn close(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
        self.reusable = false;
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        match self.idle {
            Some(idle) if self.reusable => lock(idle).push(conn),
            // Back through sqlx: it pings the connection (or closes it).
            _ => drop(conn),
        }
    }
}

/// Whether `error` leaves the session unusable.
pub(crate) fn broken_session(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        _ => crate::error::sqlstate(error)
            .is_some_and(|code| code.starts_with("57P") || code.starts_with("08")),
    }
}
