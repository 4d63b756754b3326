//! SOAX: `package-<id>-country-us-sessionid-<id>-sessionlength-<sec>`.

use std::time::Duration;

use proxy_core::{InvalidInput, Protocol, ProxyData, ProxyProvider, ProxyUrl, SessionId};
use secrecy::SecretString;

use crate::error::ProviderError;
use crate::gateway::{Gateway, check_endpoint};
use crate::session::{CredentialSide, SessionPlacement, SessionRule};
use crate::targeting::{self, Charset, LifetimeUnit};

/// Targeting and session options for [`Soax`]; the country comes from
/// [`ProxyData::country`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoaxOptions {
    /// City, lower case with `+` for spaces (`new york` becomes `new+york`).
    /// Needs a country.
    pub city: Option<String>,
    /// Region (`-region-…`), same spelling rules as the city. Needs a country.
    pub region: Option<String>,
    /// Internet provider (`-isp-…`), same spelling rules.
    pub isp: Option<String>,
    /// Session length, whole seconds from 1 to 86400 (`-sessionlength-`).
    /// Unset: [`Soax::DEFAULT_SESSION_LENGTH`], SOAX's residential default.
    pub session_lifetime: Option<Duration>,
    /// Longest accepted session id; SOAX documents none. Default
    /// [`DEFAULT_SESSION_ID_MAX_LEN`](crate::DEFAULT_SESSION_ID_MAX_LEN).
    pub session_id_max_len: Option<usize>,
}

/// SOAX's gateway `proxy.soax.com:5000` (HTTP only: SOAX documents no SOCKS5
/// endpoint).
///
/// Username: `package-<id>[-country-us][-city-new+york][-region-…][-isp-…]
/// -sessionid-<id>-sessionlength-<sec>`; password: the package key.
///
/// ```
/// use proxy_core::{ProxyProvider, SessionId};
/// use proxy_providers::Soax;
///
/// let soax = Soax::new("123456", "package-key")?;
/// let url = soax.build_proxy_url(&SessionId::new("abc123")?)?;
/// assert_eq!(url.username(), Some("package-123456-sessionid-abc123-sessionlength-360"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Soax {
    data: ProxyData,
    options: SoaxOptions,
    username: String,
    suffix: String,
    session_rule: SessionRule,
}

impl Soax {
    /// Provider name used in labels and configuration.
    pub const NAME: &'static str = "soax";
    /// The gateway.
    pub const GATEWAY: Gateway = Gateway {
        host: "proxy.soax.com",
        http_port: 5000,
        socks5h_port: None,
    };
    /// Protocols the gateway speaks.
    pub const PROTOCOLS: &'static [Protocol] = &[Protocol::Http];
    /// Where the session id goes.
    pub const SESSION_PLACEMENT: SessionPlacement = SessionPlacement {
        side: CredentialSide::Username,
        marker: "-sessionid-",
    };
    /// Settings this provider understands (for configuration errors); SOAX's
    /// region is our `state`.
    pub const OPTIONS: &'static [&'static str] = &[
        "country",
        "city",
        "state",
        "isp",
        "session_lifetime",
        "session_id_max_len",
    ];
    /// SOAX's default session length for residential packages.
    pub const DEFAULT_SESSION_LENGTH: Duration = Duration::from_secs(360);
    /// The longest session length, in seconds (24 hours).
    pub const MAX_SESSION_SECONDS: u64 = 86_400;

    /// The gateway over HTTP for package `package` (the id, with or without
    /// the `package-` prefix) and its key, no targeting.
    pub fn new(package: &str, package_key: impl Into<SecretString>) -> Result<Self, ProviderError> {
        let data = Self::GATEWAY.data(
            Self::NAME,
            Self::PROTOCOLS,
            Protocol::Http,
            package.to_owned(),
            package_key.into(),
        )?;
        Self::from_data(data, SoaxOptions::default())
    }

    /// Full control over gateway, country and options.
    /// `data.username()` gets the `package-` prefix unless it has it.
    pub fn from_data(data: ProxyData, options: SoaxOptions) -> Result<Self, ProviderError> {
        const NAME: &str = Soax::NAME;
        check_endpoint(NAME, Self::PROTOCOLS, &[Self::GATEWAY], &data)?;
        targeting::country(NAME, data.country())?;
        for (option, is_set) in [
            ("city", options.city.is_some()),
            ("region", options.region.is_some()),
        ] {
            targeting::require(NAME, option, is_set, "country", data.country().is_some())?;
        }
        let field = |option: &'static str, value: &Option<String>| {
            value
                .as_deref()
                .map(|v| targeting::value(NAME, option, v, Charset::PlusForSpaces))
                .transpose()
        };
        let city = field("city", &options.city)?;
        let region = field("region", &options.region)?;
        let isp = field("isp", &options.isp)?;
        let lifetime = options
            .session_lifetime
            .unwrap_or(Self::DEFAULT_SESSION_LENGTH);
        if lifetime.is_zero() {
            return Err(ProviderError::InvalidOption {
                provider: NAME,
                option: "session_lifetime",
                value: "0s".to_owned(),
                reason:
                    "0 makes SOAX rotate the exit on every request, which defeats a pinned session"
                        .to_owned(),
            });
        }
        let seconds = targeting::lifetime(
            NAME,
            lifetime,
            LifetimeUnit::Seconds,
            1,
            Self::MAX_SESSION_SECONDS,
        )?;
        let session_rule = SessionRule::alphanumeric_up_to(NAME, options.session_id_max_len)?;

        let params = [
            ("-country-", data.country().map(str::to_owned)),
            ("-city-", city),
            ("-region-", region),
            ("-isp-", isp),
        ];
        let mut markers = vec![Self::SESSION_PLACEMENT.marker, "-sessionlength-"];
        markers.extend(params.iter().filter(|(_, v)| v.is_some()).map(|(m, _)| *m));
        let mut username =
            targeting::account_username(NAME, data.username(), "package-", &markers)?;
        for (marker, value) in params {
            if let Some(value) = value {
                username.push_str(marker);
                username.push_str(&value);
            }
        }
        Ok(Self {
            data,
            options,
            username,
            suffix: format!("-sessionlength-{seconds}"),
            session_rule,
        })
    }

    /// The same package and gateway with other targeting options.
    pub fn with_options(self, options: SoaxOptions) -> Result<Self, ProviderError> {
        Self::from_data(self.data, options)
    }

    /// The account and gateway this provider was built from.
    pub fn data(&self) -> &ProxyData {
        &self.data
    }

    /// The targeting options in force.
    pub fn options(&self) -> &SoaxOptions {
        &self.options
    }

    /// The session ids this provider accepts.
    pub fn session_rule(&self) -> &SessionRule {
        &self.session_rule
    }
}

impl ProxyProvider for Soax {
    fn build_proxy_url(&self, session: &SessionId) -> Result<ProxyUrl, InvalidInput> {
        self.session_rule.check(session)?;
        ProxyUrl::from_gateway(&self.data).with_credentials(
            format!("{}-sessionid-{session}{}", self.username, self.suffix),
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
