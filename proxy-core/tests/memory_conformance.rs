//! The conformance suite against the in-memory store.

async fn store() -> Option<proxy_core::MemoryStore> {
    Some(proxy_core::MemoryStore::new())
}

testkit::conformance_tests!(store);
