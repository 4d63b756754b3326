//! What `connect` reports when there is no usable server, on loopback
//! sockets made here (no SQL Server needed).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use proxy_core::StoreError;
use store_mssql::{MssqlStore, MssqlStoreError, MssqlStoreOptions};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const PASSWORD: &str = "Pa55:w/rd@with;reserved%chars";
const ENCODED: &str = "Pa55%3Aw%2Frd%40with%3Breserved%25chars";

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = format!("{error} {error:?}");
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(&format!(" | {s} {s:?}"));
        source = s.source();
    }
    text
}

/// Neither the error nor anything in its source chain shows the password,
/// in `Display` or `Debug`.
fn assert_no_secret(error: &dyn std::error::Error) {
    let shown = chain(error);
    assert!(!shown.contains("Pa55"), "password leaked: {shown}");
    assert!(!shown.contains(ENCODED), "password leaked: {shown}");
}

/// A loopback port nobody listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let port = closed_port().await;
    let url = format!("mssql://sa:{ENCODED}@127.0.0.1:{port}/test");
    let error = MssqlStore::connect(&url).await.unwrap_err();
    assert!(
        matches!(&error, MssqlStoreError::Unreachable { server, .. } if *server == format!("127.0.0.1:{port}")),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert_no_secret(&error);
    let error = StoreError::from(error);
    assert_no_secret(&error);
    assert!(matches!(
        error,
        StoreError::Unavailable { store: "mssql", .. }
    ));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold the socket without ever answering the prelogin.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("mssql://sa:{ENCODED}@127.0.0.1:{port}/test");
    let options = MssqlStoreOptions::new().connect_timeout(Duration::from_millis(300));
    let error = MssqlStore::connect_with(&url, options).await.unwrap_err();
    assert!(
        matches!(error, MssqlStoreError::ConnectTimeout { .. }),
        "{error:?}"
    );
    assert_no_secret(&error);
    holder.abort();
}

#[tokio::test]
async fn a_server_that_hangs_up_fails_the_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Read the prelogin, then close: not a SQL Server.
    let closer = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 512];
            let _ = socket.read(&mut buf).await;
            drop(socket);
        }
    });
    let ado = format!(
        "server=tcp:127.0.0.1,{port};user id=sa;password='{PASSWORD}';TrustServerCertificate=true"
    );
    let error = MssqlStore::connect(&ado).await.unwrap_err();
    assert!(
        matches!(error, MssqlStoreError::Handshake { .. }),
        "{error:?}"
    );
    assert_no_secret(&error);
    let error = StoreError::from(error);
    assert_no_secret(&error);
    assert!(matches!(error, StoreError::Unavailable { .. }));
    closer.abort();
}

#[tokio::test]
async fn a_bad_schema_is_refused_before_connecting() {
    let port = closed_port().await;
    let url = format!("mssql://sa:{ENCODED}@127.0.0.1:{port}/test");
    let options = MssqlStoreOptions::new().schema("dbo; DROP TABLE x");
    let error = MssqlStore::connect_with(&url, options).await.unwrap_err();
    assert!(
        matches!(
            error,
            MssqlStoreError::InvalidOption {
                option: "schema",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(matches!(
        StoreError::from(error),
        StoreError::Configuration { .. }
    ));
}

#[tokio::test]
async fn malformed_connection_strings_never_echo_the_password() {
    for text in [
        format!("mssql://sa:{ENCODED}@/test"),
        format!("mssql://sa:{ENCODED}@db/test?bogus=1"),
        format!("server=tcp:db,1433;password='{PASSWORD}"),
        format!("postgres://sa:{ENCODED}@db/test"),
    ] {
        let error = MssqlStore::connect(&text).await.unwrap_err();
        assert!(
            matches!(error, MssqlStoreError::InvalidConnectionString { .. }),
            "{text}: {error:?}"
        );
        assert_no_secret(&error);
    }
}
