//! Key layout and lease ids.
//!
//! Every key of one target domain carries the domain as its Redis Cluster
//! hash tag, so a domain's leases, generation counters and index live in one
//! slot and every script touches a single slot:
//!
//! ```text
//! <prefix>:{<domain>}:ip:<ip>    the lease (a string value, PX = its TTL)
//! <prefix>:{<domain>}:gen:<ip>   the last generation issued for the key
//! <prefix>:{<domain>}:idx        sorted set: member <ip>, score expires-at ms
//! ```
//!
//! A normalised domain may contain `{` and `}` (the URL host parser allows
//! them), which would end or split the hash tag; they are written as `%7B`
//! and `%7D`. A normalised domain never contains `%`, so the encoding is
//! reversible and two domains never share a tag.

use std::borrow::Cow;
use std::net::IpAddr;

use proxy_core::{ReservationKey, TargetDomain, normalize_ip};

use crate::error::RedisStoreError;

/// The key prefix used unless another is configured.
pub const DEFAULT_KEY_PREFIX: &str = "proxy-reserve";

/// Longest accepted key prefix, in bytes.
const MAX_PREFIX_BYTES: usize = 64;

/// Builds and reads the Redis key names of one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeySpace {
    prefix: String,
}

impl KeySpace {
    /// Validates `prefix`: 1 to 64 bytes of ASCII letters, digits and
    /// `-_.:/`. Braces would break the hash tag and glob characters the
    /// `SCAN` pattern, so both are refused.
    pub(crate) fn new(prefix: &str) -> Result<Self, RedisStoreError> {
        let reason = if prefix.is_empty() {
            Some("empty")
        } else if prefix.len() > MAX_PREFIX_BYTES {
            Some("longer than 64 bytes")
        } else if !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
        {
            Some("only ASCII letters, digits and - _ . : / are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(RedisStoreError::InvalidKeyPrefix {
                prefix: prefix.to_owned(),
                reason,
            }),
            None => Ok(Self {
                prefix: prefix.to_owned(),
            }),
        }
    }

    /// The configured prefix.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>:{<domain>}`, the part every key of the domain starts with.
    fn domain_part(&self, domain: &TargetDomain) -> String {
        format!("{}:{{{}}}", self.prefix, hash_tag(domain))
    }

    /// The key holding the lease of `key`.
    pub(crate) fn lease_key(&self, key: &ReservationKey) -> String {
        format!("{}:ip:{}", self.domain_part(key.domain()), key.ip())
    }

    /// The per-domain index (sorted set of IPs scored by expiry).
    pub(crate) fn index_key(&self, domain: &TargetDomain) -> String {
        format!("{}:idx", self.domain_part(domain))
    }

    /// The three keys a lease script touches, in script order
    /// (`KEYS[1]` lease, `KEYS[2]` generation, `KEYS[3]` index).
    pub(crate) fn script_keys(&self, key: &ReservationKey) -> [String; 3] {
        let domain = self.domain_part(key.domain());
        let ip = key.ip();
        [
            format!("{domain}:ip:{ip}"),
            format!("{domain}:gen:{ip}"),
            format!("{domain}:idx"),
        ]
    }

    /// `SCAN` pattern matching every index key of this prefix.
    pub(crate) fn index_pattern(&self) -> String {
        format!("{}:{{*}}:idx", self.prefix)
    }

    /// The domain an index key belongs to; `None` for a key that is not one
    /// of ours.
    pub(crate) fn domain_of_index_key(&self, key: &str) -> Option<TargetDomain> {
        let tag = key
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":{")?
            .strip_suffix("}:idx")?;
        if tag.contains(['{', '}']) {
            return None;
        }
        normalised_domain(&tag.replace("%7B", "{").replace("%7D", "}"))
    }
}

/// The domain whose normalised text is exactly `text`.
fn normalised_domain(text: &str) -> Option<TargetDomain> {
    TargetDomain::parse(text)
        .ok()
        .filter(|d| d.as_str() == text)
}

/// The domain as it appears inside the hash tag: braces percent-encoded.
fn hash_tag(domain: &TargetDomain) -> Cow<'_, str> {
    let text = domain.as_str();
    if text.contains(['{', '}']) {
        Cow::Owned(text.replace('{', "%7B").replace('}', "%7D"))
    } else {
        Cow::Borrowed(text)
    }
}

/// What a lease id names: the grant's first generation and its key.
///
/// Text form `<generation>/<ip>/<domain>`: neither a canonical IP nor a
/// normalised domain contains `/`, so the id splits unambiguously, and
/// [`release_by_id`](proxy_core::ReservationStore::release_by_id) finds the
/// key without any global index (which a cluster could not keep in one
/// slot). The generation is the one the grant started with; a cooldown keeps
/// the id and moves the lease's generation on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseRef {
    pub(crate) grant_generation: u64,
    pub(crate) key: ReservationKey,
}

impl LeaseRef {
    /// The id text of the grant of `key` that started at `grant_generation`.
    pub(crate) fn format(grant_generation: u64, key: &ReservationKey) -> String {
        format!("{grant_generation}/{}/{}", key.ip(), key.domain())
    }

    /// The grant generation in `id`, if `id` is exactly the id this store
    /// issues for a grant of `key` (cheaper than [`parse`](Self::parse): the
    /// domain is compared, not normalised again).
    pub(crate) fn grant_generation_for(id: &str, key: &ReservationKey) -> Option<u64> {
        let (generation, rest) = id.split_once('/')?;
        let (ip, domain) = rest.split_once('/')?;
        if generation.is_empty()
            || !generation.bytes().all(|b| b.is_ascii_digit())
            || domain != key.domain().as_str()
            || ip != key.ip().to_string()
        {
            return None;
        }
        generation.parse().ok()
    }

    /// Reads an id; `None` unless it is exactly an id this store issues
    /// (canonical IP, normalised domain).
    pub(crate) fn parse(id: &str) -> Option<Self> {
        let mut parts = id.splitn(3, '/');
        let (generation, ip, domain) = (parts.next()?, parts.next()?, parts.next()?);
        if generation.is_empty() || !generation.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let grant_generation: u64 = generation.parse().ok()?;
        let ip: IpAddr = normalize_ip(ip).ok().filter(|p| p.to_string() == ip)?;
        let domain = normalised_domain(domain)?;
        Some(Self {
            grant_generation,
            key: ReservationKey::new(ip, domain),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str, domain: &str) -> ReservationKey {
        ReservationKey::parse(ip, domain).unwrap()
    }

    #[test]
    fn keys_share_the_domain_hash_tag() {
        let space = KeySpace::new("pr").unwrap();
        let k = key("198.51.100.7", "Example.COM");
        assert_eq!(space.lease_key(&k), "pr:{example.com}:ip:198.51.100.7");
        assert_eq!(
            space.script_keys(&k)[1],
            "pr:{example.com}:gen:198.51.100.7"
        );
        assert_eq!(space.index_key(k.domain()), "pr:{example.com}:idx");
        let v6 = key("2001:db8::1", "example.com");
        assert_eq!(space.lease_key(&v6), "pr:{example.com}:ip:2001:db8::1");
        assert_eq!(
            space
                .script_keys(&k)
                .map(redis::cluster_routing::Slot::for_key),
            [redis::cluster_routing::Slot::for_key("{example.com}"); 3]
        );
    }

    #[test]
    fn braces_in_a_domain_cannot_break_the_hash_tag() {
        // The URL host parser lets braces through; make sure of it, so this
        // test keeps guarding something real.
        let domain = TargetDomain::parse("a}b{c.example").unwrap();
        assert_eq!(domain.as_str(), "a}b{c.example");
        let leading = TargetDomain::parse("}x.example").unwrap();
        let space = KeySpace::new("pr").unwrap();
        for domain in [domain, leading] {
            let k = ReservationKey::new("10.0.0.1".parse().unwrap(), domain.clone());
            let [lease, generation, index] = space.script_keys(&k);
            assert_eq!(lease.matches('{').count(), 1, "{lease}");
            assert_eq!(lease.matches('}').count(), 1, "{lease}");
            let slot = redis::cluster_routing::Slot::for_key(&lease);
            assert_eq!(redis::cluster_routing::Slot::for_key(&generation), slot);
            assert_eq!(redis::cluster_routing::Slot::for_key(&index), slot);
            assert_eq!(space.domain_of_index_key(&index), Some(domain));
        }
    }

    #[test]
    fn index_keys_round_trip_and_foreign_keys_are_ignored() {
        let space = KeySpace::new("pr").unwrap();
        for text in [
            "example.com",
            "o'neil;--.example",
            "10.0.0.1",
            "[2001:db8::1]",
        ] {
            let domain = TargetDomain::parse(text).unwrap();
            let index = space.index_key(&domain);
            assert_eq!(space.domain_of_index_key(&index), Some(domain), "{index}");
        }
        for foreign in [
            "pr:{example.com}:ip:10.0.0.1",
            "other:{example.com}:idx",
            "pr:x:{example.com}:idx",
            "pr:{Example.com}:idx",
            "pr:{exa mple.com}:idx",
            "pr:{a}b}:idx",
            "pr:{}:idx",
        ] {
            assert_eq!(space.domain_of_index_key(foreign), None, "{foreign}");
        }
        assert_eq!(space.index_pattern(), "pr:{*}:idx");
    }

    #[test]
    fn prefix_rules() {
        assert!(KeySpace::new("proxy-reserve").is_ok());
        assert!(KeySpace::new("team_a:prod/v1.2").is_ok());
        for bad in [
            "",
            "a{b",
            "a}b",
            "a*",
            "a?",
            "a[b]",
            "a b",
            "a\\b",
            &"x".repeat(65),
        ] {
            match KeySpace::new(bad) {
                Err(RedisStoreError::InvalidKeyPrefix { prefix, .. }) => assert_eq!(prefix, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn lease_ids_round_trip() {
        for (ip, domain) in [
            ("198.51.100.7", "example.com"),
            ("2001:db8::1", "shop.example"),
            ("10.0.0.1", "[2001:db8::2]"),
            ("10.0.0.1", "a}b.example"),
        ] {
            let k = key(ip, domain);
            let id = LeaseRef::format(1_795_917_020_400_857, &k);
            let parsed = LeaseRef::parse(&id).unwrap();
            assert_eq!(parsed.grant_generation, 1_795_917_020_400_857);
            assert_eq!(parsed.key, k, "{id}");
        }
    }

    #[test]
    fn lease_ids_are_checked_against_their_key() {
        let k = key("198.51.100.7", "example.com");
        let id = LeaseRef::format(42, &k);
        assert_eq!(LeaseRef::grant_generation_for(&id, &k), Some(42));
        for (other_id, other_key) in [
            (id.as_str(), key("198.51.100.8", "example.com")),
            (id.as_str(), key("198.51.100.7", "example.org")),
            ("x/198.51.100.7/example.com", k.clone()),
            ("/198.51.100.7/example.com", k.clone()),
            ("42/198.51.100.7/Example.com", k.clone()),
            ("42/198.51.100.7", k.clone()),
            ("42", k.clone()),
        ] {
            assert_eq!(
                LeaseRef::grant_generation_for(other_id, &other_key),
                None,
                "{other_id:?} for {other_key}"
            );
        }
    }

    #[test]
    fn malformed_lease_ids_are_refused() {
        for bad in [
            "",
            "0",
            "-1",
            "999999999999",
            "no-such-lease",
            "1/10.0.0.1",
            "/10.0.0.1/example.com",
            "x/10.0.0.1/example.com",
            "-1/10.0.0.1/example.com",
            "+1/10.0.0.1/example.com",
            "99999999999999999999999/10.0.0.1/example.com",
            "1/10.0.0.01/example.com",
            "1/::ffff:10.0.0.1/example.com",
            "1/10.0.0.1/Example.com",
            "1/10.0.0.1/example.com/",
            "1/10.0.0.1/exa mple.com",
            "1/10.0.0.1/",
        ] {
            assert_eq!(LeaseRef::parse(bad), None, "{bad:?}");
        }
    }
}
