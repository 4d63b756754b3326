//! The conformance suite through a transaction-mode connection pooler, in
//! simple-query mode. Needs `PGBOUNCER_URL` (a transaction-mode pooler in
//! front of the server of `POSTGRES_URL`, which is used for `migrate()`:
//! sqlx's migrator needs a session).
//!
//! ```text
//! POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//! PGBOUNCER_URL=postgres://postgres@127.0.0.1:6432/test \
//!   cargo test -p store-postgres --test pooler
//! ```

use store_postgres::{PostgresStore, StatementMode};

const SCHEMA: &str = "proxy_reserve_pooler";

async fn store() -> Option<PostgresStore> {
    let direct =
        testkit::backend::url_from_env("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")?;
    testkit::backend::store_or_skip(
        "PGBOUNCER_URL",
        "postgres://postgres@127.0.0.1:6432/test",
        |pooled| async move {
            let builder = PostgresStore::builder()
                .schema(SCHEMA)
                .statement_mode(StatementMode::SimpleQuery)
                .max_connections(4);
            builder.clone().connect(&direct).await?.migrate().await?;
            builder.connect(&pooled).await
        },
    )
    .await
}

testkit::conformance_tests!(store);
