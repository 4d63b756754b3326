//! No credential in any log line, at trace level, through acquisition,
//! rotation, a 407 and the metrics report.
//!
//! Alone in its own test binary: tracing caches per-callsite interest
//! process-wide, so a test in the same process that hits a callsite without
//! a subscriber could hide events from this one's scoped subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use common::{PASSWORD, World};
use testkit::net::{GatewayFault, TargetBehavior, TargetRules};

#[tokio::test]
async fn no_password_in_any_log_line() {
    use std::io::Write;

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

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let world = World::start(3, TargetRules::open()).await;
    let mut session = world.session().build();
    let proxy = session.acquire().await.unwrap().clone();
    tracing::debug!(?proxy, url = %proxy.url, "the caller logs the proxy");
    world
        .network
        .target
        .force(proxy.ip, Some(TargetBehavior::Forbidden));
    session.get(&world.url("/")).await.unwrap();
    world
        .network
        .gateway
        .set_fault(Some(GatewayFault::RejectCredentials));
    let _ = session.get(&world.url("/")).await.unwrap_err();
    world.metrics.log_stats();

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("rotating proxy"),
        "events were captured:\n{text}"
    );
    assert!(text.contains("proxy stats"));
    assert!(!text.contains(PASSWORD), "password leaked:\n{text}");
}
