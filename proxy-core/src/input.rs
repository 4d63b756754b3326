//! The error for values that fail validation.

use std::time::Duration;

/// A value was rejected before anything was sent or written.
///
/// Every variant names the offending value (or, for secrets, only the field
/// that held it) and why it was rejected. Returned by the constructors of the
/// domain types ([`TargetDomain`](crate::TargetDomain),
/// [`ProxyData`](crate::ProxyData), [`Ttl`](crate::Ttl), …), so a store never
/// sees a value that was not normalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    /// An IP address that does not parse.
    #[error("invalid IP address {value:?}: {reason}")]
    Ip {
        /// The rejected text.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A target domain that cannot be normalised.
    #[error("invalid target domain {value:?}: {reason}")]
    Domain {
        /// The rejected text.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An application id that is empty, too long or contains control characters.
    #[error("invalid app id {value:?}: {reason}")]
    AppId {
        /// The rejected text.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A time-to-live or cooldown outside the accepted range.
    #[error("invalid duration {value:?} for {what}: {reason}")]
    Duration {
        /// What the duration was for (`"ttl"`, `"cooldown"`, …).
        what: &'static str,
        /// The rejected duration.
        value: Duration,
        /// Why it was rejected.
        reason: String,
    },
    /// A proxy host that is empty or malformed.
    #[error("invalid proxy host {value:?}: {reason}")]
    Host {
        /// The rejected text.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Port 0.
    #[error("invalid proxy port 0: a port must be between 1 and 65535")]
    Port,
    /// A protocol name we do not know.
    #[error("unknown proxy protocol {value:?}: expected one of http, https, socks5, socks5h")]
    Protocol {
        /// The rejected text.
        value: String,
    },
    /// A country code that is not two ASCII letters.
    #[error("invalid country code {value:?}: expected an ISO 3166-1 alpha-2 code such as \"us\"")]
    Country {
        /// The rejected text.
        value: String,
    },
    /// A session id that is empty, too long or outside the provider's alphabet.
    #[error("invalid session id {value:?}: {reason}")]
    SessionId {
        /// The rejected text.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A credential (username or password) that cannot be used.
    ///
    /// The value itself is never included: only the field name.
    #[error("invalid {field}: {reason}")]
    Credential {
        /// `"username"` or `"password"`.
        field: &'static str,
        /// Why it was rejected (never contains the value).
        reason: String,
    },
}

/// Returns the byte offset of the first control character in `value`, if any.
pub(crate) fn control_character_at(value: &str) -> Option<usize> {
    value
        .char_indices()
        .find(|(_, c)| c.is_control())
        .map(|(i, _)| i)
}
