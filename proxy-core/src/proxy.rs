//! Proxy configuration and the URLs providers build from it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::input::{InvalidInput, control_character_at};

/// Longest username or password a SOCKS5 proxy accepts (RFC 1929), in bytes.
pub const SOCKS5_MAX_CREDENTIAL_BYTES: usize = 255;
/// Longest session id accepted by [`SessionId::new`], in bytes.
pub const MAX_SESSION_ID_BYTES: usize = 128;

/// Everything but the URL-unreserved characters is percent-encoded in
/// credentials: reqwest decodes them before use, so `@ : % / # ?` survive.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How the client talks to the proxy gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Plain HTTP to the gateway (CONNECT for HTTPS targets). The default.
    #[default]
    Http,
    /// TLS to the gateway.
    Https,
    /// SOCKS5 with DNS resolved locally.
    Socks5,
    /// SOCKS5 with DNS resolved by the proxy (what residential gateways want).
    Socks5h,
}

impl Protocol {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
            Protocol::Socks5 => "socks5",
            Protocol::Socks5h => "socks5h",
        }
    }

    /// Whether this is one of the SOCKS5 variants (255-byte credential limit).
    pub fn is_socks(self) -> bool {
        matches!(self, Protocol::Socks5 | Protocol::Socks5h)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

impl FromStr for Protocol {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "http" => Ok(Protocol::Http),
            "https" => Ok(Protocol::Https),
            "socks5" => Ok(Protocol::Socks5),
            "socks5h" => Ok(Protocol::Socks5h),
            _ => Err(InvalidInput::Protocol {
                value: s.to_owned(),
            }),
        }
    }
}

/// Validates a gateway host: a domain name or an IP literal (IPv6 with or
/// without brackets). Returns the host as it should appear in a URL.
fn validate_host(value: &str) -> Result<String, InvalidInput> {
    let error = |reason: &str| InvalidInput::Host {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    if value.is_empty() {
        return Err(error("empty"));
    }
    if control_character_at(value).is_some() {
        return Err(error("contains a control character"));
    }
    if let Ok(ip) = crate::key::normalize_ip(value) {
        return Ok(match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    match url::Host::parse(value) {
        Ok(url::Host::Domain(domain)) => Ok(domain),
        Ok(url::Host::Ipv4(ip)) => Ok(ip.to_string()),
        Ok(url::Host::Ipv6(ip)) => Ok(format!("[{ip}]")),
        Err(e) => Err(error(&e.to_string())),
    }
}

fn validate_credential(field: &'static str, value: &str) -> Result<(), InvalidInput> {
    if let Some(at) = control_character_at(value) {
        return Err(InvalidInput::Credential {
            field,
            reason: format!("contains a control character at byte {at}"),
        });
    }
    Ok(())
}

/// Validates and lower-cases an ISO 3166-1 alpha-2 country code.
pub(crate) fn normalize_country(value: &str) -> Result<String, InvalidInput> {
    let trimmed = value.trim();
    if trimmed.len() == 2 && trimmed.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(trimmed.to_ascii_lowercase())
    } else {
        Err(InvalidInput::Country {
            value: value.to_owned(),
        })
    }
}

/// The account a provider's gateway is reached with: what every
/// [`ProxyProvider`](crate::ProxyProvider) is built from.
///
/// The password is a [`SecretString`]: `Debug` shows `[REDACTED]`.
///
/// ```
/// # use proxy_core::{ProxyData, Protocol};
/// let data = ProxyData::new("brd.superproxy.io", 33335, "brd-customer-c1-zone-res", "s3cret")?
///     .with_country("HR")?
///     .with_protocol(Protocol::Http);
/// assert_eq!(data.country(), Some("hr"));
/// assert!(!format!("{data:?}").contains("s3cret"));
/// # Ok::<(), proxy_core::InvalidInput>(())
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "RawProxyData")]
pub struct ProxyData {
    host: String,
    port: u16,
    username: String,
    password: SecretString,
    country: Option<String>,
    protocol: Protocol,
}

/// The unvalidated shape of [`ProxyData`] in configuration files.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxyData {
    host: String,
    port: u16,
    username: String,
    password: SecretString,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    protocol: Protocol,
}

impl TryFrom<RawProxyData> for ProxyData {
    type Error = InvalidInput;
    fn try_from(raw: RawProxyData) -> Result<Self, Self::Error> {
        let data = ProxyData::new(raw.host, raw.port, raw.username, raw.password)?
            .with_protocol(raw.protocol);
        match raw.country {
            Some(country) => data.with_country(&country),
            None => Ok(data),
        }
    }
}

impl ProxyData {
    /// Validates the gateway address and account: the host must be a valid
    /// domain or IP literal, the port non-zero, and no field may contain a
    /// control character.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        username: impl Into<String>,
        password: impl Into<SecretString>,
    ) -> Result<Self, InvalidInput> {
        let host = validate_host(&host.into())?;
        if port == 0 {
            return Err(InvalidInput::Port);
        }
        let username = username.into();
        let password = password.into();
        validate_credential("username", &username)?;
        validate_credential("password", password.expose_secret())?;
        Ok(Self {
            host,
            port,
            username,
            password,
            country: None,
            protocol: Protocol::Http,
        })
    }

    /// Targets an exit country (ISO 3166-1 alpha-2, any case).
    pub fn with_country(mut self, country: &str) -> Result<Self, InvalidInput> {
        self.country = Some(normalize_country(country)?);
        Ok(self)
    }

    /// Sets the protocol spoken to the gateway.
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Replaces the gateway host (validated as in [`ProxyData::new`]).
    pub fn with_host(mut self, host: &str) -> Result<Self, InvalidInput> {
        self.host = validate_host(host)?;
        Ok(self)
    }

    /// Replaces the gateway port.
    pub fn with_port(mut self, port: u16) -> Result<Self, InvalidInput> {
        if port == 0 {
            return Err(InvalidInput::Port);
        }
        self.port = port;
        Ok(self)
    }

    /// Gateway host as it appears in a URL (IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Gateway port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Account username, before any provider parameters are added.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Account password.
    pub fn password(&self) -> &SecretString {
        &self.password
    }

    /// Lower-case ISO country code, if targeting one.
    pub fn country(&self) -> Option<&str> {
        self.country.as_deref()
    }

    /// Protocol spoken to the gateway.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
}

/// A provider session id: the part of the proxy username that pins an exit.
///
/// Any non-empty printable ASCII up to [`MAX_SESSION_ID_BYTES`] bytes without
/// white space; providers check their own, stricter alphabets when they build
/// a URL. Session ids are not secret and may be logged.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionId(String);

impl SessionId {
    /// Validates `value` as a session id.
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidInput> {
        let value = value.into();
        let reason = if value.is_empty() {
            Some("empty".to_owned())
        } else if value.len() > MAX_SESSION_ID_BYTES {
            Some(format!("longer than {MAX_SESSION_ID_BYTES} bytes"))
        } else if !value.bytes().all(|b| b.is_ascii_graphic()) {
            Some("only printable ASCII without white space is allowed".to_owned())
        } else {
            None
        };
        match reason {
            Some(reason) => Err(InvalidInput::SessionId { value, reason }),
            None => Ok(Self(value)),
        }
    }

    /// A fresh random id of 32 lower-case hex characters (a v4 UUID): the
    /// default for providers without stricter rules.
    pub fn random_hex() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for SessionId {
    type Error = InvalidInput;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<SessionId> for String {
    fn from(value: SessionId) -> Self {
        value.0
    }
}

impl FromStr for SessionId {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[derive(Clone)]
struct Credentials {
    username: String,
    password: SecretString,
}

/// The proxy a provider built for one session.
///
/// The design we start from handed out `{"http": url, "https": url}` with the
/// same URL on both sides; this type is that pair: one gateway endpoint used
/// for plain-HTTP and HTTPS targets alike. Keeping one endpoint matters: the
/// exit IP is verified through it, so every request must leave through it.
///
/// `Debug` and `Display` show the URL with the password replaced by `***`;
/// [`ProxyUrl::expose_url`] gives the full URL for the HTTP client.
///
/// ```
/// # use proxy_core::{ProxyUrl, Protocol};
/// let url = ProxyUrl::new(Protocol::Http, "gw.example", 8080)?
///     .with_credentials("user-session-abc", "p@ss:w/rd")?;
/// assert_eq!(url.to_string(), "http://user-session-abc:***@gw.example:8080");
/// assert_eq!(url.expose_url(), "http://user-session-abc:p%40ss%3Aw%2Frd@gw.example:8080");
/// # Ok::<(), proxy_core::InvalidInput>(())
/// ```
#[derive(Clone)]
pub struct ProxyUrl {
    protocol: Protocol,
    host: String,
    port: u16,
    credentials: Option<Credentials>,
}

impl ProxyUrl {
    /// A proxy endpoint without credentials (for IP-allow-listed gateways).
    pub fn new(protocol: Protocol, host: &str, port: u16) -> Result<Self, InvalidInput> {
        if port == 0 {
            return Err(InvalidInput::Port);
        }
        Ok(Self {
            protocol,
            host: validate_host(host)?,
            port,
            credentials: None,
        })
    }

    /// The endpoint of `data` (protocol, host, port), without credentials.
    pub fn from_gateway(data: &ProxyData) -> Self {
        Self {
            protocol: data.protocol,
            host: data.host.clone(),
            port: data.port,
            credentials: None,
        }
    }

    /// Adds Basic (HTTP) or RFC 1929 (SOCKS5) credentials.
    ///
    /// Fails if either contains a control character or, for SOCKS5, is
    /// longer than [`SOCKS5_MAX_CREDENTIAL_BYTES`].
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<SecretString>,
    ) -> Result<Self, InvalidInput> {
        let username = username.into();
        let password = password.into();
        validate_credential("username", &username)?;
        validate_credential("password", password.expose_secret())?;
        // HTTP Basic joins user and password with the first ':' (RFC 7617),
        // so a ':' in the user-id would silently move into the password.
        if !self.protocol.is_socks() && username.contains(':') {
            return Err(InvalidInput::Credential {
                field: "username",
                reason: "contains ':', which HTTP Basic proxy authentication cannot carry"
                    .to_owned(),
            });
        }
        if self.protocol.is_socks() {
            for (field, len) in [
                ("username", username.len()),
                ("password", password.expose_secret().len()),
            ] {
                if len > SOCKS5_MAX_CREDENTIAL_BYTES {
                    return Err(InvalidInput::Credential {
                        field,
                        reason: format!(
                            "{len} bytes; SOCKS5 allows at most {SOCKS5_MAX_CREDENTIAL_BYTES}"
                        ),
                    });
                }
            }
        }
        self.credentials = Some(Credentials { username, password });
        Ok(self)
    }

    /// Parses a proxy URL such as `http://user:pass@host:port`
    /// (percent-encoded credentials are decoded). Without a port, `http`
    /// means 80 and `https` 443; SOCKS URLs must name theirs.
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        // Never echo the input: it may hold a password.
        let error = |reason: &str| InvalidInput::Host {
            value: redact_userinfo(value),
            reason: reason.to_owned(),
        };
        let url = url::Url::parse(value).map_err(|e| error(&e.to_string()))?;
        let protocol: Protocol = url.scheme().parse()?;
        let host = url.host_str().ok_or_else(|| error("no host"))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| error("no port"))?;
        let proxy = Self::new(protocol, host, port)?;
        if url.username().is_empty() && url.password().is_none() {
            return Ok(proxy);
        }
        let decode = |field: &'static str, s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| InvalidInput::Credential {
                    field,
                    reason: "percent-decodes to invalid UTF-8".to_owned(),
                })
        };
        let username = decode("username", url.username())?;
        let password = decode("password", url.password().unwrap_or(""))?;
        proxy.with_credentials(username, password)
    }

    /// The protocol spoken to the gateway.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Gateway host as it appears in the URL (IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Gateway port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The username (with the provider's session and targeting parameters).
    pub fn username(&self) -> Option<&str> {
        self.credentials.as_ref().map(|c| c.username.as_str())
    }

    /// The password, for clients that take credentials separately.
    pub fn password(&self) -> Option<&SecretString> {
        self.credentials.as_ref().map(|c| &c.password)
    }

    /// `scheme://host:port` without credentials.
    pub fn endpoint(&self) -> String {
        format!("{}://{}:{}", self.protocol, self.host, self.port)
    }

    /// The full URL with percent-encoded credentials, for the HTTP client.
    ///
    /// This is the one method that reveals the password: never log its result.
    pub fn expose_url(&self) -> String {
        self.render(true)
    }

    /// The URL with the password replaced by `***` (same as `Display`).
    pub fn redacted(&self) -> String {
        self.render(false)
    }

    fn render(&self, reveal: bool) -> String {
        match &self.credentials {
            None => self.endpoint(),
            Some(c) => {
                let password = if reveal {
                    utf8_percent_encode(c.password.expose_secret(), USERINFO).to_string()
                } else {
                    "***".to_owned()
                };
                format!(
                    "{}://{}:{}@{}:{}",
                    self.protocol,
                    utf8_percent_encode(&c.username, USERINFO),
                    password,
                    self.host,
                    self.port
                )
            }
        }
    }
}

/// Replaces the user-info part of a URL-shaped string, for error messages.
pub(crate) fn redact_userinfo(value: &str) -> String {
    match (value.find("://"), value.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &value[..scheme_end], &value[at + 1..])
        }
        _ => value.to_owned(),
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ProxyUrl").field(&self.redacted()).finish()
    }
}

impl FromStr for ProxyUrl {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_data_validation() {
        assert!(matches!(
            ProxyData::new("", 1, "u", "p"),
            Err(InvalidInput::Host { .. })
        ));
        assert!(matches!(
            ProxyData::new("h", 0, "u", "p"),
            Err(InvalidInput::Port)
        ));
        assert!(matches!(
            ProxyData::new("h", 1, "u\r\n", "p"),
            Err(InvalidInput::Credential {
                field: "username",
                ..
            })
        ));
        let err = ProxyData::new("h", 1, "u", "hunter\u{0}two").unwrap_err();
        assert!(matches!(
            err,
            InvalidInput::Credential {
                field: "password",
                ..
            }
        ));
        assert!(!err.to_string().contains("hunter"), "{err}");
        assert!(!format!("{err:?}").contains("hunter"), "{err:?}");
        assert!(matches!(
            ProxyData::new("bad host", 1, "u", "p"),
            Err(InvalidInput::Host { .. })
        ));
        assert!(
            ProxyData::new("h", 1, "u", "p")
                .unwrap()
                .with_country("usa")
                .is_err()
        );
        assert_eq!(ProxyData::new("::1", 1, "u", "p").unwrap().host(), "[::1]");
    }

    #[test]
    fn proxy_data_from_toml_validates_and_redacts() {
        let data: ProxyData = toml::from_str(
            "host = \"gw.example\"\nport = 7777\nusername = \"u\"\npassword = \"hunter2\"\ncountry = \"DE\"\nprotocol = \"socks5h\"",
        )
        .unwrap();
        assert_eq!(data.country(), Some("de"));
        assert_eq!(data.protocol(), Protocol::Socks5h);
        assert!(!format!("{data:?}").contains("hunter2"));
        let err = toml::from_str::<ProxyData>(
            "host = \"gw.example\"\nport = 0\nusername = \"u\"\npassword = \"hunter2\"",
        )
        .unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
    }

    #[test]
    fn url_encodes_and_redacts() {
        let url = ProxyUrl::new(Protocol::Socks5h, "gw.example", 7000)
            .unwrap()
            .with_credentials("user@x", "p%:@/#?w")
            .unwrap();
        assert_eq!(
            url.expose_url(),
            "socks5h://user%40x:p%25%3A%40%2F%23%3Fw@gw.example:7000"
        );
        assert_eq!(url.to_string(), "socks5h://user%40x:***@gw.example:7000");
        assert!(!format!("{url:?}").contains("p%"));
        let back = ProxyUrl::parse(&url.expose_url()).unwrap();
        assert_eq!(back.username(), Some("user@x"));
        assert_eq!(back.password().unwrap().expose_secret(), "p%:@/#?w");
    }

    #[test]
    fn socks_credential_limit() {
        let base = ProxyUrl::new(Protocol::Socks5, "gw", 1).unwrap();
        assert!(base.clone().with_credentials("u".repeat(255), "p").is_ok());
        assert!(matches!(
            base.clone().with_credentials("u".repeat(256), "p"),
            Err(InvalidInput::Credential {
                field: "username",
                ..
            })
        ));
        assert!(matches!(
            base.with_credentials("u", "p".repeat(256)),
            Err(InvalidInput::Credential {
                field: "password",
                ..
            })
        ));
        let http = ProxyUrl::new(Protocol::Http, "gw", 1).unwrap();
        assert!(http.clone().with_credentials("u".repeat(1000), "p").is_ok());
        assert!(matches!(
            http.with_credentials("user:x", "p"),
            Err(InvalidInput::Credential {
                field: "username",
                ..
            })
        ));
    }

    #[test]
    fn parse_errors_hide_the_password() {
        let err = ProxyUrl::parse("ftp://user:topsecret@host:1").unwrap_err();
        assert!(!err.to_string().contains("topsecret"), "{err}");
        let err = ProxyUrl::parse("http://user:topsecret@:1").unwrap_err();
        assert!(!err.to_string().contains("topsecret"), "{err}");
        assert!(ProxyUrl::parse("socks5://host").is_err());
        assert_eq!(
            ProxyUrl::parse("http://[::1]:8080").unwrap().host(),
            "[::1]"
        );
    }

    #[test]
    fn session_ids() {
        let id = SessionId::random_hex();
        assert_eq!(id.as_str().len(), 32);
        assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(SessionId::new("").is_err());
        assert!(SessionId::new("a b").is_err());
        assert!(SessionId::new("x".repeat(129)).is_err());
    }
}
