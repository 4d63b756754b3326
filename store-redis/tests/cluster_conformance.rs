//! The `ReservationStore` conformance suite against a Redis Cluster.
//!
//! `REDIS_CLUSTER_URLS=redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003
//! cargo test -p store-redis` (`.ci/redis-cluster.sh` starts such a cluster).

use store_redis::RedisStore;

async fn store() -> Option<RedisStore> {
    testkit::backend::store_or_skip(
        "REDIS_CLUSTER_URLS",
        "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003",
        |urls| async move {
            let prefix = format!("conf-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            let store = RedisStore::builder()
                .key_prefix(prefix)
                .connect_cluster(urls.split(',').map(str::trim).filter(|u| !u.is_empty()))
                .await
                .map_err(|e| error_chain(&e))?;
            if !store.is_cluster() {
                return Err("connect_cluster returned a single-node store".to_owned());
            }
            Ok(store)
        },
    )
    .await
}

/// An error with its sources, for the skip line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

testkit::conformance_tests!(store);
