//! Validation shared by the providers: countries, targeting values, account
//! usernames and session lifetimes.

use std::time::Duration;

use crate::error::ProviderError;

/// Longest targeting value (city, state, ISP…) we pass on. No provider
/// documents a limit; this only keeps usernames far below the SOCKS5 limit.
pub(crate) const MAX_TARGETING_VALUE_BYTES: usize = 64;

/// Checks that the (already lower-cased, two-letter) country of a
/// `ProxyData` is an assigned ISO 3166-1 alpha-2 code.
pub(crate) fn country(provider: &'static str, country: Option<&str>) -> Result<(), ProviderError> {
    let Some(code) = country else {
        return Ok(());
    };
    if celes::Country::from_alpha2(code).is_ok() {
        return Ok(());
    }
    let reason = if code == "uk" {
        "not an ISO 3166-1 alpha-2 code: the United Kingdom is \"gb\" (translated for providers that want \"uk\")"
    } else {
        "not an assigned ISO 3166-1 alpha-2 code"
    };
    Err(ProviderError::InvalidOption {
        provider,
        option: "country",
        value: code.to_owned(),
        reason: reason.to_owned(),
    })
}

/// Fails when `option` is set but the setting it depends on is not.
pub(crate) fn require(
    provider: &'static str,
    option: &'static str,
    is_set: bool,
    requires: &'static str,
    required_is_set: bool,
) -> Result<(), ProviderError> {
    if is_set && !required_is_set {
        Err(ProviderError::Requires {
            provider,
            option,
            requires,
        })
    } else {
        Ok(())
    }
}

/// Which characters a provider's targeting value may hold, after
/// lower-casing.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Charset {
    /// `a-z 0-9` — no separator at all, so nothing can be confused with the
    /// provider's own delimiters.
    Plain,
    /// `a-z 0-9 _` — Oxylabs writes `los_angeles`, `us_california`.
    Underscored,
    /// `a-z 0-9 +`, spaces written as `+` — SOAX writes `new+york`.
    PlusForSpaces,
}

impl Charset {
    fn allows(self, c: char) -> bool {
        c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || match self {
                Charset::Plain => false,
                Charset::Underscored => c == '_',
                Charset::PlusForSpaces => c == '+',
            }
    }

    fn describe(self) -> &'static str {
        match self {
            Charset::Plain => "only ASCII letters and digits are allowed",
            Charset::Underscored => {
                "only ASCII letters, digits and `_` are allowed (write spaces as `_`)"
            }
            Charset::PlusForSpaces => {
                "only ASCII letters, digits, `+` and spaces (written as `+`) are allowed"
            }
        }
    }
}

/// Normalises a targeting value: trimmed, lower-cased (and spaces as `+`
/// for [`Charset::PlusForSpaces`]); rejects anything outside `charset`.
pub(crate) fn value(
    provider: &'static str,
    option: &'static str,
    raw: &str,
    charset: Charset,
) -> Result<String, ProviderError> {
    let error = |reason: &str| ProviderError::InvalidOption {
        provider,
        option,
        value: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let mut value = raw.trim().to_ascii_lowercase();
    if let Charset::PlusForSpaces = charset {
        value = value.replace(' ', "+");
    }
    if value.is_empty() {
        return Err(error("empty"));
    }
    if value.len() > MAX_TARGETING_VALUE_BYTES {
        return Err(error(&format!(
            "longer than {MAX_TARGETING_VALUE_BYTES} bytes"
        )));
    }
    if !value.chars().all(|c| charset.allows(c)) {
        return Err(error(charset.describe()));
    }
    Ok(value)
}

/// A value of exactly `len` characters, each accepted by `allowed`
/// (Bright Data's two-letter states and five-digit ZIP codes).
pub(crate) fn fixed_value(
    provider: &'static str,
    option: &'static str,
    raw: &str,
    len: usize,
    allowed: fn(char) -> bool,
    shape: &'static str,
) -> Result<String, ProviderError> {
    let value = raw.trim().to_ascii_lowercase();
    if value.chars().count() == len && value.chars().all(allowed) {
        Ok(value)
    } else {
        Err(ProviderError::InvalidOption {
            provider,
            option,
            value: raw.to_owned(),
            reason: format!("expected {shape}"),
        })
    }
}

/// An autonomous system number: 1 to 4294967295 (0 is reserved).
pub(crate) fn asn(provider: &'static str, asn: u32) -> Result<u32, ProviderError> {
    if asn == 0 {
        Err(ProviderError::InvalidOption {
            provider,
            option: "asn",
            value: asn.to_string(),
            reason: "AS number 0 is reserved".to_owned(),
        })
    } else {
        Ok(asn)
    }
}

/// The account username a provider builds on: trimmed of nothing, but
/// non-empty, free of `:` (HTTP Basic auth splits on the first colon, so
/// the gateway would read the rest as password), with `prefix` prepended
/// unless already there, and holding none of the `markers` we are about to
/// add (a second `-session-` or `-country-` leaves the gateway to pick one).
pub(crate) fn account_username(
    provider: &'static str,
    username: &str,
    prefix: &str,
    markers: &[&str],
) -> Result<String, ProviderError> {
    let error = |reason: String| ProviderError::Username {
        provider,
        value: username.to_owned(),
        reason,
    };
    if username.is_empty() || username == prefix {
        return Err(error("empty".to_owned()));
    }
    if username.contains(':') {
        return Err(error(
            "contains `:`, which HTTP Basic authentication cannot carry in a username".to_owned(),
        ));
    }
    if let Some(marker) = markers.iter().find(|m| username.contains(*m)) {
        return Err(error(format!(
            "already contains `{marker}`, which the provider adds itself: set it as an option instead"
        )));
    }
    if username.starts_with(prefix) {
        Ok(username.to_owned())
    } else {
        Ok(format!("{prefix}{username}"))
    }
}

/// The unit a provider counts a session lifetime in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LifetimeUnit {
    Seconds,
    Minutes,
}

/// `lifetime` as a whole number of `unit`s within `min..=max`.
pub(crate) fn lifetime(
    provider: &'static str,
    lifetime: Duration,
    unit: LifetimeUnit,
    min: u64,
    max: u64,
) -> Result<u64, ProviderError> {
    let (unit_secs, unit_name) = match unit {
        LifetimeUnit::Seconds => (1, "seconds"),
        LifetimeUnit::Minutes => (60, "minutes"),
    };
    let secs = lifetime.as_secs();
    let whole = lifetime.subsec_nanos() == 0 && secs.is_multiple_of(unit_secs);
    let count = secs / unit_secs;
    if whole && (min..=max).contains(&count) {
        Ok(count)
    } else {
        Err(ProviderError::InvalidOption {
            provider,
            option: "session_lifetime",
            value: humantime::format_duration(lifetime).to_string(),
            reason: format!("must be a whole number of {unit_name} from {min} to {max}"),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn countries() {
        assert!(country("p", Some("gb")).is_ok());
        assert!(country("p", None).is_ok());
        let err = country("p", Some("uk")).unwrap_err().to_string();
        assert!(err.contains("\"gb\""), "{err}");
        assert!(country("p", Some("zz")).is_err());
    }

    #[test]
    fn values() {
        assert_eq!(
            value("p", "city", " New York ", Charset::PlusForSpaces).unwrap(),
            "new+york"
        );
        assert_eq!(
            value("p", "city", "Los_Angeles", Charset::Underscored).unwrap(),
            "los_angeles"
        );
        assert!(value("p", "city", "los-angeles", Charset::Underscored).is_err());
        assert!(value("p", "city", "new york", Charset::Plain).is_err());
        assert!(value("p", "city", "", Charset::Plain).is_err());
        assert!(value("p", "city", &"a".repeat(65), Charset::Plain).is_err());
    }

    #[test]
    fn lifetimes() {
        let min = |m: u64| Duration::from_secs(m * 60);
        assert_eq!(
            lifetime("p", min(30), LifetimeUnit::Minutes, 1, 1440).unwrap(),
            30
        );
        assert!(lifetime("p", min(1441), LifetimeUnit::Minutes, 1, 1440).is_err());
        assert!(lifetime("p", Duration::from_secs(90), LifetimeUnit::Minutes, 1, 1440).is_err());
        assert!(lifetime("p", Duration::ZERO, LifetimeUnit::Seconds, 1, 86400).is_err());
        assert!(
            lifetime(
                "p",
                Duration::from_millis(1500),
                LifetimeUnit::Seconds,
                1,
                86400
            )
            .is_err()
        );
    }

    #[test]
    fn usernames() {
        assert_eq!(
            account_username("p", "acme", "user-", &[]).unwrap(),
            "user-acme"
        );
        assert_eq!(
            account_username("p", "user-acme", "user-", &[]).unwrap(),
            "user-acme"
        );
        assert!(account_username("p", "", "user-", &[]).is_err());
        assert!(account_username("p", "user-", "user-", &[]).is_err());
        assert!(account_username("p", "a:b", "", &[]).is_err());
        assert!(account_username("p", "acme-session-1", "", &["-session-"]).is_err());
    }
}
