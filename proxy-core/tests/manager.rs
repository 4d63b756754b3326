//! The acquire loop against scripted providers, verifiers and stores.
//!
//! Time is Tokio's paused clock, so "did not sleep" and "backed off" are
//! statements about virtual time, not wall-clock measurements.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proxy_core::*;
use tokio::time::Instant;

const PASSWORD: &str = "hunter2-very-secret";

#[derive(Debug)]
struct ScriptedProvider;

impl ProxyProvider for ScriptedProvider {
    fn build_proxy_url(&self, session: &SessionId) -> Result<ProxyUrl, InvalidInput> {
        ProxyUrl::new(Protocol::Http, "127.0.0.1", 3128)?
            .with_credentials(format!("customer-acme-session-{session}"), PASSWORD)
    }
    fn name(&self) -> &str {
        "scripted"
    }
    fn port(&self) -> u16 {
        3128
    }
}

#[derive(Debug)]
struct BrokenProvider;

impl ProxyProvider for BrokenProvider {
    fn build_proxy_url(&self, session: &SessionId) -> Result<ProxyUrl, InvalidInput> {
        Err(InvalidInput::SessionId {
            value: session.to_string(),
            reason: "scripted failure".into(),
        })
    }
}

/// Answers from a script, then repeats `fallback`; counts calls.
#[derive(Debug)]
struct ScriptedVerifier {
    script: Mutex<VecDeque<Result<VerifiedExit, VerifyError>>>,
    fallback: Result<VerifiedExit, VerifyError>,
    calls: AtomicU32,
}

impl ScriptedVerifier {
    fn new(
        script: impl IntoIterator<Item = Result<VerifiedExit, VerifyError>>,
        fallback: Result<VerifiedExit, VerifyError>,
    ) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into_iter().collect()),
            fallback,
            calls: AtomicU32::new(0),
        })
    }
    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl IpVerifier for ScriptedVerifier {
    async fn verify(&self, proxy: &ProxyUrl) -> Result<VerifiedExit, VerifyError> {
        assert!(
            proxy
                .username()
                .unwrap()
                .starts_with("customer-acme-session-")
        );
        self.calls.fetch_add(1, Ordering::SeqCst);
        let next = self.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| self.fallback.clone())
    }
}

fn exit(ip: &str) -> Result<VerifiedExit, VerifyError> {
    Ok(VerifiedExit::new(
        ip.parse::<IpAddr>().unwrap(),
        "scripted-judge",
        0,
    ))
}

fn judges_failed() -> Result<VerifiedExit, VerifyError> {
    Err(VerifyError::JudgesFailed {
        failures: vec![JudgeFailure {
            judge: "http://judge.test/ip".into(),
            reason: "scripted".into(),
        }],
    })
}

fn settings() -> Settings {
    Settings::default()
        .with_env_vars([
            ("PROXY_ACQUIRE_TIMEOUT", "30"),
            ("PROXY_RECHECK_INTERVAL", "10"),
            ("PROXY_COLLISIONS_BEFORE_BACKOFF", "3"),
            ("PROXY_MAX_JUDGE_FAILURES", "3"),
            ("PROXY_TTL_SECONDS", "60"),
        ])
        .unwrap()
}

fn manager(
    verifier: Arc<ScriptedVerifier>,
    store: impl ReservationStore,
    settings: Settings,
) -> ProxyManager {
    ProxyManager::builder()
        .provider(ScriptedProvider)
        .verifier(verifier)
        .store(store)
        .target_domain("Shop.Example.")
        .app_id("manager-tests")
        .settings(settings)
        .build()
        .unwrap()
}

/// Reserves `ip` for the manager's domain under another app.
async fn occupy(store: &MemoryStore, ip: &str) -> Lease {
    match store
        .try_reserve_raw(
            ip,
            "shop.example",
            "someone-else",
            Duration::from_secs(3600),
        )
        .await
        .unwrap()
    {
        ReserveOutcome::Reserved(lease) => lease,
        ReserveOutcome::Taken => panic!("{ip} already taken"),
    }
}

#[tokio::test(start_paused = true)]
async fn acquires_and_releases() {
    let store = MemoryStore::new();
    let verifier = ScriptedVerifier::new([], exit("203.0.113.1"));
    let manager = manager(verifier.clone(), store.clone(), settings());
    assert_eq!(manager.domain().as_str(), "shop.example");
    let proxy = manager.acquire().await.unwrap();
    assert_eq!(proxy.ip.to_string(), "203.0.113.1");
    assert_eq!(proxy.lease.ip, proxy.ip);
    assert_eq!(proxy.lease.app_id.as_str(), "manager-tests");
    assert_eq!(proxy.lease.ttl(), Duration::from_secs(60));
    assert_eq!(proxy.label, "scripted:any:3128");
    assert_eq!(proxy.judge, "scripted-judge");
    assert_eq!((proxy.stats.attempts, proxy.stats.collisions), (1, 0));
    assert_eq!(
        proxy.url.username().unwrap(),
        format!("customer-acme-session-{}", proxy.session_id)
    );
    assert_eq!(
        manager.release(&proxy).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert_eq!(
        manager.release(&proxy).await.unwrap(),
        ReleaseOutcome::NotHeld
    );
    assert!(store.list(&ListFilter::all()).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn collision_retries_at_once_with_a_new_session() {
    let store = MemoryStore::new();
    occupy(&store, "203.0.113.1").await;
    let verifier = ScriptedVerifier::new([exit("203.0.113.1")], exit("203.0.113.2"));
    let manager = manager(verifier.clone(), store, settings());
    let started = Instant::now();
    let proxy = manager.acquire().await.unwrap();
    assert_eq!(proxy.ip.to_string(), "203.0.113.2");
    assert_eq!((proxy.stats.attempts, proxy.stats.collisions), (2, 1));
    assert_eq!(verifier.calls(), 2);
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "a single collision must not sleep"
    );
}

#[tokio::test(start_paused = true)]
async fn repeated_collisions_back_off() {
    let store = MemoryStore::new();
    occupy(&store, "203.0.113.1").await;
    let taken = exit("203.0.113.1");
    let verifier = ScriptedVerifier::new(
        [taken.clone(), taken.clone(), taken.clone(), taken],
        exit("203.0.113.9"),
    );
    let manager = manager(verifier.clone(), store, settings());
    let started = Instant::now();
    let proxy = manager.acquire().await.unwrap();
    assert_eq!(proxy.ip.to_string(), "203.0.113.9");
    assert_eq!(proxy.stats.collisions, 4);
    // Pauses after the 3rd and 4th collision, each 10 s jittered to 5..15 s.
    let slept = started.elapsed();
    assert!(
        slept >= Duration::from_secs(10) && slept <= Duration::from_secs(30),
        "slept {slept:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn consecutive_judge_failures_give_up() {
    let verifier = ScriptedVerifier::new([], judges_failed());
    let manager = manager(verifier.clone(), MemoryStore::new(), settings());
    match manager.acquire().await {
        Err(AcquireError::JudgesUnavailable {
            failures,
            domain,
            last,
        }) => {
            assert_eq!(failures, 3);
            assert_eq!(domain.as_str(), "shop.example");
            assert!(matches!(last, VerifyError::JudgesFailed { .. }));
        }
        other => panic!("expected JudgesUnavailable, got {other:?}"),
    }
    assert_eq!(verifier.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_failure_count() {
    let store = MemoryStore::new();
    occupy(&store, "203.0.113.1").await;
    let verifier = ScriptedVerifier::new(
        [
            judges_failed(),
            judges_failed(),
            exit("203.0.113.1"),
            judges_failed(),
            judges_failed(),
        ],
        exit("203.0.113.3"),
    );
    let manager = manager(verifier.clone(), store, settings());
    let proxy = manager.acquire().await.unwrap();
    assert_eq!(proxy.ip.to_string(), "203.0.113.3");
    assert_eq!(proxy.stats.verification_failures, 4);
    assert_eq!(proxy.stats.attempts, 6);
}

#[tokio::test(start_paused = true)]
async fn gateway_407_stops_without_retrying() {
    let verifier = ScriptedVerifier::new(
        [],
        Err(VerifyError::Configuration {
            reason: "gateway answered 407 Proxy Authentication Required".into(),
        }),
    );
    let manager = manager(verifier.clone(), MemoryStore::new(), settings());
    let error = manager.acquire().await.unwrap_err();
    assert!(
        matches!(error, AcquireError::Configuration { .. }),
        "{error:?}"
    );
    assert_eq!(verifier.calls(), 1, "a configuration error must not loop");
}

#[tokio::test(start_paused = true)]
async fn times_out_naming_the_domain() {
    let store = MemoryStore::new();
    occupy(&store, "203.0.113.1").await;
    let verifier = ScriptedVerifier::new([], exit("203.0.113.1"));
    let manager = manager(verifier.clone(), store, settings());
    let started = Instant::now();
    let error = manager.acquire().await.unwrap_err();
    match &error {
        AcquireError::Timeout {
            domain,
            timeout,
            stats,
        } => {
            assert_eq!(domain.as_str(), "shop.example");
            assert_eq!(*timeout, Duration::from_secs(30));
            assert_eq!(stats.collisions, stats.attempts);
            assert!(stats.attempts >= 3);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(error.to_string().contains("shop.example"), "{error}");
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(30),
        "stops at the deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_verifier_is_cut_by_the_timeout() {
    #[derive(Debug)]
    struct Hung;
    #[async_trait]
    impl IpVerifier for Hung {
        async fn verify(&self, _: &ProxyUrl) -> Result<VerifiedExit, VerifyError> {
            std::future::pending().await
        }
    }
    let manager = ProxyManager::builder()
        .provider(ScriptedProvider)
        .verifier(Hung)
        .store(MemoryStore::new())
        .target_domain("example.com")
        .settings(settings())
        .build()
        .unwrap();
    assert!(matches!(
        manager.acquire().await,
        Err(AcquireError::Timeout { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn provider_errors_surface() {
    let manager = ProxyManager::builder()
        .provider(BrokenProvider)
        .verifier(ScriptedVerifier::new([], exit("203.0.113.1")))
        .store(MemoryStore::new())
        .target_domain("example.com")
        .build()
        .unwrap();
    assert!(matches!(
        manager.acquire().await,
        Err(AcquireError::Provider { .. })
    ));
}

/// A store whose reserve always fails, and which counts renewals otherwise.
#[derive(Debug, Default)]
struct FlakyStore {
    inner: MemoryStore,
    fail_reserve: bool,
    renewals: AtomicU32,
}

#[async_trait]
impl ReservationStore for FlakyStore {
    fn info(&self) -> StoreInfo {
        self.inner.info()
    }
    async fn try_reserve(
        &self,
        key: &ReservationKey,
        app: &AppId,
        ttl: Ttl,
    ) -> Result<ReserveOutcome, StoreError> {
        if self.fail_reserve {
            return Err(StoreError::OutcomeUnknown {
                store: "flaky",
                source: "connection reset mid-statement".into(),
            });
        }
        self.inner.try_reserve(key, app, ttl).await
    }
    async fn release(&self, lease: &Lease) -> Result<ReleaseOutcome, StoreError> {
        self.inner.release(lease).await
    }
    async fn release_with_cooldown(
        &self,
        lease: &Lease,
        cooldown: Ttl,
    ) -> Result<ReleaseOutcome, StoreError> {
        self.inner.release_with_cooldown(lease, cooldown).await
    }
    async fn renew(&self, lease: &Lease, ttl: Ttl) -> Result<RenewOutcome, StoreError> {
        self.renewals.fetch_add(1, Ordering::SeqCst);
        self.inner.renew(lease, ttl).await
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Reservation>, StoreError> {
        self.inner.list(filter).await
    }
    async fn release_by_id(&self, id: &LeaseId) -> Result<ReleaseOutcome, StoreError> {
        self.inner.release_by_id(id).await
    }
    async fn purge_released(&self, older_than: Duration) -> Result<u64, StoreError> {
        self.inner.purge_released(older_than).await
    }
}

#[tokio::test(start_paused = true)]
async fn store_errors_are_not_collisions() {
    let store = FlakyStore {
        fail_reserve: true,
        ..FlakyStore::default()
    };
    let verifier = ScriptedVerifier::new([], exit("203.0.113.1"));
    let manager = manager(verifier.clone(), store, settings());
    match manager.acquire().await {
        Err(AcquireError::Store {
            source: StoreError::OutcomeUnknown { .. },
            ..
        }) => {}
        other => panic!("expected a store error, got {other:?}"),
    }
    assert_eq!(verifier.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn keep_alive_renews_and_reports_loss() {
    let store = Arc::new(FlakyStore::default());
    let verifier = ScriptedVerifier::new([], exit("203.0.113.1"));
    let settings = settings()
        .with_env_vars([("PROXY_TTL_SECONDS", "3")])
        .unwrap();
    let manager = manager(verifier, Arc::clone(&store), settings);
    let proxy = manager.acquire().await.unwrap();
    let mut keep_alive = manager.keep_alive(&proxy);

    // Renewals every TTL/3 = 1 s of (virtual) time.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(
        store.renewals.load(Ordering::SeqCst) >= 3,
        "renewed {} times",
        store.renewals.load(Ordering::SeqCst)
    );
    assert!(matches!(keep_alive.status(), LeaseStatus::Held(_)));
    assert!(!keep_alive.is_lost());

    // An operator releases it: the next renewal reports the loss.
    assert_eq!(
        store.release_by_id(&proxy.lease.id).await.unwrap(),
        ReleaseOutcome::Released
    );
    tokio::time::timeout(Duration::from_secs(5), keep_alive.lost())
        .await
        .expect("loss reported");
    assert!(keep_alive.is_lost());
    assert_eq!(keep_alive.status(), LeaseStatus::Lost);
}

#[tokio::test(start_paused = true)]
async fn cooldown_keeps_the_ip_from_the_next_worker() {
    let store = MemoryStore::new();
    let verifier = ScriptedVerifier::new(
        [exit("203.0.113.1"), exit("203.0.113.1")],
        exit("203.0.113.2"),
    );
    let manager = manager(verifier, store.clone(), settings());
    let first = manager.acquire().await.unwrap();
    assert_eq!(
        manager
            .release_with_cooldown(&first, Duration::from_secs(300))
            .await
            .unwrap(),
        ReleaseOutcome::Released
    );
    let second = manager.acquire().await.unwrap();
    assert_eq!(
        second.ip.to_string(),
        "203.0.113.2",
        "the cooled-down IP was skipped"
    );
    assert_eq!(second.stats.collisions, 1);
    assert!(matches!(
        manager.release_with_cooldown(&second, Duration::ZERO).await,
        Err(StoreError::InvalidInput(InvalidInput::Duration {
            what: "cooldown",
            ..
        }))
    ));
}

#[test]
fn builder_requires_parts_and_validates() {
    let err = ProxyManager::builder().build().unwrap_err();
    assert_eq!(err, BuildError::Missing("provider"));
    let err = ProxyManager::builder()
        .provider(ScriptedProvider)
        .verifier(ScriptedVerifier::new([], exit("203.0.113.1")))
        .store(MemoryStore::new())
        .target_domain("not a domain")
        .build()
        .unwrap_err();
    assert!(
        matches!(err, BuildError::Invalid(InvalidInput::Domain { .. })),
        "{err:?}"
    );
    let manager = ProxyManager::builder()
        .provider(ScriptedProvider)
        .verifier(ScriptedVerifier::new([], exit("203.0.113.1")))
        .store(MemoryStore::new())
        .target_domain("example.com")
        .build()
        .unwrap();
    assert!(
        manager
            .app_id()
            .as_str()
            .contains(&format!(":{}", std::process::id()))
    );
}

/// A writer collecting everything the subscriber prints.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn no_password_in_trace_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = MemoryStore::new();
    occupy(&store, "203.0.113.1").await;
    let verifier =
        ScriptedVerifier::new([exit("203.0.113.1"), judges_failed()], exit("203.0.113.2"));
    let manager = manager(verifier, store, settings());
    let proxy = manager.acquire().await.unwrap();
    tracing::info!(?proxy, url = %proxy.url, "acquired (logged by the caller)");
    let cooled = manager
        .release_with_cooldown(&proxy, Duration::from_secs(5))
        .await;
    assert_eq!(cooled.unwrap(), ReleaseOutcome::Released);
    let failing = ScriptedVerifier::new(
        [],
        Err(VerifyError::Configuration {
            reason: "407".into(),
        }),
    );
    let _ = self::manager(failing, MemoryStore::new(), settings())
        .acquire()
        .await;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("proxy acquired"),
        "events were captured: {text}"
    );
    assert!(text.contains("203.0.113.2"));
    assert!(
        !text.contains(PASSWORD),
        "password leaked into tracing output:\n{text}"
    );
}
