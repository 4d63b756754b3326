//! NetNut: `<user>-res-<cc>-sid-<number>`.

use std::fmt;
use std::str::FromStr;

use proxy_core::{InvalidInput, Protocol, ProxyData, ProxyProvider, ProxyUrl, SessionId};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::ProviderError;
use crate::gateway::{Gateway, check_endpoint};
use crate::session::{CredentialSide, SessionPlacement, SessionRule};
use crate::targeting::{self, Charset};

/// NetNut's IP pools, chosen by the username segment after the account name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetNutPool {
    /// Rotating residential, `-res-`. The default.
    #[default]
    Residential,
    /// Static residential, `-stc-`.
    Static,
    /// Mobile, `-mob-`.
    Mobile,
}

impl NetNutPool {
    /// Every pool, in the order of [`NetNutPool::NAMES`].
    pub const ALL: [NetNutPool; 3] = [
        NetNutPool::Residential,
        NetNutPool::Static,
        NetNutPool::Mobile,
    ];
    /// The pool names accepted by [`FromStr`] and in configuration.
    pub const NAMES: [&'static str; 3] = ["residential", "static", "mobile"];

    /// The segment NetNut reads in the username.
    pub fn segment(self) -> &'static str {
        match self {
            NetNutPool::Residential => "res",
            NetNutPool::Static => "stc",
            NetNutPool::Mobile => "mob",
        }
    }

    fn config_name(self) -> &'static str {
        match self {
            NetNutPool::Residential => "residential",
            NetNutPool::Static => "static",
            NetNutPool::Mobile => "mobile",
        }
    }
}

impl fmt::Display for NetNutPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.config_name())
    }
}

impl FromStr for NetNutPool {
    type Err = ProviderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|pool| pool.config_name() == wanted || pool.segment() == wanted)
            .ok_or_else(|| ProviderError::InvalidOption {
                provider: NetNut::NAME,
                option: "pool",
                value: s.to_owned(),
                reason: format!("expected one of {}", Self::NAMES.join(", ")),
            })
    }
}

/// Targeting options for [`NetNut`]; the country comes from
/// [`ProxyData::country`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetNutOptions {
    /// Which pool to draw exits from.
    pub pool: NetNutPool,
    /// US-style state name in letters and digits (`alabama`). NetNut
    /// documents state only together with a city, in the residential pool:
    /// `res_sc-us_alabama_birmingham`.
    pub state: Option<String>,
    /// City name in letters and digits (`birmingham`); needs `state`.
    pub city: Option<String>,
}

/// NetNut's gateway `gw.netnut.net`: HTTP on 5959, `socks5h` on 9595.
///
/// Username: `<user>-res-<cc>-sid-<n>` (`res-any` without a country,
/// `res_sc-<cc>_<state>_<city>` for a city, `stc`/`mob` for the static and
/// mobile pools). Session ids are **numbers** from 10000 to 999999999.
/// Countries are ISO codes in our API; NetNut writes the United Kingdom as
/// `uk`, so `gb` is translated.
///
/// ```
/// use proxy_core::{ProxyData, ProxyProvider, SessionId};
/// use proxy_providers::{NetNut, NetNutOptions};
///
/// let data = ProxyData::new("gw.netnut.net", 5959, "acme", "s3cret")?.with_country("GB")?;
/// let netnut = NetNut::from_data(data, NetNutOptions::default())?;
/// let url = netnut.build_proxy_url(&SessionId::new("12345")?)?;
/// assert_eq!(url.username(), Some("acme-res-uk-sid-12345"));
/// assert_eq!(netnut.label(), "netnut:gb:5959");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct NetNut {
    data: ProxyData,
    options: NetNutOptions,
    username: String,
    session_rule: SessionRule,
}

impl NetNut {
    /// Provider name used in labels and configuration.
    pub const NAME: &'static str = "netnut";
    /// The gateway.
    pub const GATEWAY: Gateway = Gateway {
        host: "gw.netnut.net",
        http_port: 5959,
        socks5h_port: Some(9595),
    };
    /// Protocols the gateway speaks.
    pub const PROTOCOLS: &'static [Protocol] = &[Protocol::Http, Protocol::Socks5h];
    /// Where the session id goes.
    pub const SESSION_PLACEMENT: SessionPlacement = SessionPlacement {
        side: CredentialSide::Username,
        marker: "-sid-",
    };
    /// Settings this provider understands (for configuration errors).
    pub const OPTIONS: &'static [&'static str] = &["country", "state", "city", "pool"];
    /// NetNut's session id rule: a number in this range.
    pub const SESSION_RANGE: (u64, u64) = (10_000, 999_999_999);

    /// Segments the provider writes into the username; an account name
    /// holding one would confuse the gateway.
    const MARKERS: &'static [&'static str] = &["-sid-", "-res-", "-res_sc-", "-stc-", "-mob-"];

    /// The gateway over HTTP for account `username`, residential pool, any
    /// country.
    pub fn new(username: &str, password: impl Into<SecretString>) -> Result<Self, ProviderError> {
        let data = Self::GATEWAY.data(
            Self::NAME,
            Self::PROTOCOLS,
            Protocol::Http,
            username.to_owned(),
            password.into(),
        )?;
        Self::from_data(data, NetNutOptions::default())
    }

    /// Full control over gateway, protocol, country and options.
    pub fn from_data(data: ProxyData, options: NetNutOptions) -> Result<Self, ProviderError> {
        const NAME: &str = NetNut::NAME;
        check_endpoint(NAME, Self::PROTOCOLS, &[Self::GATEWAY], &data)?;
        targeting::country(NAME, data.country())?;
        let mut username = targeting::account_username(NAME, data.username(), "", Self::MARKERS)?;
        // NetNut's own code for the United Kingdom.
        let country = data.country().map(|cc| if cc == "gb" { "uk" } else { cc });
        match (options.state.as_deref(), options.city.as_deref()) {
            (None, None) => {
                username.push('-');
                username.push_str(options.pool.segment());
                username.push('-');
                username.push_str(country.unwrap_or("any"));
            }
            (Some(state), Some(city)) => {
                if options.pool != NetNutPool::Residential {
                    return Err(ProviderError::InvalidOption {
                        provider: NAME,
                        option: "pool",
                        value: options.pool.to_string(),
                        reason:
                            "state and city targeting is documented for the residential pool only"
                                .to_owned(),
                    });
                }
                targeting::require(NAME, "state", true, "country", country.is_some())?;
                let state = targeting::value(NAME, "state", state, Charset::Plain)?;
                let city = targeting::value(NAME, "city", city, Charset::Plain)?;
                username.push_str("-res_sc-");
                username.push_str(country.unwrap_or_default());
                username.push('_');
                username.push_str(&state);
                username.push('_');
                username.push_str(&city);
            }
            (Some(_), None) => {
                return Err(ProviderError::Requires {
                    provider: NAME,
                    option: "state",
                    requires: "city",
                });
            }
            (None, Some(_)) => {
                return Err(ProviderError::Requires {
                    provider: NAME,
                    option: "city",
                    requires: "state",
                });
            }
        }
        let (min, max) = Self::SESSION_RANGE;
        Ok(Self {
            data,
            options,
            username,
            session_rule: SessionRule::numeric(min, max),
        })
    }

    /// The same account and gateway with other targeting options.
    pub fn with_options(self, options: NetNutOptions) -> Result<Self, ProviderError> {
        Self::from_data(self.data, options)
    }

    /// The account and gateway this provider was built from.
    pub fn data(&self) -> &ProxyData {
        &self.data
    }

    /// The targeting options in force.
    pub fn options(&self) -> &NetNutOptions {
        &self.options
    }

    /// The session ids this provider accepts.
    pub fn session_rule(&self) -> &SessionRule {
        &self.session_rule
    }
}

impl ProxyProvider for NetNut {
    fn build_proxy_url(&self, session: &SessionId) -> Result<ProxyUrl, InvalidInput> {
        self.session_rule.check(session)?;
        ProxyUrl::from_gateway(&self.data).with_credentials(
            format!("{}-sid-{session}", self.username),
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
