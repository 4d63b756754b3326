//! Normalised reservation keys: exit IP, target domain, app id and TTL.
//!
//! This module is the one place where the inputs of a reservation are
//! normalised. Stores accept only these types, so two spellings of the same
//! domain or address can never become two keys.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::input::{InvalidInput, control_character_at};

/// Longest accepted target domain, in bytes, after IDN conversion.
pub const MAX_DOMAIN_BYTES: usize = 255;
/// Longest accepted app id, in bytes.
pub const MAX_APP_ID_BYTES: usize = 64;
/// Longest accepted TTL or cooldown (30 days).
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parses an IP address and brings it to its canonical form.
///
/// Surrounding white space and brackets (`[::1]`) are accepted; an
/// IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) is folded to IPv4, so both
/// spellings name the same exit.
///
/// ```
/// # use proxy_core::normalize_ip;
/// assert_eq!(normalize_ip("::ffff:1.2.3.4").unwrap().to_string(), "1.2.3.4");
/// assert!(normalize_ip("1.2.3").is_err());
/// ```
pub fn normalize_ip(value: &str) -> Result<IpAddr, InvalidInput> {
    let trimmed = value.trim();
    let bare = trimmed
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(trimmed);
    bare.parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|e| InvalidInput::Ip {
            value: value.to_owned(),
            reason: e.to_string(),
        })
}

/// A normalised target domain: the site a reservation protects.
///
/// Normalisation: surrounding white space trimmed, a URL reduced to its host,
/// lower-cased, internationalised names converted to punycode, one trailing
/// dot dropped. The result is at most [`MAX_DOMAIN_BYTES`] bytes with no
/// empty label. An IP literal is accepted as a target too (in canonical
/// form).
///
/// ```
/// # use proxy_core::TargetDomain;
/// let a = TargetDomain::parse("Example.COM.").unwrap();
/// let b = TargetDomain::parse("https://example.com/path?q=1").unwrap();
/// assert_eq!(a, b);
/// assert_eq!(a.as_str(), "example.com");
/// assert_eq!(TargetDomain::parse("bücher.de").unwrap().as_str(), "xn--bcher-kva.de");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TargetDomain(String);

impl TargetDomain {
    /// Normalises `value` into a target domain.
    pub fn parse(value: &str) -> Result<Self, InvalidInput> {
        let error = |reason: &str| InvalidInput::Domain {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(error("empty"));
        }
        if control_character_at(trimmed).is_some() {
            return Err(error("contains a control character"));
        }
        // A bare IP literal (an IPv6 one has no brackets in canonical form,
        // so it would not parse as a URL authority).
        if let Ok(ip) = normalize_ip(trimmed) {
            return Ok(Self(ip.to_string()));
        }
        // Without a scheme, read the value as the authority of an http URL, so
        // that "example.com/path" and "example.com:8080" reduce to the host.
        let url = if trimmed.contains("://") {
            url::Url::parse(trimmed)
        } else {
            url::Url::parse(&format!("http://{trimmed}"))
        }
        .map_err(|e| error(&e.to_string()))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| error("no host"))?;
        // Non-special schemes keep an opaque host: run it through the domain
        // parser (IDNA, lower case, forbidden code points) as well.
        let host = url::Host::parse(host).map_err(|e| error(&e.to_string()))?;
        let normalised = match host {
            url::Host::Domain(domain) => {
                let domain = domain
                    .strip_suffix('.')
                    .unwrap_or(&domain)
                    .to_ascii_lowercase();
                if domain.is_empty() {
                    return Err(error("no host"));
                }
                if domain.split('.').any(str::is_empty) {
                    return Err(error("empty label"));
                }
                if let Some(label) = domain.split('.').find(|l| l.len() > 63) {
                    return Err(error(&format!("label {label:?} is longer than 63 bytes")));
                }
                domain
            }
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => IpAddr::V6(ip).to_canonical().to_string(),
        };
        if normalised.len() > MAX_DOMAIN_BYTES {
            return Err(error(&format!(
                "{} bytes after normalisation, at most {MAX_DOMAIN_BYTES} allowed",
                normalised.len()
            )));
        }
        Ok(Self(normalised))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TargetDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for TargetDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TargetDomain {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for TargetDomain {
    type Error = InvalidInput;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TargetDomain> for String {
    fn from(value: TargetDomain) -> Self {
        value.0
    }
}

impl AsRef<str> for TargetDomain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The application that holds a reservation: free text, 1 to
/// [`MAX_APP_ID_BYTES`] bytes, no control characters and no leading or
/// trailing white space (some databases compare `"app "` equal to `"app"`).
///
/// Stored and matched literally: quotes, semicolons and the like are data.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppId(pub(crate) String);

impl AppId {
    /// Validates `value` as an app id.
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidInput> {
        let value = value.into();
        let reason = if value.is_empty() {
            Some("empty".to_owned())
        } else if value.len() > MAX_APP_ID_BYTES {
            Some(format!(
                "{} bytes, at most {MAX_APP_ID_BYTES} allowed",
                value.len()
            ))
        } else if control_character_at(&value).is_some() {
            Some("contains a control character".to_owned())
        } else if value.trim() != value {
            Some("has leading or trailing white space".to_owned())
        } else {
            None
        };
        match reason {
            Some(reason) => Err(InvalidInput::AppId { value, reason }),
            None => Ok(Self(value)),
        }
    }

    /// The app id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AppId {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for AppId {
    type Error = InvalidInput;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<AppId> for String {
    fn from(value: AppId) -> Self {
        value.0
    }
}

impl AsRef<str> for AppId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// What a reservation excludes: one exit IP against one target domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReservationKey {
    ip: IpAddr,
    domain: TargetDomain,
}

impl ReservationKey {
    /// Builds a key; an IPv4-mapped IPv6 address is folded to IPv4.
    pub fn new(ip: IpAddr, domain: TargetDomain) -> Self {
        Self {
            ip: ip.to_canonical(),
            domain,
        }
    }

    /// Normalises both parts from text.
    pub fn parse(ip: &str, domain: &str) -> Result<Self, InvalidInput> {
        Ok(Self::new(normalize_ip(ip)?, TargetDomain::parse(domain)?))
    }

    /// The canonical exit IP.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The normalised target domain.
    pub fn domain(&self) -> &TargetDomain {
        &self.domain
    }
}

impl fmt::Display for ReservationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.ip, self.domain)
    }
}

/// A reservation lifetime or cooldown: whole seconds, from 1 s to
/// [`MAX_TTL`].
///
/// A fraction of a second is rounded up, so a reservation never lasts less
/// than asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Ttl(u32);

impl Ttl {
    /// The default reservation TTL of the design: 1800 s.
    pub const DEFAULT: Ttl = Ttl(1800);

    /// A TTL of `secs` whole seconds.
    pub fn from_secs(secs: u64) -> Result<Self, InvalidInput> {
        Self::new("ttl", Duration::from_secs(secs))
    }

    /// Validates `value` as the duration of `what` (`"ttl"`, `"cooldown"`),
    /// rounding a fraction of a second up.
    pub fn new(what: &'static str, value: Duration) -> Result<Self, InvalidInput> {
        let error = |reason: String| InvalidInput::Duration {
            what,
            value,
            reason,
        };
        if value.is_zero() {
            return Err(error("must be at least 1 second".to_owned()));
        }
        if value > MAX_TTL {
            return Err(error(format!(
                "must be at most {} seconds",
                MAX_TTL.as_secs()
            )));
        }
        let secs = value.as_secs() + u64::from(value.subsec_nanos() > 0);
        u32::try_from(secs)
            .map(Ttl)
            .map_err(|_| error("out of range".to_owned()))
    }

    /// Whole seconds.
    pub fn as_secs(self) -> u32 {
        self.0
    }

    /// Milliseconds, for stores that count in them.
    pub fn as_millis(self) -> u64 {
        u64::from(self.0) * 1000
    }

    /// As a [`Duration`].
    pub fn as_duration(self) -> Duration {
        Duration::from_secs(u64::from(self.0))
    }
}

impl Default for Ttl {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<Duration> for Ttl {
    type Error = InvalidInput;
    fn try_from(value: Duration) -> Result<Self, Self::Error> {
        Self::new("ttl", value)
    }
}

impl TryFrom<u64> for Ttl {
    type Error = InvalidInput;
    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Self::from_secs(value)
    }
}

impl From<Ttl> for u64 {
    fn from(value: Ttl) -> Self {
        u64::from(value.0)
    }
}

impl From<Ttl> for Duration {
    fn from(value: Ttl) -> Self {
        value.as_duration()
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_normalisation_folds_mapped_and_brackets() {
        assert_eq!(
            normalize_ip(" ::ffff:1.2.3.4 ").unwrap().to_string(),
            "1.2.3.4"
        );
        assert_eq!(
            normalize_ip("[2001:DB8::1]").unwrap().to_string(),
            "2001:db8::1"
        );
        assert_eq!(
            normalize_ip("2001:0db8:0000::0001").unwrap().to_string(),
            "2001:db8::1"
        );
        for bad in [
            "",
            "1.2.3",
            "1.2.3.4.5",
            "example.com",
            "fe80::1%eth0",
            "1.2.3.4:80",
        ] {
            let err = normalize_ip(bad).unwrap_err();
            assert!(
                matches!(err, InvalidInput::Ip { ref value, .. } if value == bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn domain_normalisation_equivalences() {
        let canonical = TargetDomain::parse("example.com").unwrap();
        for spelling in [
            "Example.COM.",
            "  example.com  ",
            "https://example.com/a/b?c=d#e",
            "http://user:secret@EXAMPLE.com:8080/",
            "example.com:443",
            "example.com/path",
        ] {
            assert_eq!(
                TargetDomain::parse(spelling).unwrap(),
                canonical,
                "{spelling}"
            );
        }
        assert_eq!(
            TargetDomain::parse("MÜNCHEN.de").unwrap().as_str(),
            "xn--mnchen-3ya.de"
        );
        assert_eq!(
            TargetDomain::parse("[::FFFF:1.2.3.4]").unwrap().as_str(),
            "1.2.3.4"
        );
        assert_eq!(
            TargetDomain::parse("10.0.0.1").unwrap().as_str(),
            "10.0.0.1"
        );
    }

    #[test]
    fn domain_rejections_name_the_value() {
        let long = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        for bad in [
            "",
            "   ",
            "exa mple.com",
            "example..com",
            "a\u{7}b.com",
            "http://",
            &"a".repeat(64),
            long.as_str(),
            "exa<mple.com",
        ] {
            match TargetDomain::parse(bad) {
                Err(InvalidInput::Domain { value, .. }) => assert_eq!(value, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn app_id_rules() {
        assert_eq!(AppId::new("scraper-1").unwrap().as_str(), "scraper-1");
        assert!(AppId::new("x'; DROP TABLE t; --").is_ok());
        assert!(AppId::new("a".repeat(64)).is_ok());
        for bad in [
            String::new(),
            "a".repeat(65),
            " app".into(),
            "app\n".into(),
            "a\0b".into(),
        ] {
            assert!(
                matches!(AppId::new(bad.clone()), Err(InvalidInput::AppId { value, .. }) if value == bad)
            );
        }
    }

    #[test]
    fn ttl_bounds_and_rounding() {
        assert_eq!(Ttl::from_secs(1).unwrap().as_secs(), 1);
        assert_eq!(
            Ttl::new("ttl", Duration::from_millis(1500))
                .unwrap()
                .as_secs(),
            2
        );
        assert_eq!(
            Ttl::new("ttl", Duration::from_millis(1)).unwrap().as_secs(),
            1
        );
        assert!(Ttl::from_secs(0).is_err());
        assert!(Ttl::new("cooldown", MAX_TTL + Duration::from_secs(1)).is_err());
        assert_eq!(Ttl::new("ttl", MAX_TTL).unwrap().as_duration(), MAX_TTL);
    }

    #[test]
    fn serde_validates() {
        let d: Result<TargetDomain, _> = serde_json::from_str("\"Example.com.\"");
        assert_eq!(d.unwrap().as_str(), "example.com");
        assert!(serde_json::from_str::<TargetDomain>("\"bad domain\"").is_err());
        assert!(serde_json::from_str::<Ttl>("0").is_err());
        assert_eq!(
            serde_json::to_string(&Ttl::from_secs(5).unwrap()).unwrap(),
            "5"
        );
    }
}
