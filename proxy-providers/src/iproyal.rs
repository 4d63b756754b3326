//! IPRoyal: targeting and session in the **password**,
//! `<pass>_country-us_session-<id>_lifetime-10m`.

use std::time::Duration;

use proxy_core::{InvalidInput, Protocol, ProxyData, ProxyProvider, ProxyUrl, SessionId};
use secrecy::{ExposeSecret, SecretString};

use crate::error::ProviderError;
use crate::gateway::{Gateway, check_endpoint};
use crate::session::{CredentialSide, SessionPlacement, SessionRule};
use crate::targeting::{self, Charset};

/// Targeting and session options for [`IpRoyal`]; the country comes from
/// [`ProxyData::country`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRoyalOptions {
    /// State name in letters and digits (`california`). Needs a country.
    pub state: Option<String>,
    /// Session lifetime from 1 s to 7 days, written in one unit
    /// (`_lifetime-90s`, `-10m`, `-2h`, `-7d`). Unset:
    /// [`IpRoyal::DEFAULT_LIFETIME`].
    pub session_lifetime: Option<Duration>,
}

/// IPRoyal's gateway `geo.iproyal.com`: HTTP on 12321, `socks5h` on 32325.
///
/// The username is the account name, unchanged; the parameters go in the
/// password: `<pass>[_country-us][_state-california]_session-<id>_lifetime-<n><unit>`.
/// Session ids are **exactly 8** ASCII letters or digits.
///
/// ```
/// use proxy_core::{ProxyProvider, SessionId};
/// use proxy_providers::IpRoyal;
/// use secrecy::ExposeSecret;
///
/// let royal = IpRoyal::new("acme", "s3cret")?;
/// let url = royal.build_proxy_url(&SessionId::new("Ab12Cd34")?)?;
/// assert_eq!(url.username(), Some("acme"));
/// assert_eq!(url.password().unwrap().expose_secret(), "s3cret_session-Ab12Cd34_lifetime-10m");
/// // Display and Debug never show the password, parameters included.
/// assert_eq!(url.to_string(), "http://acme:***@geo.iproyal.com:12321");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct IpRoyal {
    data: ProxyData,
    options: IpRoyalOptions,
    /// Targeting appended to the password before the session (no secret).
    targeting: String,
    lifetime: String,
    session_rule: SessionRule,
}

impl IpRoyal {
    /// Provider name used in labels and configuration.
    pub const NAME: &'static str = "iproyal";
    /// The gateway.
    pub const GATEWAY: Gateway = Gateway {
        host: "geo.iproyal.com",
        http_port: 12321,
        socks5h_port: Some(32325),
    };
    /// Protocols the gateway speaks.
    pub const PROTOCOLS: &'static [Protocol] = &[Protocol::Http, Protocol::Socks5h];
    /// Where the session id goes.
    pub const SESSION_PLACEMENT: SessionPlacement = SessionPlacement {
        side: CredentialSide::Password,
        marker: "_session-",
    };
    /// Settings this provider understands (for configuration errors).
    pub const OPTIONS: &'static [&'static str] = &["country", "state", "session_lifetime"];
    /// IPRoyal session ids are exactly this many letters or digits.
    pub const SESSION_ID_LEN: usize = 8;
    /// The lifetime sent when none is configured: the value of IPRoyal's
    /// documented example (the parameter is part of every sticky session).
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(10 * 60);
    /// The longest lifetime IPRoyal accepts.
    pub const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

    /// The gateway over HTTP for account `username`, no targeting, the
    /// default lifetime.
    pub fn new(username: &str, password: impl Into<SecretString>) -> Result<Self, ProviderError> {
        let data = Self::GATEWAY.data(
            Self::NAME,
            Self::PROTOCOLS,
            Protocol::Http,
            username.to_owned(),
            password.into(),
        )?;
        Self::from_data(data, IpRoyalOptions::default())
    }

    /// Full control over gateway, protocol, country and options.
    pub fn from_data(data: ProxyData, options: IpRoyalOptions) -> Result<Self, ProviderError> {
        const NAME: &str = IpRoyal::NAME;
        check_endpoint(NAME, Self::PROTOCOLS, &[Self::GATEWAY], &data)?;
        targeting::country(NAME, data.country())?;
        targeting::account_username(NAME, data.username(), "", &[])?;
        targeting::require(
            NAME,
            "state",
            options.state.is_some(),
            "country",
            data.country().is_some(),
        )?;
        let state = options
            .state
            .as_deref()
            .map(|s| targeting::value(NAME, "state", s, Charset::Plain))
            .transpose()?;
        let lifetime = Self::lifetime_parameter(options.session_lifetime)?;

        let password = data.password().expose_secret();
        if password.is_empty() {
            return Err(ProviderError::Password {
                provider: NAME,
                reason: "empty: the parameters are appended to the account password".to_owned(),
            });
        }
        let params = [("_country-", data.country()), ("_state-", state.as_deref())];
        let mut markers = vec![Self::SESSION_PLACEMENT.marker, "_lifetime-"];
        markers.extend(params.iter().filter(|(_, v)| v.is_some()).map(|(m, _)| *m));
        if let Some(marker) = markers.iter().find(|m| password.contains(*m)) {
            return Err(ProviderError::Password {
                provider: NAME,
                reason: format!(
                    "already contains `{marker}`, which the provider adds itself: set it as an option instead"
                ),
            });
        }
        let mut targeting = String::new();
        for (marker, value) in params {
            if let Some(value) = value {
                targeting.push_str(marker);
                targeting.push_str(value);
            }
        }
        Ok(Self {
            data,
            options,
            targeting,
            lifetime,
            session_rule: SessionRule::alphanumeric(Self::SESSION_ID_LEN, Self::SESSION_ID_LEN),
        })
    }

    /// `10m`, `90s`, `2h`, `7d`: the largest unit that expresses the
    /// lifetime exactly, since IPRoyal takes one number and one unit.
    fn lifetime_parameter(lifetime: Option<Duration>) -> Result<String, ProviderError> {
        let lifetime = lifetime.unwrap_or(Self::DEFAULT_LIFETIME);
        let secs = targeting::lifetime(
            Self::NAME,
            lifetime,
            targeting::LifetimeUnit::Seconds,
            1,
            Self::MAX_LIFETIME.as_secs(),
        )?;
        let (count, unit) = [(86_400, 'd'), (3_600, 'h'), (60, 'm'), (1, 's')]
            .into_iter()
            .find(|(unit_secs, _)| secs % unit_secs == 0)
            .map(|(unit_secs, unit)| (secs / unit_secs, unit))
            .unwrap_or((secs, 's'));
        Ok(format!("{count}{unit}"))
    }

    /// The same account and gateway with other targeting options.
    pub fn with_options(self, options: IpRoyalOptions) -> Result<Self, ProviderError> {
        Self::from_data(self.data, options)
    }

    /// The account and gateway this provider was built from.
    pub fn data(&self) -> &ProxyData {
        &self.data
    }

    /// The targeting options in force.
    pub fn options(&self) -> &IpRoyalOptions {
        &self.options
    }

    /// The session ids this provider accepts.
    pub fn session_rule(&self) -> &SessionRule {
        &self.session_rule
    }
}

impl ProxyProvider for IpRoyal {
    fn build_proxy_url(&self, session: &SessionId) -> Result<ProxyUrl, InvalidInput> {
        self.session_rule.check(session)?;
        let password = format!(
            "{}{}_session-{session}_lifetime-{}",
            self.data.password().expose_secret(),
            self.targeting,
            self.lifetime
        );
        ProxyUrl::from_gateway(&self.data)
            .with_credentials(self.data.username(), SecretString::from(password))
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
