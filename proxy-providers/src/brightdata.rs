//! Bright Data (formerly Luminati): targeting and the session in the username.

use proxy_core::{InvalidInput, Protocol, ProxyData, ProxyProvider, ProxyUrl, SessionId};
use secrecy::SecretString;

use crate::error::ProviderError;
use crate::gateway::{Gateway, check_endpoint};
use crate::session::{CredentialSide, SessionPlacement, SessionRule};
use crate::targeting::{self, Charset};

/// Targeting and session options for [`BrightData`]. All optional; the
/// country comes from [`ProxyData::country`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrightDataOptions {
    /// Two-letter state or region code, `-state-ny`. Needs a country.
    pub state: Option<String>,
    /// City name in letters and digits only, `-city-newyork`. Needs a country.
    pub city: Option<String>,
    /// Five-digit ZIP code, `-zip-10001`. Needs a country.
    pub zip: Option<String>,
    /// Autonomous system number, `-asn-7922`.
    pub asn: Option<u32>,
    /// Longest accepted session id; Bright Data documents none. Default
    /// [`DEFAULT_SESSION_ID_MAX_LEN`](crate::DEFAULT_SESSION_ID_MAX_LEN).
    pub session_id_max_len: Option<usize>,
}

/// Bright Data's residential (and ISP, datacenter, mobile) gateway.
///
/// Username: `brd-customer-<id>-zone-<zone>[-country-xx][-state-xx]
/// [-city-name][-zip-NNNNN][-asn-N]-session-<id>`; password: the zone
/// password. The legacy form (`lum-customer-…` on
/// `zproxy.lum-superproxy.io:22225`, the design we start from) has the same
/// parameters. Session ids are alphanumeric only (Bright Data rejects `-`
/// and `*`); a session ends after about 5 idle minutes, and changing any
/// other parameter loses it.
///
/// SOCKS5 is `socks5h` on port 22228: DNS is resolved at the gateway,
/// literal-IP targets are refused, and residential zones allow HTTPS targets
/// only.
///
/// ```
/// use proxy_core::{ProxyProvider, SessionId};
/// use proxy_providers::{BrightData, BrightDataOptions};
///
/// let brd = BrightData::new("hl_1234abcd", "residential", "zone-pass")?
///     .with_options(BrightDataOptions { asn: Some(7922), ..Default::default() })?;
/// let url = brd.build_proxy_url(&SessionId::new("abc123")?)?;
/// assert_eq!(
///     url.username(),
///     Some("brd-customer-hl_1234abcd-zone-residential-asn-7922-session-abc123")
/// );
/// assert_eq!(url.endpoint(), "http://brd.superproxy.io:33335");
/// assert_eq!(brd.label(), "brightdata:any:33335");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BrightData {
    data: ProxyData,
    options: BrightDataOptions,
    username: String,
    session_rule: SessionRule,
}

impl BrightData {
    /// Provider name used in labels and configuration.
    pub const NAME: &'static str = "brightdata";
    /// The current gateway.
    pub const GATEWAY: Gateway = Gateway {
        host: "brd.superproxy.io",
        http_port: 33335,
        socks5h_port: Some(22228),
    };
    /// The legacy Luminati gateway (no SOCKS5 port documented).
    pub const LEGACY_GATEWAY: Gateway = Gateway {
        host: "zproxy.lum-superproxy.io",
        http_port: 22225,
        socks5h_port: None,
    };
    /// Protocols the gateway speaks.
    pub const PROTOCOLS: &'static [Protocol] = &[Protocol::Http, Protocol::Socks5h];
    /// Where the session id goes.
    pub const SESSION_PLACEMENT: SessionPlacement = SessionPlacement {
        side: CredentialSide::Username,
        marker: "-session-",
    };
    /// Settings this provider understands (for configuration errors).
    pub const OPTIONS: &'static [&'static str] = &[
        "country",
        "state",
        "city",
        "zip",
        "asn",
        "zone",
        "session_id_max_len",
    ];

    /// The current gateway over HTTP, username
    /// `brd-customer-<customer>-zone-<zone>`, no targeting.
    pub fn new(
        customer: &str,
        zone: &str,
        password: impl Into<SecretString>,
    ) -> Result<Self, ProviderError> {
        let username = Self::account_username("brd", customer, zone)?;
        let data = Self::GATEWAY.data(
            Self::NAME,
            Self::PROTOCOLS,
            Protocol::Http,
            username,
            password.into(),
        )?;
        Self::from_data(data, BrightDataOptions::default())
    }

    /// The legacy gateway over HTTP, username
    /// `lum-customer-<customer>-zone-<zone>`, no targeting.
    pub fn legacy(
        customer: &str,
        zone: &str,
        password: impl Into<SecretString>,
    ) -> Result<Self, ProviderError> {
        let username = Self::account_username("lum", customer, zone)?;
        let data = Self::LEGACY_GATEWAY.data(
            Self::NAME,
            Self::PROTOCOLS,
            Protocol::Http,
            username,
            password.into(),
        )?;
        Self::from_data(data, BrightDataOptions::default())
    }

    /// `<brand>-customer-<customer>-zone-<zone>` (`brand` is `brd`, or `lum`
    /// for the legacy form). Customer ids and zones are letters, digits and
    /// `_`: a `-` would shift every parameter after it.
    pub fn account_username(
        brand: &str,
        customer: &str,
        zone: &str,
    ) -> Result<String, ProviderError> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.len() <= targeting::MAX_TARGETING_VALUE_BYTES
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        if !plain(customer) {
            return Err(ProviderError::Username {
                provider: Self::NAME,
                value: customer.to_owned(),
                reason: "a customer id is ASCII letters, digits and `_`".to_owned(),
            });
        }
        if !plain(zone) {
            return Err(ProviderError::InvalidOption {
                provider: Self::NAME,
                option: "zone",
                value: zone.to_owned(),
                reason: "a zone name is ASCII letters, digits and `_`".to_owned(),
            });
        }
        Ok(format!("{brand}-customer-{customer}-zone-{zone}"))
    }

    /// Full control: `data.username()` is the account username as the
    /// dashboard shows it (`brd-customer-<id>-zone-<zone>` or legacy
    /// `lum-customer-…`), host, port, protocol and country as given.
    pub fn from_data(data: ProxyData, options: BrightDataOptions) -> Result<Self, ProviderError> {
        const NAME: &str = BrightData::NAME;
        check_endpoint(
            NAME,
            Self::PROTOCOLS,
            &[Self::GATEWAY, Self::LEGACY_GATEWAY],
            &data,
        )?;
        targeting::country(NAME, data.country())?;
        let has_country = data.country().is_some();
        for (option, is_set) in [
            ("state", options.state.is_some()),
            ("city", options.city.is_some()),
            ("zip", options.zip.is_some()),
        ] {
            targeting::require(NAME, option, is_set, "country", has_country)?;
        }
        let state = options
            .state
            .as_deref()
            .map(|s| {
                targeting::fixed_value(
                    NAME,
                    "state",
                    s,
                    2,
                    |c| c.is_ascii_lowercase(),
                    "a two-letter code such as \"ny\"",
                )
            })
            .transpose()?;
        let city = options
            .city
            .as_deref()
            .map(|c| targeting::value(NAME, "city", c, Charset::Plain))
            .transpose()?;
        let zip = options
            .zip
            .as_deref()
            .map(|z| {
                targeting::fixed_value(
                    NAME,
                    "zip",
                    z,
                    5,
                    |c| c.is_ascii_digit(),
                    "five digits such as \"10001\"",
                )
            })
            .transpose()?;
        let asn = options.asn.map(|a| targeting::asn(NAME, a)).transpose()?;
        let session_rule = SessionRule::alphanumeric_up_to(NAME, options.session_id_max_len)?;

        let params = [
            ("-country-", data.country().map(str::to_owned)),
            ("-state-", state),
            ("-city-", city),
            ("-zip-", zip),
            ("-asn-", asn.map(|a| a.to_string())),
        ];
        let mut markers = vec![Self::SESSION_PLACEMENT.marker];
        markers.extend(params.iter().filter(|(_, v)| v.is_some()).map(|(m, _)| *m));
        let mut username = targeting::account_username(NAME, data.username(), "", &markers)?;
        if !(username.starts_with("brd-customer-") || username.starts_with("lum-customer-")) {
            return Err(ProviderError::Username {
                provider: NAME,
                value: username,
                reason: "expected `brd-customer-<id>-zone-<zone>` (or legacy `lum-customer-…`); \
                         BrightData::new builds it from the customer id and zone"
                    .to_owned(),
            });
        }
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
            session_rule,
        })
    }

    /// The same account and gateway with other targeting options.
    pub fn with_options(self, options: BrightDataOptions) -> Result<Self, ProviderError> {
        Self::from_data(self.data, options)
    }

    /// The account and gateway this provider was built from.
    pub fn data(&self) -> &ProxyData {
        &self.data
    }

    /// The targeting options in force.
    pub fn options(&self) -> &BrightDataOptions {
        &self.options
    }

    /// The session ids this provider accepts.
    pub fn session_rule(&self) -> &SessionRule {
        &self.session_rule
    }
}

impl ProxyProvider for BrightData {
    fn build_proxy_url(&self, session: &SessionId) -> Result<ProxyUrl, InvalidInput> {
        self.session_rule.check(session)?;
        ProxyUrl::from_gateway(&self.data).with_credentials(
            format!("{}-session-{session}", self.username),
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
