//! Oxylabs residential proxies: `customer-<user>-cc-US-…-sessid-<id>`.

use std::time::Duration;

use proxy_core::{InvalidInput, Protocol, ProxyData, ProxyProvider, ProxyUrl, SessionId};
use secrecy::SecretString;

use crate::error::ProviderError;
use crate::gateway::{Gateway, check_endpoint};
use crate::session::{CredentialSide, SessionPlacement, SessionRule};
use crate::targeting::{self, Charset, LifetimeUnit};

/// Targeting and session options for [`Oxylabs`]. All optional; the country
/// comes from [`ProxyData::country`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OxylabsOptions {
    /// City, lower case with `_` for spaces: `-city-los_angeles`. Needs a
    /// country.
    pub city: Option<String>,
    /// State as `<country>_<name>` (`us_california`); a bare `california` is
    /// prefixed with the country. Needs a country.
    pub state: Option<String>,
    /// Postal code, `-postalcode-90210`. Needs a country.
    pub zip: Option<String>,
    /// Session lifetime, whole minutes from 1 to 1440 (`-sesstime-<min>`).
    /// Unset: Oxylabs' default (10 minutes, or 60 s idle).
    pub session_lifetime: Option<Duration>,
    /// Longest accepted session id; Oxylabs documents none. Default
    /// [`DEFAULT_SESSION_ID_MAX_LEN`](crate::DEFAULT_SESSION_ID_MAX_LEN).
    pub session_id_max_len: Option<usize>,
}

/// Oxylabs residential gateway `pr.oxylabs.io:7777` (HTTP and `socks5h`).
///
/// Username: `customer-<user>[-cc-US][-city-los_angeles][-st-us_california]
/// [-postalcode-90210]-sessid-<id>[-sesstime-<min>]`. Session ids are
/// `0-9A-Za-z`. Country entry nodes and sticky ports (10000–49999) work by
/// setting the host and port in [`ProxyData`].
///
/// ```
/// use proxy_core::{ProxyProvider, SessionId};
/// use proxy_providers::Oxylabs;
///
/// let oxy = Oxylabs::new("acme", "s3cret")?;
/// let url = oxy.build_proxy_url(&SessionId::new("abc123")?)?;
/// assert_eq!(url.username(), Some("customer-acme-sessid-abc123"));
/// assert_eq!(url.endpoint(), "http://pr.oxylabs.io:7777");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Oxylabs {
    data: ProxyData,
    options: OxylabsOptions,
    username: String,
    suffix: String,
    session_rule: SessionRule,
}

impl Oxylabs {
    /// Provider name used in labels and configuration.
    pub const NAME: &'static str = "oxylabs";
    /// The residential gateway (one port for HTTP and SOCKS5).
    pub const GATEWAY: Gateway = Gateway {
        host: "pr.oxylabs.io",
        http_port: 7777,
        socks5h_port: Some(7777),
    };
    /// Protocols the gateway speaks.
    pub const PROTOCOLS: &'static [Protocol] = &[Protocol::Http, Protocol::Socks5h];
    /// Where the session id goes.
    pub const SESSION_PLACEMENT: SessionPlacement = SessionPlacement {
        side: CredentialSide::Username,
        marker: "-sessid-",
    };
    /// Settings this provider understands (for configuration errors).
    pub const OPTIONS: &'static [&'static str] = &[
        "country",
        "city",
        "state",
        "zip",
        "session_lifetime",
        "session_id_max_len",
    ];
    /// Longest `sesstime`, in minutes (24 hours).
    pub const MAX_SESSION_MINUTES: u64 = 1440;

    /// The residential gateway over HTTP for account `username` (with or
    /// without the `customer-` prefix), no targeting.
    pub fn new(username: &str, password: impl Into<SecretString>) -> Result<Self, ProviderError> {
        let data = Self::GATEWAY.data(
            Self::NAME,
            Self::PROTOCOLS,
            Protocol::Http,
            username.to_owned(),
            password.into(),
        )?;
        Self::from_data(data, OxylabsOptions::default())
    }

    /// Full control over gateway, protocol, country and options.
    /// `data.username()` gets the `customer-` prefix unless it has it.
    pub fn from_data(data: ProxyData, options: OxylabsOptions) -> Result<Self, ProviderError> {
        const NAME: &str = Oxylabs::NAME;
        check_endpoint(NAME, Self::PROTOCOLS, &[Self::GATEWAY], &data)?;
        targeting::country(NAME, data.country())?;
        let country = data.country();
        for (option, is_set) in [
            ("city", options.city.is_some()),
            ("state", options.state.is_some()),
            ("zip", options.zip.is_some()),
        ] {
            targeting::require(NAME, option, is_set, "country", country.is_some())?;
        }
        let city = options
            .city
            .as_deref()
            .map(|c| targeting::value(NAME, "city", c, Charset::Underscored))
            .transpose()?;
        let state = match (options.state.as_deref(), country) {
            (Some(state), Some(cc)) => {
                let state = targeting::value(NAME, "state", state, Charset::Underscored)?;
                let prefix = format!("{cc}_");
                Some(if state.starts_with(&prefix) {
                    state
                } else {
                    format!("{prefix}{state}")
                })
            }
            // A state without a country was refused by `require` above.
            _ => None,
        };
        let zip = options
            .zip
            .as_deref()
            .map(|z| targeting::value(NAME, "zip", z, Charset::Plain))
            .transpose()?;
        let minutes = options
            .session_lifetime
            .map(|d| {
                targeting::lifetime(NAME, d, LifetimeUnit::Minutes, 1, Self::MAX_SESSION_MINUTES)
            })
            .transpose()?;
        let session_rule = SessionRule::alphanumeric_up_to(NAME, options.session_id_max_len)?;

        let params = [
            ("-cc-", country.map(str::to_ascii_uppercase)),
            ("-city-", city),
            ("-st-", state),
            ("-postalcode-", zip),
        ];
        let mut markers = vec![Self::SESSION_PLACEMENT.marker];
        markers.extend(params.iter().filter(|(_, v)| v.is_some()).map(|(m, _)| *m));
        if minutes.is_some() {
            markers.push("-sesstime-");
        }
        let mut username =
            targeting::account_username(NAME, data.username(), "customer-", &markers)?;
        for (marker, value) in params {
            if let Some(value) = value {
                username.push_str(marker);
                username.push_str(&value);
            }
        }
        let suffix = minutes
            .map(|m| format!("-sesstime-{m}"))
            .unwrap_or_default();
        Ok(Self {
            data,
            options,
            username,
            suffix,
            session_rule,
        })
    }

    /// The same account and gateway with other targeting options.
    pub fn with_options(self, options: OxylabsOptions) -> Result<Self, ProviderError> {
        Self::from_data(self.data, options)
    }

    /// The account and gateway this provider was built from.
    pub fn data(&self) -> &ProxyData {
        &self.data
    }

    /// The targeting options in force.
    pub fn options(&self) -> &OxylabsOptions {
        &self.options
    }

    /// The session ids this provider accepts.
    pub fn session_rule(&self) -> &SessionRule {
        &self.session_rule
    }
}

impl ProxyProvider for Oxylabs {
    fn build_proxy_url(&self, session: &SessionId) -> Result<ProxyUrl, InvalidInput> {
        self.session_rule.check(session)?;
        ProxyUrl::from_gateway(&self.data).with_credentials(
            format!("{}-sessid-{session}{}", self.username, self.suffix),
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
