//! The in-memory reference store for one process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::key::{AppId, ReservationKey, Ttl};
use crate::store::{
    Lease, LeaseId, ListFilter, ReleaseOutcome, RenewOutcome, Reservation, ReservationState,
    ReservationStore, ReserveOutcome, StoreError, StoreInfo,
};

/// How many released reservations [`MemoryStore`] keeps by default.
pub const DEFAULT_HISTORY_LIMIT: usize = 10_000;

/// How often (in reserve calls) expired entries are swept from the map.
const SWEEP_EVERY: u64 = 1024;

/// A [`ReservationStore`] in process memory: exclusion between the tasks and
/// threads of one process, nothing shared with other processes.
///
/// The reference implementation of the contract, and the store for tests,
/// examples and single-process scrapers. Cloning gives another handle to the
/// same reservations. Expiry uses the process's monotonic clock; reported
/// times are wall-clock time at creation plus monotonic time elapsed, so
/// they never go backwards.
///
/// Released reservations are kept as history up to a limit
/// ([`DEFAULT_HISTORY_LIMIT`] by default), oldest dropped first, so memory
/// stays bounded even if [`purge_released`](ReservationStore::purge_released)
/// is never called.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    clock_origin: (Instant, DateTime<Utc>),
    active: HashMap<ReservationKey, Entry>,
    history: VecDeque<Reservation>,
    history_limit: usize,
    next_id: u64,
    next_generation: u64,
    reserves: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    lease: Lease,
    expires: Instant,
    cooling_down: bool,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store keeping up to [`DEFAULT_HISTORY_LIMIT`] released rows.
    pub fn new() -> Self {
        Self::with_history_limit(DEFAULT_HISTORY_LIMIT)
    }

    /// An empty store keeping up to `limit` released rows (0 keeps none).
    pub fn with_history_limit(limit: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(State {
                clock_origin: (Instant::now(), Utc::now()),
                active: HashMap::new(),
                history: VecDeque::new(),
                history_limit: limit,
                next_id: 1,
                next_generation: 1,
                reserves: 0,
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that breaks exclusion (every update is a single insert or
        // remove), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn wall(&self, at: Instant) -> DateTime<Utc> {
        let (origin, wall) = self.clock_origin;
        let elapsed = at.saturating_duration_since(origin);
        chrono::Duration::from_std(elapsed)
            .ok()
            .and_then(|d| wall.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    fn retire(&mut self, entry: Entry, state: ReservationState, at: Instant) {
        if self.history_limit == 0 {
            return;
        }
        let released_at = match state {
            ReservationState::Expired => self.wall(entry.expires),
            _ => self.wall(at),
        };
        if self.history.len() >= self.history_limit {
            self.history.pop_front();
        }
        self.history
            .push_back(Reservation::new(entry.lease, state, Some(released_at)));
    }

    /// Moves every expired entry to history.
    fn sweep(&mut self, now: Instant) {
        let expired: Vec<ReservationKey> = self
            .active
            .iter()
            .filter(|(_, e)| e.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            if let Some(entry) = self.active.remove(&key) {
                self.retire(entry, ReservationState::Expired, now);
            }
        }
    }

    /// The live entry that `lease` identifies, if it is still live.
    fn live_entry(&self, lease: &Lease, now: Instant) -> Option<&Entry> {
        self.active.get(&lease.key()).filter(|e| {
            !e.cooling_down
                && e.expires > now
                && e.lease.id == lease.id
                && e.lease.generation == lease.generation
        })
    }

    fn bump_generation(&mut self) -> u64 {
        let generation = self.next_generation;
        self.next_generation += 1;
        generation
    }
}

#[async_trait]
impl ReservationStore for MemoryStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new("memory", true)
    }

    async fn try_reserve(
        &self,
        key: &ReservationKey,
        app_id: &AppId,
        ttl: Ttl,
    ) -> Result<ReserveOutcome, StoreError> {
        let now = Instant::now();
        let mut state = self.state();
        state.reserves += 1;
        if state.reserves.is_multiple_of(SWEEP_EVERY) {
            state.sweep(now);
        }
        if let Some(existing) = state.active.get(key) {
            if existing.expires > now {
                return Ok(ReserveOutcome::Taken);
            }
            if let Some(expired) = state.active.remove(key) {
                state.retire(expired, ReservationState::Expired, now);
            }
        }
        let id = LeaseId::from(state.next_id);
        state.next_id += 1;
        let generation = state.bump_generation();
        let expires = now + ttl.as_duration();
        let lease = Lease::new(
            id,
            generation,
            key,
            app_id.clone(),
            state.wall(now),
            state.wall(expires),
        );
        state.active.insert(
            key.clone(),
            Entry {
                lease: lease.clone(),
                expires,
                cooling_down: false,
            },
        );
        Ok(ReserveOutcome::Reserved(lease))
    }

    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome, StoreError> {
        let now = Instant::now();
        let mut state = self.state();
        if state.live_entry(lease, now).is_none() {
            return Ok(ReleaseOutcome::NotHeld);
        }
        match state.active.remove(&lease.key()) {
            Some(entry) => {
                state.retire(entry, ReservationState::Released, now);
                Ok(ReleaseOutcome::Released)
            }
            None => Ok(ReleaseOutcome::NotHeld),
        }
    }

    async fn release_with_cooldown(
        &self,
        lease: &Lease,
        cooldown: Ttl,
    ) -> Result<ReleaseOutcome, StoreError> {
        let now = Instant::now();
        let mut state = self.state();
        if state.live_entry(lease, now).is_none() {
            return Ok(ReleaseOutcome::NotHeld);
        }
        let generation = state.bump_generation();
        let expires = now + cooldown.as_duration();
        let (reserved_at, expires_at) = (state.wall(now), state.wall(expires));
        if let Some(entry) = state.active.get_mut(&lease.key()) {
            entry.cooling_down = true;
            entry.expires = expires;
            entry.lease.generation = generation;
            entry.lease.reserved_at = reserved_at;
            entry.lease.expires_at = expires_at;
        }
        Ok(ReleaseOutcome::Released)
    }

    async fn renew(&self, lease: &Lease, ttl: Ttl) -> Result<RenewOutcome, StoreError> {
        let now = Instant::now();
        let mut state = self.state();
        if state.live_entry(lease, now).is_none() {
            return Ok(RenewOutcome::Lost);
        }
        let expires = now + ttl.as_duration();
        let expires_at = state.wall(expires);
        match state.active.get_mut(&lease.key()) {
            Some(entry) => {
                entry.expires = expires;
                entry.lease.expires_at = expires_at;
                Ok(RenewOutcome::Renewed(entry.lease.clone()))
            }
            None => Ok(RenewOutcome::Lost),
        }
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Reservation>, StoreError> {
        let now = Instant::now();
        let mut state = self.state();
        state.sweep(now);
        let mut rows: Vec<Reservation> = state
            .active
            .values()
            .filter(|e| filter.matches(&e.lease))
            .map(|e| {
                let kind = if e.cooling_down {
                    ReservationState::CoolingDown
                } else {
                    ReservationState::Held
                };
                Reservation::new(e.lease.clone(), kind, None)
            })
            .collect();
        if filter.include_released {
            rows.extend(
                state
                    .history
                    .iter()
                    .filter(|r| filter.matches(&r.lease))
                    .cloned(),
            );
        }
        rows.sort_by(|a, b| {
            b.lease
                .reserved_at
                .cmp(&a.lease.reserved_at)
                .then(b.lease.generation.cmp(&a.lease.generation))
        });
        if let Some(limit) = filter.limit {
            rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        Ok(rows)
    }

    async fn release_by_id(&self, id: &LeaseId) -> Result<ReleaseOutcome, StoreError> {
        let now = Instant::now();
        let mut state = self.state();
        let key = state
            .active
            .iter()
            .find(|(_, e)| e.lease.id == *id && e.expires > now)
            .map(|(k, _)| k.clone());
        match key.and_then(|k| state.active.remove(&k)) {
            Some(entry) => {
                state.retire(entry, ReservationState::Released, now);
                Ok(ReleaseOutcome::Released)
            }
            None => Ok(ReleaseOutcome::NotHeld),
        }
    }

    async fn purge_released(&self, older_than: Duration) -> Result<u64, StoreError> {
        let now = Instant::now();
        let mut state = self.state();
        state.sweep(now);
        let cutoff = chrono::Duration::from_std(older_than)
            .ok()
            .and_then(|d| state.wall(now).checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let before = state.history.len();
        state
            .history
            .retain(|r| r.released_at.is_some_and(|at| at >= cutoff));
        Ok((before - state.history.len()) as u64)
    }
}
