//! The crate's error type.

use proxy_core::VerifyError;

/// Why a client, verifier or judge server could not be set up.
///
/// Messages never contain proxy passwords: proxies are shown redacted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JudgeError {
    /// A judge URL does not parse.
    #[error("invalid judge URL {url:?}: {source}")]
    JudgeUrl {
        /// The URL as given.
        url: String,
        /// The parse error.
        #[source]
        source: url::ParseError,
    },
    /// A judge URL parses but cannot be a judge (not http/https, no host,
    /// or it carries credentials).
    #[error("invalid judge URL {url:?}: {reason}")]
    UnusableJudge {
        /// The URL as given (credentials removed).
        url: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// No judge is configured.
    #[error("no judge configured")]
    NoJudges,
    /// A setting is out of range.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The builder method or option.
        name: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The HTTP client cannot use this proxy URL.
    #[error("cannot use proxy {proxy}: {source}")]
    Proxy {
        /// The proxy, password redacted.
        proxy: String,
        /// What reqwest reported.
        #[source]
        source: reqwest::Error,
    },
    /// A root certificate does not parse.
    #[error("invalid root certificate: {source}")]
    Certificate {
        /// What reqwest reported.
        #[source]
        source: reqwest::Error,
    },
    /// Building the HTTP client failed (TLS setup, usually).
    #[error("cannot build the HTTP client: {source}")]
    Client {
        /// What reqwest reported.
        #[source]
        source: reqwest::Error,
    },
    /// The judge server could not bind or inspect its socket.
    #[error("judge server: {what}: {source}")]
    Server {
        /// What failed.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl From<JudgeError> for VerifyError {
    /// Every setup error is a configuration error: a new session cannot
    /// fix it.
    fn from(error: JudgeError) -> Self {
        VerifyError::Configuration {
            reason: error.to_string(),
        }
    }
}
