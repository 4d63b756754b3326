//! The whole flow — acquire → use → release — with a scripted provider and
//! verifier against the in-memory store.
//!
//! Run with `cargo run -p proxy-core --example acquire_release`. Real
//! deployments use a provider from `proxy-providers`, the `JudgeVerifier`
//! from `proxy-judge` and a shared store (`store-sqlite`,
//! `store-postgres`, `store-redis`, `store-mssql`).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use proxy_core::{
    InvalidInput, IpVerifier, ListFilter, MemoryStore, ProxyData, ProxyManager, ProxyProvider,
    ProxyUrl, ReservationStore, SessionId, Settings, VerifiedExit, VerifyError, async_trait,
};

/// A gateway in the Bright Data style: the session id goes in the username.
#[derive(Debug)]
struct ExampleGateway(ProxyData);

impl ProxyProvider for ExampleGateway {
    fn build_proxy_url(&self, session: &SessionId) -> Result<ProxyUrl, InvalidInput> {
        let country = self
            .0
            .country()
            .map(|cc| format!("-country-{cc}"))
            .unwrap_or_default();
        ProxyUrl::from_gateway(&self.0).with_credentials(
            format!("{}{country}-session-{session}", self.0.username()),
            self.0.password().clone(),
        )
    }
    fn name(&self) -> &str {
        "example"
    }
    fn country(&self) -> Option<&str> {
        self.0.country()
    }
    fn port(&self) -> u16 {
        self.0.port()
    }
}

/// Pretends each session exits from one of three addresses, so with four
/// workers some collide and retry with a fresh session.
#[derive(Debug, Default)]
struct ExampleVerifier {
    sessions: AtomicU32,
}

#[async_trait]
impl IpVerifier for ExampleVerifier {
    async fn verify(&self, _proxy: &ProxyUrl) -> Result<VerifiedExit, VerifyError> {
        let n = self.sessions.fetch_add(1, Ordering::Relaxed);
        let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, (n % 3 + 1) as u8));
        Ok(VerifiedExit::new(ip, "example-judge", 0))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = ProxyData::new("gw.example.net", 22225, "lum-customer-acme", "not-printed")?
        .with_country("hr")?;
    let store: Arc<dyn ReservationStore> = Arc::new(MemoryStore::new());
    // After three collisions in a row the loop pauses; keep that short here.
    let mut settings = Settings::default();
    settings.recheck_interval = Duration::from_millis(100);
    let manager = ProxyManager::builder()
        .provider(ExampleGateway(data))
        .verifier(ExampleVerifier::default())
        .store(Arc::clone(&store))
        .target_domain("https://gov.example/")
        .app_id("example-app")
        .settings(settings)
        .build()?;

    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let manager = manager.clone();
            tokio::spawn(async move {
                let proxy = manager.acquire().await?;
                println!(
                    "worker {worker}: {} via {} (session {}, lease {} gen {}, {} collisions)",
                    proxy.ip,
                    proxy.url,
                    proxy.session_id,
                    proxy.lease.id,
                    proxy.lease.generation,
                    proxy.stats.collisions
                );
                // ... scrape gov.example through proxy.url.expose_url() ...
                tokio::time::sleep(Duration::from_millis(50)).await;
                let outcome = manager.release(&proxy).await?;
                println!("worker {worker}: released {} ({outcome:?})", proxy.ip);
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .collect();
    for worker in workers {
        worker.await?.map_err(|e| e as Box<dyn std::error::Error>)?;
    }
    let active = store.list(&ListFilter::all()).await?;
    println!("active reservations after release: {}", active.len());
    Ok(())
}
