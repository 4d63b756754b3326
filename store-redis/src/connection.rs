//! One node or a cluster, behind one interface.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, RedisResult, ScriptInvocation, Value};

/// How many keys one `SCAN` call asks for.
const SCAN_COUNT: usize = 1000;

/// Multiplexed connections to a single node (each reconnecting on loss),
/// taken in turn: one connection carries every caller's commands in order,
/// so with many concurrent callers a few of them cut the queueing.
pub(crate) struct SingleNode {
    first: ConnectionManager,
    others: Vec<ConnectionManager>,
    next: AtomicUsize,
}

impl SingleNode {
    pub(crate) fn new(first: ConnectionManager, others: Vec<ConnectionManager>) -> Self {
        Self {
            first,
            others,
            next: AtomicUsize::new(0),
        }
    }

    fn pick(&self) -> ConnectionManager {
        let n = self.next.fetch_add(1, Ordering::Relaxed) % (self.others.len() + 1);
        match n.checked_sub(1).and_then(|i| self.others.get(i)) {
            Some(other) => other.clone(),
            None => self.first.clone(),
        }
    }
}

/// Single-node connections or a cluster connection (routing by slot,
/// following `MOVED`/`ASK`). Both are cheap handles on shared connections:
/// cloning one per call is the intended use.
#[derive(Clone)]
pub(crate) enum Connection {
    Single(Arc<SingleNode>),
    Cluster(ClusterConnection),
}

impl Connection {
    /// Runs a script by hash, loading it on `NOSCRIPT`.
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> RedisResult<T> {
        match self {
            Connection::Single(s) => {
                let mut c = s.pick();
                invocation.invoke_async(&mut c).await
            }
            Connection::Cluster(c) => invocation.invoke_async(&mut c.clone()).await,
        }
    }

    /// Runs a keyed command (routed by its key on a cluster).
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Connection::Single(s) => {
                let mut c = s.pick();
                cmd.query_async(&mut c).await
            }
            Connection::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
    }

    /// Every key matching `pattern`, from every master.
    ///
    /// `SCAN` walks the whole keyspace of each node, matching or not: the cost
    /// is proportional to the number of keys in the database.
    pub(crate) async fn scan_all(&self, pattern: &str) -> RedisResult<Vec<String>> {
        match self {
            Connection::Single(s) => {
                let mut c = s.pick();
                let mut found = Vec::new();
                let mut cursor = "0".to_owned();
                loop {
                    let (next, keys): (String, Vec<String>) =
                        scan_cmd(&cursor, pattern).query_async(&mut c).await?;
                    found.extend(keys);
                    if next == "0" {
                        return Ok(found);
                    }
                    cursor = next;
                }
            }
            Connection::Cluster(c) => {
                let mut c = c.clone();
                let mut found = Vec::new();
                for slot in one_slot_per_master(&mut c).await? {
                    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                        Route::new(slot, SlotAddr::Master),
                    ));
                    let mut cursor = "0".to_owned();
                    loop {
                        let reply = c
                            .route_command(scan_cmd(&cursor, pattern), route.clone())
                            .await?;
                        let (next, keys): (String, Vec<String>) = redis::from_redis_value(reply)?;
                        found.extend(keys);
                        if next == "0" {
                            break;
                        }
                        cursor = next;
                    }
                }
                Ok(found)
            }
        }
    }
}

fn scan_cmd(cursor: &str, pattern: &str) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    cmd
}

/// The first slot of each master's ranges, one per master, from
/// `CLUSTER SLOTS`: routing a command to that slot reaches that master
/// through the client's own slot map.
async fn one_slot_per_master(connection: &mut ClusterConnection) -> RedisResult<Vec<u16>> {
    let reply = connection
        .route_command(
            redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await?;
    // Each range: [start, end, [master host, master port, master id, …], replicas…].
    let ranges: Vec<Vec<Value>> = redis::from_redis_value(reply)?;
    let mut by_master: BTreeMap<String, u16> = BTreeMap::new();
    for range in ranges {
        let mut fields = range.into_iter();
        let (Some(start), Some(_end), Some(master)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let start: u16 = redis::from_redis_value(start)?;
        let master: Vec<Value> = redis::from_redis_value(master)?;
        let mut master = master.into_iter();
        let host: String = master
            .next()
            .map(redis::from_redis_value)
            .transpose()?
            .unwrap_or_default();
        let port: i64 = master
            .next()
            .map(redis::from_redis_value)
            .transpose()?
            .unwrap_or_default();
        let id: String = master
            .next()
            .map(redis::from_redis_value)
            .transpose()?
            .unwrap_or_default();
        let name = if id.is_empty() {
            format!("{host}:{port}")
        } else {
            id
        };
        by_master
            .entry(name)
            .and_modify(|s| *s = (*s).min(start))
            .or_insert(start);
    }
    Ok(by_master.into_values().collect())
}
