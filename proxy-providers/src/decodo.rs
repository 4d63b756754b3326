//! Decodo (formerly Smartproxy): `user-<user>-country-us-session-<id>`.

use std::time::Duration;

use proxy_core::{InvalidInput, Protocol, ProxyData, ProxyProvider, ProxyUrl, SessionId};
use secrecy::{ExposeSecret, SecretString};

use crate::error::ProviderError;
use crate::gateway::{Gateway, check_endpoint};
use crate::session::{CredentialSide, SessionPlacement, SessionRule};
use crate::targeting::{self, LifetimeUnit};

/// Session options for [`Decodo`]. Only country targeting is documented
/// (from [`ProxyData::country`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodoOptions {
    /// Session duration, whole minutes from 1 to 1440
    /// (`-sessionduration-<min>`). Unset: Decodo's default, 10 minutes.
    pub session_lifetime: Option<Duration>,
    /// Longest accepted session id; Decodo documents no session id rules, so
    /// ids are alphanumeric up to this length. Default
    /// [`DEFAULT_SESSION_ID_MAX_LEN`](crate::DEFAULT_SESSION_ID_MAX_LEN).
    pub session_id_max_len: Option<usize>,
}

/// Decodo's gateway `gate.decodo.com:7000` (HTTP and `socks5h`), or the
/// legacy Smartproxy host `gate.smartproxy.com`.
///
/// Username: `user-<user>[-country-us]-session-<id>[-sessionduration-<min>]`.
/// Account passwords cannot contain `@` or `:`.
///
/// ```
/// use proxy_core::{ProxyProvider, SessionId};
/// use proxy_providers::Decodo;
///
/// let decodo = Decodo::new("acme", "s3cret")?;
/// let url = decodo.build_proxy_url(&SessionId::new("abc123")?)?;
/// assert_eq!(url.username(), Some("user-acme-session-abc123"));
/// assert_eq!(url.endpoint(), "http://gate.decodo.com:7000");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Decodo {
    data: ProxyData,
    options: DecodoOptions,
    username: String,
    suffix: String,
    session_rule: SessionRule,
}

impl Decodo {
    /// Provider name used in labels and configuration.
    pub const NAME: &'static str = "decodo";
    /// The gateway (one port for HTTP and SOCKS5).
    pub const GATEWAY: Gateway = Gateway {
        host: "gate.decodo.com",
        http_port: 7000,
        socks5h_port: Some(7000),
    };
    /// The legacy Smartproxy gateway.
    pub const SMARTPROXY_GATEWAY: Gateway = Gateway {
        host: "gate.smartproxy.com",
        http_port: 7000,
        socks5h_port: Some(7000),
    };
    /// Protocols the gateway speaks.
    pub const PROTOCOLS: &'static [Protocol] = &[Protocol::Http, Protocol::Socks5h];
    /// Where the session id goes.
    pub const SESSION_PLACEMENT: SessionPlacement = SessionPlacement {
        side: CredentialSide::Username,
        marker: "-session-",
    };
    /// Settings this provider understands (for configuration errors).
    pub const OPTIONS: &'static [&'static str] =
        &["country", "session_lifetime", "session_id_max_len"];
    /// Longest `sessionduration`, in minutes (24 hours).
    pub const MAX_SESSION_MINUTES: u64 = 1440;

    /// The Decodo gateway over HTTP for account `username` (with or without
    /// the `user-` prefix), no targeting.
    pub fn new(username: &str, password: impl Into<SecretString>) -> Result<Self, ProviderError> {
        Self::on(Self::GATEWAY, username, password.into())
    }

    /// The legacy Smartproxy gateway over HTTP.
    pub fn smartproxy(
        username: &str,
        password: impl Into<SecretString>,
    ) -> Result<Self, ProviderError> {
        Self::on(Self::SMARTPROXY_GATEWAY, username, password.into())
    }

    fn on(gateway: Gateway, username: &str, password: SecretString) -> Result<Self, ProviderError> {
        let data = gateway.data(
            Self::NAME,
            Self::PROTOCOLS,
            Protocol::Http,
            username.to_owned(),
            password,
        )?;
        Self::from_data(data, DecodoOptions::default())
    }

    /// Full control over gateway, protocol, country and options.
    /// `data.username()` gets the `user-` prefix unless it has it.
    pub fn from_data(data: ProxyData, options: DecodoOptions) -> Result<Self, ProviderError> {
        const NAME: &str = Decodo::NAME;
        check_endpoint(
            NAME,
            Self::PROTOCOLS,
            &[Self::GATEWAY, Self::SMARTPROXY_GATEWAY],
            &data,
        )?;
        targeting::country(NAME, data.country())?;
        if let Some(c) = data
            .password()
            .expose_secret()
            .chars()
            .find(|c| matches!(c, '@' | ':'))
        {
            return Err(ProviderError::Password {
                provider: NAME,
                reason: format!("contains `{c}`, which Decodo account passwords cannot contain"),
            });
        }
        let minutes = options
            .session_lifetime
            .map(|d| {
                targeting::lifetime(NAME, d, LifetimeUnit::Minutes, 1, Self::MAX_SESSION_MINUTES)
            })
            .transpose()?;
        let session_rule = SessionRule::alphanumeric_up_to(NAME, options.session_id_max_len)?;

        let mut markers = vec![Self::SESSION_PLACEMENT.marker];
        if data.country().is_some() {
            markers.push("-country-");
        }
        if minutes.is_some() {
            markers.push("-sessionduration-");
        }
        let mut username = targeting::account_username(NAME, data.username(), "user-", &markers)?;
        if let Some(country) = data.country() {
            username.push_str("-country-");
            username.push_str(country);
        }
        let suffix = minutes
            .map(|m| format!("-sessionduration-{m}"))
            .unwrap_or_default();
        Ok(Self {
            data,
            options,
            username,
            suffix,
            session_rule,
        })
    }

    /// The same account and gateway with other options.
    pub fn with_options(self, options: DecodoOptions) -> Result<Self, ProviderError> {
        Self::from_data(self.data, options)
    }

    /// The account and gateway this provider was built from.
    pub fn data(&self) -> &ProxyData {
        &self.data
    }

    /// The options in force.
    pub fn options(&self) -> &DecodoOptions {
        &self.options
    }

    /// The session ids this provider accepts.
    pub fn session_rule(&self) -> &SessionRule {
        &self.session_rule
    }
}

impl ProxyProvider for Decodo {
    fn build_proxy_url(&self, session: &SessionId) -> Result<ProxyUrl, InvalidInput> {
        self.session_rule.check(session)?;
        ProxyUrl::from_gateway(&self.data).with_credentials(
            format!("{}-session-{session}{}", self.username, self.suffix),
            self.data.password().clone(),
        )
    }

    fn new_session_id(&self) -> SessionId {
        self.session_rule.generate()
    }

    fn name(&self) -> &str {
        Self::NAME
    }

    fn country(&self) -> Option<&str> {
        self.data.country()
    }

    fn port(&self) -> u16 {
        self.data.port()
    }
}
