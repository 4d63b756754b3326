//! The command line (clap).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Configuration: --config FILE (TOML: [store], [settings], [provider], [judge]; see
proxyctl.example.toml), overridden by environment variables (PROXYCTL_STORE,
PROXYCTL_APP, PROXYCTL_PROVIDER_PASSWORD, PROXY_JUDGES, PROXY_TTL_SECONDS, …),
overridden by flags.

Store URLs: sqlite://PATH, sqlite::memory:, postgres://…, redis://…, rediss://…,
redis+cluster://HOST:PORT,HOST:PORT, mssql://…, sqlserver://…, memory://

Exit codes:
  0  success
  1  the command failed (acquire gave up, nothing to release, no judge answered)
  2  usage: bad flag or argument value (e.g. an invalid domain)
  3  configuration: config file missing or invalid, unknown store scheme,
     provider settings, proxy credentials refused (407), store schema missing
  4  the store is unavailable (or a write's outcome is unknown)
  5  invariant violated: two workers held one exit IP for the domain at once";

/// proxy-reserve's command-line tool: demo, store operations, judges,
/// provider URLs, benchmarks.
#[derive(Debug, Parser)]
#[command(name = "proxyctl", version, about, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, value_name = "FILE", env = "PROXYCTL_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Print one JSON object instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace);
    /// RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run N workers through the real acquire loop against an in-process
    /// fake network and check that no exit IP was ever held twice at once.
    Demo(DemoArgs),
    /// Create or upgrade the store's schema (idempotent).
    Migrate(StoreArgs),
    /// Acquire a verified, reserved proxy for a domain and print it and
    /// its lease (the lease stays until its TTL or `release`).
    Acquire(Box<AcquireArgs>),
    /// Release an active reservation by its lease id (operator action).
    Release(ReleaseArgs),
    /// List active reservations.
    List(ListArgs),
    /// Delete released and expired history older than a duration.
    Sweep(SweepArgs),
    /// Proxy judges.
    #[command(subcommand)]
    Judges(JudgesCommand),
    /// Run the self-hostable judge (GET /ip, /json, /) until Ctrl-C.
    ServeJudge(ServeJudgeArgs),
    /// Provider URLs.
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// Benchmarks (one JSON line with --json).
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Where reservations live.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreArgs {
    /// Store URL (see below for schemes).
    #[arg(
        long,
        value_name = "URL",
        env = "PROXYCTL_STORE",
        hide_env_values = true
    )]
    pub(crate) store: Option<String>,
}

/// A provider account, overriding the config file's `[provider]`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ProviderArgs {
    /// Provider name (brightdata, oxylabs, decodo, netnut, iproyal, soax,
    /// template, …).
    #[arg(long, value_name = "NAME")]
    pub(crate) provider: Option<String>,
    /// Gateway address, overriding the provider's documented one.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) gateway: Option<String>,
    /// Account username.
    #[arg(long, value_name = "U")]
    pub(crate) username: Option<String>,
    /// Account password (prefer PROXYCTL_PROVIDER_PASSWORD: flags show in
    /// the process list).
    #[arg(
        long,
        value_name = "PW",
        env = "PROXYCTL_PROVIDER_PASSWORD",
        hide_env_values = true
    )]
    pub(crate) password: Option<String>,
    /// Exit country (ISO 3166-1 alpha-2).
    #[arg(long, value_name = "CC")]
    pub(crate) country: Option<String>,
}

/// Which judges, and how to treat their answers.
#[derive(Debug, Clone, Args)]
pub(crate) struct JudgeArgs {
    /// A judge URL (repeat for several); replaces the configured judges.
    #[arg(long = "judge", value_name = "URL")]
    pub(crate) judges: Vec<String>,
    /// Accept private and loopback exit addresses (testing on loopback).
    #[arg(long)]
    pub(crate) allow_private_ips: bool,
    /// Extra trusted root certificates (PEM), e.g. a self-hosted judge's.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,
}

/// `demo`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DemoArgs {
    /// Store URL; default: a SQLite file in a temporary directory.
    #[arg(
        long,
        value_name = "URL",
        env = "PROXYCTL_STORE",
        hide_env_values = true
    )]
    pub(crate) store: Option<String>,
    /// Concurrent workers.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) workers: u32,
    /// Jobs (pages to fetch) in all.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) jobs: u32,
    /// Exit addresses of the fake gateway.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub(crate) exits: u8,
}

/// `acquire`.
#[derive(Debug, Clone, Args)]
pub(crate) struct AcquireArgs {
    /// Target domain the exit IP is reserved for.
    #[arg(long, value_name = "D")]
    pub(crate) domain: String,
    /// Application id recorded with the reservation (default PROXYCTL_APP,
    /// then `app_id` in the config, then `proxyctl`).
    #[arg(long, value_name = "A", env = "PROXYCTL_APP")]
    pub(crate) app: Option<String>,
    /// Reservation TTL in seconds (default: settings).
    #[arg(long, value_name = "S")]
    pub(crate) ttl: Option<u64>,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) provider: ProviderArgs,
    #[command(flatten)]
    pub(crate) judges: JudgeArgs,
}

/// `release`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ReleaseArgs {
    /// Lease id, as printed by `acquire` and `list`.
    #[arg(long, value_name = "ID")]
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

/// `list`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ListArgs {
    /// Only this domain.
    #[arg(long, value_name = "D")]
    pub(crate) domain: Option<String>,
    /// Only this application.
    #[arg(long, value_name = "A")]
    pub(crate) app: Option<String>,
    /// Also released and expired history (stores that keep it).
    #[arg(long)]
    pub(crate) all: bool,
    /// At most this many rows, newest first.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u32>,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

/// `sweep`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SweepArgs {
    /// Delete history older than this (e.g. `7d`, `12h`, `30m`).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub(crate) purge_older_than: std::time::Duration,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

/// `judges …`.
#[derive(Debug, Subcommand)]
pub(crate) enum JudgesCommand {
    /// Ask every judge once and show which answer and what IP they see.
    Check(JudgesCheckArgs),
}

/// `judges check`.
#[derive(Debug, Clone, Args)]
pub(crate) struct JudgesCheckArgs {
    /// Ask through this proxy (e.g. http://user:pw@gw:port); default direct.
    #[arg(long, value_name = "PROXY_URL")]
    pub(crate) via: Option<String>,
    /// Per-judge timeout in seconds.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub(crate) timeout: f64,
    #[command(flatten)]
    pub(crate) judges: JudgeArgs,
}

/// `serve-judge`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeJudgeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
}

/// `provider …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ProviderCommand {
    /// Print the proxy URL a provider builds for a session (password
    /// redacted unless --reveal).
    Url(ProviderUrlArgs),
}

/// `provider url`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ProviderUrlArgs {
    /// Provider name.
    #[arg(long, value_name = "NAME")]
    pub(crate) provider: Option<String>,
    /// Gateway host (default: the provider's documented gateway).
    #[arg(long, value_name = "H")]
    pub(crate) host: Option<String>,
    /// Gateway port (default: the documented port for the protocol).
    #[arg(long, value_name = "P")]
    pub(crate) port: Option<u16>,
    /// Account username.
    #[arg(long, value_name = "U")]
    pub(crate) username: Option<String>,
    /// Account password (or PROXYCTL_PROVIDER_PASSWORD).
    #[arg(
        long,
        value_name = "PW",
        env = "PROXYCTL_PROVIDER_PASSWORD",
        hide_env_values = true
    )]
    pub(crate) password: Option<String>,
    /// Exit country (ISO 3166-1 alpha-2).
    #[arg(long, value_name = "CC")]
    pub(crate) country: Option<String>,
    /// Protocol to the gateway: http, https, socks5h.
    #[arg(long, value_name = "PROTO")]
    pub(crate) protocol: Option<String>,
    /// Session id (default: a fresh one in the provider's alphabet).
    #[arg(long, value_name = "ID")]
    pub(crate) session: Option<String>,
    /// Print the password too.
    #[arg(long)]
    pub(crate) reveal: bool,
}

/// `bench …`.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Reserve attempts per second against a store (testkit's harness).
    Store(BenchStoreArgs),
    /// The whole acquire loop: N workers acquire → hold → release.
    Acquire(Box<BenchAcquireArgs>),
}

/// `bench store`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchStoreArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) clients: u32,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) seconds: f64,
    /// Size of the key space.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) keys: u32,
}

/// `bench acquire`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchAcquireArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Target domain.
    #[arg(long, value_name = "D", default_value = "bench.example")]
    pub(crate) domain: String,
    /// Concurrent workers.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) workers: u32,
    /// Acquisitions in all.
    #[arg(long, default_value_t = 200)]
    pub(crate) acquisitions: u64,
    /// How long each worker holds a proxy before releasing it.
    #[arg(long, default_value_t = 10)]
    pub(crate) hold_ms: u64,
    /// Exit addresses of the in-process fake gateway (without --gateway;
    /// default: twice the workers, at least 16).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub(crate) exits: Option<u8>,
    /// Give sessions of the in-process gateway random exits (as residential
    /// pools do, so workers collide) instead of taking exits in turn.
    #[arg(long)]
    pub(crate) random_exits: bool,
    #[command(flatten)]
    pub(crate) provider: ProviderArgs,
    #[command(flatten)]
    pub(crate) judges: JudgeArgs,
}

/// A humantime duration (`90s`, `15m`, `7d`).
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| e.to_string())
}
