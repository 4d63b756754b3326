//! Each fault of the fake network fails over or errors as the acquire loop
//! needs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{gateway, judge, verifier_for};
use proxy_core::{IpVerifier, Protocol, ProxyFailure, ProxyUrl, VerifyError};
use testkit::net::{DEFAULT_GATEWAY_PASSWORD, GatewayFault, JudgeFault, JudgeShape};

fn assert_proxy_failure(
    result: Result<proxy_core::VerifiedExit, VerifyError>,
    want: ProxyFailure,
) -> VerifyError {
    if let Err(error) = &result {
        let text = format!("{error} {error:?}");
        assert!(
            !text.contains(DEFAULT_GATEWAY_PASSWORD),
            "password leaked: {text}"
        );
    }
    match result {
        Err(error @ VerifyError::Proxy { failure, .. }) if failure == want => error,
        other => panic!("expected {want:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn refused_credentials_are_a_configuration_error_on_every_path() {
    let gateway = gateway(1).await;
    let plain = judge(JudgeShape::Httpbin, false).await;
    let tls = judge(JudgeShape::Httpbin, true).await;
    let wrong = |protocol: Protocol, port: u16| {
        ProxyUrl::new(protocol, "127.0.0.1", port)
            .unwrap()
            .with_credentials("user-x-session-1", "not-the-password")
            .unwrap()
    };
    let http = wrong(Protocol::Http, gateway.addr().port());
    let socks = wrong(Protocol::Socks5h, gateway.socks_addr().port());
    for (proxy, judge) in [
        (&http, &plain),
        (&http, &tls),
        (&socks, &plain),
        (&socks, &tls),
    ] {
        let verifier = verifier_for(&[judge, judge]).build().unwrap();
        let error = verifier.verify(proxy).await.unwrap_err();
        assert!(
            error.is_configuration(),
            "{proxy} → {}: {error:?}",
            judge.url()
        );
        let text = format!("{error} {error:?}");
        assert!(!text.contains("not-the-password"), "{text}");
    }
    assert_eq!(
        gateway.stats().rejected_credentials,
        4,
        "no judge is asked twice"
    );

    // The same through the runtime fault, with the right password.
    gateway.set_fault(Some(GatewayFault::RejectCredentials));
    let verifier = verifier_for(&[&plain]).build().unwrap();
    assert!(
        verifier
            .verify(&gateway.proxy_url(Some("s")).unwrap())
            .await
            .unwrap_err()
            .is_configuration()
    );
}

#[tokio::test]
async fn gateway_errors_mean_a_new_session() {
    let gateway = gateway(1).await;
    let plain = judge(JudgeShape::Httpbin, false).await;
    let tls = judge(JudgeShape::Httpbin, true).await;
    let proxy = gateway.proxy_url(Some("g")).unwrap();
    let plain_verifier = verifier_for(&[&plain, &plain]).build().unwrap();
    let tls_verifier = verifier_for(&[&tls, &tls]).build().unwrap();

    for fault in [
        GatewayFault::bright_data_no_peers(),
        GatewayFault::oxylabs_no_exit(),
        GatewayFault::iproyal_no_exits(),
        GatewayFault::bad_gateway(),
    ] {
        let GatewayFault::Error { status, .. } = fault.clone() else {
            unreachable!()
        };
        gateway.set_fault(Some(fault));
        // Plain HTTP: the status and the provider's headers are visible.
        let error =
            assert_proxy_failure(plain_verifier.verify(&proxy).await, ProxyFailure::Gateway);
        let VerifyError::Proxy {
            status: seen,
            detail,
            ..
        } = &error
        else {
            unreachable!()
        };
        assert_eq!(*seen, Some(status), "{detail}");
        if status == 502 {
            assert!(
                detail.contains("x-brd-error") || detail.contains("proxy-status"),
                "{detail}"
            );
        }
        // Through CONNECT only "the tunnel failed" is visible.
        assert_proxy_failure(tls_verifier.verify(&proxy).await, ProxyFailure::Gateway);
    }
    // SOCKS5 general failure.
    gateway.set_fault(Some(GatewayFault::bad_gateway()));
    assert_proxy_failure(
        plain_verifier
            .verify(&gateway.socks_url(Some("g")).unwrap())
            .await,
        ProxyFailure::Gateway,
    );
    assert_eq!(plain.stats().requests + tls.stats().requests, 0);
}

#[tokio::test]
async fn a_dropped_or_refused_connection_means_unreachable() {
    let gateway = gateway(1).await;
    let plain = judge(JudgeShape::PlainText, false).await;
    let tls = judge(JudgeShape::PlainText, true).await;
    let proxy = gateway.proxy_url(Some("d")).unwrap();
    gateway.set_fault(Some(GatewayFault::DropConnection));
    for judge in [&plain, &tls] {
        let verifier = verifier_for(&[judge]).build().unwrap();
        assert_proxy_failure(verifier.verify(&proxy).await, ProxyFailure::Unreachable);
        assert_proxy_failure(
            verifier
                .verify(&gateway.socks_url(Some("d")).unwrap())
                .await,
            ProxyFailure::Unreachable,
        );
    }

    // Nobody listens on the gateway's port any more.
    let closed = {
        let gone = common::gateway(1).await;
        (
            gone.proxy_url(Some("x")).unwrap(),
            gone.socks_url(Some("x")).unwrap(),
        )
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    for judge in [&plain, &tls] {
        let verifier = verifier_for(&[judge]).build().unwrap();
        assert_proxy_failure(verifier.verify(&closed.0).await, ProxyFailure::Unreachable);
        assert_proxy_failure(verifier.verify(&closed.1).await, ProxyFailure::Unreachable);
    }
}

#[tokio::test]
async fn a_bad_judge_answer_fails_over_to_the_next_judge() {
    let gateway = gateway(2).await;
    let bad = judge(JudgeShape::Httpbin, false).await;
    let good = judge(JudgeShape::Ipify, true).await;
    let proxy = gateway.proxy_url(Some("f")).unwrap();
    for fault in [
        JudgeFault::HtmlErrorPage,
        JudgeFault::Garbage,
        JudgeFault::InvalidAddress,
        JudgeFault::Status(500),
        JudgeFault::Status(404),
        JudgeFault::CloseConnection,
    ] {
        bad.set_fault(Some(fault.clone()));
        // A long hedge delay: the failover must not wait for it.
        let verifier = verifier_for(&[&bad, &good])
            .hedge_delay(Duration::from_secs(3600))
            .build()
            .unwrap();
        let exit = verifier.verify(&proxy).await.unwrap();
        assert_eq!(exit.judge, good.url(), "{fault:?}");
        assert_eq!(exit.failovers, 1, "{fault:?}");
        assert_eq!(Some(exit.ip), gateway.exit_of("f"));
    }

    // Every judge bad: each failure is reported, in order.
    good.set_fault(Some(JudgeFault::Garbage));
    bad.set_fault(Some(JudgeFault::HtmlErrorPage));
    let verifier = verifier_for(&[&bad, &good]).build().unwrap();
    match verifier.verify(&proxy).await {
        Err(VerifyError::JudgesFailed { failures }) => {
            assert_eq!(failures.len(), 2);
            assert_eq!(failures[0].judge, bad.url());
            assert!(
                failures[0].reason.contains("longer than 365 bytes"),
                "{}",
                failures[0].reason
            );
            assert_eq!(failures[1].judge, good.url());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_forwarded_address_chain_is_a_transparent_proxy() {
    let gateway = gateway(1).await;
    let proxy = gateway.proxy_url(Some("t")).unwrap();
    // The judge answers a chain.
    let chain = judge(JudgeShape::Httpbin, true).await;
    let good = judge(JudgeShape::PlainText, true).await;
    chain.set_fault(Some(JudgeFault::Chain));
    let verifier = verifier_for(&[&chain, &good]).build().unwrap();
    assert_proxy_failure(verifier.verify(&proxy).await, ProxyFailure::Transparent);

    // The gateway forwards our address and an httpbin-like judge echoes it.
    let echo = judge(JudgeShape::Httpbin, false).await;
    gateway.set_fault(Some(GatewayFault::Transparent));
    let verifier = verifier_for(&[&echo]).build().unwrap();
    let error = assert_proxy_failure(verifier.verify(&proxy).await, ProxyFailure::Transparent);
    assert!(error.to_string().contains("127.0.0.1"), "{error}");
}

#[tokio::test]
async fn private_addresses_are_rejected_unless_allowed() {
    let gateway = gateway(1).await;
    let proxy = gateway.proxy_url(Some("p")).unwrap();
    let judge = judge(JudgeShape::PlainText, false).await;

    let strict = verifier_for(&[&judge])
        .allow_private_ips(false)
        .build()
        .unwrap();
    match strict.verify(&proxy).await {
        Err(VerifyError::JudgesFailed { failures }) => {
            assert!(
                failures[0].reason.contains("not a public address"),
                "{failures:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    judge.set_fault(Some(JudgeFault::Address("10.20.30.40".into())));
    assert!(matches!(
        strict.verify(&proxy).await,
        Err(VerifyError::JudgesFailed { .. })
    ));
    let lenient = verifier_for(&[&judge]).build().unwrap();
    assert_eq!(
        lenient.verify(&proxy).await.unwrap().ip.to_string(),
        "10.20.30.40"
    );

    judge.set_fault(Some(JudgeFault::Address("8.8.8.8".into())));
    assert_eq!(
        strict.verify(&proxy).await.unwrap().ip.to_string(),
        "8.8.8.8"
    );
}

#[tokio::test]
async fn every_judge_silent_is_a_timeout() {
    let gateway = gateway(1).await;
    let first = judge(JudgeShape::Httpbin, false).await;
    let second = judge(JudgeShape::Ipify, true).await;
    first.set_fault(Some(JudgeFault::NeverAnswer));
    second.set_fault(Some(JudgeFault::NeverAnswer));
    let verifier = verifier_for(&[&first, &second])
        .timeout(Duration::from_millis(400))
        .hedge_delay(Duration::from_millis(50))
        .build()
        .unwrap();
    assert_proxy_failure(
        verifier
            .verify(&gateway.proxy_url(Some("slow")).unwrap())
            .await,
        ProxyFailure::Timeout,
    );
    assert_eq!(first.stats().requests, 1);
    assert_eq!(second.stats().requests, 1);
}

#[tokio::test]
async fn the_anonymity_check_rejects_our_own_address() {
    let judge = judge(JudgeShape::PlainText, false).await;
    // An exit that is our own address (127.0.0.1, which the judge sees for
    // direct requests too).
    let leaky = testkit::net::FakeGateway::start(
        testkit::net::GatewayConfig::with_exit_count(1).exits(["127.0.0.1".parse().unwrap()]),
    )
    .await
    .unwrap();
    let verifier = verifier_for(&[&judge])
        .anonymity_check(true)
        .build()
        .unwrap();
    let error = assert_proxy_failure(
        verifier.verify(&leaky.proxy_url(Some("a")).unwrap()).await,
        ProxyFailure::Transparent,
    );
    assert!(error.to_string().contains("own address"), "{error}");
    assert_eq!(
        verifier.own_ip().await.unwrap().unwrap().to_string(),
        "127.0.0.1"
    );

    // A proper exit passes; our address was asked only once.
    let gateway = gateway(1).await;
    let exit = verifier
        .verify(&gateway.proxy_url(Some("a")).unwrap())
        .await
        .unwrap();
    assert_eq!(exit.ip, gateway.exits()[0]);
    assert_eq!(judge.stats().per_peer[&"127.0.0.1".parse().unwrap()], 2);

    // A given own address is not asked for.
    let given = verifier_for(&[&judge])
        .own_ip(gateway.exits()[0])
        .build()
        .unwrap();
    assert_proxy_failure(
        given.verify(&gateway.proxy_url(Some("a")).unwrap()).await,
        ProxyFailure::Transparent,
    );
}
