//! The verification abstraction: which exit IP did a session really get?

use std::fmt::{self, Debug};
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::proxy::ProxyUrl;

/// Finds the real exit IP of a proxy, usually by asking proxy judges
/// through it (see the `proxy-judge` crate).
#[async_trait]
pub trait IpVerifier: Send + Sync + Debug + 'static {
    /// Returns the exit IP that `proxy` uses, or why it could not be found.
    ///
    /// Implementations classify their failures (see [`VerifyError`]) so the
    /// acquire loop can stop on a configuration error instead of looping.
    async fn verify(&self, proxy: &ProxyUrl) -> Result<VerifiedExit, VerifyError>;
}

#[async_trait]
impl<T: IpVerifier + ?Sized> IpVerifier for Arc<T> {
    async fn verify(&self, proxy: &ProxyUrl) -> Result<VerifiedExit, VerifyError> {
        (**self).verify(proxy).await
    }
}

#[async_trait]
impl<T: IpVerifier + ?Sized> IpVerifier for Box<T> {
    async fn verify(&self, proxy: &ProxyUrl) -> Result<VerifiedExit, VerifyError> {
        (**self).verify(proxy).await
    }
}

/// A verified exit address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VerifiedExit {
    /// The exit IP in canonical form.
    pub ip: IpAddr,
    /// The judge that answered (a URL without credentials).
    pub judge: String,
    /// How many judges were started before the one that answered
    /// (0 when the first judge answered).
    pub failovers: u32,
}

impl VerifiedExit {
    /// An exit `ip` reported by `judge` after `failovers` other judges.
    pub fn new(ip: IpAddr, judge: impl Into<String>, failovers: u32) -> Self {
        Self {
            ip: ip.to_canonical(),
            judge: judge.into(),
            failovers,
        }
    }
}

/// How a session's proxy failed, so the caller knows a new session may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProxyFailure {
    /// The gateway could not be reached (refused, reset, DNS).
    Unreachable,
    /// The gateway answered with an error for this session (502, 503, 522,
    /// 525 or a provider error header such as `x-brd-error`).
    Gateway,
    /// The proxy forwarded our own address (a transparent proxy) or failed
    /// the anonymity check.
    Transparent,
    /// The proxy did not answer in time.
    Timeout,
}

impl fmt::Display for ProxyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyFailure::Unreachable => "unreachable",
            ProxyFailure::Gateway => "gateway error",
            ProxyFailure::Transparent => "transparent proxy",
            ProxyFailure::Timeout => "timeout",
        })
    }
}

/// One judge's failure, for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JudgeFailure {
    /// The judge URL.
    pub judge: String,
    /// What went wrong (never contains credentials).
    pub reason: String,
}

impl fmt::Display for JudgeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.judge, self.reason)
    }
}

/// Why an exit IP could not be verified.
///
/// Messages never contain credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The configuration is wrong and a new session will not help: the
    /// gateway refused our credentials (HTTP 407), the proxy URL is unusable,
    /// or no judge is configured. The acquire loop stops on this.
    #[error("proxy configuration error: {reason}")]
    Configuration {
        /// What is wrong.
        reason: String,
    },
    /// This session's proxy failed; a new session may work.
    #[error("proxy failed ({failure}): {detail}")]
    Proxy {
        /// The kind of failure.
        failure: ProxyFailure,
        /// The HTTP status from the gateway, if it sent one.
        status: Option<u16>,
        /// Details for the log.
        detail: String,
    },
    /// Every judge failed while the proxy seemed to work.
    #[error("every judge failed: {}", join_failures(failures))]
    JudgesFailed {
        /// Each judge's failure, in the order they were tried.
        failures: Vec<JudgeFailure>,
    },
}

fn join_failures(failures: &[JudgeFailure]) -> String {
    if failures.is_empty() {
        return "no judge answered".to_owned();
    }
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl VerifyError {
    /// Whether retrying with a new session cannot help.
    pub fn is_configuration(&self) -> bool {
        matches!(self, VerifyError::Configuration { .. })
    }
}
