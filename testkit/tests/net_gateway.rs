//! FakeGateway end to end: real sockets, a real HTTP client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::time::Duration;

use proxy_core::ProxyUrl;
use testkit::net::{FakeGateway, FakeJudge, GatewayConfig, GatewayFault, JudgeShape, test_ca_pem};

fn client(proxy: &ProxyUrl) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(test_ca_pem().unwrap().as_bytes()).unwrap();
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(proxy.expose_url()).unwrap())
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The address the judge saw, through `proxy`.
async fn seen(proxy: &ProxyUrl, judge: &FakeJudge) -> IpAddr {
    let response = client(proxy)
        .get(judge.url_for(JudgeShape::PlainText))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap().trim().parse().unwrap()
}

#[tokio::test]
async fn sessions_are_pinned_to_distinct_exits_over_http_connect_and_socks() {
    let gateway = FakeGateway::start(GatewayConfig::with_exit_count(3))
        .await
        .unwrap();
    let plain = FakeJudge::start(JudgeShape::PlainText).await.unwrap();
    let tls = FakeJudge::start_tls(JudgeShape::PlainText).await.unwrap();

    let a = gateway.proxy_url(Some("a")).unwrap();
    let b = gateway.proxy_url(Some("b")).unwrap();
    let exit_a = seen(&a, &plain).await;
    let exit_b = seen(&b, &plain).await;
    assert_ne!(exit_a, exit_b, "two sessions, two exits");
    assert!(gateway.exits().contains(&exit_a));
    assert!(gateway.exits().contains(&exit_b));
    assert_eq!(gateway.exit_of("a"), Some(exit_a));

    // Same session, later, through a CONNECT tunnel and through SOCKS5.
    assert_eq!(seen(&a, &tls).await, exit_a);
    assert_eq!(
        seen(&gateway.socks_url(Some("a")).unwrap(), &plain).await,
        exit_a
    );
    assert_eq!(
        seen(&gateway.socks_url(Some("b")).unwrap(), &tls).await,
        exit_b
    );

    let stats = gateway.stats();
    assert_eq!(stats.sessions, 2);
    assert_eq!(stats.forwarded, 2);
    assert_eq!(stats.tunnels, 1);
    assert_eq!(stats.socks_tunnels, 2);
    assert_eq!(stats.requests, 5);
    assert_eq!(stats.per_exit.values().sum::<u64>(), 5);
    assert_eq!(stats.per_exit[&exit_a], 3);
    assert_eq!(plain.stats().per_peer[&exit_a], 2);
}

#[tokio::test]
async fn every_provider_username_format_pins_a_session() {
    let gateway = FakeGateway::start(GatewayConfig::with_exit_count(8))
        .await
        .unwrap();
    let judge = FakeJudge::start(JudgeShape::PlainText).await.unwrap();
    let addr = gateway.addr();
    let password = gateway.password().unwrap().to_owned();
    let cases = [
        (
            "brd-customer-c1-zone-res-session-s1".to_owned(),
            password.clone(),
            "s1",
        ),
        (
            "customer-bob-cc-US-sessid-s2".to_owned(),
            password.clone(),
            "s2",
        ),
        (
            "user-bob-session-s3-sessionduration-10".to_owned(),
            password.clone(),
            "s3",
        ),
        (
            "bob-res-any-sid-40000".to_owned(),
            password.clone(),
            "40000",
        ),
        (
            "package-1-sessionid-s5-sessionlength-360".to_owned(),
            password.clone(),
            "s5",
        ),
        (
            "bob".to_owned(),
            format!("{password}_country-us_session-Ab12Cd34_lifetime-10m"),
            "Ab12Cd34",
        ),
    ];
    for (username, password, session) in cases {
        let proxy = ProxyUrl::new(proxy_core::Protocol::Http, "127.0.0.1", addr.port())
            .unwrap()
            .with_credentials(username.clone(), password)
            .unwrap();
        let exit = seen(&proxy, &judge).await;
        assert_eq!(gateway.exit_of(session), Some(exit), "{username}");
    }
    assert_eq!(gateway.stats().sessions, 6);
}

#[tokio::test]
async fn without_session_each_request_rotates_through_the_pool() {
    let gateway = FakeGateway::start(GatewayConfig::with_exit_count(4))
        .await
        .unwrap();
    let judge = FakeJudge::start(JudgeShape::PlainText).await.unwrap();
    let rotating = gateway.proxy_url(None).unwrap();
    let mut exits = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let exit = seen(&rotating, &judge).await;
        assert!(gateway.exits().contains(&exit));
        exits.insert(exit);
    }
    // 40 random picks out of 4: all four with overwhelming probability (1 - 4·(3/4)^40).
    assert!(exits.len() >= 2, "{exits:?}");
    assert_eq!(gateway.stats().rotating, 40);
    assert_eq!(gateway.stats().sessions, 0);
}

#[tokio::test]
async fn repin_and_pin_move_a_session() {
    let gateway = FakeGateway::start(GatewayConfig::with_exit_count(3))
        .await
        .unwrap();
    let judge = FakeJudge::start(JudgeShape::PlainText).await.unwrap();
    let proxy = gateway.proxy_url(Some("moving")).unwrap();
    let first = seen(&proxy, &judge).await;
    let moved = gateway.repin("moving").unwrap();
    assert_ne!(moved, first);
    assert_eq!(seen(&proxy, &judge).await, moved);
    assert_eq!(gateway.repin("never-seen"), None);

    gateway.pin_session("other", moved);
    assert_eq!(
        seen(&gateway.proxy_url(Some("other")).unwrap(), &judge).await,
        moved
    );
}

#[tokio::test]
async fn credentials_are_checked() {
    let gateway = FakeGateway::start(GatewayConfig::with_exit_count(1))
        .await
        .unwrap();
    let judge = FakeJudge::start(JudgeShape::PlainText).await.unwrap();
    let wrong = ProxyUrl::new(
        proxy_core::Protocol::Http,
        "127.0.0.1",
        gateway.addr().port(),
    )
    .unwrap()
    .with_credentials("user-x-session-1", "wrong")
    .unwrap();
    let response = client(&wrong).get(judge.url()).send().await.unwrap();
    assert_eq!(response.status(), 407);
    assert!(response.headers().contains_key("proxy-authenticate"));

    // Through CONNECT reqwest only sees the status line.
    let tls = FakeJudge::start_tls(JudgeShape::PlainText).await.unwrap();
    let error = client(&wrong).get(tls.url()).send().await.unwrap_err();
    assert!(
        format!("{error:?}").contains("ProxyAuthRequired")
            || error_chain(&error).contains("proxy authorization required"),
        "{error:?}"
    );

    let socks_wrong = ProxyUrl::new(
        proxy_core::Protocol::Socks5h,
        "127.0.0.1",
        gateway.socks_addr().port(),
    )
    .unwrap()
    .with_credentials("user-x", "wrong")
    .unwrap();
    let error = client(&socks_wrong)
        .get(judge.url())
        .send()
        .await
        .unwrap_err();
    assert!(
        error_chain(&error).contains("credentials not accepted"),
        "{}",
        error_chain(&error)
    );

    assert_eq!(gateway.stats().rejected_credentials, 3);
    assert_eq!(judge.stats().requests, 0);

    let open = FakeGateway::start(GatewayConfig::with_exit_count(1).without_auth())
        .await
        .unwrap();
    let anonymous =
        ProxyUrl::new(proxy_core::Protocol::Http, "127.0.0.1", open.addr().port()).unwrap();
    assert_eq!(seen(&anonymous, &judge).await, open.exits()[0]);
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[tokio::test]
async fn faults_can_be_switched_at_runtime() {
    let gateway = FakeGateway::start(GatewayConfig::with_exit_count(2))
        .await
        .unwrap();
    let judge = FakeJudge::start(JudgeShape::PlainText).await.unwrap();
    let proxy = gateway.proxy_url(Some("f")).unwrap();

    gateway.set_fault(Some(GatewayFault::RejectCredentials));
    let response = client(&proxy).get(judge.url()).send().await.unwrap();
    assert_eq!(response.status(), 407);

    gateway.set_fault(Some(GatewayFault::bright_data_no_peers()));
    let response = client(&proxy).get(judge.url()).send().await.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["x-brd-error"], "No peers available");
    assert_eq!(response.headers()["x-brd-err-code"], "client_10000");

    gateway.set_fault(Some(GatewayFault::oxylabs_no_exit()));
    let response = client(&proxy).get(judge.url()).send().await.unwrap();
    assert_eq!(response.status(), 525);
    assert!(response.headers().contains_key("x-error-description"));

    gateway.set_fault(Some(GatewayFault::DropConnection));
    assert!(client(&proxy).get(judge.url()).send().await.is_err());

    gateway.set_fault(Some(GatewayFault::Transparent));
    let body = client(&proxy)
        .get(judge.url_for(JudgeShape::Httpbin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let origin = answer["origin"].as_str().unwrap();
    assert!(origin.starts_with("127.0.0.1, 127.0.10."), "{origin}");

    gateway.set_fault(Some(GatewayFault::Delay(Duration::from_millis(50))));
    let exit = seen(&proxy, &judge).await;
    assert_eq!(gateway.exit_of("f"), Some(exit));

    gateway.set_fault(None);
    assert_eq!(seen(&proxy, &judge).await, exit);
    let stats = gateway.stats();
    assert_eq!(stats.faults, 4, "{stats:?}");
    assert_eq!(stats.requests, 7);
    // The four faults answered before routing; three requests went through the exit.
    assert_eq!(stats.per_exit[&exit], 3);
}

#[tokio::test]
async fn never_leaves_loopback() {
    let gateway = FakeGateway::start(GatewayConfig::with_exit_count(1))
        .await
        .unwrap();
    let proxy = gateway.proxy_url(Some("x")).unwrap();
    // A documentation address: refused before any connection is attempted.
    let response = client(&proxy)
        .get("http://192.0.2.1/")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert!(response.headers().contains_key("x-testkit-error"));
    assert!(
        FakeGateway::start(GatewayConfig::with_exit_count(1).exits(["192.0.2.1".parse().unwrap()]))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn stops_when_dropped() {
    let gateway = FakeGateway::start(GatewayConfig::with_exit_count(1))
        .await
        .unwrap();
    let addr = gateway.addr();
    drop(gateway);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
