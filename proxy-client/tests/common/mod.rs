//! A scraper's world on loopback: the fake gateway, judges and target of
//! `testkit::net`, a manager acquiring through them, and a session.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use proxy_client::{ProxySession, ProxySessionBuilder, RequestMetrics, SessionPolicy};
use proxy_core::{
    InvalidInput, MemoryStore, Protocol, ProxyManager, ProxyProvider, ProxyUrl, SessionId, Settings,
};
use proxy_judge::{ClientOptions, JudgeVerifier};
use testkit::net::{FakeNetwork, FakeNetworkConfig, GatewayConfig, TargetRules, test_ca_pem};

/// The gateway password of these tests: must never show up in any output.
pub const PASSWORD: &str = "pr0xy-pa55word-never-logged";

/// The fake gateway as a provider (Decodo-style usernames).
#[derive(Debug)]
pub struct FakeProvider {
    host: String,
    port: u16,
}

impl ProxyProvider for FakeProvider {
    fn build_proxy_url(&self, session: &SessionId) -> Result<ProxyUrl, InvalidInput> {
        ProxyUrl::new(Protocol::Http, &self.host, self.port)?
            .with_credentials(format!("user-client-session-{session}"), PASSWORD)
    }
    fn name(&self) -> &str {
        "fakegw"
    }
    fn port(&self) -> u16 {
        self.port
    }
}

pub struct World {
    pub network: FakeNetwork,
    pub store: MemoryStore,
    pub manager: ProxyManager,
    pub metrics: Arc<RequestMetrics>,
}

impl World {
    pub async fn start(exits: u8, rules: TargetRules) -> Self {
        Self::start_with(exits, rules, false).await
    }

    /// With `tls_target`, the target speaks HTTPS and is reached through a
    /// CONNECT tunnel.
    pub async fn start_with(exits: u8, rules: TargetRules, tls_target: bool) -> Self {
        let mut config = FakeNetworkConfig::with_exit_count(exits).target_rules(rules);
        config.tls_target = tls_target;
        config.gateway = GatewayConfig::with_exit_count(exits).password(PASSWORD);
        let network = FakeNetwork::start_with(config).await.unwrap();
        let store = MemoryStore::new();
        let manager = Self::manager_on(&network, store.clone());
        Self {
            network,
            store,
            manager,
            metrics: Arc::new(RequestMetrics::new()),
        }
    }

    /// Another worker's manager on the same store (same domain).
    pub fn manager_on(network: &FakeNetwork, store: MemoryStore) -> ProxyManager {
        let gateway = network.gateway.addr();
        let verifier = JudgeVerifier::builder()
            .judges(network.judge_urls())
            .allow_private_ips(true)
            .hedge_delay(Duration::from_millis(300))
            .build()
            .unwrap();
        let settings = Settings::default()
            .with_env_vars([
                ("PROXY_ACQUIRE_TIMEOUT", "20"),
                ("PROXY_RECHECK_INTERVAL", "0.05"),
                ("PROXY_TTL_SECONDS", "60"),
            ])
            .unwrap();
        ProxyManager::builder()
            .provider(FakeProvider {
                host: gateway.ip().to_string(),
                port: gateway.port(),
            })
            .verifier(verifier)
            .store(store)
            .target_domain(network.target.url("/"))
            .app_id("client-tests")
            .settings(settings)
            .build()
            .unwrap()
    }

    /// A session with short cooldowns and timeouts, recording into the
    /// shared metrics.
    pub fn session(&self) -> ProxySessionBuilder {
        ProxySession::builder(self.manager.clone())
            .metrics(Arc::clone(&self.metrics))
            .client_options(
                ClientOptions::default()
                    .timeout(Duration::from_millis(800))
                    .add_root_certificate_pem(test_ca_pem().unwrap())
                    .unwrap(),
            )
            .policy(
                SessionPolicy::default()
                    .with_cooldowns(
                        Duration::from_secs(2),
                        Duration::from_secs(2),
                        Duration::from_secs(2),
                    )
                    .with_rate_limit(2, Duration::from_millis(100), Duration::from_millis(400)),
            )
    }

    pub fn url(&self, path: &str) -> String {
        self.network.target.url(path)
    }

    pub fn exits(&self) -> Vec<IpAddr> {
        self.network.gateway.exits().to_vec()
    }
}
