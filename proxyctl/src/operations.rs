//! Store operations: `migrate`, `acquire`, `release`, `list`, `sweep`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use proxy_core::{
    AppId, LeaseId, ListFilter, ProxyManager, ReleaseOutcome, Reservation, ReservationStore,
    TargetDomain, Ttl,
};
use serde::Serialize;

use crate::cli::{AcquireArgs, ListArgs, ReleaseArgs, StoreArgs, SweepArgs};
use crate::config::Config;
use crate::error::CliError;
use crate::output::{ms, print, print_json, print_pairs, table};
use crate::store_url::MigrateOutcome;

/// `migrate`.
pub(crate) async fn migrate(config: &Config, args: &StoreArgs, json: bool) -> Result<(), CliError> {
    let (url, store) = config.open_store(args).await?;
    let outcome = store.migrate().await?;
    #[derive(Serialize)]
    struct Migrated {
        store: String,
        backend: &'static str,
        migrated: bool,
    }
    if json {
        return print_json(&Migrated {
            store: url.redacted(),
            backend: url.backend(),
            migrated: outcome == MigrateOutcome::Applied,
        });
    }
    match outcome {
        MigrateOutcome::Applied => print(format!("{url}: schema up to date")),
        MigrateOutcome::NothingToDo => print(format!(
            "{url}: the {} store has no schema to migrate; nothing to do",
            url.backend()
        )),
    }
}

/// What `acquire` prints.
#[derive(Debug, Serialize)]
struct Acquired {
    /// The proxy URL, password redacted.
    proxy: String,
    ip: String,
    session: String,
    label: String,
    judge: String,
    domain: String,
    app_id: String,
    lease_id: String,
    generation: u64,
    reserved_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    attempts: u32,
    collisions: u32,
    verification_failures: u32,
    judge_failovers: u32,
    elapsed_ms: f64,
}

/// `acquire`.
pub(crate) async fn acquire(
    config: &Config,
    args: &AcquireArgs,
    json: bool,
) -> Result<(), CliError> {
    let domain = TargetDomain::parse(&args.domain).map_err(|source| CliError::InvalidArgument {
        what: "--domain",
        source,
    })?;
    let app_id = AppId::new(config.app_id(args.app.as_deref())).map_err(|source| {
        CliError::InvalidArgument {
            what: "--app",
            source,
        }
    })?;
    let mut settings = config.settings(&args.judges)?;
    if let Some(ttl) = args.ttl {
        settings.ttl = Ttl::from_secs(ttl).map_err(|source| CliError::InvalidArgument {
            what: "--ttl",
            source,
        })?;
    }
    let provider = config.provider(&args.provider)?;
    let verifier = config.verifier(&settings, &args.judges)?;
    let (_, store) = config.open_store(&args.store).await?;
    let manager = ProxyManager::builder()
        .provider(provider)
        .verifier(verifier)
        .store(store.shared())
        .target_domain(domain.as_str())
        .app_id(app_id.as_str())
        .settings(settings)
        .build()
        .map_err(|e| CliError::BadValue {
            what: "acquire settings",
            value: domain.to_string(),
            reason: e.to_string(),
        })?;
    let proxy = manager.acquire().await?;
    let acquired = Acquired {
        proxy: proxy.url.redacted(),
        ip: proxy.ip.to_string(),
        session: proxy.session_id.to_string(),
        label: proxy.label.clone(),
        judge: proxy.judge.clone(),
        domain: proxy.domain.to_string(),
        app_id: proxy.lease.app_id.to_string(),
        lease_id: proxy.lease.id.to_string(),
        generation: proxy.lease.generation,
        reserved_at: proxy.lease.reserved_at,
        expires_at: proxy.lease.expires_at,
        attempts: proxy.stats.attempts,
        collisions: proxy.stats.collisions,
        verification_failures: proxy.stats.verification_failures,
        judge_failovers: proxy.stats.judge_failovers,
        elapsed_ms: ms(proxy.stats.elapsed),
    };
    if json {
        return print_json(&acquired);
    }
    print_pairs(
        "acquired",
        [
            ("proxy", acquired.proxy.clone()),
            ("exit IP", acquired.ip.clone()),
            ("session", acquired.session.clone()),
            ("provider", acquired.label.clone()),
            ("verified by", acquired.judge.clone()),
            ("domain", acquired.domain.clone()),
            ("app", acquired.app_id.clone()),
            ("lease id", acquired.lease_id.clone()),
            ("generation", acquired.generation.to_string()),
            ("reserved at", acquired.reserved_at.to_rfc3339()),
            ("expires at", acquired.expires_at.to_rfc3339()),
            (
                "attempts",
                format!(
                    "{} ({} collisions, {} verification failures, {} judge failovers) in {:.1} ms",
                    acquired.attempts,
                    acquired.collisions,
                    acquired.verification_failures,
                    acquired.judge_failovers,
                    acquired.elapsed_ms
                ),
            ),
        ],
    )?;
    print(format!(
        "The lease stays until {} unless released: proxyctl release --id {}",
        acquired.expires_at.to_rfc3339(),
        acquired.lease_id
    ))
}

/// `release`.
pub(crate) async fn release(
    config: &Config,
    args: &ReleaseArgs,
    json: bool,
) -> Result<(), CliError> {
    let (_, store) = config.open_store(&args.store).await?;
    let id = LeaseId::new(args.id.trim());
    let outcome = store.shared().release_by_id(&id).await?;
    if json {
        #[derive(Serialize)]
        struct Released<'a> {
            id: &'a str,
            outcome: ReleaseOutcome,
        }
        print_json(&Released {
            id: id.as_str(),
            outcome,
        })?;
    }
    match outcome {
        ReleaseOutcome::Released => {
            if !json {
                print(format!("released {id}"))?;
            }
            Ok(())
        }
        _ => Err(CliError::NotHeld { id: id.to_string() }),
    }
}

/// One listed reservation.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    generation: u64,
    ip: String,
    domain: String,
    app_id: String,
    state: String,
    reserved_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    released_at: Option<DateTime<Utc>>,
}

impl From<&Reservation> for Row {
    fn from(r: &Reservation) -> Self {
        Self {
            id: r.lease.id.to_string(),
            generation: r.lease.generation,
            ip: r.lease.ip.to_string(),
            domain: r.lease.domain.to_string(),
            app_id: r.lease.app_id.to_string(),
            state: r.state.to_string(),
            reserved_at: r.lease.reserved_at,
            expires_at: r.lease.expires_at,
            released_at: r.released_at,
        }
    }
}

/// `list`.
pub(crate) async fn list(config: &Config, args: &ListArgs, json: bool) -> Result<(), CliError> {
    let mut filter = ListFilter::all();
    if let Some(domain) = &args.domain {
        filter.domain =
            Some(
                TargetDomain::parse(domain).map_err(|source| CliError::InvalidArgument {
                    what: "--domain",
                    source,
                })?,
            );
    }
    if let Some(app) = &args.app {
        filter = filter.with_app(AppId::new(app.as_str()).map_err(|source| {
            CliError::InvalidArgument {
                what: "--app",
                source,
            }
        })?);
    }
    if args.all {
        filter = filter.with_released();
    }
    if let Some(limit) = args.limit {
        filter = filter.with_limit(limit);
    }
    let (url, store) = config.open_store(&args.store).await?;
    let store: Arc<dyn ReservationStore> = store.shared();
    let reservations = store.list(&filter).await?;
    let rows: Vec<Row> = reservations.iter().map(Row::from).collect();
    if json {
        #[derive(Serialize)]
        struct Listing<'a> {
            store: String,
            count: usize,
            reservations: &'a [Row],
        }
        return print_json(&Listing {
            store: url.redacted(),
            count: rows.len(),
            reservations: &rows,
        });
    }
    if rows.is_empty() {
        return print(format!("no reservations in {url}"));
    }
    let mut out = table([
        "id", "gen", "exit IP", "domain", "app", "state", "reserved", "expires",
    ]);
    let now = Utc::now();
    for row in &rows {
        let expires = if row.state == "held" || row.state == "cooling_down" {
            let left = (row.expires_at - now).num_seconds().max(0);
            format!(
                "in {}",
                humantime::format_duration(std::time::Duration::from_secs(
                    u64::try_from(left).unwrap_or(0)
                ))
            )
        } else {
            row.expires_at.format("%Y-%m-%d %H:%M:%S").to_string()
        };
        out.add_row([
            row.id.clone(),
            row.generation.to_string(),
            row.ip.clone(),
            row.domain.clone(),
            row.app_id.clone(),
            row.state.clone(),
            row.reserved_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            expires,
        ]);
    }
    print(out)?;
    print(format!("{} reservation(s)", rows.len()))
}

/// `sweep`.
pub(crate) async fn sweep(config: &Config, args: &SweepArgs, json: bool) -> Result<(), CliError> {
    let (url, store) = config.open_store(&args.store).await?;
    let store = store.shared();
    let keeps_history = store.info().keeps_history;
    let purged = store.purge_released(args.purge_older_than).await?;
    if json {
        #[derive(Serialize)]
        struct Swept {
            store: String,
            purged: u64,
            older_than_s: u64,
            keeps_history: bool,
        }
        return print_json(&Swept {
            store: url.redacted(),
            purged,
            older_than_s: args.purge_older_than.as_secs(),
            keeps_history,
        });
    }
    if !keeps_history {
        return print(format!(
            "{url}: the {} store keeps no history; nothing to purge",
            url.backend()
        ));
    }
    print(format!(
        "{url}: purged {purged} released or expired reservation(s) older than {}",
        humantime::format_duration(args.purge_older_than)
    ))
}
