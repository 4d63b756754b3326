//! The fake proxy network on loopback: gateway, judges and target site.
//!
//! Real sockets, real HTTP, no mocks: a [`FakeGateway`] is a provider's
//! super-proxy (HTTP forward proxy with CONNECT, and SOCKS5) that pins each
//! session to an exit address of its pool and binds its outbound sockets to
//! it; a [`FakeJudge`] answers in the public judges' formats with the
//! address it sees; a [`FakeTarget`] is a site that bans by source address.
//! Everything binds `127.x.y.z` on a free port, injects faults on demand
//! and stops when its handle is dropped. [`FakeNetwork`] starts one of each
//! (three judges) for demos and benchmarks.
//!
//! Any `127.x.y.z` address can be bound on Linux without setup, which is
//! what gives every session its own source address. HTTPS servers use
//! certificates from one test CA per process: trust [`test_ca_pem`].

use std::net::IpAddr;

mod gateway;
mod judge;
mod server;
mod session;
mod target;
mod tls;

pub use gateway::{
    DEFAULT_GATEWAY_PASSWORD, ExitAssignment, FakeGateway, GatewayConfig, GatewayFault,
    GatewayStats,
};
pub use judge::{FakeJudge, JudgeFault, JudgeShape, JudgeStats};
pub use session::session_from_credentials;
pub use target::{FakeTarget, RateLimit, SourceStats, TargetBehavior, TargetRules, TargetStats};
pub use tls::{test_ca_der, test_ca_pem};

/// A fake server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Binding or inspecting a socket failed.
    #[error("{what}: {source}")]
    Io {
        /// Which socket.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An address outside 127.0.0.0/8 (or `::1`) was configured: the fake
    /// network never leaves loopback.
    #[error("{what} {ip} is not a loopback address")]
    NotLoopback {
        /// Which address.
        what: &'static str,
        /// The address.
        ip: IpAddr,
    },
    /// A gateway was configured without exit addresses.
    #[error("a gateway needs at least one exit address")]
    NoExits,
    /// Making a test certificate failed.
    #[error("test certificate: {0}")]
    Certificate(#[source] rcgen::Error),
    /// Setting up TLS with the test certificate failed.
    #[error("TLS setup: {0}")]
    Tls(#[source] tokio_rustls::rustls::Error),
}

/// How [`FakeNetwork::start_with`] sets up the network.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FakeNetworkConfig {
    /// The gateway (exits, password).
    pub gateway: GatewayConfig,
    /// Judges to start, in order, one per shape listed.
    pub judges: Vec<JudgeShape>,
    /// Whether the judges speak HTTPS (reached through CONNECT).
    pub tls_judges: bool,
    /// The target's rules.
    pub target: TargetRules,
    /// Whether the target speaks HTTPS.
    pub tls_target: bool,
}

impl Default for FakeNetworkConfig {
    fn default() -> Self {
        Self {
            gateway: GatewayConfig::default(),
            judges: JudgeShape::ALL.to_vec(),
            tls_judges: false,
            target: TargetRules::default(),
            tls_target: false,
        }
    }
}

impl FakeNetworkConfig {
    /// `exits` gateway exits, three plain-HTTP judges (httpbin, ipify,
    /// plain text), an open target.
    pub fn with_exit_count(exits: u8) -> Self {
        Self {
            gateway: GatewayConfig::with_exit_count(exits),
            ..Self::default()
        }
    }

    /// Judges and target over HTTPS.
    pub fn tls(mut self) -> Self {
        self.tls_judges = true;
        self.tls_target = true;
        self
    }

    /// The target's rules.
    pub fn target_rules(mut self, rules: TargetRules) -> Self {
        self.target = rules;
        self
    }
}

/// A gateway, judges and a target, started together.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use testkit::net::FakeNetwork;
/// let network = FakeNetwork::start(4).await?;
/// assert_eq!(network.judge_urls().len(), 3);
/// let proxy = network.gateway.proxy_url(Some("s1"))?;
/// # let _ = proxy;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct FakeNetwork {
    /// The super-proxy.
    pub gateway: FakeGateway,
    /// The judges, in configured order.
    pub judges: Vec<FakeJudge>,
    /// The site to scrape.
    pub target: FakeTarget,
}

impl FakeNetwork {
    /// A gateway with `exits` exits, three plain-HTTP judges (httpbin,
    /// ipify, plain text) and an open target.
    pub async fn start(exits: u8) -> Result<Self, NetError> {
        Self::start_with(FakeNetworkConfig::with_exit_count(exits)).await
    }

    /// A network as configured.
    pub async fn start_with(config: FakeNetworkConfig) -> Result<Self, NetError> {
        let gateway = FakeGateway::start(config.gateway).await?;
        let mut judges = Vec::with_capacity(config.judges.len());
        for shape in config.judges {
            let judge = if config.tls_judges {
                FakeJudge::start_tls(shape).await?
            } else {
                FakeJudge::start(shape).await?
            };
            judges.push(judge);
        }
        let target = if config.tls_target {
            FakeTarget::start_tls(config.target).await?
        } else {
            FakeTarget::start(config.target).await?
        };
        Ok(Self {
            gateway,
            judges,
            target,
        })
    }

    /// The judges' URLs, in order (what a verifier is configured with).
    pub fn judge_urls(&self) -> Vec<String> {
        self.judges.iter().map(FakeJudge::url).collect()
    }
}
