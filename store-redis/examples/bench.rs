//! Reserve throughput against Redis with the testkit harness: N clients
//! looping "random key of K, `try_reserve`, `release` if reserved".
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release -p store-redis --example redis-bench -- [seconds] [clients] [keys]
//! REDIS_CLUSTER_URLS=redis://127.0.0.1:7001,… cargo run --release -p store-redis --example redis-bench -- 15 --cluster
//! ```
//!
//! `--current-thread` runs the clients on a single-threaded Tokio runtime.
//!
//! Defaults: 15 s, 8 clients, 100 000 keys, TTL 30 s.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use proxy_core::ReservationStore;
use store_redis::RedisStore;
use testkit::bench::{StoreBenchConfig, run_store_bench};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `--current-thread`: one runtime thread, as redis-benchmark's single
    // event loop; the default is Tokio's multi-threaded runtime.
    let runtime = if args.iter().any(|a| a == "--current-thread") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    runtime.block_on(run(args))
}

async fn run(args: Vec<String>) -> Result<(), Box<dyn Error>> {
    let cluster = args.iter().any(|a| a == "--cluster");
    let mut numbers = args.iter().filter(|a| !a.starts_with("--"));
    let seconds: u64 = numbers.next().map(|s| s.parse()).transpose()?.unwrap_or(15);
    let clients: usize = numbers.next().map(|s| s.parse()).transpose()?.unwrap_or(8);
    let keys: u32 = numbers
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);

    let prefix = format!("bench-{}", std::process::id());
    // A short generation memory so that the run's generation keys (one per
    // key touched) leave the server soon after; the commands are the same.
    let builder = RedisStore::builder()
        .key_prefix(prefix)
        .generation_memory(Duration::from_secs(60));
    let store = if cluster {
        let urls = std::env::var("REDIS_CLUSTER_URLS")
            .map_err(|_| "set REDIS_CLUSTER_URLS=redis://127.0.0.1:7001,…")?;
        builder.connect_cluster(urls.split(',')).await?
    } else {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        builder.connect(&url).await?
    };
    let store: Arc<dyn ReservationStore> = Arc::new(store);
    let config = StoreBenchConfig::new(clients, Duration::from_secs(seconds), keys);
    let report = run_store_bench(store, &config).await;
    println!(
        "store-redis ({}, {} runtime): {} clients, {} keys, {:.1} s: {} attempts ({} reserved, {} taken, {} errors) \
         = {:.0} attempts/s; try_reserve p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        if cluster { "cluster" } else { "single node" },
        if args.iter().any(|a| a == "--current-thread") {
            "current-thread"
        } else {
            "multi-thread"
        },
        report.clients,
        report.keys,
        report.wall_s,
        report.attempts,
        report.reserved,
        report.taken,
        report.errors,
        report.attempts_per_s,
        report.p50_ms,
        report.p90_ms,
        report.p99_ms,
        report.max_ms,
    );
    if let Some(error) = report.first_error {
        println!("first error: {error}");
    }
    Ok(())
}
