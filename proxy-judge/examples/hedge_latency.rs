//! Verification latency with a healthy first judge vs a hung first judge,
//! through testkit's loopback gateway (HTTPS judges through CONNECT, one
//! fresh session and client per verification).
//!
//! ```text
//! cargo run --release -p proxy-judge --example hedge_latency -- [--iterations N] [--hedge-ms MS]
//! ```
//!
//! Scenarios:
//! - `healthy`: both judges answer;
//! - `hung first, no health`: the first judge never answers and judge
//!   health is off (it stays first), so every verification pays the hedge
//!   delay: the cost of hedging itself;
//! - `hung first, with health`: the same with judge health on (default
//!   settings): the hung judge is demoted after a few lost races;
//! - `hung first, no hedging`: hedge delay = timeout, what a plain failover
//!   loop pays (few iterations: each costs the full timeout).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use proxy_core::IpVerifier;
use proxy_judge::{ClientOptions, JudgeVerifier, client_for};
use testkit::net::{FakeGateway, FakeJudge, GatewayConfig, JudgeFault, JudgeShape, test_ca_pem};

struct Args {
    iterations: usize,
    hedge: Duration,
}

fn args() -> Args {
    let mut args = Args {
        iterations: 200,
        hedge: proxy_judge::DEFAULT_HEDGE_DELAY,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let value = raw.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--iterations", Some(n)) => args.iterations = n.max(1) as usize,
            ("--hedge-ms", Some(ms)) => args.hedge = Duration::from_millis(ms),
            _ => {
                eprintln!("usage: hedge_latency [--iterations N] [--hedge-ms MS]");
                std::process::exit(2);
            }
        }
    }
    args
}

fn options() -> ClientOptions {
    ClientOptions::default()
        .add_root_certificate_pem(test_ca_pem().unwrap())
        .unwrap()
        .only_listed_roots(true)
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<26} n={:<5} mean {:>9.2} ms  p50 {:>9.2}  p95 {:>9.2}  p99 {:>9.2}  max {:>9.2}",
        samples.len(),
        ms(mean),
        ms(pick(0.50)),
        ms(pick(0.95)),
        ms(pick(0.99)),
        ms(*samples.last().unwrap()),
    );
}

async fn run(
    verifier: &JudgeVerifier,
    gateway: &FakeGateway,
    iterations: usize,
    tag: &str,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let proxy = gateway.proxy_url(Some(&format!("{tag}{i}"))).unwrap();
        let started = Instant::now();
        let exit = verifier.verify(&proxy).await.unwrap();
        samples.push(started.elapsed());
        assert_eq!(Some(exit.ip), gateway.exit_of(&format!("{tag}{i}")));
    }
    samples
}

#[tokio::main]
async fn main() {
    let args = args();
    let gateway = FakeGateway::start(GatewayConfig::with_exit_count(16))
        .await
        .unwrap();
    let first = FakeJudge::start_tls(JudgeShape::Httpbin).await.unwrap();
    let second = FakeJudge::start_tls(JudgeShape::Ipify).await.unwrap();
    let builder = || {
        JudgeVerifier::builder()
            .judges([first.url(), second.url()])
            .allow_private_ips(true)
            .hedge_delay(args.hedge)
            .client_options(options())
    };
    println!(
        "hedge delay {:?}, timeout {:?}, HTTPS judges through CONNECT, fresh session per verification",
        args.hedge,
        proxy_judge::DEFAULT_JUDGE_TIMEOUT
    );

    let build = {
        let proxy = gateway.proxy_url(Some("build")).unwrap();
        let options = options();
        let mut samples = Vec::new();
        for _ in 0..args.iterations {
            let started = Instant::now();
            let client = client_for(&proxy, &options).unwrap();
            samples.push(started.elapsed());
            drop(client);
        }
        samples
    };
    report("client_for alone", build);

    let healthy = builder().build().unwrap();
    // Warm-up: the first TLS handshakes and allocations.
    run(&healthy, &gateway, 5, "warm").await;
    report(
        "healthy",
        run(&healthy, &gateway, args.iterations, "h").await,
    );

    first.set_fault(Some(JudgeFault::NeverAnswer));
    let hung_iterations = args.iterations.min(20);
    let no_health = builder().demote_after(u32::MAX).build().unwrap();
    report(
        "hung first, no health",
        run(&no_health, &gateway, hung_iterations, "n").await,
    );

    let with_health = builder().build().unwrap();
    let samples = run(&with_health, &gateway, hung_iterations, "w").await;
    report("hung first, with health", samples.clone());
    report(
        "  (after demotion)",
        samples[proxy_judge::DEFAULT_DEMOTE_AFTER as usize..].to_vec(),
    );

    let unhedged = builder()
        .hedge_delay(proxy_judge::DEFAULT_JUDGE_TIMEOUT)
        .demote_after(u32::MAX)
        .build()
        .unwrap();
    report(
        "hung first, no hedging",
        run(&unhedged, &gateway, 2, "u").await,
    );
}
