//! Verification through a real loopback gateway to each judge shape, over
//! HTTP (forwarded), HTTPS (CONNECT) and SOCKS5h.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{gateway, judge, verifier_for};
use proxy_core::{IpVerifier, Settings};
use proxy_judge::JudgeVerifier;
use testkit::net::JudgeShape;

#[tokio::test]
async fn every_shape_over_http_and_https_reports_the_session_exit() {
    let gateway = gateway(3).await;
    for tls in [false, true] {
        for shape in JudgeShape::ALL {
            let judge = judge(shape, tls).await;
            let verifier = verifier_for(&[&judge]).build().unwrap();
            let proxy = gateway.proxy_url(Some("shape")).unwrap();
            let exit = verifier.verify(&proxy).await.unwrap();
            assert_eq!(
                Some(exit.ip),
                gateway.exit_of("shape"),
                "{shape:?} tls={tls}"
            );
            assert_eq!(exit.judge, judge.url());
            assert_eq!(exit.failovers, 0);
            assert_eq!(judge.stats().per_peer[&exit.ip], 1);
        }
    }
    let stats = gateway.stats();
    assert_eq!(stats.forwarded, 3, "plain-HTTP judges are forwarded");
    assert_eq!(stats.tunnels, 3, "HTTPS judges go through CONNECT");
}

#[tokio::test]
async fn socks5h_proxies_are_verified_too() {
    let gateway = gateway(2).await;
    for tls in [false, true] {
        let judge = judge(JudgeShape::Ipify, tls).await;
        let verifier = verifier_for(&[&judge]).build().unwrap();
        let exit = verifier
            .verify(&gateway.socks_url(Some("socks")).unwrap())
            .await
            .unwrap();
        assert_eq!(Some(exit.ip), gateway.exit_of("socks"));
    }
    assert_eq!(gateway.stats().socks_tunnels, 2);
}

#[tokio::test]
async fn two_sessions_get_two_exits_and_a_session_keeps_its_exit() {
    let gateway = gateway(4).await;
    let judge = judge(JudgeShape::Httpbin, true).await;
    let verifier = verifier_for(&[&judge]).build().unwrap();
    let a = gateway.proxy_url(Some("alpha")).unwrap();
    let b = gateway.proxy_url(Some("beta")).unwrap();
    let first_a = verifier.verify(&a).await.unwrap().ip;
    let first_b = verifier.verify(&b).await.unwrap().ip;
    assert_ne!(first_a, first_b);
    for _ in 0..3 {
        assert_eq!(verifier.verify(&a).await.unwrap().ip, first_a);
        assert_eq!(verifier.verify(&b).await.unwrap().ip, first_b);
    }
    // The gateway moves the session: verification follows it.
    let moved = gateway.repin("alpha").unwrap();
    assert_eq!(verifier.verify(&a).await.unwrap().ip, moved);
}

#[tokio::test]
async fn settings_provide_the_judge_list() {
    let gateway = gateway(1).await;
    let judge = judge(JudgeShape::PlainText, false).await;
    let settings = Settings::default()
        .with_env_vars([("PROXY_JUDGES", judge.url())])
        .unwrap();
    let verifier = JudgeVerifier::builder()
        .settings(&settings)
        .allow_private_ips(true)
        .build()
        .unwrap();
    assert_eq!(verifier.judges(), [judge.url()]);
    let exit = verifier
        .verify(&gateway.proxy_url(Some("s")).unwrap())
        .await
        .unwrap();
    assert_eq!(exit.ip, gateway.exits()[0]);
    assert_eq!(
        JudgeVerifier::from_settings(&Settings::default())
            .unwrap()
            .judges()
            .len(),
        3
    );
}

#[tokio::test]
async fn a_self_hosted_judge_server_verifies_through_the_gateway() {
    let server = proxy_judge::server::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let gateway = gateway(2).await;
    let judges: Vec<String> = ["/ip", "/json", "/"]
        .iter()
        .map(|path| format!("http://{}{path}", server.local_addr()))
        .collect();
    for judge in &judges {
        let verifier = JudgeVerifier::builder()
            .judges([judge.clone()])
            .allow_private_ips(true)
            .build()
            .unwrap();
        let exit = verifier
            .verify(&gateway.proxy_url(Some("self")).unwrap())
            .await
            .unwrap();
        assert_eq!(Some(exit.ip), gateway.exit_of("self"), "{judge}");
    }
    server.shutdown().await;
}
