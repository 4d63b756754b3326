//! Shared set-up for the end-to-end tests: a verifier that trusts the
//! fake network's test CA and accepts loopback exits.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use proxy_judge::{ClientOptions, JudgeVerifier, JudgeVerifierBuilder};
use testkit::net::{FakeGateway, FakeJudge, GatewayConfig, JudgeShape, test_ca_pem};

/// Client options trusting only the test CA.
pub fn test_client_options() -> ClientOptions {
    ClientOptions::default()
        .add_root_certificate_pem(test_ca_pem().unwrap())
        .unwrap()
        .only_listed_roots(true)
}

/// A verifier builder for `judges` on loopback: private addresses allowed,
/// short hedge delay.
pub fn verifier_for(judges: &[&FakeJudge]) -> JudgeVerifierBuilder {
    JudgeVerifier::builder()
        .judges(judges.iter().map(|j| j.url()))
        .allow_private_ips(true)
        .hedge_delay(Duration::from_millis(200))
        .client_options(test_client_options())
}

pub async fn gateway(exits: u8) -> FakeGateway {
    FakeGateway::start(GatewayConfig::with_exit_count(exits))
        .await
        .unwrap()
}

pub async fn judge(shape: JudgeShape, tls: bool) -> FakeJudge {
    if tls {
        FakeJudge::start_tls(shape).await.unwrap()
    } else {
        FakeJudge::start(shape).await.unwrap()
    }
}
