//! The multi-worker flow of the design we start from, against the fake
//! network of `testkit` (no arguments, nothing leaves loopback):
//!
//! a pool of 5 workers; for each case a worker acquires a verified,
//! exclusive proxy → fetches the case → parses it → stores the result →
//! releases the proxy; every worker stops when the target's circuit breaker
//! opens. The fake court site bans an address after a few requests, so the
//! run shows rotations and cooldowns.
//!
//! `cargo run -p proxy-client --example court_cases`

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proxy_client::{ClientError, ClientOptions, ProxySession, RequestMetrics, SessionPolicy};
use proxy_core::{
    InvalidInput, MemoryStore, Protocol, ProxyManager, ProxyProvider, ProxyUrl, SessionId, Settings,
};
use proxy_judge::JudgeVerifier;
use testkit::net::{
    DEFAULT_GATEWAY_PASSWORD, ExitAssignment, FakeNetwork, FakeNetworkConfig, TargetRules,
};

const WORKERS: usize = 5;
const CASES: u32 = 40;

/// The fake gateway, addressed like a Decodo account.
#[derive(Debug)]
struct CourtGateway {
    host: String,
    port: u16,
}

impl ProxyProvider for CourtGateway {
    fn build_proxy_url(&self, session: &SessionId) -> Result<ProxyUrl, InvalidInput> {
        ProxyUrl::new(Protocol::Http, &self.host, self.port)?.with_credentials(
            format!("user-courts-session-{session}"),
            DEFAULT_GATEWAY_PASSWORD,
        )
    }
    fn name(&self) -> &str {
        "fakegw"
    }
    fn port(&self) -> u16 {
        self.port
    }
}

#[derive(Debug)]
struct CaseRecord {
    case_id: u32,
    title: String,
    fetched_via: std::net::IpAddr,
}

/// "Parses" a case page: its title.
fn parse_case_detail(html: &str) -> String {
    html.split("<title>")
        .nth(1)
        .and_then(|rest| rest.split("</title>").next())
        .unwrap_or("untitled")
        .to_owned()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // RUST_LOG overrides; by default show rotations and the final stats.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("proxy_client=info,proxy_core=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();

    // The court site bans an address after 4 requests. The gateway gives
    // sessions one of 14 exits at random, as a residential pool does, so
    // some workers collide and some exits get banned.
    let rules = TargetRules::open().forbid_after(4);
    let mut config = FakeNetworkConfig::with_exit_count(14).target_rules(rules);
    config.gateway = config.gateway.assignment(ExitAssignment::Random);
    let network = FakeNetwork::start_with(config).await?;
    let gateway = network.gateway.addr();

    let verifier = JudgeVerifier::builder()
        .judges(network.judge_urls())
        .allow_private_ips(true) // the fake exits are loopback addresses
        .build()?;
    let mut settings = Settings::default();
    settings.recheck_interval = Duration::from_millis(200);
    settings.acquire_timeout = Duration::from_secs(30);
    let manager = ProxyManager::builder()
        .provider(CourtGateway {
            host: gateway.ip().to_string(),
            port: gateway.port(),
        })
        .verifier(verifier)
        .store(MemoryStore::new())
        .target_domain(network.target.url("/"))
        .app_id("court-cases")
        .settings(settings)
        .build()?;

    let metrics = Arc::new(RequestMetrics::new());
    let work_list: Arc<Mutex<VecDeque<u32>>> = Arc::new(Mutex::new((1..=CASES).collect()));
    let database: Arc<Mutex<Vec<CaseRecord>>> = Arc::new(Mutex::new(Vec::new()));
    let policy = SessionPolicy::default().with_cooldowns(
        Duration::from_secs(5),
        Duration::from_secs(5),
        Duration::from_secs(5),
    );

    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (manager, metrics, work_list, database, policy) = (
            manager.clone(),
            Arc::clone(&metrics),
            Arc::clone(&work_list),
            Arc::clone(&database),
            policy.clone(),
        );
        let base = network.target.url("/case/");
        workers.push(tokio::spawn(async move {
            while let Some(case_id) = work_list.lock().ok().and_then(|mut w| w.pop_front()) {
                // acquire → fetch → parse → store → release, as in the design.
                let mut session = ProxySession::builder(manager.clone())
                    .metrics(Arc::clone(&metrics))
                    .policy(policy.clone())
                    .client_options(ClientOptions::default().timeout(Duration::from_secs(5)))
                    .build();
                let result = session.get(&format!("{base}{case_id}")).await;
                let stop = session.should_abort();
                session.finish().await?;
                match result {
                    Ok(page) => {
                        let title = parse_case_detail(&page.text());
                        if let Ok(mut db) = database.lock() {
                            db.push(CaseRecord {
                                case_id,
                                title,
                                fetched_via: page.exit_ip,
                            });
                        }
                    }
                    Err(ClientError::TargetUnhealthy { target }) => {
                        eprintln!("worker {worker}: {target} is failing for everyone; stopping");
                        break;
                    }
                    Err(error) => eprintln!("worker {worker}: case {case_id} failed: {error}"),
                }
                if stop {
                    break;
                }
            }
            Ok::<_, ClientError>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }

    let database = database.lock().map_err(|_| "database lock poisoned")?;
    println!("stored {} of {CASES} cases", database.len());
    for record in database.iter().take(3) {
        println!(
            "  case {:>2}: {:?} via {}",
            record.case_id, record.title, record.fetched_via
        );
    }
    metrics.log_stats();
    let snapshot = metrics.snapshot();
    for (target, stats) in &snapshot.targets {
        println!(
            "{target}: {} requests, {} successes, signals {:?}, p50 {:.1} ms, p99 {:.1} ms",
            stats.counters.requests,
            stats.counters.successes,
            stats.counters.signals,
            stats.counters.latency_ms.p50,
            stats.counters.latency_ms.p99
        );
    }
    Ok(())
}
