#![doc = include_str!("../README.md")]

mod captcha;
mod classify;
mod error;
mod metrics;
mod page;
mod policy;
mod session;

pub use captcha::{CaptchaChallenge, CaptchaOutcome, CaptchaSolver};
pub use classify::{
    CaptchaMarker, CaptchaVendor, Classifier, GATEWAY_ERROR_HEADERS, MarkerLocation, Signal,
    SignalKind, default_captcha_markers, retry_after,
};
pub use error::ClientError;
pub use metrics::{
    Attempt, BreakerConfig, CounterSnapshot, LatencySnapshot, MetricsSnapshot, RequestMetrics,
    TargetSnapshot,
};
pub use page::Page;
pub use policy::SessionPolicy;
pub use session::{ProxySession, ProxySessionBuilder, SessionEvent, SessionObserver, SessionStats};

/// Re-exported: the client options and the HTTP client type.
pub use proxy_judge::{ClientOptions, reqwest};
