//! The error of a [`ProxySession`](crate::ProxySession) request.

use std::time::Duration;

use proxy_core::{AcquireError, StoreError};

use crate::classify::{CaptchaVendor, Signal};

/// Why a request through a [`ProxySession`](crate::ProxySession) failed.
///
/// Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The site kept refusing (403) through every proxy the policy allowed.
    #[error("blocked by the site (HTTP {status}) after {rotations} rotations")]
    Blocked {
        /// The last status.
        status: u16,
        /// Proxies rotated through.
        rotations: u32,
    },
    /// The site kept rate limiting through every proxy the policy allowed.
    #[error("rate limited by the site after {rotations} rotations")]
    RateLimited {
        /// The last `Retry-After`.
        retry_after: Option<Duration>,
        /// Proxies rotated through.
        rotations: u32,
    },
    /// CAPTCHAs that could not be solved through every proxy allowed.
    #[error("unsolved {vendor} CAPTCHA after {rotations} rotations")]
    CaptchaUnsolved {
        /// Whose challenge.
        vendor: CaptchaVendor,
        /// Proxies rotated through.
        rotations: u32,
    },
    /// Proxy failures or timeouts through every proxy allowed.
    #[error("gave up after {rotations} rotations; last: {last}")]
    RotationsExhausted {
        /// Proxies rotated through.
        rotations: u32,
        /// What the last attempt said.
        last: Signal,
    },
    /// The target's circuit breaker is open: most recent requests failed,
    /// so workers should stop hitting it for now.
    #[error("target {target} is unhealthy (circuit breaker open)")]
    TargetUnhealthy {
        /// The target domain.
        target: String,
    },
    /// The gateway refused the credentials (407) or the client could not be
    /// built: no retry can help.
    #[error("proxy configuration error: {reason}")]
    Configuration {
        /// What is wrong.
        reason: String,
    },
    /// The request's host is outside the domain the proxy is reserved for.
    #[error(
        "{host} is outside the reserved domain {domain} (see SessionPolicy::allow_other_hosts)"
    )]
    OutsideReservedDomain {
        /// The request's host.
        host: String,
        /// The reserved domain.
        domain: String,
    },
    /// The body was larger than [`SessionPolicy::max_body_bytes`](crate::SessionPolicy::max_body_bytes).
    #[error("response body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The request has a streaming body, which cannot be sent again after
    /// a rotation.
    #[error("request body cannot be cloned for retries")]
    NotRetryable,
    /// The request itself is invalid (for example a URL without a host).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// Why.
        reason: String,
    },
    /// No proxy could be acquired.
    #[error(transparent)]
    Acquire(#[from] AcquireError),
    /// The reservation store failed while releasing or cooling down.
    #[error(transparent)]
    Store(#[from] StoreError),
}
