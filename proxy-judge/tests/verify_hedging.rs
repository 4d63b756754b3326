//! Hedging and judge health: a hung or dead judge must not decide the
//! outcome, and stops being asked first.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{gateway, judge, verifier_for};
use proxy_core::IpVerifier;
use testkit::net::{JudgeFault, JudgeShape};

#[tokio::test]
async fn a_never_answering_first_judge_yields_the_second_judges_answer() {
    let gateway = gateway(2).await;
    for tls in [false, true] {
        let hung = judge(JudgeShape::Httpbin, tls).await;
        let healthy = judge(JudgeShape::Ipify, tls).await;
        hung.set_fault(Some(JudgeFault::NeverAnswer));
        // The default 10 s timeout: only hedging can get past the hung judge.
        let verifier = verifier_for(&[&hung, &healthy])
            .hedge_delay(Duration::from_millis(100))
            .build()
            .unwrap();
        let exit = verifier
            .verify(&gateway.proxy_url(Some("hedge")).unwrap())
            .await
            .unwrap();
        assert_eq!(exit.judge, healthy.url());
        assert_eq!(exit.failovers, 1);
        assert_eq!(Some(exit.ip), gateway.exit_of("hedge"));
        assert_eq!(hung.stats().requests, 1, "the hung judge was asked first");
    }
}

#[tokio::test]
async fn a_slow_first_judge_still_wins_when_it_answers_first() {
    let gateway = gateway(1).await;
    let slow = judge(JudgeShape::Httpbin, false).await;
    let silent = judge(JudgeShape::Ipify, false).await;
    slow.set_fault(Some(JudgeFault::Slow(Duration::from_millis(300))));
    silent.set_fault(Some(JudgeFault::NeverAnswer));
    let verifier = verifier_for(&[&slow, &silent])
        .hedge_delay(Duration::from_millis(50))
        .build()
        .unwrap();
    let exit = verifier
        .verify(&gateway.proxy_url(Some("s")).unwrap())
        .await
        .unwrap();
    assert_eq!(exit.judge, slow.url());
    assert_eq!(exit.failovers, 0);
    assert_eq!(silent.stats().requests, 1, "the second judge was hedged in");
}

#[tokio::test]
async fn a_failing_judge_is_demoted_then_tried_again_after_the_cool_off() {
    let gateway = gateway(1).await;
    let flaky = judge(JudgeShape::Httpbin, false).await;
    let good = judge(JudgeShape::PlainText, true).await;
    flaky.set_fault(Some(JudgeFault::Garbage));
    let verifier = verifier_for(&[&flaky, &good])
        .demote_after(3)
        .cool_off(Duration::from_millis(400))
        .build()
        .unwrap();
    let proxy = gateway.proxy_url(Some("h")).unwrap();

    for round in 0..3 {
        let exit = verifier.verify(&proxy).await.unwrap();
        assert_eq!(
            (exit.judge.as_str(), exit.failovers),
            (good.url().as_str(), 1),
            "round {round}"
        );
    }
    let health = verifier.judge_health();
    assert!(health[0].demoted);
    assert_eq!(health[0].consecutive_failures, 3);
    assert!(!health[1].demoted);
    assert_eq!(health[1].answers, 3);

    // Demoted: the good judge is asked first, the flaky one not at all.
    for _ in 0..3 {
        let exit = verifier.verify(&proxy).await.unwrap();
        assert_eq!(
            (exit.judge.as_str(), exit.failovers),
            (good.url().as_str(), 0)
        );
    }
    assert_eq!(flaky.stats().requests, 3);

    // After the cool-off it is back in front; once it answers it stays there.
    flaky.set_fault(None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let exit = verifier.verify(&proxy).await.unwrap();
    assert_eq!(
        (exit.judge.as_str(), exit.failovers),
        (flaky.url().as_str(), 0)
    );
    assert_eq!(verifier.judge_health()[0].consecutive_failures, 0);
    assert!(!verifier.judge_health()[0].demoted);
}

#[tokio::test]
async fn a_hung_judge_is_demoted_after_losing_races() {
    let gateway = gateway(1).await;
    let hung = judge(JudgeShape::Httpbin, false).await;
    let good = judge(JudgeShape::Ipify, false).await;
    hung.set_fault(Some(JudgeFault::NeverAnswer));
    let verifier = verifier_for(&[&hung, &good])
        .hedge_delay(Duration::from_millis(50))
        .demote_after(2)
        .build()
        .unwrap();
    let proxy = gateway.proxy_url(Some("race")).unwrap();
    for _ in 0..2 {
        assert_eq!(verifier.verify(&proxy).await.unwrap().failovers, 1);
    }
    assert!(verifier.judge_health()[0].demoted);
    let exit = verifier.verify(&proxy).await.unwrap();
    assert_eq!(
        (exit.judge.as_str(), exit.failovers),
        (good.url().as_str(), 0)
    );
    assert_eq!(
        hung.stats().requests,
        2,
        "the demoted judge is no longer asked"
    );
}

#[tokio::test]
async fn a_dead_judge_behind_a_healthy_gateway_is_only_the_judges_failure() {
    let gateway = gateway(1).await;
    let good = judge(JudgeShape::Ipify, true).await;
    for tls in [false, true] {
        // Its port is closed: the gateway answers 502 (plain HTTP) or
        // refuses the CONNECT tunnel (HTTPS).
        let dead_url = {
            let dead = judge(JudgeShape::Httpbin, tls).await;
            dead.url()
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let verifier = proxy_judge::JudgeVerifier::builder()
            .judges([dead_url.clone(), good.url()])
            .allow_private_ips(true)
            .hedge_delay(Duration::from_secs(3600))
            .demote_after(1)
            .client_options(common::test_client_options())
            .build()
            .unwrap();
        let proxy = gateway.proxy_url(Some("dead")).unwrap();
        let exit = verifier.verify(&proxy).await.unwrap();
        assert_eq!(
            (exit.judge.as_str(), exit.failovers),
            (good.url().as_str(), 1),
            "tls={tls}"
        );
        let health = verifier.judge_health();
        assert_eq!(health[0].judge, dead_url);
        assert!(health[0].demoted, "the dead judge took the blame");
    }
}
