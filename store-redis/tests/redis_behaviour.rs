//! Redis-specific behaviour beyond the conformance suite: the key layout,
//! generations that survive a lost counter, values the store did not write,
//! braces in domains, listing across cluster masters, and how connection
//! failures are reported.
//!
//! Tests that need a server read `REDIS_URL` / `REDIS_CLUSTER_URLS` and skip
//! when they are unset; the failure tests run a fake server on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use proxy_core::{
    AppId, Lease, LeaseId, ListFilter, ReleaseOutcome, ReservationKey, ReservationStore,
    ReserveOutcome, StoreError, TargetDomain, Ttl,
};
use store_redis::redis::{self, AsyncCommands};
use store_redis::{RedisStore, RedisStoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

async fn single() -> Option<(RedisStore, redis::aio::MultiplexedConnection)> {
    let url = testkit::backend::url_from_env("REDIS_URL", "redis://127.0.0.1:6379")?;
    let store = match RedisStore::builder()
        .key_prefix(format!("behave-{}", tag()))
        .connect(&url)
        .await
    {
        Ok(store) => store,
        Err(e) => return testkit::backend::unreachable("REDIS_URL", e),
    };
    let raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    Some((store, raw))
}

async fn cluster() -> Option<RedisStore> {
    let urls = testkit::backend::url_from_env(
        "REDIS_CLUSTER_URLS",
        "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003",
    )?;
    match RedisStore::builder()
        .key_prefix(format!("behave-{}", tag()))
        .connect_cluster(urls.split(','))
        .await
    {
        Ok(store) => Some(store),
        Err(e) => testkit::backend::unreachable("REDIS_CLUSTER_URLS", e),
    }
}

fn key(ip: &str, domain: &str) -> ReservationKey {
    ReservationKey::parse(ip, domain).unwrap()
}

fn ttl(secs: u64) -> Ttl {
    Ttl::from_secs(secs).unwrap()
}

async fn must_reserve(store: &RedisStore, key: &ReservationKey, app: &AppId, secs: u64) -> Lease {
    match store.try_reserve(key, app, ttl(secs)).await.unwrap() {
        ReserveOutcome::Reserved(lease) => lease,
        ReserveOutcome::Taken => panic!("{key} was taken"),
    }
}

#[tokio::test]
async fn key_layout_and_ttls() {
    let Some((store, mut raw)) = single().await else {
        return;
    };
    let prefix = store.key_prefix().to_owned();
    let domain = format!("layout-{}.example", tag());
    let k = key("198.51.100.9", &domain);
    let lease = must_reserve(&store, &k, &AppId::new("app|one").unwrap(), 30).await;
    assert_eq!(
        lease.id.as_str(),
        format!("{}/198.51.100.9/{domain}", lease.generation)
    );

    let lease_key = format!("{prefix}:{{{domain}}}:ip:198.51.100.9");
    let gen_key = format!("{prefix}:{{{domain}}}:gen:198.51.100.9");
    let idx_key = format!("{prefix}:{{{domain}}}:idx");
    let value: String = raw.get(&lease_key).await.unwrap();
    assert!(value.starts_with("v1|h|"), "{value}");
    assert!(value.ends_with("|app|one"), "{value}");
    let pttl: i64 = raw.pttl(&lease_key).await.unwrap();
    assert!((25_000..=30_000).contains(&pttl), "lease PTTL {pttl}");
    let generation: String = raw.get(&gen_key).await.unwrap();
    assert_eq!(generation, lease.generation.to_string());
    let gen_pttl: i64 = raw.pttl(&gen_key).await.unwrap();
    assert!(
        gen_pttl > 30_000,
        "the generation outlives the lease: {gen_pttl}"
    );
    let score: Option<f64> = raw.zscore(&idx_key, "198.51.100.9").await.unwrap();
    assert_eq!(
        score.map(|s| s as i64),
        Some(lease.expires_at.timestamp_millis())
    );
    let idx_pttl: i64 = raw.pttl(&idx_key).await.unwrap();
    assert!(
        (30_000..=60_000).contains(&idx_pttl),
        "the index outlives its lease, by at most one TTL: {idx_pttl}"
    );

    assert_eq!(
        store.release(&lease).await.unwrap(),
        ReleaseOutcome::Released
    );
    let exists: bool = raw.exists(&lease_key).await.unwrap();
    assert!(!exists, "release deletes the lease key");
    let score: Option<f64> = raw.zscore(&idx_key, "198.51.100.9").await.unwrap();
    assert_eq!(score, None, "release removes the index entry");
    let mark: String = raw.get(&gen_key).await.unwrap();
    assert!(
        mark.starts_with(&format!("{}|", lease.generation)),
        "the generation key remembers the release: {mark}"
    );
}

#[tokio::test]
async fn generation_increases_even_when_its_counter_is_lost() {
    let Some((store, mut raw)) = single().await else {
        return;
    };
    let domain = format!("evicted-{}.example", tag());
    let k = key("198.51.100.10", &domain);
    let app = AppId::new("app").unwrap();
    let first = must_reserve(&store, &k, &app, 30).await;
    assert_eq!(
        store.release(&first).await.unwrap(),
        ReleaseOutcome::Released
    );
    // As if evicted under memory pressure.
    let gen_key = format!("{}:{{{domain}}}:gen:198.51.100.10", store.key_prefix());
    let _: () = raw.del(&gen_key).await.unwrap();
    let second = must_reserve(&store, &k, &app, 30).await;
    assert!(
        second.generation > first.generation,
        "{} then {}",
        first.generation,
        second.generation
    );
    assert_eq!(
        store.release(&second).await.unwrap(),
        ReleaseOutcome::Released
    );
}

#[tokio::test]
async fn a_value_the_store_did_not_write_is_taken_and_not_listed() {
    let Some((store, mut raw)) = single().await else {
        return;
    };
    let domain = format!("foreign-{}.example", tag());
    let k = key("198.51.100.11", &domain);
    let lease_key = format!("{}:{{{domain}}}:ip:198.51.100.11", store.key_prefix());
    let idx_key = format!("{}:{{{domain}}}:idx", store.key_prefix());
    let _: () = raw.set_ex(&lease_key, "not a lease", 60).await.unwrap();
    let _: () = raw
        .zadd(&idx_key, "198.51.100.11", 99_999_999_999_999_i64)
        .await
        .unwrap();
    let _: () = raw.expire(&idx_key, 60).await.unwrap();
    let outcome = store
        .try_reserve(&k, &AppId::new("app").unwrap(), ttl(30))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ReserveOutcome::Taken,
        "an existing key is never overwritten"
    );
    let rows = store
        .list(&ListFilter::domain(k.domain().clone()))
        .await
        .unwrap();
    assert!(rows.is_empty(), "{rows:?}");
    let _: () = raw.del(&[&lease_key, &idx_key]).await.unwrap();
}

#[tokio::test]
async fn prefixes_keep_stores_apart() {
    let Some((store, _raw)) = single().await else {
        return;
    };
    let url = std::env::var("REDIS_URL").unwrap();
    let other = RedisStore::builder()
        .key_prefix(format!("behave-{}", tag()))
        .connect(&url)
        .await
        .unwrap();
    let k = key("198.51.100.12", &format!("apart-{}.example", tag()));
    let app = AppId::new("app").unwrap();
    let a = must_reserve(&store, &k, &app, 30).await;
    let b = must_reserve(&other, &k, &app, 30).await;
    assert!(
        other
            .list(&ListFilter::app(app.clone()))
            .await
            .unwrap()
            .iter()
            .all(|r| r.lease.id == b.id)
    );
    assert_eq!(store.release(&a).await.unwrap(), ReleaseOutcome::Released);
    assert_eq!(other.release(&b).await.unwrap(), ReleaseOutcome::Released);
}

/// Braces are legal in a normalised domain; they must not break the hash
/// tag (every script touches one slot) nor the listing.
async fn braces_in_domains(store: &RedisStore) {
    let t = tag();
    let app = AppId::new(format!("braces-{t}")).unwrap();
    let mut leases = Vec::new();
    for domain in [
        format!("a}}b{{c.{t}.example"),
        format!("}}{t}.example"),
        format!("{{{t}}}.example"),
    ] {
        let k = key("198.51.100.13", &domain);
        assert_eq!(k.domain().as_str(), domain, "the parser keeps the braces");
        let lease = must_reserve(store, &k, &app, 30).await;
        let rows = store
            .list(&ListFilter::domain(k.domain().clone()))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].lease, lease);
        leases.push(lease);
    }
    let rows = store.list(&ListFilter::app(app.clone())).await.unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for lease in &leases {
        assert_eq!(
            store.release_by_id(&lease.id).await.unwrap(),
            ReleaseOutcome::Released
        );
    }
}

#[tokio::test]
async fn braces_in_domains_single() {
    if let Some((store, _)) = single().await {
        braces_in_domains(&store).await;
    }
}

#[tokio::test]
async fn braces_in_domains_cluster() {
    if let Some(store) = cluster().await {
        braces_in_domains(&store).await;
    }
}

#[tokio::test]
async fn cluster_listing_by_app_reaches_every_master() {
    let Some(store) = cluster().await else {
        return;
    };
    let t = tag();
    let app = AppId::new(format!("masters-{t}")).unwrap();
    // One domain on each master, found with CLUSTER SLOTS and KEYSLOT.
    let urls = std::env::var("REDIS_CLUSTER_URLS").unwrap();
    let first = urls.split(',').next().unwrap();
    let mut raw = redis::Client::open(first)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ranges: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut raw)
        .await
        .unwrap();
    let ranges: Vec<(i64, i64)> = ranges
        .into_iter()
        .map(|r| {
            (
                redis::from_redis_value(r[0].clone()).unwrap(),
                redis::from_redis_value(r[1].clone()).unwrap(),
            )
        })
        .collect();
    assert!(ranges.len() >= 3, "three masters expected: {ranges:?}");
    let mut domains: Vec<Option<TargetDomain>> = vec![None; ranges.len()];
    let mut n = 0;
    while domains.iter().any(Option::is_none) {
        let domain = TargetDomain::parse(&format!("m{n}.{t}.example")).unwrap();
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(format!("{{{domain}}}"))
            .query_async(&mut raw)
            .await
            .unwrap();
        let range = ranges
            .iter()
            .position(|&(start, end)| (start..=end).contains(&slot))
            .unwrap();
        domains[range].get_or_insert(domain);
        n += 1;
    }
    let mut leases = Vec::new();
    for domain in domains.into_iter().flatten() {
        let k = ReservationKey::new("198.51.100.14".parse().unwrap(), domain);
        leases.push(must_reserve(&store, &k, &app, 30).await);
    }
    let rows = store.list(&ListFilter::app(app.clone())).await.unwrap();
    let mut listed: Vec<LeaseId> = rows.into_iter().map(|r| r.lease.id).collect();
    let mut granted: Vec<LeaseId> = leases.iter().map(|l| l.id.clone()).collect();
    listed.sort();
    granted.sort();
    assert_eq!(listed, granted);
    for lease in &leases {
        assert_eq!(
            store.release(lease).await.unwrap(),
            ReleaseOutcome::Released
        );
    }
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    // Bind and drop to find a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = RedisStore::builder()
        .connection_timeout(Duration::from_secs(1))
        .connect(&format!("redis://user:hunter2@127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RedisStoreError::Connect { .. }),
        "{error:?}"
    );
    let error = StoreError::from(error);
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    assert!(!format!("{error:?} {error}").contains("hunter2"));
}

#[tokio::test]
async fn invalid_settings_are_configuration_errors() {
    let error = RedisStore::builder()
        .key_prefix("a{b}")
        .connect("redis://127.0.0.1:6379")
        .await
        .unwrap_err();
    assert!(
        matches!(error, RedisStoreError::InvalidKeyPrefix { ref prefix, .. } if prefix == "a{b}"),
        "{error:?}"
    );
    let error = RedisStore::connect_cluster(Vec::<String>::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, RedisStoreError::NoClusterNodes),
        "{error:?}"
    );
    let error = RedisStore::connect("http://user:hunter2@127.0.0.1:6379")
        .await
        .unwrap_err();
    assert!(
        matches!(error, RedisStoreError::InvalidUrl { .. }),
        "{error:?}"
    );
    assert!(!format!("{error:?} {error}").contains("hunter2"));
    assert!(matches!(
        StoreError::from(error),
        StoreError::Configuration { .. }
    ));
}

/// What the fake server does when a script arrives.
#[derive(Clone, Copy)]
enum OnScript {
    /// Close the connection: the script may or may not have run.
    Drop,
    /// Never answer.
    Hang,
}

/// A loopback server that answers `+OK` to the connection setup and then
/// misbehaves on the first `EVALSHA`/`EVAL`.
async fn fake_redis(on_script: OnScript) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket, on_script));
        }
    });
    addr
}

async fn serve(mut socket: TcpStream, on_script: OnScript) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some((command, used)) = parse_command(&buffer) {
            buffer.drain(..used);
            let name = command.first().map(|c| c.to_ascii_uppercase());
            if matches!(name.as_deref(), Some(b"EVALSHA" | b"EVAL")) {
                match on_script {
                    OnScript::Drop => return,
                    OnScript::Hang => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                }
            }
            if socket.write_all(b"+OK\r\n").await.is_err() {
                return;
            }
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One complete RESP command (`*N` array of bulk strings) at the start of
/// `buffer`, and how many bytes it used.
fn parse_command(buffer: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    fn line(buffer: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buffer[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buffer[at..end], end + 2))
    }
    let (header, mut at) = line(buffer, 0)?;
    let count: usize = std::str::from_utf8(header.strip_prefix(b"*")?)
        .ok()?
        .parse()
        .ok()?;
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, next) = line(buffer, at)?;
        let len: usize = std::str::from_utf8(len.strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        if buffer.len() < next + len + 2 {
            return None;
        }
        parts.push(buffer[next..next + len].to_vec());
        at = next + len + 2;
    }
    Some((parts, at))
}

async fn reserve_against(addr: SocketAddr, response_timeout: Duration) -> StoreError {
    let store = RedisStore::builder()
        .response_timeout(response_timeout)
        .connect(&format!("redis://{addr}"))
        .await
        .expect("the fake server accepts the connection setup");
    let outcome = store
        .try_reserve(
            &key("198.51.100.15", "fake.example"),
            &AppId::new("app").unwrap(),
            ttl(30),
        )
        .await;
    match outcome {
        Err(error) => error,
        Ok(outcome) => panic!("a reserve without a reply must fail, got {outcome:?}"),
    }
}

#[tokio::test]
async fn a_connection_dropped_during_a_reserve_is_outcome_unknown() {
    let addr = fake_redis(OnScript::Drop).await;
    let error = reserve_against(addr, Duration::from_secs(5)).await;
    assert!(
        matches!(error, StoreError::OutcomeUnknown { .. }),
        "{error:?}"
    );
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_reserve_that_times_out_is_outcome_unknown() {
    let addr = fake_redis(OnScript::Hang).await;
    let error = reserve_against(addr, Duration::from_millis(300)).await;
    assert!(
        matches!(error, StoreError::OutcomeUnknown { .. }),
        "{error:?}"
    );
}
