//! Judge health: a judge that keeps failing is asked last for a while.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// The health of one judge, as [`JudgeVerifier::judge_health`] reports it.
///
/// [`JudgeVerifier::judge_health`]: crate::JudgeVerifier::judge_health
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct JudgeStatus {
    /// The judge URL.
    pub judge: String,
    /// Failures since its last valid answer (errors, garbage, timeouts, and
    /// losing a hedged race it had started earlier).
    pub consecutive_failures: u32,
    /// Whether it is demoted (asked after the healthy judges) right now.
    pub demoted: bool,
    /// Valid answers so far.
    pub answers: u64,
    /// Failures so far.
    pub failures: u64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Health {
    consecutive_failures: u32,
    demoted_until: Option<Instant>,
    answers: u64,
    failures: u64,
}

/// Health of every configured judge, in configured order.
#[derive(Debug)]
pub(crate) struct HealthTable {
    judges: Vec<Health>,
    demote_after: u32,
    cool_off: Duration,
}

impl HealthTable {
    pub(crate) fn new(judges: usize, demote_after: u32, cool_off: Duration) -> Self {
        Self {
            judges: vec![Health::default(); judges],
            demote_after,
            cool_off,
        }
    }

    fn is_demoted(&self, index: usize, now: Instant) -> bool {
        self.judges
            .get(index)
            .and_then(|h| h.demoted_until)
            .is_some_and(|until| now < until)
    }

    /// Judge indices in the order to ask them: healthy judges in configured
    /// order, then the demoted ones in configured order.
    pub(crate) fn order(&self, now: Instant) -> Vec<usize> {
        let (healthy, demoted): (Vec<usize>, Vec<usize>) =
            (0..self.judges.len()).partition(|&i| !self.is_demoted(i, now));
        healthy.into_iter().chain(demoted).collect()
    }

    pub(crate) fn record_answer(&mut self, index: usize) {
        if let Some(health) = self.judges.get_mut(index) {
            health.consecutive_failures = 0;
            health.demoted_until = None;
            health.answers += 1;
        }
    }

    /// Counts a failure; the judge is demoted for the cool-off once it has
    /// failed `demote_after` times in a row (and again on every failure
    /// after that, until it answers).
    pub(crate) fn record_failure(&mut self, index: usize, now: Instant) {
        let (demote_after, cool_off) = (self.demote_after, self.cool_off);
        if let Some(health) = self.judges.get_mut(index) {
            health.consecutive_failures = health.consecutive_failures.saturating_add(1);
            health.failures += 1;
            if health.consecutive_failures >= demote_after {
                health.demoted_until = Some(now + cool_off);
            }
        }
    }

    pub(crate) fn report(&self, urls: &[String], now: Instant) -> Vec<JudgeStatus> {
        self.judges
            .iter()
            .zip(urls)
            .enumerate()
            .map(|(i, (health, url))| JudgeStatus {
                judge: url.clone(),
                consecutive_failures: health.consecutive_failures,
                demoted: self.is_demoted(i, now),
                answers: health.answers,
                failures: health.failures,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demotes_after_repeated_failures_and_recovers() {
        let now = Instant::now();
        let mut table = HealthTable::new(3, 2, Duration::from_secs(60));
        assert_eq!(table.order(now), [0, 1, 2]);
        table.record_failure(0, now);
        assert_eq!(table.order(now), [0, 1, 2], "one failure is not enough");
        table.record_failure(0, now);
        assert_eq!(table.order(now), [1, 2, 0]);
        table.record_failure(1, now);
        table.record_failure(1, now);
        assert_eq!(table.order(now), [2, 0, 1]);
        let later = now + Duration::from_secs(61);
        assert_eq!(table.order(later), [0, 1, 2], "cool-off over");
        table.record_failure(0, later);
        assert_eq!(
            table.order(later),
            [1, 2, 0],
            "still failing: demoted again"
        );
        table.record_answer(0);
        assert_eq!(table.order(later), [0, 1, 2]);
    }
}
