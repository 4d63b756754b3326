//! Settings of the acquire loop, from defaults, a TOML table and the
//! environment.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::key::Ttl;

/// The public judges used when none are configured.
pub const DEFAULT_JUDGES: [&str; 3] = [
    "https://httpbin.org/ip",
    "https://api.ipify.org?format=json",
    "https://ifconfig.me/ip",
];

/// The environment variables [`Settings::with_process_env`] reads.
pub const ENV_VARS: [&str; 6] = [
    "PROXY_JUDGES",
    "PROXY_TTL_SECONDS",
    "PROXY_ACQUIRE_TIMEOUT",
    "PROXY_RECHECK_INTERVAL",
    "PROXY_MAX_JUDGE_FAILURES",
    "PROXY_COLLISIONS_BEFORE_BACKOFF",
];

/// A setting had a value we cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// One setting is invalid; `name` is the environment variable or TOML
    /// key it came from.
    #[error("invalid value {value:?} for {name}: {reason}")]
    Invalid {
        /// Environment variable or TOML key.
        name: String,
        /// The rejected value.
        value: String,
        /// Why.
        reason: String,
    },
    /// The TOML did not parse or has an unknown key.
    #[error("invalid proxy settings: {0}")]
    Toml(String),
}

/// Settings of [`ProxyManager`](crate::ProxyManager), each with the default
/// of the design, overridable from a TOML table and from environment
/// variables.
///
/// | TOML key | environment variable | default |
/// |---|---|---|
/// | `judges` | `PROXY_JUDGES` (comma-separated) | httpbin.org/ip, api.ipify.org, ifconfig.me/ip |
/// | `ttl_seconds` | `PROXY_TTL_SECONDS` | 1800 |
/// | `acquire_timeout` (s) | `PROXY_ACQUIRE_TIMEOUT` | 120 |
/// | `recheck_interval` (s) | `PROXY_RECHECK_INTERVAL` | 5 |
/// | `max_judge_failures` | `PROXY_MAX_JUDGE_FAILURES` | 3 |
/// | `collisions_before_backoff` | `PROXY_COLLISIONS_BEFORE_BACKOFF` | 3 |
///
/// ```
/// # use proxy_core::Settings;
/// let settings = Settings::from_toml_str("ttl_seconds = 600\nacquire_timeout = 30")?
///     .with_env_vars([("PROXY_MAX_JUDGE_FAILURES", "5")])?;
/// assert_eq!(settings.ttl.as_secs(), 600);
/// assert_eq!(settings.max_judge_failures, 5);
/// # Ok::<(), proxy_core::SettingsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawSettings", into = "RawSettings")]
#[non_exhaustive]
pub struct Settings {
    /// Judge URLs, tried in order with failover.
    pub judges: Vec<String>,
    /// Reservation lifetime.
    pub ttl: Ttl,
    /// How long [`acquire`](crate::ProxyManager::acquire) may take in all.
    pub acquire_timeout: Duration,
    /// Pause (jittered) after repeated collisions.
    pub recheck_interval: Duration,
    /// Consecutive verification failures before acquire gives up.
    pub max_judge_failures: u32,
    /// Consecutive collisions before acquire starts pausing between
    /// attempts. A new session usually gets a new IP, so the first
    /// collisions are retried at once.
    pub collisions_before_backoff: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            judges: DEFAULT_JUDGES.iter().map(|j| (*j).to_owned()).collect(),
            ttl: Ttl::DEFAULT,
            acquire_timeout: Duration::from_secs(120),
            recheck_interval: Duration::from_secs(5),
            max_judge_failures: 3,
            collisions_before_backoff: 3,
        }
    }
}

/// The TOML shape: seconds as numbers, every key optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    judges: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acquire_timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recheck_interval: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_judge_failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    collisions_before_backoff: Option<u32>,
}

impl From<Settings> for RawSettings {
    fn from(s: Settings) -> Self {
        Self {
            judges: Some(s.judges),
            ttl_seconds: Some(u64::from(s.ttl.as_secs())),
            acquire_timeout: Some(s.acquire_timeout.as_secs_f64()),
            recheck_interval: Some(s.recheck_interval.as_secs_f64()),
            max_judge_failures: Some(s.max_judge_failures),
            collisions_before_backoff: Some(s.collisions_before_backoff),
        }
    }
}

impl TryFrom<RawSettings> for Settings {
    type Error = SettingsError;
    fn try_from(raw: RawSettings) -> Result<Self, Self::Error> {
        Settings::default().merge(raw, Naming::Toml)
    }
}

#[derive(Clone, Copy)]
enum Naming {
    Toml,
    Env,
}

impl Naming {
    fn name(self, toml: &str, env: &str) -> String {
        match self {
            Naming::Toml => toml.to_owned(),
            Naming::Env => env.to_owned(),
        }
    }
}

fn invalid(name: String, value: impl ToString, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        name,
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn seconds(name: String, value: f64, allow_zero: bool) -> Result<Duration, SettingsError> {
    if !value.is_finite() || value < 0.0 || (!allow_zero && value == 0.0) {
        let reason = if allow_zero {
            "must be a non-negative number of seconds"
        } else {
            "must be a positive number of seconds"
        };
        return Err(invalid(name, value, reason));
    }
    Duration::try_from_secs_f64(value).map_err(|e| invalid(name, value, e.to_string()))
}

/// Validates a judge URL: absolute http or https with a host. Errors never
/// repeat the URL's user-info (a self-hosted judge may sit behind Basic auth).
fn check_judge(name: &str, judge: &str) -> Result<(), SettingsError> {
    let shown = crate::proxy::redact_userinfo(judge);
    match url::Url::parse(judge) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        Ok(_) => Err(invalid(
            name.to_owned(),
            shown,
            "a judge must be an http or https URL",
        )),
        Err(e) => Err(invalid(name.to_owned(), shown, e.to_string())),
    }
}

impl Settings {
    /// Reads a TOML table; missing keys keep their defaults, unknown keys
    /// are an error.
    pub fn from_toml_str(toml: &str) -> Result<Self, SettingsError> {
        toml::from_str(toml).map_err(|e| SettingsError::Toml(e.message().to_owned()))
    }

    /// Overrides settings from the process environment (see [`ENV_VARS`]).
    pub fn with_process_env(self) -> Result<Self, SettingsError> {
        let vars: Vec<(String, String)> = ENV_VARS
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| ((*name).to_owned(), v)))
            .collect();
        self.with_env_vars(vars)
    }

    /// Overrides settings from `(name, value)` pairs named like the
    /// environment variables; other names are ignored.
    pub fn with_env_vars<I, K, V>(self, vars: I) -> Result<Self, SettingsError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut raw = RawSettings::default();
        for (name, value) in vars {
            let (name, value) = (name.as_ref(), value.as_ref().trim());
            let number = |what: &str| invalid(name.to_owned(), value, format!("expected {what}"));
            match name {
                "PROXY_JUDGES" => {
                    raw.judges = Some(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|j| !j.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    );
                }
                "PROXY_TTL_SECONDS" => {
                    raw.ttl_seconds = Some(value.parse().map_err(|_| number("whole seconds"))?);
                }
                "PROXY_ACQUIRE_TIMEOUT" => {
                    raw.acquire_timeout = Some(value.parse().map_err(|_| number("seconds"))?);
                }
                "PROXY_RECHECK_INTERVAL" => {
                    raw.recheck_interval = Some(value.parse().map_err(|_| number("seconds"))?);
                }
                "PROXY_MAX_JUDGE_FAILURES" => {
                    raw.max_judge_failures =
                        Some(value.parse().map_err(|_| number("a whole number"))?);
                }
                "PROXY_COLLISIONS_BEFORE_BACKOFF" => {
                    raw.collisions_before_backoff =
                        Some(value.parse().map_err(|_| number("a whole number"))?);
                }
                _ => {}
            }
        }
        self.merge(raw, Naming::Env)
    }

    fn merge(mut self, raw: RawSettings, naming: Naming) -> Result<Self, SettingsError> {
        if let Some(judges) = raw.judges {
            let name = naming.name("judges", "PROXY_JUDGES");
            if judges.is_empty() {
                return Err(invalid(name, "", "at least one judge is required"));
            }
            for judge in &judges {
                check_judge(&name, judge)?;
            }
            self.judges = judges;
        }
        if let Some(ttl) = raw.ttl_seconds {
            self.ttl = Ttl::from_secs(ttl).map_err(|e| {
                invalid(
                    naming.name("ttl_seconds", "PROXY_TTL_SECONDS"),
                    ttl,
                    e.to_string(),
                )
            })?;
        }
        if let Some(timeout) = raw.acquire_timeout {
            self.acquire_timeout = seconds(
                naming.name("acquire_timeout", "PROXY_ACQUIRE_TIMEOUT"),
                timeout,
                false,
            )?;
        }
        if let Some(interval) = raw.recheck_interval {
            self.recheck_interval = seconds(
                naming.name("recheck_interval", "PROXY_RECHECK_INTERVAL"),
                interval,
                true,
            )?;
        }
        if let Some(max) = raw.max_judge_failures {
            if max == 0 {
                return Err(invalid(
                    naming.name("max_judge_failures", "PROXY_MAX_JUDGE_FAILURES"),
                    max,
                    "must be at least 1",
                ));
            }
            self.max_judge_failures = max;
        }
        if let Some(n) = raw.collisions_before_backoff {
            self.collisions_before_backoff = n;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let s = Settings::default();
        assert_eq!(s.judges.len(), 3);
        assert_eq!(s.ttl.as_secs(), 1800);
        assert_eq!(s.acquire_timeout, Duration::from_secs(120));
        assert_eq!(s.recheck_interval, Duration::from_secs(5));
        assert_eq!(s.max_judge_failures, 3);
    }

    #[test]
    fn env_overrides_and_names_the_variable() {
        let s = Settings::default()
            .with_env_vars([
                (
                    "PROXY_JUDGES",
                    "http://127.0.0.1:1/ip, https://judge.example/json",
                ),
                ("PROXY_TTL_SECONDS", "60"),
                ("PROXY_ACQUIRE_TIMEOUT", "2.5"),
                ("UNRELATED", "x"),
            ])
            .unwrap();
        assert_eq!(
            s.judges,
            ["http://127.0.0.1:1/ip", "https://judge.example/json"]
        );
        assert_eq!(s.ttl.as_secs(), 60);
        assert_eq!(s.acquire_timeout, Duration::from_millis(2500));

        for (name, value) in [
            ("PROXY_TTL_SECONDS", "soon"),
            ("PROXY_TTL_SECONDS", "0"),
            ("PROXY_ACQUIRE_TIMEOUT", "-1"),
            ("PROXY_ACQUIRE_TIMEOUT", "0"),
            ("PROXY_MAX_JUDGE_FAILURES", "0"),
            ("PROXY_JUDGES", "ftp://x/"),
            ("PROXY_JUDGES", " , "),
            ("PROXY_JUDGES", "ftp://judge:hunter2@judge.example/ip"),
        ] {
            let err = Settings::default()
                .with_env_vars([(name, value)])
                .unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{err}");
            assert!(
                matches!(&err, SettingsError::Invalid { name: n, .. } if n == name),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn toml_table() {
        let s = Settings::from_toml_str(
            "judges = [\"http://127.0.0.1:9/ip\"]\nttl_seconds = 5\nrecheck_interval = 0.5",
        )
        .unwrap();
        assert_eq!(s.ttl.as_secs(), 5);
        assert_eq!(s.recheck_interval, Duration::from_millis(500));
        let err = Settings::from_toml_str("ttl_secs = 5").unwrap_err();
        assert!(err.to_string().contains("ttl_secs"), "{err}");
        let err = Settings::from_toml_str("ttl_seconds = 0").unwrap_err();
        assert!(err.to_string().contains("ttl_seconds"), "{err}");
        let back = toml::to_string(&s).unwrap();
        assert_eq!(Settings::from_toml_str(&back).unwrap(), s);
    }
}
