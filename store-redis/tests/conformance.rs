//! The `ReservationStore` conformance suite against one Redis node.
//!
//! `REDIS_URL=redis://127.0.0.1:6379 cargo test -p store-redis`

use store_redis::RedisStore;

async fn store() -> Option<RedisStore> {
    testkit::backend::store_or_skip("REDIS_URL", "redis://127.0.0.1:6379", |url| async move {
        // A prefix of its own per test keeps the listing scans small.
        let prefix = format!("conf-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        RedisStore::builder()
            .key_prefix(prefix)
            .connect(&url)
            .await
            .map_err(|e| error_chain(&e))
    })
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
