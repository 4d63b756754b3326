//! The conformance suite against PostgreSQL (`POSTGRES_URL`), default table
//! and prepared statements.

use store_postgres::PostgresStore;

async fn store() -> Option<PostgresStore> {
    testkit::backend::store_or_skip(
        "POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
        |url| async move {
            // Several tests run at once, each with its own pool: keep pools
            // small so the server's connection limit is never the problem.
            let store = PostgresStore::builder()
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
