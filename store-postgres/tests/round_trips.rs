//! What travels on the wire (`POSTGRES_URL`): a reserve attempt is one
//! statement in one round trip, whichever way it ends.
//!
//! The store talks to PostgreSQL through a loopback relay that reads the
//! frontend messages it forwards. A round trip of the extended protocol
//! ends with one Sync; of the simple protocol, with one Query. A prepared
//! statement cannot hold more than one SQL command (the server refuses to
//! parse it), so one Execute is one statement.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proxy_core::{AppId, ReleaseOutcome, ReservationKey, ReservationStore, ReserveOutcome, Ttl};
use store_postgres::sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use store_postgres::sqlx::{self, Connection};
use store_postgres::{PostgresStore, StatementMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Frontend messages seen by the relay: (type byte, body).
type Seen = Arc<Mutex<Vec<(u8, Vec<u8>)>>>;

/// Splits the client's byte stream into protocol messages.
struct FrontendParser {
    buffer: Vec<u8>,
    started: bool,
}

impl FrontendParser {
    fn feed(&mut self, bytes: &[u8], seen: &Seen) {
        self.buffer.extend_from_slice(bytes);
        loop {
            // Before startup completes, messages (SSLRequest, StartupMessage)
            // have no type byte.
            let header = if self.started { 5 } else { 4 };
            if self.buffer.len() < header {
                return;
            }
            let at = header - 4;
            let length = u32::from_be_bytes(self.buffer[at..at + 4].try_into().unwrap()) as usize;
            let total = at + length;
            if self.buffer.len() < total {
                return;
            }
            let message: Vec<u8> = self.buffer.drain(..total).collect();
            if self.started {
                seen.lock()
                    .unwrap()
                    .push((message[0], message[5..].to_vec()));
            } else {
                // The StartupMessage carries protocol 3.0 (196608); an
                // SSLRequest would be answered before it.
                let code = u32::from_be_bytes(message[4..8].try_into().unwrap());
                self.started = code == 196_608;
            }
        }
    }
}

async fn relay(target: SocketAddr) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let server = TcpStream::connect(target).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                let mut parser = FrontendParser {
                    buffer: Vec::new(),
                    started: false,
                };
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let n = match client_read.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    // Recorded before forwarding: once the client has its
                    // answer, the log is complete.
                    parser.feed(&chunk[..n], &log);
                    if server_write.write_all(&chunk[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (address, seen)
}

fn types(seen: &Seen) -> String {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(kind, _)| *kind as char)
        .collect()
}

/// Lets anything still travelling (e.g. sqlx's ping of the connection
/// `migrate()` used) arrive, then empties the log.
async fn quiet(seen: &Seen) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    seen.lock().unwrap().clear();
}

fn key(n: u8) -> ReservationKey {
    ReservationKey::parse(&format!("198.51.100.{n}"), "round-trips.test").unwrap()
}

#[tokio::test]
async fn a_reserve_attempt_is_one_statement_in_one_round_trip() {
    let Some(url) =
        testkit::backend::url_from_env("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
    else {
        return;
    };
    let direct = PgConnectOptions::from_str(&url).unwrap();
    let target = match tokio::net::lookup_host((direct.get_host(), direct.get_port())).await {
        Ok(mut addresses) => addresses.next().unwrap(),
        Err(error) => return testkit::backend::unreachable("POSTGRES_URL", error).unwrap_or(()),
    };
    if let Err(error) = PgConnection::connect(&url).await {
        return testkit::backend::unreachable("POSTGRES_URL", error).unwrap_or(());
    }
    let schema = format!(
        "t_round_trips_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );

    for (base, mode, expected) in [
        // Bind, Execute, Close (the unnamed portal), Sync: no Parse, no ping.
        (0, StatementMode::Prepared, "BECS"),
        // One Query message.
        (10, StatementMode::SimpleQuery, "Q"),
    ] {
        let (address, seen) = relay(target).await;
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .host("127.0.0.1")
            .port(address.port())
            .ssl_mode(PgSslMode::Disable);
        let store = PostgresStore::builder()
            .schema(&schema)
            .statement_mode(mode)
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let app = AppId::new("round-trips").unwrap();
        let ttl = |s| Ttl::from_secs(s).unwrap();
        // Each mode uses keys of its own in the shared scratch schema.
        let key = |n: u8| key(base + n);

        // Warm up: the first use of a statement on a connection prepares it.
        let warm = store.try_reserve(&key(1), &app, ttl(60)).await.unwrap();
        let ReserveOutcome::Reserved(warm) = warm else {
            panic!("{mode:?}: fresh key taken")
        };
        let short = store.try_reserve(&key(3), &app, ttl(1)).await.unwrap();
        assert!(matches!(short, ReserveOutcome::Reserved(_)));

        let attempt = async |key: ReservationKey, what: &str| {
            quiet(&seen).await;
            let outcome = store.try_reserve(&key, &app, ttl(60)).await.unwrap();
            assert_eq!(
                types(&seen),
                expected,
                "{mode:?} {what}: frontend messages of one attempt"
            );
            // Nothing follows: the store keeps its connection instead of
            // handing it back to sqlx's pool, which would ping it.
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(types(&seen), expected, "{mode:?} {what}: after the attempt");
            if mode == StatementMode::SimpleQuery {
                let text = String::from_utf8_lossy(&seen.lock().unwrap()[0].1).into_owned();
                let commands: Vec<&str> = text
                    .trim_end_matches('\0')
                    .split("; ")
                    .filter(|c| !c.starts_with("SET LOCAL "))
                    .collect();
                assert_eq!(commands.len(), 1, "one data statement: {text}");
                assert!(commands[0].starts_with("INSERT INTO"), "{text}");
            }
            outcome
        };
        let fresh = attempt(key(2), "insert of a free key").await;
        assert!(matches!(fresh, ReserveOutcome::Reserved(_)));
        let taken = attempt(key(1), "attempt on a held key").await;
        assert_eq!(taken, ReserveOutcome::Taken);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let takeover = attempt(key(3), "takeover of an expired key").await;
        assert!(matches!(takeover, ReserveOutcome::Reserved(_)));

        quiet(&seen).await;
        assert_eq!(
            store.release(&warm).await.unwrap(),
            ReleaseOutcome::Released
        );
        let release = types(&seen);
        // The release statement's first use on this connection prepares it.
        let release_again = {
            let ReserveOutcome::Reserved(lease) =
                store.try_reserve(&key(1), &app, ttl(60)).await.unwrap()
            else {
                panic!("released key taken")
            };
            quiet(&seen).await;
            assert_eq!(
                store.release(&lease).await.unwrap(),
                ReleaseOutcome::Released
            );
            types(&seen)
        };
        assert_eq!(release_again, expected, "{mode:?} release: {release}");
    }

    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}
