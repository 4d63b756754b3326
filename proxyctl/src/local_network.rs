//! The in-process fake network (testkit) as the demo and `bench acquire`
//! use it: a provider pointed at its gateway and a verifier asking its
//! judges.

use std::sync::Arc;
use std::time::Duration;

use proxy_core::{ProxyProvider, Settings};
use proxy_judge::JudgeVerifier;
use proxy_providers::{ProviderConfig, ProviderKind};
use testkit::net::{FakeGateway, FakeNetwork};

use crate::error::CliError;

/// The provider the fake gateway is reached with: Decodo's username format
/// (`user-…-session-<id>`, which the gateway reads) on the gateway's port.
pub(crate) fn provider_for(gateway: &FakeGateway) -> Result<Arc<dyn ProxyProvider>, CliError> {
    let password = gateway.password().unwrap_or_default().to_owned();
    let mut config = ProviderConfig::new(ProviderKind::Decodo, "proxyctl", password);
    config.host = Some(gateway.addr().ip().to_string());
    config.port = Some(gateway.addr().port());
    Ok(config.build()?)
}

/// `settings` with the fake judges in place of the configured ones.
pub(crate) fn settings_for(
    network: &FakeNetwork,
    settings: Settings,
) -> Result<Settings, CliError> {
    Ok(settings.with_env_vars([("PROXY_JUDGES", network.judge_urls().join(","))])?)
}

/// A verifier for the fake judges: loopback exits are allowed (they are
/// what the fake gateway binds), and a silent judge is hedged quickly.
pub(crate) fn verifier_for(settings: &Settings) -> Result<JudgeVerifier, CliError> {
    Ok(JudgeVerifier::builder()
        .settings(settings)
        .allow_private_ips(true)
        .timeout(Duration::from_secs(5))
        .hedge_delay(Duration::from_millis(250))
        .build()?)
}
