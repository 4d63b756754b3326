//! The `ReservationStore` conformance suite against SQL Server.
//!
//! `MSSQL_URL='mssql://sa:<password>@127.0.0.1:1433/master?trust_server_certificate=true'
//! cargo test -p store-mssql` (any form `MssqlStore::connect` accepts). Without
//! `MSSQL_URL` the suite is skipped with one line on standard error, unless
//! testkit's `containers` feature is on and a Docker engine is reachable:
//! then it runs against a SQL Server container.

use store_mssql::MssqlStore;

async fn store() -> Option<MssqlStore> {
    testkit::backend::store_or_skip(
        "MSSQL_URL",
        "mssql://sa:<password>@127.0.0.1:1433/master?trust_server_certificate=true",
        |url| async move {
            let store = MssqlStore::connect(&url)
                .await
                .map_err(|e| error_chain(&e))?;
            store.migrate().await.map_err(|e| error_chain(&e))?;
            Ok::<_, String>(store)
        },
    )
    .await
}

/// An error with its sources, for the skip line (our errors never hold the
/// password).
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
