//! The value stored under a lease key.
//!
//! ```text
//! v1|<state>|<grant generation>|<generation>|<reserved ms>|<expires ms>|<token>|<app id>
//! ```
//!
//! `state` is `h` (held) or `c` (cooling down); the numbers are decimal; the
//! token is lower-case hex (the call that wrote the value, so a retried call
//! recognises its own write); the app id comes last and runs to the end of
//! the value, so it may contain `|`, quotes or anything else an [`AppId`]
//! allows without escaping. The Lua scripts write and match this format;
//! this module reads it.

use chrono::{DateTime, Utc};
use proxy_core::{AppId, Lease, LeaseId, ReservationKey, ReservationState};

use crate::keys::LeaseRef;

/// Version tag at the start of every value.
const VERSION: &str = "v1";

/// A decoded lease value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredGrant {
    pub(crate) cooling_down: bool,
    pub(crate) grant_generation: u64,
    pub(crate) generation: u64,
    pub(crate) reserved_at_ms: i64,
    pub(crate) expires_at_ms: i64,
    pub(crate) token: String,
    pub(crate) app_id: AppId,
}

impl StoredGrant {
    /// Reads a value; `None` if it is not in the format above.
    pub(crate) fn decode(value: &str) -> Option<Self> {
        let mut fields = value.splitn(8, '|');
        if fields.next()? != VERSION {
            return None;
        }
        let cooling_down = match fields.next()? {
            "h" => false,
            "c" => true,
            _ => return None,
        };
        let grant_generation = decimal(fields.next()?)?;
        let generation = decimal(fields.next()?)?;
        let reserved_at_ms = i64::try_from(decimal(fields.next()?)?).ok()?;
        let expires_at_ms = i64::try_from(decimal(fields.next()?)?).ok()?;
        let token = fields.next()?;
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let app_id = AppId::new(fields.next()?).ok()?;
        Some(Self {
            cooling_down,
            grant_generation,
            generation,
            reserved_at_ms,
            expires_at_ms,
            token: token.to_owned(),
            app_id,
        })
    }

    /// Writes the value; the scripts build the same text in Lua.
    #[cfg(test)]
    pub(crate) fn encode(&self) -> String {
        format!(
            "{VERSION}|{}|{}|{}|{}|{}|{}|{}",
            if self.cooling_down { "c" } else { "h" },
            self.grant_generation,
            self.generation,
            self.reserved_at_ms,
            self.expires_at_ms,
            self.token,
            self.app_id
        )
    }

    /// Held or cooling down.
    pub(crate) fn state(&self) -> ReservationState {
        if self.cooling_down {
            ReservationState::CoolingDown
        } else {
            ReservationState::Held
        }
    }

    /// The lease this value describes, for `key`; `None` if a time is out of
    /// chrono's range.
    pub(crate) fn lease(&self, key: &ReservationKey) -> Option<Lease> {
        Some(Lease::new(
            LeaseId::new(LeaseRef::format(self.grant_generation, key)),
            self.generation,
            key,
            self.app_id.clone(),
            DateTime::<Utc>::from_timestamp_millis(self.reserved_at_ms)?,
            DateTime::<Utc>::from_timestamp_millis(self.expires_at_ms)?,
        ))
    }
}

/// A non-empty run of ASCII digits as a `u64`.
fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(app: &str) -> StoredGrant {
        StoredGrant {
            cooling_down: false,
            grant_generation: 1_795_917_020_400_857,
            generation: 1_795_917_020_400_857,
            reserved_at_ms: 1_795_917_020_400,
            expires_at_ms: 1_795_917_050_400,
            token: "00ff12ab34cd56ef".to_owned(),
            app_id: AppId::new(app).unwrap(),
        }
    }

    #[test]
    fn values_round_trip_with_any_app_id() {
        for app in [
            "scraper-1",
            "a|b|c",
            "x'; DROP TABLE t; --",
            "\" OR \"1\"=\"1",
            "é✓|v1|h|1|2",
            "%_*\\",
        ] {
            let grant = sample(app);
            let text = grant.encode();
            assert_eq!(StoredGrant::decode(&text), Some(grant), "{text}");
        }
        let mut cooling = sample("app");
        cooling.cooling_down = true;
        cooling.generation += 5;
        assert_eq!(StoredGrant::decode(&cooling.encode()), Some(cooling));
    }

    #[test]
    fn exact_text_matches_the_lua_format() {
        assert_eq!(
            sample("a|b").encode(),
            "v1|h|1795917020400857|1795917020400857|1795917020400|1795917050400|00ff12ab34cd56ef|a|b"
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            "v1",
            "v2|h|1|1|1|2|ab|app",
            "v1|x|1|1|1|2|ab|app",
            "v1|h|-1|1|1|2|ab|app",
            "v1|h|1|1.5|1|2|ab|app",
            "v1|h|1|1|1|2e3|ab|app",
            "v1|h|1|1|1|2|zz|app",
            "v1|h|1|1|1|2||app",
            "v1|h|1|1|1|2|ab|",
            "v1|h|1|1|1|2|ab| app",
            "v1|h|1|1|1|99999999999999999999|ab|app",
            "v1|h|1|1|1|2|ab",
        ] {
            assert_eq!(StoredGrant::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lease_carries_the_stored_fields() {
        let key = ReservationKey::parse("198.51.100.7", "example.com").unwrap();
        let grant = sample("app");
        let lease = grant.lease(&key).unwrap();
        assert_eq!(
            lease.id.as_str(),
            "1795917020400857/198.51.100.7/example.com"
        );
        assert_eq!(lease.generation, grant.generation);
        assert_eq!(lease.app_id.as_str(), "app");
        assert_eq!(
            (lease.expires_at - lease.reserved_at).num_milliseconds(),
            30_000
        );
        assert_eq!(lease.reserved_at.timestamp_millis(), grant.reserved_at_ms);
    }
}
