//! The one error type of this crate.

use proxy_core::{InvalidInput, Protocol};

use crate::config::ProviderKind;
use crate::session::CredentialSide;

/// A provider could not be built from the given settings.
///
/// Every variant names the provider and the offending value, except for
/// passwords: [`ProviderError::Password`] names only the rule that was broken.
/// Building URLs afterwards fails only with [`InvalidInput`] (a session id
/// outside the provider's rule, a credential over the SOCKS5 limit).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// A core value was rejected (host, port, country format, control
    /// characters in a credential…).
    #[error(transparent)]
    Input(#[from] InvalidInput),

    /// The provider name is not one we ship.
    #[error("unknown provider {name:?}: expected one of {}", ProviderKind::NAMES.join(", "))]
    UnknownProvider {
        /// The rejected name.
        name: String,
    },

    /// The configuration names no provider.
    #[error("no `provider` given: expected one of {}", ProviderKind::NAMES.join(", "))]
    MissingProvider,

    /// A required setting is missing.
    #[error("provider {provider} needs `{field}` (required: {})", provider.required_fields().join(", "))]
    MissingField {
        /// The provider being configured.
        provider: ProviderKind,
        /// The missing setting.
        field: &'static str,
    },

    /// A targeting parameter or option the provider does not document.
    ///
    /// Gateways ignore parameters they don't know, which users only notice
    /// when the exit is in the wrong place: we refuse instead.
    #[error("{provider} does not support `{option}` (it supports: {})", supported.join(", "))]
    Unsupported {
        /// The provider's name.
        provider: &'static str,
        /// The unsupported setting.
        option: &'static str,
        /// The settings this provider does support.
        supported: &'static [&'static str],
    },

    /// A protocol the provider's gateway does not document.
    #[error(
        "{provider} does not support protocol {protocol} (supported: {})",
        protocol_list(supported)
    )]
    Protocol {
        /// The provider's name.
        provider: &'static str,
        /// The rejected protocol.
        protocol: Protocol,
        /// What the gateway speaks.
        supported: &'static [Protocol],
    },

    /// The documented gateway host with the documented port of another
    /// protocol (for example NetNut's HTTP port 5959 with `socks5h`).
    #[error("{provider}: port {port} of {host} is not the {protocol} port (expected {expected})")]
    PortMismatch {
        /// The provider's name.
        provider: &'static str,
        /// The gateway host.
        host: String,
        /// The port given.
        port: u16,
        /// The protocol given.
        protocol: Protocol,
        /// The documented port for that protocol.
        expected: u16,
    },

    /// A targeting value or option outside the provider's documented shape
    /// or bounds.
    #[error("{provider}: invalid {option} {value:?}: {reason}")]
    InvalidOption {
        /// The provider's name.
        provider: &'static str,
        /// The setting (`"city"`, `"session_lifetime"`, …).
        option: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A targeting parameter that only makes sense together with another
    /// (a city without a country).
    #[error("{provider}: `{option}` needs `{requires}` to be set")]
    Requires {
        /// The provider's name.
        provider: &'static str,
        /// The setting given.
        option: &'static str,
        /// The setting it depends on.
        requires: &'static str,
    },

    /// An account username that does not fit the provider's format.
    #[error("{provider}: invalid username {value:?}: {reason}")]
    Username {
        /// The provider's name.
        provider: &'static str,
        /// The rejected username (usernames are not secret).
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// An account password that breaks a documented rule. The password is
    /// never included.
    #[error("{provider}: invalid password: {reason}")]
    Password {
        /// The provider's name.
        provider: &'static str,
        /// Why it was rejected (never contains the password).
        reason: String,
    },

    /// A [`Template`](crate::Template) format string that cannot be used.
    #[error("invalid {side} template: {reason}")]
    Template {
        /// Which credential the template builds.
        side: CredentialSide,
        /// Why it was rejected (never contains literal password-template text).
        reason: String,
    },
}

fn protocol_list(protocols: &[Protocol]) -> String {
    protocols
        .iter()
        .map(|p| p.scheme())
        .collect::<Vec<_>>()
        .join(", ")
}
