//! Session id rules and where each provider puts the session id.

use std::fmt;

use proxy_core::{InvalidInput, MAX_SESSION_ID_BYTES, SessionId};
use rand::distr::{Alphanumeric, SampleString};

use crate::error::ProviderError;

/// Longest session id accepted by default where the provider documents no
/// maximum (Bright Data, Oxylabs, Decodo, SOAX, templates). Our choice, not a
/// provider's: it keeps usernames well under the SOCKS5 limit and admits a
/// 32-character UUID. Configurable with `session_id_max_len`.
pub const DEFAULT_SESSION_ID_MAX_LEN: usize = 32;

/// Length of the alphanumeric ids we generate where the provider does not
/// fix one: 16 characters from 62 symbols, about 95 bits.
pub const GENERATED_SESSION_ID_LEN: usize = 16;

/// Which credential a value goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialSide {
    /// The proxy username (visible in logs as part of redacted URLs).
    Username,
    /// The proxy password (IPRoyal puts its parameters there).
    Password,
}

impl fmt::Display for CredentialSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialSide::Username => "username",
            CredentialSide::Password => "password",
        })
    }
}

/// Where a provider carries the session id: which credential, after which
/// marker. The id follows the **last** occurrence of the marker (targeting
/// comes before the session, so a city named `session` cannot be mistaken
/// for it) and runs to the next character that is not an ASCII letter or
/// digit (or to the end).
///
/// A fake gateway uses this to read the session back out of the
/// credentials it receives:
///
/// ```
/// use proxy_providers::{CredentialSide, ProviderKind};
///
/// let placement = ProviderKind::Oxylabs.session_placement().unwrap();
/// assert_eq!(placement.side, CredentialSide::Username);
/// assert_eq!(placement.marker, "-sessid-");
/// assert_eq!(
///     placement.find("customer-acme-cc-US-sessid-abc123-sesstime-10", "pw"),
///     Some("abc123")
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPlacement {
    /// The credential holding the session id.
    pub side: CredentialSide,
    /// The text right before the session id.
    pub marker: &'static str,
}

impl SessionPlacement {
    /// The session id in `username`/`password`, if the marker is present and
    /// followed by at least one letter or digit.
    pub fn find<'a>(&self, username: &'a str, password: &'a str) -> Option<&'a str> {
        let text = match self.side {
            CredentialSide::Username => username,
            CredentialSide::Password => password,
        };
        let start = text.rfind(self.marker)? + self.marker.len();
        let rest = &text[start..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        (end > 0).then(|| &rest[..end])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Alphanumeric { min_len: usize, max_len: usize },
    Numeric { min: u64, max: u64 },
}

/// The session ids a provider accepts, and how fresh ones are generated.
///
/// Read-only: each provider builds its own from its documented rule (and
/// `session_id_max_len` where the provider documents none).
///
/// ```
/// use proxy_providers::NetNut;
///
/// let netnut = NetNut::new("acme", "pw")?;
/// let rule = netnut.session_rule();
/// assert_eq!(rule.to_string(), "a decimal number from 10000 to 999999999 without leading zeros");
/// assert!(rule.check(&rule.generate()).is_ok());
/// # Ok::<(), proxy_providers::ProviderError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRule(Rule);

impl SessionRule {
    /// ASCII letters and digits, `min_len..=max_len` characters. Callers
    /// guarantee `1 <= min_len <= max_len <= MAX_SESSION_ID_BYTES`.
    pub(crate) const fn alphanumeric(min_len: usize, max_len: usize) -> Self {
        Self(Rule::Alphanumeric { min_len, max_len })
    }

    /// A canonical decimal number in `min..=max` (callers guarantee `min <= max`).
    pub(crate) const fn numeric(min: u64, max: u64) -> Self {
        Self(Rule::Numeric { min, max })
    }

    /// Alphanumeric ids of at most `max_len` characters (default
    /// [`DEFAULT_SESSION_ID_MAX_LEN`]), for providers that document no maximum.
    pub(crate) fn alphanumeric_up_to(
        provider: &'static str,
        max_len: Option<usize>,
    ) -> Result<Self, ProviderError> {
        let max_len = max_len.unwrap_or(DEFAULT_SESSION_ID_MAX_LEN);
        if max_len == 0 || max_len > MAX_SESSION_ID_BYTES {
            return Err(ProviderError::InvalidOption {
                provider,
                option: "session_id_max_len",
                value: max_len.to_string(),
                reason: format!("must be between 1 and {MAX_SESSION_ID_BYTES}"),
            });
        }
        Ok(Self::alphanumeric(1, max_len))
    }

    /// Checks `session` against the rule.
    pub fn check(&self, session: &SessionId) -> Result<(), InvalidInput> {
        let id = session.as_str();
        let broken = match self.0 {
            Rule::Alphanumeric { min_len, max_len } => {
                !(id.bytes().all(|b| b.is_ascii_alphanumeric())
                    && (min_len..=max_len).contains(&id.len()))
            }
            Rule::Numeric { min, max } => {
                // A leading zero would make two spellings of one number: the
                // gateway's parsing of it is not documented, so we refuse it.
                !(id.bytes().all(|b| b.is_ascii_digit())
                    && !id.starts_with('0')
                    && id.parse::<u64>().is_ok_and(|n| (min..=max).contains(&n)))
            }
        };
        if broken {
            return Err(InvalidInput::SessionId {
                value: id.to_owned(),
                reason: format!("this provider needs {self}"),
            });
        }
        Ok(())
    }

    /// A fresh random id obeying the rule.
    pub fn generate(&self) -> SessionId {
        let text = match self.0 {
            Rule::Alphanumeric { min_len, max_len } => {
                let len = GENERATED_SESSION_ID_LEN.clamp(min_len, max_len);
                Alphanumeric.sample_string(&mut rand::rng(), len)
            }
            Rule::Numeric { min, max } => rand::random_range(min..=max).to_string(),
        };
        // Never taken: the text is 1..=128 ASCII alphanumerics, which
        // `SessionId::new` accepts; the fallback only avoids a panic path.
        SessionId::new(text).unwrap_or_else(|_| SessionId::random_hex())
    }
}

impl fmt::Display for SessionRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Rule::Alphanumeric { min_len, max_len } if min_len == max_len => {
                write!(f, "exactly {min_len} ASCII letters or digits")
            }
            Rule::Alphanumeric { min_len, max_len } => {
                write!(f, "{min_len} to {max_len} ASCII letters or digits")
            }
            Rule::Numeric { min, max } => {
                write!(
                    f,
                    "a decimal number from {min} to {max} without leading zeros"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn numeric_rule_bounds_and_leading_zeros() {
        let rule = SessionRule::numeric(10_000, 999_999_999);
        for ok in ["10000", "999999999", "123456"] {
            assert!(rule.check(&SessionId::new(ok).unwrap()).is_ok(), "{ok}");
        }
        for bad in [
            "9999",
            "1000000000",
            "012345",
            "12a45",
            "99999999999999999999999",
        ] {
            assert!(rule.check(&SessionId::new(bad).unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn alphanumeric_rule_lengths() {
        let rule = SessionRule::alphanumeric(8, 8);
        assert!(rule.check(&SessionId::new("abcd1234").unwrap()).is_ok());
        assert!(rule.check(&SessionId::new("abcd123").unwrap()).is_err());
        assert!(rule.check(&SessionId::new("abcd12345").unwrap()).is_err());
        assert!(rule.check(&SessionId::new("abcd-123").unwrap()).is_err());
        assert_eq!(rule.generate().as_str().len(), 8);
        let short = SessionRule::alphanumeric(1, 4);
        assert_eq!(short.generate().as_str().len(), 4);
    }

    #[test]
    fn max_len_option_is_bounded() {
        assert!(SessionRule::alphanumeric_up_to("x", Some(0)).is_err());
        assert!(SessionRule::alphanumeric_up_to("x", Some(129)).is_err());
        assert_eq!(
            SessionRule::alphanumeric_up_to("x", None).unwrap(),
            SessionRule::alphanumeric(1, DEFAULT_SESSION_ID_MAX_LEN)
        );
    }

    #[test]
    fn placement_reads_up_to_the_next_delimiter() {
        let p = SessionPlacement {
            side: CredentialSide::Password,
            marker: "_session-",
        };
        assert_eq!(
            p.find("user", "pw_country-us_session-Ab12Cd34_lifetime-10m"),
            Some("Ab12Cd34")
        );
        assert_eq!(p.find("user_session-x", "pw"), None);
        let brd = SessionPlacement {
            side: CredentialSide::Username,
            marker: "-session-",
        };
        assert_eq!(
            brd.find(
                "brd-customer-c1-zone-z1-country-us-city-session-session-abc1",
                "pw"
            ),
            Some("abc1")
        );
        assert_eq!(p.find("u", "pw_session-"), None);
    }
}
