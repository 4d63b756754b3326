//! How a [`ProxySession`](crate::ProxySession) reacts to each signal.

use std::time::Duration;

/// The ban-handling policy of a session. Every value is configurable; the
/// defaults follow the ban table of the design.
///
/// | signal | default action |
/// |---|---|
/// | 403 | release with [`block_cooldown`](Self::block_cooldown), acquire a new proxy |
/// | 429 | wait `Retry-After` (else 2 s doubling to 60 s, jittered) and retry on the same proxy; after [`rate_limit_retries`](Self::rate_limit_retries) in a row, cool down and rotate |
/// | CAPTCHA | the [`CaptchaSolver`](crate::CaptchaSolver) if configured, else cool down and rotate |
/// | proxy failure / gateway error | release, acquire a new proxy |
/// | timeout | retry [`timeout_retries`](Self::timeout_retries) time(s), then rotate |
/// | 407 | stop with a configuration error |
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SessionPolicy {
    /// New proxies one request may go through before giving up.
    pub max_rotations: u32,
    /// How long a blocked (403) exit IP stays unavailable for the domain.
    pub block_cooldown: Duration,
    /// How long an exit IP stays unavailable after a CAPTCHA it could not
    /// get past.
    pub captcha_cooldown: Duration,
    /// How long a rate-limited exit IP stays unavailable when the session
    /// rotates away from it and the site gave no `Retry-After`.
    pub rate_limit_cooldown: Duration,
    /// 429s in a row answered by waiting on the same proxy before rotating.
    pub rate_limit_retries: u32,
    /// First backoff after a 429 without `Retry-After`.
    pub backoff_initial: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// A `Retry-After` longer than this rotates at once instead of waiting.
    pub max_retry_after: Duration,
    /// Retries on the same proxy after a timeout before rotating.
    pub timeout_retries: u32,
    /// Largest body read; a longer one is an error.
    pub max_body_bytes: usize,
    /// Allow requests to hosts other than the reserved domain and its
    /// subdomains (the reservation does not cover them).
    pub allow_other_hosts: bool,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            max_rotations: 10,
            block_cooldown: Duration::from_secs(600),
            captcha_cooldown: Duration::from_secs(600),
            rate_limit_cooldown: Duration::from_secs(120),
            rate_limit_retries: 2,
            backoff_initial: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(120),
            timeout_retries: 1,
            max_body_bytes: 16 * 1024 * 1024,
            allow_other_hosts: false,
        }
    }
}

impl SessionPolicy {
    /// Sets [`max_rotations`](Self::max_rotations).
    pub fn with_max_rotations(mut self, n: u32) -> Self {
        self.max_rotations = n;
        self
    }

    /// Sets the cooldowns after a block, a CAPTCHA and a persistent rate
    /// limit.
    pub fn with_cooldowns(
        mut self,
        block: Duration,
        captcha: Duration,
        rate_limit: Duration,
    ) -> Self {
        self.block_cooldown = block;
        self.captcha_cooldown = captcha;
        self.rate_limit_cooldown = rate_limit;
        self
    }

    /// Sets the 429 handling: retries on the same proxy, and the backoff
    /// used when the site sends no `Retry-After`.
    pub fn with_rate_limit(mut self, retries: u32, initial: Duration, max: Duration) -> Self {
        self.rate_limit_retries = retries;
        self.backoff_initial = initial;
        self.backoff_max = max.max(initial);
        self
    }

    /// Sets [`max_retry_after`](Self::max_retry_after).
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Sets [`timeout_retries`](Self::timeout_retries).
    pub fn with_timeout_retries(mut self, n: u32) -> Self {
        self.timeout_retries = n;
        self
    }

    /// Sets [`max_body_bytes`](Self::max_body_bytes).
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Sets [`allow_other_hosts`](Self::allow_other_hosts).
    pub fn with_other_hosts_allowed(mut self, allow: bool) -> Self {
        self.allow_other_hosts = allow;
        self
    }

    /// The `attempt`-th backoff (0-based): `backoff_initial` doubled per
    /// attempt, capped at `backoff_max`, then scaled by a random factor in
    /// [0.5, 1.0] so workers do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self
            .backoff_initial
            .saturating_mul(2u32.saturating_pow(attempt.min(31)));
        doubled
            .min(self.backoff_max)
            .mul_f64(rand::random_range(0.5..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let policy = SessionPolicy::default();
        for (attempt, full) in [
            (0, 2),
            (1, 4),
            (2, 8),
            (4, 32),
            (5, 60),
            (30, 60),
            (200, 60),
        ] {
            let d = policy.backoff(attempt);
            let full = Duration::from_secs(full);
            assert!(
                d <= full && d >= full / 2,
                "attempt {attempt}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
    }
}
