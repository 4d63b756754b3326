//! Store throughput on a temporary SQLite file: `testkit::bench` with N
//! clients for S seconds over K keys (defaults 8, 10, 100 000).
//!
//! ```sh
//! cargo run --release -p store-sqlite --example sqlite-bench -- 8 10 100000
//! ```

use std::sync::Arc;
use std::time::Duration;

use store_sqlite::SqliteStore;
use testkit::bench::{StoreBenchConfig, run_store_bench};

fn arg<T: std::str::FromStr>(position: usize, default: T) -> Result<T, String> {
    match std::env::args().nth(position) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("argument {position} ({text:?}) is not a number")),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clients: usize = arg(1, 8)?;
    let seconds: u64 = arg(2, 10)?;
    let keys: u32 = arg(3, 100_000)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let store = SqliteStore::open(&path).await?;
    let config = StoreBenchConfig::new(clients, Duration::from_secs(seconds), keys);
    let report = run_store_bench(Arc::new(store.clone()), &config).await;
    println!("{}", serde_json::to_string_pretty(&report)?);
    store.close().await;
    Ok(())
}
