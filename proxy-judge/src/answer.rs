//! Reading a judge's answer: which address did it see?

use std::fmt;
use std::net::IpAddr;

/// The default limit on a judge answer, in bytes. A real answer is a few
/// dozen bytes; anything much longer is an error page.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 365;

/// Why a judge's answer is not an address.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnswerError {
    /// The body is longer than the limit (an error page, usually).
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not UTF-8 text.
    NotText,
    /// The body is neither httpbin JSON (`origin`), ipify JSON (`ip`) nor a
    /// bare address.
    Unrecognised,
    /// The address field does not parse as an IP address.
    InvalidAddress {
        /// The text found (shortened).
        text: String,
    },
    /// A comma-separated list of addresses: the proxy forwarded the
    /// caller's address (a transparent proxy). The first entry may be our
    /// own address, so no entry is trusted.
    Chain {
        /// The entries.
        addresses: Vec<String>,
    },
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::TooLong { limit } => write!(f, "answer longer than {limit} bytes"),
            AnswerError::NotText => f.write_str("answer is not UTF-8 text"),
            AnswerError::Unrecognised => f.write_str("answer is not in a known judge format"),
            AnswerError::InvalidAddress { text } => write!(f, "{text:?} is not an IP address"),
            AnswerError::Chain { addresses } => write!(
                f,
                "answer lists {} addresses ({}): the proxy forwards the client's address",
                addresses.len(),
                addresses.join(", ")
            ),
        }
    }
}

impl std::error::Error for AnswerError {}

/// Reads the address from a judge's answer: httpbin JSON
/// (`{"origin": "a.b.c.d"}`), ipify JSON (`{"ip": "a.b.c.d"}`) or plain
/// text (`a.b.c.d\n`). The address comes back in canonical form
/// (IPv4-mapped IPv6 folded to IPv4).
///
/// ```
/// use proxy_judge::{AnswerError, parse_answer};
/// assert_eq!(parse_answer(br#"{"origin": "203.0.113.5"}"#, 365)?.to_string(), "203.0.113.5");
/// assert_eq!(parse_answer(b"2001:db8::1\n", 365)?.to_string(), "2001:db8::1");
/// assert!(matches!(
///     parse_answer(br#"{"origin": "198.51.100.1, 203.0.113.5"}"#, 365),
///     Err(AnswerError::Chain { .. })
/// ));
/// # Ok::<(), AnswerError>(())
/// ```
pub fn parse_answer(body: &[u8], max_bytes: usize) -> Result<IpAddr, AnswerError> {
    if body.len() > max_bytes {
        return Err(AnswerError::TooLong { limit: max_bytes });
    }
    let text = std::str::from_utf8(body).map_err(|_| AnswerError::NotText)?;
    let text = text.trim();
    let field = if text.starts_with('{') {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|_| AnswerError::Unrecognised)?;
        let value = ["origin", "ip"]
            .iter()
            .find_map(|key| json.get(key))
            .ok_or(AnswerError::Unrecognised)?;
        value.as_str().ok_or(AnswerError::Unrecognised)?.to_owned()
    } else {
        text.to_owned()
    };
    parse_address(&field)
}

fn parse_address(field: &str) -> Result<IpAddr, AnswerError> {
    let field = field.trim();
    if field.contains(',') {
        return Err(AnswerError::Chain {
            addresses: field.split(',').map(|a| shorten(a.trim())).collect(),
        });
    }
    if field.is_empty() || field.contains(['<', '>', '{', '}']) {
        return Err(AnswerError::Unrecognised);
    }
    field
        .parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| AnswerError::InvalidAddress {
            text: shorten(field),
        })
}

/// Judge text goes into error messages: keep it short.
fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    if text.chars().count() <= MAX_CHARS {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(MAX_CHARS).collect();
        short.push('…');
        short
    }
}

/// Whether `ip` is an address a proxy exit can have on the public
/// internet: not private, loopback, link-local, unspecified, shared (CGNAT),
/// documentation-only or multicast.
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let shared = a == 100 && (64..128).contains(&b);
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || shared
                || a == 0)
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let unique_local = segments[0] & 0xfe00 == 0xfc00;
            let link_local = segments[0] & 0xffc0 == 0xfe80;
            let documentation = segments[0] == 0x2001 && segments[1] == 0x0db8;
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || unique_local
                || link_local
                || documentation)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_judge_shape() {
        for (body, want) in [
            (
                &b"{\n  \"origin\": \"198.51.100.7\"\n}\n"[..],
                "198.51.100.7",
            ),
            (br#"{"ip":"198.51.100.7"}"#, "198.51.100.7"),
            (b"198.51.100.7\n", "198.51.100.7"),
            (b"  2001:db8::7  ", "2001:db8::7"),
            (b"::ffff:198.51.100.7", "198.51.100.7"),
            (br#"{"ip": "2001:db8::1", "country": "HR"}"#, "2001:db8::1"),
        ] {
            assert_eq!(parse_answer(body, 365), Ok(ip(want)), "{body:?}");
        }
    }

    #[test]
    fn bad_answers() {
        let long = "x".repeat(366);
        assert_eq!(
            parse_answer(long.as_bytes(), 365),
            Err(AnswerError::TooLong { limit: 365 })
        );
        assert_eq!(parse_answer(&[0xff, 0xfe], 365), Err(AnswerError::NotText));
        for garbage in [
            &b"<html>nope</html>"[..],
            b"",
            br#"{"address": "1.2.3.4"}"#,
            br#"{"origin": 7}"#,
            b"{not json",
        ] {
            assert_eq!(
                parse_answer(garbage, 365),
                Err(AnswerError::Unrecognised),
                "{garbage:?}"
            );
        }
        assert!(matches!(
            parse_answer(b"999.1.2.3", 365),
            Err(AnswerError::InvalidAddress { .. })
        ));
        assert!(matches!(
            parse_answer(b"Welcome to nginx!", 365),
            Err(AnswerError::InvalidAddress { .. })
        ));
        assert_eq!(
            parse_answer(br#"{"origin": "10.1.1.1, 198.51.100.7"}"#, 365),
            Err(AnswerError::Chain {
                addresses: vec!["10.1.1.1".into(), "198.51.100.7".into()]
            })
        );
        assert!(matches!(
            parse_answer(b"203.0.113.1,198.51.100.7", 365),
            Err(AnswerError::Chain { .. })
        ));
    }

    #[test]
    fn public_addresses() {
        for public in ["8.8.8.8", "203.0.114.1", "2a00:1450::1", "::ffff:8.8.4.4"] {
            assert!(is_public(ip(public)), "{public}");
        }
        for private in [
            "10.0.0.1",
            "172.16.3.4",
            "192.168.1.1",
            "127.0.10.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "203.0.113.9",
            "::1",
            "fe80::1",
            "fd00::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip(private)), "{private}");
        }
    }
}
