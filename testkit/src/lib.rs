#![doc = include_str!("../README.md")]

pub mod backend;
pub mod bench;
pub mod conformance;
#[cfg(feature = "containers")]
pub mod containers;
pub mod net;

/// Expands to a module `conformance` with one `#[test]` per property of the
/// [`ReservationStore`](proxy_core::ReservationStore) contract, each listed
/// as `conformance::<property>`.
///
/// The argument is a factory: anything callable with no arguments that
/// returns a future of `Option<S>` where `S: ReservationStore` (a path to an
/// `async fn`, or a closure returning an `async` block). Each test calls it
/// once; `None` skips the test (use [`backend::store_or_skip`] for stores
/// that need a server). Every test isolates itself with a random domain
/// prefix, so tests run in parallel against one database.
///
/// ```ignore
/// async fn store() -> Option<proxy_core::MemoryStore> {
///     Some(proxy_core::MemoryStore::new())
/// }
/// testkit::conformance_tests!(store);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@module $factory;
            exclusive_under_contention,
            independent_keys,
            release_frees,
            double_release_is_harmless,
            stale_lease_cannot_touch_new_holder,
            not_takeable_before_ttl_takeable_after,
            atomic_takeover_of_expired,
            generation_strictly_increasing,
            renew_extends,
            renew_after_expiry_fails,
            cooldown_blocks_then_frees,
            normalisation_equivalences,
            invalid_inputs_rejected,
            listing_returns_live_leases,
            operator_release_by_id,
            purge_removes_only_old_released,
            many_distinct_keys,
            injection_strings_are_literal,
            lease_reports_what_was_asked,
        );
    };
    (@module $factory:expr; $($property:ident),+ $(,)?) => {
        /// The `ReservationStore` conformance suite (testkit).
        #[cfg(test)]
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $property() {
                    $crate::conformance::run(
                        stringify!($property),
                        $factory,
                        $crate::conformance::$property,
                    );
                }
            )+
        }
    };
}
