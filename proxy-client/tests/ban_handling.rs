//! The ban table, end to end: real requests through the fake gateway to the
//! fake target, which bans by source address. No HTTP mocks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{PASSWORD, World};
use proxy_client::{
    BreakerConfig, CaptchaChallenge, CaptchaOutcome, CaptchaSolver, CaptchaVendor, ClientError,
    Page, RequestMetrics, SessionPolicy, Signal, SignalKind,
};
use proxy_core::{
    BoxError, ListFilter, ReservationKey, ReservationState, ReservationStore, ReserveOutcome, Ttl,
    async_trait,
};
use testkit::conformance::EXPIRY_MARGIN;
use testkit::net::{GatewayFault, TargetBehavior, TargetRules};

#[tokio::test]
async fn a_403_rotates_and_cools_the_ip_down_for_everyone() {
    let world = World::start(3, TargetRules::open()).await;
    let mut session = world.session().build();
    let banned = session.acquire().await.unwrap().ip;
    world
        .network
        .target
        .force(banned, Some(TargetBehavior::Forbidden));

    let page = session.get(&world.url("/case/1")).await.unwrap();
    assert_eq!(page.status, 200);
    assert_ne!(
        page.exit_ip, banned,
        "the request must end on a different exit"
    );
    assert_eq!(
        session.stats().rotations.get(&SignalKind::Blocked),
        Some(&1)
    );
    assert_eq!(session.stats().cooldowns, 1);
    let served = world.network.target.stats();
    assert_eq!(served.source(banned).forbidden, 1);
    assert_eq!(served.source(page.exit_ip).ok, 1);

    // Nobody may reserve the banned IP for this domain while it cools down…
    let key = ReservationKey::new(banned, world.manager.domain().clone());
    let other_app = "another-worker".parse().unwrap();
    let ttl = Ttl::from_secs(60).unwrap();
    assert_eq!(
        world
            .store
            .try_reserve(&key, &other_app, ttl)
            .await
            .unwrap(),
        ReserveOutcome::Taken
    );
    let rows = world
        .store
        .list(&ListFilter::domain(world.manager.domain().clone()))
        .await
        .unwrap();
    let row = rows
        .iter()
        .find(|r| r.lease.ip == banned)
        .expect("the cooldown is listed");
    assert_eq!(row.state, ReservationState::CoolingDown);
    // …and once it ends (2 s in these tests) it is free again.
    tokio::time::sleep(Duration::from_secs(2) + EXPIRY_MARGIN).await;
    match world
        .store
        .try_reserve(&key, &other_app, ttl)
        .await
        .unwrap()
    {
        ReserveOutcome::Reserved(lease) => {
            let _ = world.store.release(&lease).await.unwrap();
        }
        ReserveOutcome::Taken => panic!("the cooldown must end"),
    }
    session.finish().await.unwrap();
}

#[tokio::test]
async fn a_429_with_retry_after_waits_and_succeeds_on_the_same_ip() {
    let rules = TargetRules::open().rate_limit(1, Duration::from_secs(1), Duration::from_secs(1));
    let world = World::start(2, rules).await;
    let mut session = world.session().build();
    let first = session.get(&world.url("/a")).await.unwrap();
    let second = session.get(&world.url("/b")).await.unwrap();
    assert_eq!(second.status, 200);
    assert_eq!(
        second.exit_ip, first.exit_ip,
        "a rate limit is waited out on the same proxy"
    );
    assert_eq!(session.stats().total_rotations(), 0);
    assert_eq!(session.stats().acquisitions, 1);
    let served = world.network.target.stats().source(first.exit_ip);
    assert_eq!((served.ok, served.rate_limited), (2, 1));
    session.finish().await.unwrap();
}

#[tokio::test]
async fn a_persistent_429_rotates_after_the_allowed_retries() {
    let world = World::start(3, TargetRules::open()).await;
    let mut session = world.session().build();
    let limited = session.acquire().await.unwrap().ip;
    world.network.target.force(
        limited,
        Some(TargetBehavior::RateLimited {
            retry_after_secs: 0,
        }),
    );
    let page = session.get(&world.url("/")).await.unwrap();
    assert_ne!(page.exit_ip, limited);
    assert_eq!(
        world.network.target.stats().source(limited).rate_limited,
        3,
        "two retries, then rotate"
    );
    assert_eq!(
        session.stats().rotations.get(&SignalKind::RateLimited),
        Some(&1)
    );
    assert_eq!(session.stats().cooldowns, 1);
    session.finish().await.unwrap();
}

/// A solver that records what it was given and answers as scripted.
#[derive(Debug)]
struct ScriptedSolver {
    calls: AtomicU32,
    seen: Mutex<Vec<(CaptchaVendor, u16)>>,
    solve: bool,
}

#[async_trait]
impl CaptchaSolver for ScriptedSolver {
    async fn solve(&self, challenge: &CaptchaChallenge<'_>) -> Result<CaptchaOutcome, BoxError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen
            .lock()
            .unwrap()
            .push((challenge.vendor, challenge.page.status.as_u16()));
        assert_eq!(challenge.page.exit_ip, challenge.proxy.ip);
        if !self.solve {
            return Ok(CaptchaOutcome::Unsolved);
        }
        let mut page = challenge.page.clone();
        page.status = reqwest::StatusCode::OK;
        page.body = bytes::Bytes::from_static(b"solved");
        Ok(CaptchaOutcome::Page(Box::new(page)))
    }
}

#[tokio::test]
async fn a_captcha_calls_the_solver() {
    let world = World::start(2, TargetRules::open()).await;
    let solver = Arc::new(ScriptedSolver {
        calls: AtomicU32::new(0),
        seen: Mutex::new(Vec::new()),
        solve: true,
    });
    let mut session = world.session().captcha_solver(solver.clone()).build();
    let ip = session.acquire().await.unwrap().ip;
    world
        .network
        .target
        .force(ip, Some(TargetBehavior::Captcha));
    let page = session.get(&world.url("/")).await.unwrap();
    assert_eq!(page.text(), "solved");
    assert_eq!(solver.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        *solver.seen.lock().unwrap(),
        [(CaptchaVendor::Cloudflare, 403)]
    );
    assert_eq!(session.stats().total_rotations(), 0);
    session.finish().await.unwrap();
}

#[tokio::test]
async fn an_unsolved_captcha_rotates_with_a_cooldown() {
    let world = World::start(3, TargetRules::open()).await;
    let solver = Arc::new(ScriptedSolver {
        calls: AtomicU32::new(0),
        seen: Mutex::new(Vec::new()),
        solve: false,
    });
    let mut session = world.session().captcha_solver(solver.clone()).build();
    let challenged = session.acquire().await.unwrap().ip;
    world
        .network
        .target
        .force(challenged, Some(TargetBehavior::Captcha));
    let page = session.get(&world.url("/")).await.unwrap();
    assert_ne!(page.exit_ip, challenged);
    assert_eq!(solver.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        session.stats().rotations.get(&SignalKind::Captcha),
        Some(&1)
    );
    assert_eq!(session.stats().cooldowns, 1);
    session.finish().await.unwrap();
}

#[tokio::test]
async fn without_a_solver_a_captcha_rotates() {
    let world = World::start(3, TargetRules::open()).await;
    let mut session = world.session().build();
    let challenged = session.acquire().await.unwrap().ip;
    world
        .network
        .target
        .force(challenged, Some(TargetBehavior::Captcha));
    let page = session.get(&world.url("/")).await.unwrap();
    assert_ne!(page.exit_ip, challenged);
    assert_eq!(world.network.target.stats().source(challenged).captcha, 1);
    session.finish().await.unwrap();
}

#[tokio::test]
async fn a_reset_rotates() {
    // Plain HTTP: the gateway sees the reset and answers 502 itself.
    // HTTPS: the reset travels through the CONNECT tunnel to the client.
    for (tls, signal) in [
        (false, SignalKind::GatewayError),
        (true, SignalKind::ProxyFailed),
    ] {
        let world = World::start_with(3, TargetRules::open(), tls).await;
        let mut session = world.session().build();
        let resetting = session.acquire().await.unwrap().ip;
        world
            .network
            .target
            .force(resetting, Some(TargetBehavior::Reset));
        let page = session.get(&world.url("/")).await.unwrap();
        assert_ne!(page.exit_ip, resetting);
        assert_eq!(world.network.target.stats().source(resetting).resets, 1);
        assert_eq!(
            session.stats().rotations.get(&signal),
            Some(&1),
            "tls={tls}: {:?}",
            session.stats()
        );
        assert_eq!(
            session.stats().cooldowns,
            0,
            "a broken proxy is released, not cooled down"
        );
        session.finish().await.unwrap();
    }
}

#[tokio::test]
async fn a_refused_connection_rotates_until_the_budget_is_spent() {
    let world = World::start(3, TargetRules::open()).await;
    // A port on the target's host where nothing listens: the gateway's
    // connection is refused and it answers 502.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut session = world
        .session()
        .policy(SessionPolicy::default().with_max_rotations(2))
        .build();
    let error = session
        .get(&format!("http://127.0.0.1:{closed}/"))
        .await
        .unwrap_err();
    match error {
        ClientError::RotationsExhausted { rotations, last } => {
            assert_eq!(rotations, 2);
            assert!(
                matches!(last, Signal::GatewayError { .. } | Signal::ProxyFailed),
                "{last:?}"
            );
        }
        other => panic!("expected RotationsExhausted, got {other:?}"),
    }
    assert_eq!(session.stats().acquisitions, 3);
    assert_eq!(session.stats().attempts, 3);
}

#[tokio::test]
async fn a_timeout_is_retried_once_then_rotates() {
    let world = World::start(3, TargetRules::open()).await;
    let mut session = world.session().build();
    let slow = session.acquire().await.unwrap().ip;
    world
        .network
        .target
        .force(slow, Some(TargetBehavior::Slow(Duration::from_secs(5))));
    let page = session.get(&world.url("/")).await.unwrap();
    assert_ne!(page.exit_ip, slow);
    assert_eq!(
        world.network.target.stats().source(slow).requests,
        2,
        "one retry on the slow proxy"
    );
    assert_eq!(
        session.stats().rotations.get(&SignalKind::Timeout),
        Some(&1)
    );
    session.finish().await.unwrap();
}

#[tokio::test]
async fn a_407_stops_without_looping() {
    let world = World::start(2, TargetRules::open()).await;
    let mut session = world.session().build();
    session.acquire().await.unwrap();
    world.network.gateway.reset_stats();
    world
        .network
        .gateway
        .set_fault(Some(GatewayFault::RejectCredentials));
    let error = session.get(&world.url("/")).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Configuration { .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains(PASSWORD));
    assert_eq!(
        world.network.gateway.stats().rejected_credentials,
        1,
        "exactly one request, no loop"
    );
    assert!(session.proxy().is_none(), "the proxy was given back");
    assert_eq!(world.network.target.stats().total.requests, 0);
}

#[tokio::test]
async fn the_circuit_breaker_opens_when_the_target_fails_everyone() {
    let world = World::start(4, TargetRules::open().forbid_after(0)).await;
    let metrics = Arc::new(RequestMetrics::with_breaker(BreakerConfig::new(10, 5, 0.8)));
    let mut session = world
        .session()
        .metrics(Arc::clone(&metrics))
        .policy(SessionPolicy::default().with_cooldowns(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::from_secs(1),
        ))
        .build();
    let error = session.get(&world.url("/")).await.unwrap_err();
    assert!(
        matches!(error, ClientError::TargetUnhealthy { .. }),
        "{error:?}"
    );
    assert!(metrics.should_abort(world.manager.domain().as_str()));
    assert!(session.should_abort());
    let served = world.network.target.stats().total;
    assert_eq!(
        served.forbidden, 5,
        "the breaker opens after the fifth failure"
    );
    // Nothing more is sent while it is open.
    assert!(matches!(
        session.get(&world.url("/")).await,
        Err(ClientError::TargetUnhealthy { .. })
    ));
    assert_eq!(world.network.target.stats().total.requests, 5);
    session.finish().await.unwrap();
}

#[tokio::test]
async fn requests_outside_the_reserved_domain_are_refused() {
    let world = World::start(1, TargetRules::open()).await;
    let mut session = world.session().build();
    let error = session.get("http://example.test/").await.unwrap_err();
    assert!(
        matches!(error, ClientError::OutsideReservedDomain { .. }),
        "{error:?}"
    );
    assert_eq!(session.stats().acquisitions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_what_the_target_served() {
    let rules = TargetRules::open()
        .forbid_after(6)
        .rate_limit(3, Duration::from_secs(60), Duration::from_secs(0))
        .page_bytes(777);
    let world = World::start(6, rules).await;
    let mut workers = Vec::new();
    for worker in 0..3 {
        let mut session = world.session().build();
        let url = world.url(&format!("/worker/{worker}"));
        workers.push(tokio::spawn(async move {
            let mut pages: Vec<Page> = Vec::new();
            for _ in 0..4 {
                match session.get(&url).await {
                    Ok(page) => pages.push(page),
                    Err(e) => panic!("{e}"),
                }
            }
            let stats = session.finish().await.unwrap();
            (pages.len(), stats)
        }));
    }
    let mut pages = 0;
    for worker in workers {
        pages += worker.await.unwrap().0;
    }
    assert_eq!(pages, 12);
    let served = world.network.target.stats().total;
    let snapshot = world.metrics.snapshot();
    let counted = &snapshot.targets[world.manager.domain().as_str()].counters;
    assert_eq!(
        counted.requests, served.requests,
        "{counted:?} vs {served:?}"
    );
    assert_eq!(counted.successes, served.ok);
    assert_eq!(counted.signal(SignalKind::Blocked), served.forbidden);
    assert_eq!(counted.signal(SignalKind::RateLimited), served.rate_limited);
    assert_eq!(counted.signal(SignalKind::Captcha), served.captcha);
    assert_eq!(counted.bytes, served.bytes);
    assert_eq!(served.ok, 12);
    let by_proxy: u64 = snapshot.proxies.values().map(|c| c.requests).sum();
    assert_eq!(by_proxy, served.requests);
    assert!(
        snapshot
            .proxies
            .keys()
            .all(|label| label.starts_with("fakegw:any:"))
    );
}
