//! [`RedisStore`]: the [`ReservationStore`] on Redis.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use proxy_core::{
    AppId, Lease, LeaseId, ListFilter, ReleaseOutcome, RenewOutcome, Reservation, ReservationKey,
    ReservationStore, ReserveOutcome, StoreError, StoreInfo, TargetDomain, Ttl,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;

use crate::connection::{Connection, SingleNode};
use crate::error::{Operation, RedisStoreError, STORE_NAME};
use crate::grant::StoredGrant;
use crate::keys::{DEFAULT_KEY_PREFIX, KeySpace, LeaseRef};
use crate::scripts::SCRIPTS;

/// How long a key's last generation is remembered after its lease ends,
/// unless configured otherwise.
pub const DEFAULT_GENERATION_MEMORY: Duration = Duration::from_secs(3600);

/// How long a command may wait for its reply, unless configured otherwise.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long opening a connection may take, unless configured otherwise.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// Default number of multiplexed connections to a single node (see
/// [`RedisStoreBuilder::connections`]).
pub const DEFAULT_CONNECTIONS: usize = 8;

/// How many leases one `MGET` of a listing reads.
const LIST_BATCH: usize = 500;

/// Reconnection attempts of the single-node connection manager before a
/// call fails as unavailable (backoff 100 ms, 200 ms, 400 ms).
const RECONNECT_RETRIES: usize = 3;

/// A [`ReservationStore`] on Redis: one node or a Redis Cluster.
///
/// One string key per (domain, IP) holds the lease, with Redis's own key
/// TTL as the expiry; every operation is one Lua script (one round trip,
/// atomic, compare-and-act on the lease's identity). See the crate
/// documentation for the key layout, listing costs and durability limits.
///
/// Cloning gives another handle on the same connection.
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    keys: KeySpace,
    generation_memory_ms: u64,
}

impl fmt::Debug for RedisStore {
    // No URL here: it may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field(
                "topology",
                &if self.is_cluster() {
                    "cluster"
                } else {
                    "single"
                },
            )
            .field("key_prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to one Redis node (`redis://[user:password@]host[:port][/db]`,
    /// or `rediss://` with the `tls-rustls` feature) with default options.
    pub async fn connect(url: &str) -> Result<Self, RedisStoreError> {
        Self::builder().connect(url).await
    }

    /// Connects to a Redis Cluster through any of its nodes, with default
    /// options.
    pub async fn connect_cluster<I>(urls: I) -> Result<Self, RedisStoreError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self::builder().connect_cluster(urls).await
    }

    /// Options: key prefix, timeouts, generation memory.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// The prefix of every key this store writes.
    pub fn key_prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.connection, Connection::Cluster(_))
    }

    /// Reads one domain's active reservations from its index.
    async fn list_domain(
        &self,
        domain: &TargetDomain,
        app_id: Option<&AppId>,
    ) -> Result<Vec<Reservation>, RedisStoreError> {
        let mut invocation = SCRIPTS.list_index.prepare_invoke();
        invocation.key(self.keys.index_key(domain));
        let members: Vec<String> = self
            .connection
            .invoke(&invocation)
            .await
            .map_err(RedisStoreError::command(Operation::List))?;
        let keys: Vec<ReservationKey> = members
            .iter()
            .filter_map(|m| m.parse::<IpAddr>().ok())
            .map(|ip| ReservationKey::new(ip, domain.clone()))
            .collect();
        let mut rows = Vec::new();
        for batch in keys.chunks(LIST_BATCH) {
            let mut mget = redis::cmd("MGET");
            for key in batch {
                mget.arg(self.keys.lease_key(key));
            }
            let values: Vec<Option<String>> = self
                .connection
                .query(&mget)
                .await
                .map_err(RedisStoreError::command(Operation::List))?;
            for (key, value) in batch.iter().zip(values) {
                // Gone since the index was read: released or expired.
                let Some(value) = value else { continue };
                let Some(lease) = StoredGrant::decode(&value)
                    .and_then(|grant| Some((grant.lease(key)?, grant.state())))
                else {
                    tracing::warn!(
                        key = %self.keys.lease_key(key),
                        "skipping a value this store cannot read"
                    );
                    continue;
                };
                if app_id.is_none_or(|a| *a == lease.0.app_id) {
                    rows.push(Reservation::new(lease.0, lease.1, None));
                }
            }
        }
        Ok(rows)
    }

    /// Every domain with an index under this prefix.
    async fn indexed_domains(&self) -> Result<Vec<TargetDomain>, RedisStoreError> {
        let index_keys = self
            .connection
            .scan_all(&self.keys.index_pattern())
            .await
            .map_err(RedisStoreError::command(Operation::List))?;
        // SCAN may return a key more than once.
        let mut seen = HashSet::new();
        Ok(index_keys
            .iter()
            .filter_map(|k| self.keys.domain_of_index_key(k))
            .filter(|d| seen.insert(d.clone()))
            .collect())
    }

    async fn reserve(
        &self,
        key: &ReservationKey,
        app_id: &AppId,
        ttl: Ttl,
        token: &str,
    ) -> Result<ReserveOutcome, RedisStoreError> {
        let mut invocation = SCRIPTS.reserve.prepare_invoke();
        for k in self.keys.script_keys(key) {
            invocation.key(k);
        }
        invocation
            .arg(key.ip().to_string())
            .arg(ttl.as_millis())
            .arg(token)
            .arg(app_id.as_str())
            .arg(self.generation_memory_ms);
        let value: Option<String> = self
            .connection
            .invoke(&invocation)
            .await
            .map_err(RedisStoreError::command(Operation::Reserve))?;
        let Some(value) = value else {
            return Ok(ReserveOutcome::Taken);
        };
        let grant = StoredGrant::decode(&value)
            .filter(|g| g.token == token && !g.cooling_down)
            .ok_or_else(|| RedisStoreError::unexpected(Operation::Reserve, "unreadable lease"))?;
        let lease = grant
            .lease(key)
            .ok_or_else(|| RedisStoreError::unexpected(Operation::Reserve, "time out of range"))?;
        Ok(ReserveOutcome::Reserved(lease))
    }

    async fn release_lease(
        &self,
        lease: &Lease,
        token: &str,
    ) -> Result<ReleaseOutcome, RedisStoreError> {
        let Some(grant) = own_lease(lease) else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        let mut invocation = SCRIPTS.release.prepare_invoke();
        for k in self.keys.script_keys(&grant.key) {
            invocation.key(k);
        }
        invocation
            .arg(lease.ip.to_string())
            .arg(grant.grant_generation)
            .arg(lease.generation)
            .arg(token);
        let released: i64 = self
            .connection
            .invoke(&invocation)
            .await
            .map_err(RedisStoreError::command(Operation::Release))?;
        Ok(release_outcome(released))
    }

    async fn cool_down(
        &self,
        lease: &Lease,
        cooldown: Ttl,
        token: &str,
    ) -> Result<ReleaseOutcome, RedisStoreError> {
        let Some(grant) = own_lease(lease) else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        let mut invocation = SCRIPTS.cooldown.prepare_invoke();
        for k in self.keys.script_keys(&grant.key) {
            invocation.key(k);
        }
        invocation
            .arg(lease.ip.to_string())
            .arg(grant.grant_generation)
            .arg(lease.generation)
            .arg(token)
            .arg(cooldown.as_millis())
            .arg(self.generation_memory_ms);
        let value: Option<String> = self
            .connection
            .invoke(&invocation)
            .await
            .map_err(RedisStoreError::command(Operation::Cooldown))?;
        Ok(match value {
            Some(_) => ReleaseOutcome::Released,
            None => ReleaseOutcome::NotHeld,
        })
    }

    async fn extend(&self, lease: &Lease, ttl: Ttl) -> Result<RenewOutcome, RedisStoreError> {
        let Some(grant) = own_lease(lease) else {
            return Ok(RenewOutcome::Lost);
        };
        let mut invocation = SCRIPTS.renew.prepare_invoke();
        for k in self.keys.script_keys(&grant.key) {
            invocation.key(k);
        }
        invocation
            .arg(lease.ip.to_string())
            .arg(grant.grant_generation)
            .arg(lease.generation)
            .arg(ttl.as_millis())
            .arg(self.generation_memory_ms);
        let value: Option<String> = self
            .connection
            .invoke(&invocation)
            .await
            .map_err(RedisStoreError::command(Operation::Renew))?;
        let Some(value) = value else {
            return Ok(RenewOutcome::Lost);
        };
        let renewed = StoredGrant::decode(&value)
            .and_then(|g| g.lease(&grant.key))
            .ok_or_else(|| RedisStoreError::unexpected(Operation::Renew, "unreadable lease"))?;
        Ok(RenewOutcome::Renewed(renewed))
    }

    async fn release_id(
        &self,
        id: &LeaseId,
        token: &str,
    ) -> Result<ReleaseOutcome, RedisStoreError> {
        let Some(grant) = LeaseRef::parse(id.as_str()) else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        let mut invocation = SCRIPTS.release_by_id.prepare_invoke();
        for k in self.keys.script_keys(&grant.key) {
            invocation.key(k);
        }
        invocation
            .arg(grant.key.ip().to_string())
            .arg(grant.grant_generation)
            .arg(token);
        let released: i64 = self
            .connection
            .invoke(&invocation)
            .await
            .map_err(RedisStoreError::command(Operation::ReleaseById))?;
        Ok(release_outcome(released))
    }

    async fn list_matching(
        &self,
        filter: &ListFilter,
    ) -> Result<Vec<Reservation>, RedisStoreError> {
        let domains = match &filter.domain {
            Some(domain) => vec![domain.clone()],
            None => self.indexed_domains().await?,
        };
        let mut rows = Vec::new();
        for domain in &domains {
            rows.extend(self.list_domain(domain, filter.app_id.as_ref()).await?);
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
}

/// The grant a lease names, if its id is one this store issued for the
/// lease's own key.
fn own_lease(lease: &Lease) -> Option<LeaseRef> {
    let key = lease.key();
    LeaseRef::grant_generation_for(lease.id.as_str(), &key).map(|grant_generation| LeaseRef {
        grant_generation,
        key,
    })
}

fn release_outcome(released: i64) -> ReleaseOutcome {
    if released == 1 {
        ReleaseOutcome::Released
    } else {
        ReleaseOutcome::NotHeld
    }
}

/// A random token naming one call, so that a retried script recognises the
/// write of its earlier attempt.
fn call_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl ReservationStore for RedisStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new(STORE_NAME, false)
    }

    async fn try_reserve(
        &self,
        key: &ReservationKey,
        app_id: &AppId,
        ttl: Ttl,
    ) -> Result<ReserveOutcome, StoreError> {
        Ok(self.reserve(key, app_id, ttl, &call_token()).await?)
    }

    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome, StoreError> {
        Ok(self.release_lease(lease, &call_token()).await?)
    }

    async fn release_with_cooldown(
        &self,
        lease: &Lease,
        cooldown: Ttl,
    ) -> Result<ReleaseOutcome, StoreError> {
        Ok(self.cool_down(lease, cooldown, &call_token()).await?)
    }

    async fn renew(&self, lease: &Lease, ttl: Ttl) -> Result<RenewOutcome, StoreError> {
        Ok(self.extend(lease, ttl).await?)
    }

    /// Active reservations only: Redis keeps no history, so
    /// `include_released` adds nothing. Without a domain this scans every
    /// master's keyspace for index keys (see the crate docs for the cost).
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Reservation>, StoreError> {
        Ok(self.list_matching(filter).await?)
    }

    /// Releases the held or cooling-down grant with this id, whatever its
    /// current generation; a malformed or unknown id is `NotHeld`.
    async fn release_by_id(&self, id: &LeaseId) -> Result<ReleaseOutcome, StoreError> {
        Ok(self.release_id(id, &call_token()).await?)
    }

    /// A no-op returning 0: a released or expired lease leaves nothing
    /// behind in Redis.
    async fn purge_released(&self, _older_than: Duration) -> Result<u64, StoreError> {
        Ok(0)
    }
}

/// Options for a [`RedisStore`].
///
/// ```no_run
/// # async fn demo() -> Result<(), store_redis::RedisStoreError> {
/// use std::time::Duration;
/// let store = store_redis::RedisStore::builder()
///     .key_prefix("scraper-prod")
///     .response_timeout(Duration::from_secs(1))
///     .connect("redis://127.0.0.1:6379")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisStoreBuilder {
    key_prefix: String,
    response_timeout: Duration,
    connection_timeout: Duration,
    generation_memory: Duration,
    connections: usize,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        Self {
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            generation_memory: DEFAULT_GENERATION_MEMORY,
            connections: DEFAULT_CONNECTIONS,
        }
    }
}

impl RedisStoreBuilder {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// The prefix of every key (default [`DEFAULT_KEY_PREFIX`]): 1 to 64
    /// bytes of ASCII letters, digits and `-_.:/`. Stores with different
    /// prefixes never see each other's reservations.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How long a command may wait for its reply (default
    /// [`DEFAULT_RESPONSE_TIMEOUT`]). A write that times out is reported as
    /// [`StoreError::OutcomeUnknown`].
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long opening a connection may take (default
    /// [`DEFAULT_CONNECTION_TIMEOUT`]).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long a key's last generation is kept after its lease or cooldown
    /// ends (default [`DEFAULT_GENERATION_MEMORY`]).
    ///
    /// Generations come from the server clock (microseconds), so they keep
    /// increasing without this memory; it covers a server clock stepping
    /// back by less than this duration. Longer costs one small key per
    /// recently used (domain, IP) for longer.
    pub fn generation_memory(mut self, memory: Duration) -> Self {
        self.generation_memory = memory;
        self
    }

    /// How many multiplexed connections [`connect`](Self::connect) opens to
    /// a single node (default [`DEFAULT_CONNECTIONS`], at least 1); calls
    /// take them in turn. One connection carries every caller's commands in
    /// order, so many concurrent workers queue behind each other on it; a
    /// few connections cut that wait. (A cluster connection has one per
    /// node already.)
    pub fn connections(mut self, connections: usize) -> Self {
        self.connections = connections.max(1);
        self
    }

    /// Connects to one node.
    pub async fn connect(self, url: &str) -> Result<RedisStore, RedisStoreError> {
        let keys = KeySpace::new(&self.key_prefix)?;
        let client =
            redis::Client::open(url).map_err(|source| RedisStoreError::InvalidUrl { source })?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(Duration::from_secs(1))
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(self.connection_timeout));
        let open = || async {
            ConnectionManager::new_with_config(client.clone(), config.clone())
                .await
                .map_err(|source| RedisStoreError::Connect { source })
        };
        let first = open().await?;
        // The rest in parallel: a remote (or TLS) server costs a round trip
        // or more per connection.
        let others = futures::future::try_join_all((1..self.connections).map(|_| open())).await?;
        Ok(self.store(
            Connection::Single(Arc::new(SingleNode::new(first, others))),
            keys,
        ))
    }

    /// Connects to a Redis Cluster through any of `urls` (the client learns
    /// the rest of the topology from them).
    pub async fn connect_cluster<I>(self, urls: I) -> Result<RedisStore, RedisStoreError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let keys = KeySpace::new(&self.key_prefix)?;
        let urls: Vec<String> = urls.into_iter().map(|u| u.as_ref().to_owned()).collect();
        if urls.is_empty() {
            return Err(RedisStoreError::NoClusterNodes);
        }
        let client = ClusterClientBuilder::new(urls)
            .connection_timeout(self.connection_timeout)
            .response_timeout(self.response_timeout)
            .build()
            .map_err(|source| RedisStoreError::InvalidUrl { source })?;
        let connection = client
            .get_async_connection()
            .await
            .map_err(|source| RedisStoreError::Connect { source })?;
        Ok(self.store(Connection::Cluster(connection), keys))
    }

    /// Uses an existing single-node connection manager (its own retry and
    /// timeout settings apply; the timeouts set here do not).
    pub fn with_connection_manager(
        self,
        manager: ConnectionManager,
    ) -> Result<RedisStore, RedisStoreError> {
        let keys = KeySpace::new(&self.key_prefix)?;
        Ok(self.store(
            Connection::Single(Arc::new(SingleNode::new(manager, Vec::new()))),
            keys,
        ))
    }

    /// Uses an existing cluster connection (its own retry and timeout
    /// settings apply; the timeouts set here do not).
    pub fn with_cluster_connection(
        self,
        connection: ClusterConnection,
    ) -> Result<RedisStore, RedisStoreError> {
        let keys = KeySpace::new(&self.key_prefix)?;
        Ok(self.store(Connection::Cluster(connection), keys))
    }

    fn store(&self, connection: Connection, keys: KeySpace) -> RedisStore {
        RedisStore {
            connection,
            keys,
            generation_memory_ms: duration_ms(self.generation_memory),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Retried calls against a live Redis (`REDIS_URL`; skipped when unset).

    use super::*;

    async fn store() -> Option<RedisStore> {
        testkit::backend::store_or_skip("REDIS_URL", "redis://127.0.0.1:6379", |url| async move {
            let prefix = format!("unit-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            RedisStore::builder().key_prefix(prefix).connect(&url).await
        })
        .await
    }

    fn key(n: u8) -> ReservationKey {
        ReservationKey::parse(&format!("198.51.100.{n}"), "retries.example").unwrap()
    }

    fn ttl(secs: u64) -> Ttl {
        Ttl::from_secs(secs).unwrap()
    }

    fn app(name: &str) -> AppId {
        AppId::new(name).unwrap()
    }

    #[tokio::test]
    async fn a_retried_reserve_gets_its_own_lease_back() {
        let Some(store) = store().await else { return };
        let first = store
            .reserve(&key(1), &app("a"), ttl(60), "00aa")
            .await
            .unwrap();
        let again = store
            .reserve(&key(1), &app("a"), ttl(60), "00aa")
            .await
            .unwrap();
        let ReserveOutcome::Reserved(lease) = first else {
            panic!("free key: {first:?}")
        };
        assert_eq!(again, ReserveOutcome::Reserved(lease.clone()));
        let other = store
            .reserve(&key(1), &app("a"), ttl(60), "00bb")
            .await
            .unwrap();
        assert_eq!(other, ReserveOutcome::Taken, "another call is refused");
        assert_eq!(
            store.release_lease(&lease, "01").await.unwrap(),
            ReleaseOutcome::Released
        );
    }

    #[tokio::test]
    async fn a_retried_release_reports_its_own_release() {
        let Some(store) = store().await else { return };
        let ReserveOutcome::Reserved(lease) = store
            .reserve(&key(2), &app("a"), ttl(60), "02")
            .await
            .unwrap()
        else {
            panic!("free key")
        };
        assert_eq!(
            store.release_lease(&lease, "0c").await.unwrap(),
            ReleaseOutcome::Released
        );
        assert_eq!(
            store.release_lease(&lease, "0c").await.unwrap(),
            ReleaseOutcome::Released
        );
        assert_eq!(
            store.release_lease(&lease, "0d").await.unwrap(),
            ReleaseOutcome::NotHeld
        );
        // Once the key is reserved again, the old tombstone is gone.
        let ReserveOutcome::Reserved(next) = store
            .reserve(&key(2), &app("a"), ttl(60), "03")
            .await
            .unwrap()
        else {
            panic!("released key")
        };
        assert_eq!(
            store.release_lease(&lease, "0c").await.unwrap(),
            ReleaseOutcome::NotHeld
        );
        assert_eq!(
            store.release_lease(&next, "0e").await.unwrap(),
            ReleaseOutcome::Released
        );
    }

    #[tokio::test]
    async fn a_retried_cooldown_and_operator_release_report_success() {
        let Some(store) = store().await else { return };
        let ReserveOutcome::Reserved(lease) = store
            .reserve(&key(3), &app("a"), ttl(60), "04")
            .await
            .unwrap()
        else {
            panic!("free key")
        };
        let cool = |token: &'static str| {
            let (store, lease) = (store.clone(), lease.clone());
            async move { store.cool_down(&lease, ttl(60), token).await.unwrap() }
        };
        assert_eq!(cool("0f").await, ReleaseOutcome::Released);
        assert_eq!(cool("0f").await, ReleaseOutcome::Released, "retry");
        assert_eq!(cool("1f").await, ReleaseOutcome::NotHeld, "another call");
        assert_eq!(
            store
                .reserve(&key(3), &app("b"), ttl(60), "05")
                .await
                .unwrap(),
            ReserveOutcome::Taken
        );
        assert_eq!(
            store.release_id(&lease.id, "2f").await.unwrap(),
            ReleaseOutcome::Released
        );
        assert_eq!(
            store.release_id(&lease.id, "2f").await.unwrap(),
            ReleaseOutcome::Released,
            "retry"
        );
        assert_eq!(
            store.release_id(&lease.id, "3f").await.unwrap(),
            ReleaseOutcome::NotHeld,
            "another call"
        );
    }
}
