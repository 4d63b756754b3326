//! The self-hostable judge server, asked directly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use proxy_judge::server::{self, JudgeServerConfig};
use proxy_judge::{ClientOptions, direct_client, parse_answer};

async fn get(url: &str, source: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .local_address(source.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

#[tokio::test]
async fn answers_every_shape_with_the_peer_address() {
    let judge = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{}", judge.local_addr());

    let (status, content_type, body) = get(&format!("{base}/ip"), "127.0.40.1", &[]).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["origin"], "127.0.40.1");

    let (_, _, body) = get(&format!("{base}/json"), "127.0.40.2", &[]).await;
    assert_eq!(body, r#"{"ip":"127.0.40.2"}"#);
    let (_, _, body) = get(&format!("{base}/?format=json"), "127.0.40.2", &[]).await;
    assert_eq!(body, r#"{"ip":"127.0.40.2"}"#);
    let (_, _, body) = get(&format!("{base}/"), "127.0.40.3", &[]).await;
    assert_eq!(body, "127.0.40.3\n");

    // Every answer is one the verifier reads.
    for path in ["/ip", "/json", "/"] {
        let (_, _, body) = get(&format!("{base}{path}"), "127.0.40.4", &[]).await;
        assert_eq!(
            parse_answer(body.as_bytes(), 365).unwrap().to_string(),
            "127.0.40.4"
        );
    }

    let (status, _, _) = get(&format!("{base}/nope"), "127.0.0.1", &[]).await;
    assert_eq!(status, 404);
    let post = direct_client(&ClientOptions::default())
        .unwrap()
        .post(format!("{base}/ip"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    judge.shutdown().await;
}

#[tokio::test]
async fn forwarded_for_is_echoed_on_ip_unless_turned_off() {
    let judge = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{}/ip", judge.local_addr());
    let (_, _, body) = get(&url, "127.0.41.1", &[("x-forwarded-for", "198.51.100.9")]).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["origin"], "198.51.100.9, 127.0.41.1");
    // A header cannot smuggle JSON into the answer.
    let (_, _, body) = get(
        &url,
        "127.0.41.1",
        &[("x-forwarded-for", "\"}, {\"origin\": \"8.8.8.8")],
    )
    .await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(json["origin"].as_str().unwrap().ends_with(", 127.0.41.1"));
    // The other shapes ignore it.
    let (_, _, body) = get(
        &format!("http://{}/", judge.local_addr()),
        "127.0.41.1",
        &[("x-forwarded-for", "198.51.100.9")],
    )
    .await;
    assert_eq!(body, "127.0.41.1\n");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let quiet = server::serve_with(
        listener,
        JudgeServerConfig::default().echo_forwarded_for(false),
    )
    .unwrap();
    let (_, _, body) = get(
        &format!("http://{}/ip", quiet.local_addr()),
        "127.0.41.2",
        &[("x-forwarded-for", "198.51.100.9")],
    )
    .await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["origin"], "127.0.41.2");
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let judge = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = judge.local_addr();
    let (status, _, _) = get(&format!("http://{addr}/"), "127.0.0.1", &[]).await;
    assert_eq!(status, 200);
    judge.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    let dropped = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = dropped.local_addr();
    drop(dropped);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
