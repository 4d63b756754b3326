//! Reserve-attempt throughput and latency against PostgreSQL with the
//! testkit harness (`testkit::bench::run_store_bench`).
//!
//! ```text
//! POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p store-postgres --example postgres-bench -- \
//!   [--seconds 15] [--clients 8] [--keys 100000] [--schema proxy_bench] \
//!   [--truncate] [--prefill-released 1000000] [--simple-query] [--drop] \
//!   [--threads 1]
//! ```
//!
//! Works in its own schema (`proxy_bench` by default) so it never touches
//! the tables tests use. `--truncate` empties the table first,
//! `--prefill-released N` then adds N released rows (history) before the
//! run, `--drop` drops the schema at the end. The client runs on one thread
//! (`--threads N` for a multi-threaded runtime). Prints the report as JSON.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use proxy_core::ReservationStore;
use store_postgres::sqlx::{self, Row};
use store_postgres::{PostgresStore, StatementMode};
use testkit::bench::{StoreBenchConfig, run_store_bench};

struct Args {
    seconds: u64,
    clients: usize,
    keys: u32,
    schema: String,
    truncate: bool,
    prefill_released: u64,
    simple_query: bool,
    drop: bool,
    threads: usize,
}

fn args() -> Args {
    let mut args = Args {
        seconds: 15,
        clients: 8,
        keys: 100_000,
        schema: "proxy_bench".to_owned(),
        truncate: false,
        prefill_released: 0,
        simple_query: false,
        drop: false,
        threads: 1,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = || {
            words
                .next()
                .unwrap_or_else(|| panic!("{word} needs a value"))
        };
        match word.as_str() {
            "--seconds" => args.seconds = value().parse().expect("--seconds"),
            "--clients" => args.clients = value().parse().expect("--clients"),
            "--keys" => args.keys = value().parse().expect("--keys"),
            "--schema" => args.schema = value(),
            "--prefill-released" => {
                args.prefill_released = value().parse().expect("--prefill-released")
            }
            "--truncate" => args.truncate = true,
            "--simple-query" => args.simple_query = true,
            "--drop" => args.drop = true,
            "--threads" => args.threads = value().parse().expect("--threads"),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn main() {
    let args = args();
    // One client thread by default, like `pgbench` (-j 1): on a small
    // machine the database shares the cores with the client.
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(args.threads);
        builder
    }
    .enable_all()
    .build()
    .expect("tokio runtime");
    runtime.block_on(bench(args));
}

async fn bench(args: Args) {
    let url = std::env::var("POSTGRES_URL").expect("set POSTGRES_URL");
    let mode = if args.simple_query {
        StatementMode::SimpleQuery
    } else {
        StatementMode::Prepared
    };
    let store = PostgresStore::builder()
        .schema(&args.schema)
        .statement_mode(mode)
        .max_connections(args.clients as u32 + 2)
        .connect(&url)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let table = format!("\"{}\".proxy_reservation", args.schema);
    let pool = store.pool().clone();
    let run = |sql: String| {
        let pool = pool.clone();
        async move {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .expect("setup statement")
        }
    };
    if args.truncate {
        run(format!("TRUNCATE {table}")).await;
    }
    if args.prefill_released > 0 {
        run(format!(
            "INSERT INTO {table} (ip_address, target_domain, app_id, reserved_at, ttl_seconds, \
                 released, released_at) \
             SELECT '10.' || (n >> 16 & 255) || '.' || (n >> 8 & 255) || '.' || (n & 255), \
                 'd' || (n % 64) || '.prefill.bench.test', 'prefill', \
                 now() - interval '1 hour', 30, true, now() - interval '1 hour' + interval '1 second' \
             FROM generate_series(1, {}) AS n",
            args.prefill_released
        ))
        .await;
    }
    // Statistics only for a prefilled table. ANALYZE of a just-truncated one
    // records "0 rows", and the plans cached from that (a scan, cheapest on
    // an empty table) would then run against the thousands of rows the run
    // adds, until autovacuum analyses again: a measurement of stale
    // statistics, not of the store. pgbench after a TRUNCATE gets no ANALYZE
    // either.
    if args.prefill_released > 0 {
        run(format!("VACUUM ANALYZE {table}")).await;
    }
    let rows_before: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) AS n FROM {table}"
    )))
    .fetch_one(&pool)
    .await
    .expect("count")
    .get("n");

    let config = StoreBenchConfig::new(args.clients, Duration::from_secs(args.seconds), args.keys);
    let store: Arc<dyn ReservationStore> = Arc::new(store);
    let report = run_store_bench(store, &config).await;
    let mut json = serde_json::to_value(&report).expect("report serialises");
    json["mode"] = serde_json::Value::String(format!("{mode:?}"));
    json["rows_before"] = rows_before.into();
    println!("{}", serde_json::to_string_pretty(&json).expect("json"));

    if args.drop {
        run(format!("DROP SCHEMA \"{}\" CASCADE", args.schema)).await;
    }
}
