//! Reading the session id out of proxy credentials, in the formats of every
//! provider proxy-reserve ships.

/// Username keys that are followed by the session id, per provider:
/// Bright Data and Decodo `-session-<id>`, Oxylabs `-sessid-<id>`, NetNut
/// `-sid-<n>`, SOAX `-sessionid-<id>`.
const USERNAME_SESSION_KEYS: [&str; 4] = ["session", "sessid", "sid", "sessionid"];

/// The session id carried by proxy credentials, as the providers' gateways
/// read it, or `None` for a rotating (session-less) request.
///
/// - Bright Data: `brd-customer-<id>-zone-<zone>[-country-xx]-session-<id>`
/// - Oxylabs: `customer-<user>[-cc-US]-sessid-<id>[-sesstime-<min>]`
/// - Decodo: `user-<user>[-country-us]-session-<id>[-sessionduration-<min>]`
/// - NetNut: `<user>-res-<cc>-sid-<n>`
/// - SOAX: `package-<id>[-country-us]-sessionid-<id>-sessionlength-<sec>`
/// - IPRoyal: in the **password**: `<pass>[_country-us]_session-<id>[_lifetime-10m]`
///
/// ```
/// use testkit::net::session_from_credentials;
/// assert_eq!(
///     session_from_credentials("brd-customer-c1-zone-res-session-abc123", "pw").as_deref(),
///     Some("abc123")
/// );
/// assert_eq!(
///     session_from_credentials("user", "pw_country-us_session-Ab12Cd34_lifetime-10m").as_deref(),
///     Some("Ab12Cd34")
/// );
/// assert_eq!(session_from_credentials("brd-customer-c1-zone-res", "pw"), None);
/// ```
pub fn session_from_credentials(username: &str, password: &str) -> Option<String> {
    // The last marker wins: providers put the session after the targeting,
    // and a targeting value may itself be a word like "session".
    let parts: Vec<&str> = username.split('-').collect();
    let from_username = parts.windows(2).rev().find_map(|pair| {
        (USERNAME_SESSION_KEYS.contains(&pair[0]) && !pair[1].is_empty()).then(|| pair[1])
    });
    let from_password = || {
        let parts: Vec<&str> = password.split('_').skip(1).collect();
        parts
            .into_iter()
            .rev()
            .find_map(|part| part.strip_prefix("session-"))
            .filter(|id| !id.is_empty())
    };
    from_username.or_else(from_password).map(str::to_owned)
}

/// Whether `password` is the gateway's `expected` password, allowing
/// IPRoyal-style `_key-value` parameters after it.
pub(crate) fn password_matches(password: &str, expected: &str) -> bool {
    password == expected
        || password
            .strip_prefix(expected)
            .is_some_and(|rest| rest.starts_with('_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_marker_wins() {
        assert_eq!(
            session_from_credentials("brd-customer-c1-zone-res-city-session-session-abc", "pw")
                .as_deref(),
            Some("abc")
        );
        assert_eq!(
            session_from_credentials("u", "pw_state-session-x_session-Ab12Cd34").as_deref(),
            Some("Ab12Cd34")
        );
    }

    #[test]
    fn every_provider_format() {
        let cases = [
            (
                "brd-customer-c1-zone-res-country-us-session-abc",
                "pw",
                Some("abc"),
            ),
            ("lum-customer-c1-zone-res-session-x1", "pw", Some("x1")),
            (
                "customer-bob-cc-US-sessid-Q9z-sesstime-30",
                "pw",
                Some("Q9z"),
            ),
            (
                "user-bob-country-us-session-s1-sessionduration-10",
                "pw",
                Some("s1"),
            ),
            ("bob-res-any-sid-123456", "pw", Some("123456")),
            (
                "package-7-country-us-sessionid-zz9-sessionlength-360",
                "pw",
                Some("zz9"),
            ),
            (
                "bob",
                "secret_country-us_session-Ab12Cd34_lifetime-10m",
                Some("Ab12Cd34"),
            ),
            ("bob", "secret", None),
            ("user-bob-sessionduration-10", "pw", None),
            ("user-bob-session-", "pw", None),
            ("bob", "secret_session-", None),
        ];
        for (user, password, want) in cases {
            assert_eq!(
                session_from_credentials(user, password).as_deref(),
                want,
                "{user}"
            );
        }
    }

    #[test]
    fn iproyal_parameters_follow_the_password() {
        assert!(password_matches("pw", "pw"));
        assert!(password_matches("pw_session-abc", "pw"));
        assert!(!password_matches("pwx", "pw"));
        assert!(!password_matches("p", "pw"));
    }
}
