//! The conformance suite against PostgreSQL (`POSTGRES_URL`) in
//! simple-query mode (for transaction-mode poolers), on a custom schema and
//! table name: every property also holds with values inlined as literals
//! and with names other than the defaults.

use store_postgres::{PostgresStore, StatementMode};

async fn store() -> Option<PostgresStore> {
    testkit::backend::store_or_skip(
        "POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
        |url| async move {
            let store = PostgresStore::builder()
                .schema("proxy_reserve_conformance")
                .table("lease")
                .statement_mode(StatementMode::SimpleQuery)
                .max_connections(4)
                .connect(&url)
                .await?;
            store.migrate().await?;
            Ok::<_, store_postgres::PostgresStoreError>(store)
        },
    )
    .await
}

testkit::conformance_tests!(store);
