//! Hold intervals: who held which exit IP for which domain, from when to
//! when, and whether two holders ever overlapped.
//!
//! The demo and `bench acquire` record one [`Hold`] per acquisition, from
//! the moment `acquire` returned to the moment `release` was called. The
//! store's own hold spans at least that much (it starts before `acquire`
//! returns and ends after `release` is sent), so two recorded holds of one
//! key that overlap mean the store really let two workers hold it at once.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

/// One worker's hold of an exit IP for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hold {
    /// Which worker.
    pub(crate) worker: u32,
    /// The exit IP.
    pub(crate) ip: IpAddr,
    /// The target domain (normalised).
    pub(crate) domain: String,
    /// When `acquire` returned.
    pub(crate) acquired: Instant,
    /// When `release` was called (or the run ended, for a hold never
    /// released).
    pub(crate) released: Instant,
}

/// Two holds of one key that overlapped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Overlap {
    /// The exit IP.
    pub(crate) ip: IpAddr,
    /// The domain.
    pub(crate) domain: String,
    /// The two workers.
    pub(crate) workers: (u32, u32),
    /// How long both held it, milliseconds.
    pub(crate) overlap_ms: f64,
}

/// Holds recorded by concurrent workers.
#[derive(Debug, Default)]
pub(crate) struct HoldLog {
    holds: Mutex<Vec<Hold>>,
}

impl HoldLog {
    /// Records a finished hold.
    pub(crate) fn record(&self, hold: Hold) {
        if let Ok(mut holds) = self.holds.lock() {
            holds.push(hold);
        }
    }

    /// Every hold recorded so far.
    pub(crate) fn holds(&self) -> Vec<Hold> {
        self.holds.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

/// Every pair of holds of the same (IP, domain) whose intervals intersect.
/// Touching intervals (one released at the instant the next acquired) do
/// not overlap.
pub(crate) fn overlaps(holds: &[Hold]) -> Vec<Overlap> {
    let mut by_key: BTreeMap<(IpAddr, &str), Vec<&Hold>> = BTreeMap::new();
    for hold in holds {
        by_key
            .entry((hold.ip, hold.domain.as_str()))
            .or_default()
            .push(hold);
    }
    let mut found = Vec::new();
    for ((ip, domain), mut list) in by_key {
        list.sort_by_key(|h| h.acquired);
        for (i, first) in list.iter().enumerate() {
            // Sorted by start: once a later hold starts after `first` ends,
            // no further one can overlap it.
            for second in list.iter().skip(i + 1) {
                if second.acquired >= first.released {
                    break;
                }
                let end = first.released.min(second.released);
                found.push(Overlap {
                    ip,
                    domain: domain.to_owned(),
                    workers: (first.worker, second.worker),
                    overlap_ms: end.saturating_duration_since(second.acquired).as_secs_f64()
                        * 1000.0,
                });
            }
        }
    }
    found
}

/// Distinct exit IPs among the holds.
pub(crate) fn distinct_ips(holds: &[Hold]) -> usize {
    let mut ips: Vec<IpAddr> = holds.iter().map(|h| h.ip).collect();
    ips.sort();
    ips.dedup();
    ips.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hold(worker: u32, ip: &str, from_ms: u64, to_ms: u64, base: Instant) -> Hold {
        Hold {
            worker,
            ip: ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            domain: "example.com".to_owned(),
            acquired: base + Duration::from_millis(from_ms),
            released: base + Duration::from_millis(to_ms),
        }
    }

    #[test]
    fn finds_only_real_overlaps() {
        let base = Instant::now();
        let holds = vec![
            hold(1, "10.0.0.1", 0, 100, base),
            hold(2, "10.0.0.1", 100, 200, base), // touches: fine
            hold(3, "10.0.0.2", 50, 150, base),  // other IP: fine
            hold(4, "10.0.0.1", 150, 250, base), // overlaps worker 2
        ];
        let found = overlaps(&holds);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].workers, (2, 4));
        assert!((found[0].overlap_ms - 50.0).abs() < 1.0);
        assert_eq!(distinct_ips(&holds), 2);
    }

    #[test]
    fn other_domains_do_not_overlap() {
        let base = Instant::now();
        let mut other = hold(2, "10.0.0.1", 0, 100, base);
        other.domain = "other.example".to_owned();
        let holds = vec![hold(1, "10.0.0.1", 0, 100, base), other];
        assert!(overlaps(&holds).is_empty());
    }

    #[test]
    fn a_hold_inside_a_longer_one_is_found() {
        let base = Instant::now();
        let holds = vec![
            hold(1, "10.0.0.1", 0, 1000, base),
            hold(2, "10.0.0.1", 100, 200, base),
            hold(3, "10.0.0.1", 300, 400, base),
        ];
        assert_eq!(overlaps(&holds).len(), 2);
    }
}
