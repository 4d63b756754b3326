//! Building any provider by name from configuration (files, CLI flags).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use proxy_core::{Protocol, ProxyData, ProxyProvider};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

use crate::brightdata::{BrightData, BrightDataOptions};
use crate::decodo::{Decodo, DecodoOptions};
use crate::error::ProviderError;
use crate::gateway::{Gateway, check_protocol};
use crate::iproyal::{IpRoyal, IpRoyalOptions};
use crate::netnut::{NetNut, NetNutOptions, NetNutPool};
use crate::oxylabs::{Oxylabs, OxylabsOptions};
use crate::session::SessionPlacement;
use crate::soax::{Soax, SoaxOptions};
use crate::template::{Template, TemplateOptions};

/// The providers this crate ships, by configuration name.
///
/// ```
/// use proxy_providers::ProviderKind;
///
/// assert_eq!("Oxylabs".parse::<ProviderKind>()?, ProviderKind::Oxylabs);
/// let err = "oxylab".parse::<ProviderKind>().unwrap_err();
/// assert!(err.to_string().contains("expected one of brightdata, brightdata-legacy, oxylabs"));
/// # Ok::<(), proxy_providers::ProviderError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ProviderKind {
    /// [`BrightData`] on the current gateway (`brd-customer-…`).
    BrightData,
    /// [`BrightData`] on the legacy Luminati gateway (`lum-customer-…`).
    BrightDataLegacy,
    /// [`Oxylabs`] residential.
    Oxylabs,
    /// [`Decodo`].
    Decodo,
    /// [`Decodo`] on the legacy Smartproxy gateway.
    Smartproxy,
    /// [`NetNut`].
    NetNut,
    /// [`IpRoyal`].
    IpRoyal,
    /// [`Soax`].
    Soax,
    /// [`Template`]: a gateway described by format strings.
    Template,
}

impl ProviderKind {
    /// Every provider, in the order of [`ProviderKind::NAMES`].
    pub const ALL: [ProviderKind; 9] = [
        ProviderKind::BrightData,
        ProviderKind::BrightDataLegacy,
        ProviderKind::Oxylabs,
        ProviderKind::Decodo,
        ProviderKind::Smartproxy,
        ProviderKind::NetNut,
        ProviderKind::IpRoyal,
        ProviderKind::Soax,
        ProviderKind::Template,
    ];
    /// The names accepted in configuration (case-insensitive).
    pub const NAMES: [&'static str; 9] = [
        "brightdata",
        "brightdata-legacy",
        "oxylabs",
        "decodo",
        "smartproxy",
        "netnut",
        "iproyal",
        "soax",
        "template",
    ];

    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::BrightData => "brightdata",
            ProviderKind::BrightDataLegacy => "brightdata-legacy",
            ProviderKind::Oxylabs => "oxylabs",
            ProviderKind::Decodo => "decodo",
            ProviderKind::Smartproxy => "smartproxy",
            ProviderKind::NetNut => "netnut",
            ProviderKind::IpRoyal => "iproyal",
            ProviderKind::Soax => "soax",
            ProviderKind::Template => "template",
        }
    }

    /// The documented gateway used when no host or port is configured
    /// (`None` for [`ProviderKind::Template`]).
    pub fn gateway(self) -> Option<Gateway> {
        match self {
            ProviderKind::BrightData => Some(BrightData::GATEWAY),
            ProviderKind::BrightDataLegacy => Some(BrightData::LEGACY_GATEWAY),
            ProviderKind::Oxylabs => Some(Oxylabs::GATEWAY),
            ProviderKind::Decodo => Some(Decodo::GATEWAY),
            ProviderKind::Smartproxy => Some(Decodo::SMARTPROXY_GATEWAY),
            ProviderKind::NetNut => Some(NetNut::GATEWAY),
            ProviderKind::IpRoyal => Some(IpRoyal::GATEWAY),
            ProviderKind::Soax => Some(Soax::GATEWAY),
            ProviderKind::Template => None,
        }
    }

    /// The protocols the provider's gateway speaks.
    pub fn protocols(self) -> &'static [Protocol] {
        match self {
            ProviderKind::BrightData | ProviderKind::BrightDataLegacy => BrightData::PROTOCOLS,
            ProviderKind::Oxylabs => Oxylabs::PROTOCOLS,
            ProviderKind::Decodo | ProviderKind::Smartproxy => Decodo::PROTOCOLS,
            ProviderKind::NetNut => NetNut::PROTOCOLS,
            ProviderKind::IpRoyal => IpRoyal::PROTOCOLS,
            ProviderKind::Soax => Soax::PROTOCOLS,
            ProviderKind::Template => &[
                Protocol::Http,
                Protocol::Https,
                Protocol::Socks5,
                Protocol::Socks5h,
            ],
        }
    }

    /// The optional settings this provider understands; any other one set
    /// in a [`ProviderConfig`] is an error.
    pub fn supported_options(self) -> &'static [&'static str] {
        match self {
            ProviderKind::BrightData | ProviderKind::BrightDataLegacy => BrightData::OPTIONS,
            ProviderKind::Oxylabs => Oxylabs::OPTIONS,
            ProviderKind::Decodo | ProviderKind::Smartproxy => Decodo::OPTIONS,
            ProviderKind::NetNut => NetNut::OPTIONS,
            ProviderKind::IpRoyal => IpRoyal::OPTIONS,
            ProviderKind::Soax => Soax::OPTIONS,
            ProviderKind::Template => Template::OPTIONS,
        }
    }

    /// The settings a [`ProviderConfig`] must have for this provider.
    pub fn required_fields(self) -> &'static [&'static str] {
        match self {
            ProviderKind::Template => &["host", "port"],
            _ => &["username", "password"],
        }
    }

    /// Where the provider puts the session id (`None` for templates, which
    /// put it wherever `{session}` is).
    pub fn session_placement(self) -> Option<SessionPlacement> {
        match self {
            ProviderKind::BrightData | ProviderKind::BrightDataLegacy => {
                Some(BrightData::SESSION_PLACEMENT)
            }
            ProviderKind::Oxylabs => Some(Oxylabs::SESSION_PLACEMENT),
            ProviderKind::Decodo | ProviderKind::Smartproxy => Some(Decodo::SESSION_PLACEMENT),
            ProviderKind::NetNut => Some(NetNut::SESSION_PLACEMENT),
            ProviderKind::IpRoyal => Some(IpRoyal::SESSION_PLACEMENT),
            ProviderKind::Soax => Some(Soax::SESSION_PLACEMENT),
            ProviderKind::Template => None,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProviderKind {
    type Err = ProviderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == wanted)
            .ok_or_else(|| ProviderError::UnknownProvider { name: s.to_owned() })
    }
}

impl TryFrom<String> for ProviderKind {
    type Error = ProviderError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<ProviderKind> for String {
    fn from(kind: ProviderKind) -> Self {
        kind.name().to_owned()
    }
}

/// Any shipped provider, described by name and settings: what configuration
/// files and the CLI hand to [`ProviderConfig::build`].
///
/// Fields mirror [`ProxyData`] plus every provider option; an option the
/// chosen provider does not support is an error, not ignored. `host` and
/// `port` default to the provider's documented gateway for `protocol`.
/// `session_lifetime` is whole seconds or a duration such as `"30m"`.
///
/// ```
/// use proxy_core::SessionId;
/// use proxy_providers::ProviderConfig;
///
/// let config: ProviderConfig = serde_json::from_str(r#"{
///     "provider": "oxylabs",
///     "username": "acme",
///     "password": "s3cret",
///     "country": "us",
///     "city": "los_angeles",
///     "session_lifetime": "30m"
/// }"#)?;
/// let provider = config.build()?;
/// let url = provider.build_proxy_url(&SessionId::new("abc123")?)?;
/// assert_eq!(
///     url.username(),
///     Some("customer-acme-cc-US-city-los_angeles-sessid-abc123-sesstime-30")
/// );
/// assert_eq!(provider.label(), "oxylabs:us:7777");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawProviderConfig")]
pub struct ProviderConfig {
    /// Which provider.
    pub provider: ProviderKind,
    /// Gateway host; default: the provider's documented gateway.
    pub host: Option<String>,
    /// Gateway port; default: the documented port for `protocol`.
    pub port: Option<u16>,
    /// Account username (Bright Data: the full `brd-customer-…-zone-…`
    /// username, or the customer id when `zone` is set).
    pub username: Option<String>,
    /// Account password (SOAX: the package key).
    pub password: Option<SecretString>,
    /// Exit country, ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// Protocol spoken to the gateway (default HTTP).
    pub protocol: Protocol,
    /// Bright Data zone; makes `username` the customer id.
    pub zone: Option<String>,
    /// State (SOAX: region).
    pub state: Option<String>,
    /// City, in the provider's spelling.
    pub city: Option<String>,
    /// ZIP or postal code.
    pub zip: Option<String>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Internet provider (SOAX).
    pub isp: Option<String>,
    /// IP pool (NetNut).
    pub pool: Option<NetNutPool>,
    /// Session lifetime, in the provider's bounds.
    pub session_lifetime: Option<Duration>,
    /// Longest session id, where the provider documents none.
    pub session_id_max_len: Option<usize>,
    /// Username format ([`Template`]).
    pub username_template: Option<String>,
    /// Password format ([`Template`]).
    pub password_template: Option<String>,
}

/// The shape of [`ProviderConfig`] in files, before the provider name is
/// checked (so a missing name lists the choices too).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProviderConfig {
    provider: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<SecretString>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    protocol: Protocol,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    city: Option<String>,
    #[serde(default)]
    zip: Option<String>,
    #[serde(default)]
    asn: Option<u32>,
    #[serde(default)]
    isp: Option<String>,
    #[serde(default)]
    pool: Option<NetNutPool>,
    #[serde(default, deserialize_with = "deserialize_lifetime")]
    session_lifetime: Option<Duration>,
    #[serde(default)]
    session_id_max_len: Option<usize>,
    #[serde(default)]
    username_template: Option<String>,
    #[serde(default)]
    password_template: Option<String>,
}

impl TryFrom<RawProviderConfig> for ProviderConfig {
    type Error = ProviderError;
    fn try_from(raw: RawProviderConfig) -> Result<Self, Self::Error> {
        let provider = raw
            .provider
            .ok_or(ProviderError::MissingProvider)?
            .parse()?;
        Ok(Self {
            provider,
            host: raw.host,
            port: raw.port,
            username: raw.username,
            password: raw.password,
            country: raw.country,
            protocol: raw.protocol,
            zone: raw.zone,
            state: raw.state,
            city: raw.city,
            zip: raw.zip,
            asn: raw.asn,
            isp: raw.isp,
            pool: raw.pool,
            session_lifetime: raw.session_lifetime,
            session_id_max_len: raw.session_id_max_len,
            username_template: raw.username_template,
            password_template: raw.password_template,
        })
    }
}

/// Whole seconds (`600`) or a duration text (`"10m"`, `"1h 30m"`).
fn deserialize_lifetime<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    struct LifetimeVisitor;

    impl serde::de::Visitor<'_> for LifetimeVisitor {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("whole seconds or a duration such as \"10m\"")
        }

        fn visit_u64<E: serde::de::Error>(self, secs: u64) -> Result<Self::Value, E> {
            Ok(Some(Duration::from_secs(secs)))
        }

        fn visit_i64<E: serde::de::Error>(self, secs: i64) -> Result<Self::Value, E> {
            u64::try_from(secs)
                .map(|s| Some(Duration::from_secs(s)))
                .map_err(|_| E::custom(format!("negative session_lifetime {secs}")))
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            humantime::parse_duration(text.trim())
                .map(Some)
                .map_err(|e| E::custom(format!("invalid session_lifetime {text:?}: {e}")))
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    deserializer.deserialize_any(LifetimeVisitor)
}

impl ProviderConfig {
    /// A configuration with an account and every other setting at its
    /// default; set the public fields for the rest.
    pub fn new(
        provider: ProviderKind,
        username: impl Into<String>,
        password: impl Into<SecretString>,
    ) -> Self {
        Self {
            provider,
            host: None,
            port: None,
            username: Some(username.into()),
            password: Some(password.into()),
            country: None,
            protocol: Protocol::Http,
            zone: None,
            state: None,
            city: None,
            zip: None,
            asn: None,
            isp: None,
            pool: None,
            session_lifetime: None,
            session_id_max_len: None,
            username_template: None,
            password_template: None,
        }
    }

    /// Builds the provider, checking every setting.
    ///
    /// Fails on a missing required field, an option the provider does not
    /// support, or any validation error of the provider itself.
    pub fn build(&self) -> Result<Arc<dyn ProxyProvider>, ProviderError> {
        self.reject_unsupported()?;
        let data = self.data()?;
        let kind = self.provider;
        Ok(match kind {
            ProviderKind::BrightData | ProviderKind::BrightDataLegacy => {
                Arc::new(BrightData::from_data(
                    data,
                    BrightDataOptions {
                        state: self.state.clone(),
                        city: self.city.clone(),
                        zip: self.zip.clone(),
                        asn: self.asn,
                        session_id_max_len: self.session_id_max_len,
                    },
                )?)
            }
            ProviderKind::Oxylabs => Arc::new(Oxylabs::from_data(
                data,
                OxylabsOptions {
                    city: self.city.clone(),
                    state: self.state.clone(),
                    zip: self.zip.clone(),
                    session_lifetime: self.session_lifetime,
                    session_id_max_len: self.session_id_max_len,
                },
            )?),
            ProviderKind::Decodo | ProviderKind::Smartproxy => Arc::new(Decodo::from_data(
                data,
                DecodoOptions {
                    session_lifetime: self.session_lifetime,
                    session_id_max_len: self.session_id_max_len,
                },
            )?),
            ProviderKind::NetNut => Arc::new(NetNut::from_data(
                data,
                NetNutOptions {
                    pool: self.pool.unwrap_or_default(),
                    state: self.state.clone(),
                    city: self.city.clone(),
                },
            )?),
            ProviderKind::IpRoyal => Arc::new(IpRoyal::from_data(
                data,
                IpRoyalOptions {
                    state: self.state.clone(),
                    session_lifetime: self.session_lifetime,
                },
            )?),
            ProviderKind::Soax => Arc::new(Soax::from_data(
                data,
                SoaxOptions {
                    city: self.city.clone(),
                    region: self.state.clone(),
                    isp: self.isp.clone(),
                    session_lifetime: self.session_lifetime,
                    session_id_max_len: self.session_id_max_len,
                },
            )?),
            ProviderKind::Template => Arc::new(Template::from_data(
                data,
                TemplateOptions {
                    username_template: self.username_template.clone(),
                    password_template: self.password_template.clone(),
                    state: self.state.clone(),
                    city: self.city.clone(),
                    zip: self.zip.clone(),
                    asn: self.asn,
                    isp: self.isp.clone(),
                    session_lifetime: self.session_lifetime,
                    session_id_max_len: self.session_id_max_len,
                },
            )?),
        })
    }

    fn reject_unsupported(&self) -> Result<(), ProviderError> {
        let supported = self.provider.supported_options();
        let set = [
            ("country", self.country.is_some()),
            ("zone", self.zone.is_some()),
            ("state", self.state.is_some()),
            ("city", self.city.is_some()),
            ("zip", self.zip.is_some()),
            ("asn", self.asn.is_some()),
            ("isp", self.isp.is_some()),
            ("pool", self.pool.is_some()),
            ("session_lifetime", self.session_lifetime.is_some()),
            ("session_id_max_len", self.session_id_max_len.is_some()),
            ("username_template", self.username_template.is_some()),
            ("password_template", self.password_template.is_some()),
        ];
        match set
            .into_iter()
            .find(|(option, is_set)| *is_set && !supported.contains(option))
        {
            Some((option, _)) => Err(ProviderError::Unsupported {
                provider: self.provider.name(),
                option,
                supported,
            }),
            None => Ok(()),
        }
    }

    /// The account and gateway, with the documented defaults filled in.
    fn data(&self) -> Result<ProxyData, ProviderError> {
        let kind = self.provider;
        let missing = |field| ProviderError::MissingField {
            provider: kind,
            field,
        };
        check_protocol(kind.name(), kind.protocols(), self.protocol)?;
        let gateway = kind.gateway();
        let host = match (&self.host, gateway) {
            (Some(host), _) => host.as_str(),
            (None, Some(gateway)) => gateway.host,
            (None, None) => return Err(missing("host")),
        };
        let port = match (self.port, gateway) {
            (Some(port), _) => port,
            (None, Some(gateway)) => {
                gateway
                    .port(self.protocol)
                    .ok_or_else(|| ProviderError::InvalidOption {
                        provider: kind.name(),
                        option: "protocol",
                        value: self.protocol.to_string(),
                        reason: format!(
                            "{} documents no {} port: set `port`",
                            gateway.host, self.protocol
                        ),
                    })?
            }
            (None, None) => return Err(missing("port")),
        };
        let (username, password) = if kind == ProviderKind::Template {
            (
                self.username.clone().unwrap_or_default(),
                self.password
                    .clone()
                    .unwrap_or_else(|| SecretString::from("")),
            )
        } else {
            (
                self.username.clone().ok_or_else(|| missing("username"))?,
                self.password.clone().ok_or_else(|| missing("password"))?,
            )
        };
        let username = match (&self.zone, kind) {
            (Some(zone), ProviderKind::BrightData) => {
                BrightData::account_username("brd", &username, zone)?
            }
            (Some(zone), ProviderKind::BrightDataLegacy) => {
                BrightData::account_username("lum", &username, zone)?
            }
            _ => username,
        };
        let data = ProxyData::new(host, port, username, password)?.with_protocol(self.protocol);
        Ok(match &self.country {
            Some(country) => data.with_country(country)?,
            None => data,
        })
    }
}
