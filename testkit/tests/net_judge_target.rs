//! FakeJudge and FakeTarget over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::time::Duration;

use testkit::net::{
    FakeJudge, FakeNetwork, FakeNetworkConfig, FakeTarget, JudgeFault, JudgeShape, TargetBehavior,
    TargetRules, test_ca_pem,
};

fn client_from(source: &str) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(test_ca_pem().unwrap().as_bytes()).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .local_address(source.parse::<IpAddr>().unwrap())
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn judge_answers_each_shape_with_the_peer_address() {
    for tls in [false, true] {
        let judge = if tls {
            FakeJudge::start_tls(JudgeShape::Httpbin).await.unwrap()
        } else {
            FakeJudge::start(JudgeShape::Httpbin).await.unwrap()
        };
        let client = client_from("127.0.20.5");
        let (_, _, body) = get(&client, &judge.url_for(JudgeShape::Httpbin)).await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["origin"], "127.0.20.5");
        let (_, _, body) = get(&client, &judge.url_for(JudgeShape::Ipify)).await;
        assert_eq!(body, r#"{"ip":"127.0.20.5"}"#);
        let (_, _, body) = get(
            &client,
            &format!("{}?format=json", judge.url_for(JudgeShape::PlainText)),
        )
        .await;
        assert_eq!(body, r#"{"ip":"127.0.20.5"}"#);
        let (_, _, body) = get(&client, &judge.url_for(JudgeShape::PlainText)).await;
        assert_eq!(body, "127.0.20.5\n");
        let stats = judge.stats();
        assert_eq!(stats.requests, 4);
        assert_eq!(stats.per_peer[&"127.0.20.5".parse::<IpAddr>().unwrap()], 4);
        assert_eq!(judge.url().starts_with("https://"), tls);
    }
}

#[tokio::test]
async fn judge_faults() {
    let judge = FakeJudge::start(JudgeShape::Httpbin).await.unwrap();
    let client = client_from("127.0.0.1");
    let url = judge.url();

    judge.set_fault(Some(JudgeFault::HtmlErrorPage));
    let (status, _, body) = get(&client, &url).await;
    assert_eq!(status, 200);
    assert!(
        body.len() > 365 && body.contains("<html>"),
        "{}",
        body.len()
    );

    judge.set_fault(Some(JudgeFault::Garbage));
    let (_, _, body) = get(&client, &url).await;
    assert!(body.parse::<IpAddr>().is_err() && !body.contains("origin"));

    judge.set_fault(Some(JudgeFault::InvalidAddress));
    let (_, _, body) = get(&client, &url).await;
    assert!(body.contains("\"origin\": \"999.1.2.3\""), "{body}");

    judge.set_fault(Some(JudgeFault::Chain));
    let (_, _, body) = get(&client, &url).await;
    assert!(
        body.contains("\"origin\": \"203.0.113.7, 127.0.0.1\""),
        "{body}"
    );

    judge.set_fault(Some(JudgeFault::Address("10.1.2.3".into())));
    let (_, _, body) = get(&client, &judge.url_for(JudgeShape::PlainText)).await;
    assert_eq!(body, "10.1.2.3\n");

    judge.set_fault(Some(JudgeFault::Status(503)));
    let (status, _, _) = get(&client, &url).await;
    assert_eq!(status, 503);

    judge.set_fault(Some(JudgeFault::CloseConnection));
    assert!(client.get(&url).send().await.is_err());

    judge.set_fault(Some(JudgeFault::NeverAnswer));
    let hung = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = hung.get(&url).send().await.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");

    judge.set_fault(Some(JudgeFault::Slow(Duration::from_millis(100))));
    let (status, _, _) = get(&client, &url).await;
    assert_eq!(status, 200);

    judge.set_fault(None);
    let (_, _, body) = get(&client, &url).await;
    assert!(body.contains("\"origin\": \"127.0.0.1\""));
    assert_eq!(judge.stats().requests, 10);
}

#[tokio::test]
async fn target_bans_after_n_requests_per_source_and_counts_exactly() {
    let target = FakeTarget::start(TargetRules::open().forbid_after(2).page_bytes(500))
        .await
        .unwrap();
    let a = client_from("127.0.30.1");
    let b = client_from("127.0.30.2");
    for _ in 0..2 {
        let (status, _, body) = get(&a, &target.url("/page")).await;
        assert_eq!(status, 200);
        assert_eq!(body.len(), 500);
        assert!(body.contains("source 127.0.30.1"));
    }
    let (status, _, forbidden) = get(&a, &target.url("/page")).await;
    assert_eq!(status, 403);
    let (status, _, _) = get(&b, &target.url("/page")).await;
    assert_eq!(status, 200, "another source is not banned");

    let stats = target.stats();
    let source_a = stats.source("127.0.30.1".parse().unwrap());
    assert_eq!(source_a.requests, 3);
    assert_eq!(source_a.ok, 2);
    assert_eq!(source_a.forbidden, 1);
    assert_eq!(source_a.bytes, 1000 + forbidden.len() as u64);
    assert_eq!(stats.source("127.0.30.2".parse().unwrap()).ok, 1);
    assert_eq!(stats.total.requests, 4);
    assert_eq!(stats.total.bytes, 1500 + forbidden.len() as u64);
}

#[tokio::test]
async fn target_rate_limits_with_retry_after() {
    let target = FakeTarget::start(TargetRules::open().rate_limit(
        2,
        Duration::from_secs(3600),
        Duration::from_millis(1500),
    ))
    .await
    .unwrap();
    let client = client_from("127.0.31.1");
    assert_eq!(get(&client, &target.url("/")).await.0, 200);
    assert_eq!(get(&client, &target.url("/")).await.0, 200);
    let (status, headers, _) = get(&client, &target.url("/")).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(
        target
            .stats()
            .source("127.0.31.1".parse().unwrap())
            .rate_limited,
        1
    );
}

#[tokio::test]
async fn target_captcha_reset_and_forced_behaviour() {
    let target = FakeTarget::start(TargetRules::open().captcha_after(1))
        .await
        .unwrap();
    let client = client_from("127.0.32.1");
    assert_eq!(get(&client, &target.url("/")).await.0, 200);
    let (status, headers, body) = get(&client, &target.url("/")).await;
    assert_eq!(status, 403);
    assert_eq!(headers["cf-mitigated"], "challenge");
    assert!(body.contains("<title>Just a moment...</title>"));

    let other = client_from("127.0.32.2");
    target.force("127.0.32.2".parse().unwrap(), Some(TargetBehavior::Reset));
    let error = other.get(target.url("/")).send().await.unwrap_err();
    assert!(
        format!("{error:?}").contains("ConnectionReset"),
        "{error:?}"
    );
    target.force(
        "127.0.32.2".parse().unwrap(),
        Some(TargetBehavior::RateLimited {
            retry_after_secs: 7,
        }),
    );
    let (status, headers, _) = get(&other, &target.url("/")).await;
    assert_eq!(
        (status, &headers["retry-after"]),
        (429, &"7".parse().unwrap())
    );
    target.force("127.0.32.2".parse().unwrap(), None);
    target.set_rules(TargetRules::open().reset_after(0));
    assert!(other.get(target.url("/")).send().await.is_err());

    let stats = target.stats();
    let forced = stats.source("127.0.32.2".parse().unwrap());
    assert_eq!(
        (forced.requests, forced.resets, forced.rate_limited),
        (3, 2, 1)
    );
    assert_eq!(stats.source("127.0.32.1".parse().unwrap()).captcha, 1);

    target.reset_stats();
    assert_eq!(target.stats().total.requests, 0);
}

#[tokio::test]
async fn network_starts_everything_and_routes_sessions_to_the_target() {
    let network = FakeNetwork::start_with(FakeNetworkConfig::with_exit_count(2).tls())
        .await
        .unwrap();
    assert_eq!(network.judges.len(), 3);
    assert!(
        network
            .judge_urls()
            .iter()
            .all(|u| u.starts_with("https://"))
    );
    let proxy = network.gateway.proxy_url(Some("scraper")).unwrap();
    let ca = reqwest::Certificate::from_pem(test_ca_pem().unwrap().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(proxy.expose_url()).unwrap())
        .tls_certs_only([ca])
        .build()
        .unwrap();
    let body = client
        .get(network.target.url("/item/1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exit = network.gateway.exit_of("scraper").unwrap();
    assert!(body.contains(&format!("source {exit}")), "{body}");
    assert_eq!(network.target.stats().source(exit).ok, 1);
}
