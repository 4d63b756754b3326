//! Store URLs: which backend a URL names, how it is shown without its
//! password, and how it is opened as an `Arc<dyn ReservationStore>`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use proxy_core::{MemoryStore, ReservationStore, StoreError};
use store_mssql::MssqlStore;
use store_postgres::PostgresStore;
use store_redis::RedisStore;
use store_sqlite::SqliteStore;

use crate::error::CliError;

/// The schemes a store URL may start with, for error messages and help.
pub(crate) const STORE_SCHEMES: &str = "sqlite://PATH, sqlite::memory:, postgres://, postgresql://, \
redis://, rediss://, redis+cluster://HOST:PORT,HOST:PORT, rediss+cluster://…, mssql://, sqlserver://, memory://";

/// A store URL that could not be understood. Shows the URL redacted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreUrlError {
    /// No scheme we know.
    #[error("unknown store URL scheme in {url:?}; expected one of: {STORE_SCHEMES}")]
    UnknownScheme {
        /// The URL, password redacted.
        url: String,
    },
    /// The scheme is known but the rest is unusable.
    #[error("invalid store URL {url:?}: {reason}")]
    Invalid {
        /// The URL, password redacted.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Where a SQLite store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqliteLocation {
    /// A private in-memory database.
    Memory,
    /// A file, created if missing.
    File(PathBuf),
    /// A URL with sqlx flags (`?mode=…`), passed as is.
    Url(String),
}

/// A parsed store URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum StoreUrl {
    /// `memory://`: this process only.
    Memory,
    /// `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:`.
    Sqlite(SqliteLocation),
    /// `postgres://…`, `postgresql://…` (as given).
    Postgres(String),
    /// `redis://…`, `rediss://…` (as given).
    Redis(String),
    /// `redis+cluster://[user:pw@]h1:p1,h2:p2`: one node URL each.
    RedisCluster(Vec<String>),
    /// `mssql://…`, `sqlserver://…` (as given).
    Mssql(String),
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({})", self.redacted())
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `text` with the password of its user-info replaced by `***`.
///
/// Works on anything shaped `scheme://[user[:password]@]rest`, including
/// the comma-separated host lists of `redis+cluster://`, which `url::Url`
/// does not parse.
pub(crate) fn redact_url(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some(at) = authority.rfind('@') else {
        return text.to_owned();
    };
    let (userinfo, hosts) = authority.split_at(at);
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{hosts}{tail}"),
        None => text.to_owned(),
    }
}

/// The password in `text`'s user-info as written (still percent-encoded),
/// if any.
fn written_password(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// The password in `text`'s user-info, percent-decoded, if any: registered
/// so that no output line can carry it.
///
/// Percent-decoding only, as URL user-info is encoded: `+` stays `+`
/// (form decoding would turn it into a space, and the real password would
/// then not be scrubbed). A password that does not decode to UTF-8 is kept
/// as written.
pub(crate) fn url_password(text: &str) -> Option<String> {
    let written = written_password(text)?;
    Some(
        percent_encoding::percent_decode_str(written)
            .decode_utf8()
            .map_or_else(|_| written.to_owned(), std::borrow::Cow::into_owned),
    )
}

/// Every form of `text`'s password to keep out of output: decoded, and as
/// written when that differs (a driver may echo the URL as it was given).
pub(crate) fn url_passwords(text: &str) -> Vec<String> {
    let Some(written) = written_password(text) else {
        return Vec::new();
    };
    let mut forms = url_password(text).into_iter().collect::<Vec<_>>();
    if !forms.iter().any(|form| form == written) {
        forms.push(written.to_owned());
    }
    forms
}

impl StoreUrl {
    /// Parses a store URL; see [`STORE_SCHEMES`].
    pub(crate) fn parse(text: &str) -> Result<Self, StoreUrlError> {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        let invalid = |reason| StoreUrlError::Invalid {
            url: redact_url(text),
            reason,
        };
        if lower == "memory://" || lower == "memory:" || lower == "memory" {
            return Ok(StoreUrl::Memory);
        }
        if lower.starts_with("sqlite:") {
            return Self::parse_sqlite(text).ok_or_else(|| invalid("expected sqlite://PATH"));
        }
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(text.to_owned()));
        }
        if lower.starts_with("redis+cluster://") || lower.starts_with("rediss+cluster://") {
            let tls = lower.starts_with("rediss");
            let (_, rest) = text.split_once("://").ok_or_else(|| invalid("no host"))?;
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(authority_end);
            let (userinfo, hosts) = match authority.rsplit_once('@') {
                Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
                None => (String::new(), authority),
            };
            let scheme = if tls { "rediss" } else { "redis" };
            let nodes: Vec<String> = hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|host| format!("{scheme}://{userinfo}{host}{tail}"))
                .collect();
            if nodes.is_empty() {
                return Err(invalid("a cluster URL needs at least one HOST:PORT"));
            }
            return Ok(StoreUrl::RedisCluster(nodes));
        }
        if lower.starts_with("redis://") || lower.starts_with("rediss://") {
            return Ok(StoreUrl::Redis(text.to_owned()));
        }
        if lower.starts_with("mssql://") || lower.starts_with("sqlserver://") {
            return Ok(StoreUrl::Mssql(text.to_owned()));
        }
        Err(StoreUrlError::UnknownScheme {
            url: redact_url(text),
        })
    }

    fn parse_sqlite(text: &str) -> Option<Self> {
        let rest = &text["sqlite:".len()..];
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return None;
        }
        if path == ":memory:" || path.starts_with(":memory:?") {
            return Some(StoreUrl::Sqlite(SqliteLocation::Memory));
        }
        if path.contains('?') {
            return Some(StoreUrl::Sqlite(SqliteLocation::Url(text.to_owned())));
        }
        Some(StoreUrl::Sqlite(SqliteLocation::File(PathBuf::from(path))))
    }

    /// The URL with any password replaced by `***`.
    pub(crate) fn redacted(&self) -> String {
        match self {
            StoreUrl::Memory => "memory://".to_owned(),
            StoreUrl::Sqlite(SqliteLocation::Memory) => "sqlite::memory:".to_owned(),
            StoreUrl::Sqlite(SqliteLocation::File(path)) => format!("sqlite://{}", path.display()),
            StoreUrl::Sqlite(SqliteLocation::Url(url)) => url.clone(),
            StoreUrl::Postgres(url) | StoreUrl::Redis(url) | StoreUrl::Mssql(url) => {
                redact_url(url)
            }
            StoreUrl::RedisCluster(nodes) => {
                let first = nodes.first().map(|n| redact_url(n)).unwrap_or_default();
                let (scheme, rest) = first.split_once("://").unwrap_or(("redis", ""));
                let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
                let (authority, tail) = rest.split_at(authority_end);
                let mut text = format!("{scheme}+cluster://{authority}");
                for node in nodes.iter().skip(1) {
                    if let Some((_, rest)) = node.split_once("://") {
                        text.push(',');
                        text.push_str(&host_of(rest));
                    }
                }
                text.push_str(tail);
                text
            }
        }
    }

    /// The passwords this URL carries (to keep them out of every output).
    pub(crate) fn passwords(&self) -> Vec<String> {
        match self {
            StoreUrl::Postgres(url) | StoreUrl::Redis(url) | StoreUrl::Mssql(url) => {
                url_passwords(url)
            }
            // Every node URL carries the same user-info.
            StoreUrl::RedisCluster(nodes) => {
                nodes.first().map(|n| url_passwords(n)).unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }

    /// The backend's short name.
    pub(crate) fn backend(&self) -> &'static str {
        match self {
            StoreUrl::Memory => "memory",
            StoreUrl::Sqlite(_) => "sqlite",
            StoreUrl::Postgres(_) => "postgres",
            StoreUrl::Redis(_) | StoreUrl::RedisCluster(_) => "redis",
            StoreUrl::Mssql(_) => "mssql",
        }
    }

    /// Connects (or opens) the store. SQLite files are created and migrated
    /// on open; the server stores need `migrate` once. Failures name the
    /// URL (redacted).
    pub(crate) async fn open(&self) -> Result<OpenStore, CliError> {
        tracing::debug!(store = %self, "opening store");
        self.open_backend()
            .await
            .map_err(|source| CliError::StoreOpen {
                url: self.redacted(),
                source,
            })
    }

    async fn open_backend(&self) -> Result<OpenStore, StoreError> {
        Ok(match self {
            StoreUrl::Memory => OpenStore::Memory(MemoryStore::new()),
            StoreUrl::Sqlite(location) => OpenStore::Sqlite(match location {
                SqliteLocation::Memory => SqliteStore::in_memory().await?,
                SqliteLocation::File(path) => SqliteStore::open(path).await?,
                SqliteLocation::Url(url) => SqliteStore::connect(url).await?,
            }),
            StoreUrl::Postgres(url) => OpenStore::Postgres(PostgresStore::connect(url).await?),
            StoreUrl::Redis(url) => OpenStore::Redis(RedisStore::connect(url).await?),
            StoreUrl::RedisCluster(nodes) => {
                OpenStore::Redis(RedisStore::connect_cluster(nodes).await?)
            }
            StoreUrl::Mssql(url) => OpenStore::Mssql(MssqlStore::connect(url).await?),
        })
    }
}

/// `host[:port]` of `user:pw@host:port/path`.
fn host_of(rest: &str) -> String {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_owned()
}

/// An opened store, by backend, so that `migrate` can reach the backend's
/// own migration.
#[derive(Debug, Clone)]
pub(crate) enum OpenStore {
    Memory(MemoryStore),
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
    Redis(RedisStore),
    Mssql(MssqlStore),
}

/// What `migrate` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MigrateOutcome {
    /// The backend's migrations ran (they are idempotent).
    Applied,
    /// The backend has no schema to migrate.
    NothingToDo,
}

impl OpenStore {
    /// The store as the acquire loop and the harnesses take it.
    pub(crate) fn shared(&self) -> Arc<dyn ReservationStore> {
        match self {
            OpenStore::Memory(s) => Arc::new(s.clone()),
            OpenStore::Sqlite(s) => Arc::new(s.clone()),
            OpenStore::Postgres(s) => Arc::new(s.clone()),
            OpenStore::Redis(s) => Arc::new(s.clone()),
            OpenStore::Mssql(s) => Arc::new(s.clone()),
        }
    }

    /// Runs the backend's migrations.
    pub(crate) async fn migrate(&self) -> Result<MigrateOutcome, StoreError> {
        match self {
            OpenStore::Memory(_) | OpenStore::Redis(_) => return Ok(MigrateOutcome::NothingToDo),
            OpenStore::Sqlite(s) => s.migrate().await?,
            OpenStore::Postgres(s) => s.migrate().await?,
            OpenStore::Mssql(s) => s.migrate().await?,
        }
        Ok(MigrateOutcome::Applied)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(StoreUrl::parse("memory://").unwrap(), StoreUrl::Memory);
        assert_eq!(
            StoreUrl::parse("sqlite://data/r.db").unwrap(),
            StoreUrl::Sqlite(SqliteLocation::File("data/r.db".into()))
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///var/r.db").unwrap(),
            StoreUrl::Sqlite(SqliteLocation::File("/var/r.db".into()))
        );
        assert_eq!(
            StoreUrl::parse("sqlite::memory:").unwrap(),
            StoreUrl::Sqlite(SqliteLocation::Memory)
        );
        assert!(matches!(
            StoreUrl::parse("sqlite://r.db?mode=ro").unwrap(),
            StoreUrl::Sqlite(SqliteLocation::Url(_))
        ));
        assert!(matches!(
            StoreUrl::parse("postgresql://u@h/db").unwrap(),
            StoreUrl::Postgres(_)
        ));
        assert!(matches!(
            StoreUrl::parse("rediss://h:6380").unwrap(),
            StoreUrl::Redis(_)
        ));
        assert!(matches!(
            StoreUrl::parse("sqlserver://sa:pw@h/db").unwrap(),
            StoreUrl::Mssql(_)
        ));
        let err = StoreUrl::parse("mysql://root:hunter2@h/db").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("mysql://root:***@h/db"), "{text}");
        assert!(text.contains("postgres://"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(StoreUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn cluster_nodes_share_credentials() {
        let url =
            StoreUrl::parse("redis+cluster://u:s3cret@127.0.0.1:7000,127.0.0.1:7001/").unwrap();
        assert_eq!(
            url,
            StoreUrl::RedisCluster(vec![
                "redis://u:s3cret@127.0.0.1:7000/".into(),
                "redis://u:s3cret@127.0.0.1:7001/".into(),
            ])
        );
        assert_eq!(
            url.redacted(),
            "redis+cluster://u:***@127.0.0.1:7000,127.0.0.1:7001/"
        );
        assert_eq!(url.passwords(), ["s3cret"]);
        let tls = StoreUrl::parse("rediss+cluster://h1:1,h2:2").unwrap();
        assert_eq!(tls.redacted(), "rediss+cluster://h1:1,h2:2");
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("postgres://app:p%40ss@db:5432/x?sslmode=require"),
            "postgres://app:***@db:5432/x?sslmode=require"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("redis://:pw@h"), "redis://:***@h");
        assert_eq!(
            url_password("postgres://app:p%40ss@db/x").as_deref(),
            Some("p@ss")
        );
        assert_eq!(url_password("postgres://app@db/x"), None);
        let url = StoreUrl::parse("mssql://sa:Secret1@db/x").unwrap();
        assert!(!format!("{url} {url:?}").contains("Secret1"));
    }

    #[test]
    fn plus_in_a_password_is_decoded_and_scrubbed() {
        use crate::error::{register_secret, scrub};
        // `+` is a literal plus in user-info, `%2B` an encoded one: both
        // decode to `+`, never to a space.
        let text = "postgres://app:pl+us%2Bpw@db:5432/x";
        assert_eq!(url_password(text).as_deref(), Some("pl+us+pw"));
        assert_eq!(
            url_password("redis://:a+b@h").as_deref(),
            Some("a+b"),
            "a literal plus"
        );
        assert_eq!(
            url_password("redis://:a%2Bb@h").as_deref(),
            Some("a+b"),
            "an encoded plus"
        );
        let url = StoreUrl::parse(text).unwrap();
        assert_eq!(url.passwords(), ["pl+us+pw", "pl+us%2Bpw"]);
        for password in url.passwords() {
            register_secret(&password);
        }
        let line = scrub(
            "auth failed for pl+us+pw (encoded pl%2Bus%2Bpw) in postgres://app:pl+us%2Bpw@db:5432/x",
        );
        assert!(!line.contains("pl+us"), "{line}");
        assert!(!line.contains("pl%2Bus"), "{line}");
        assert_eq!(
            line,
            "auth failed for *** (encoded ***) in postgres://app:***@db:5432/x"
        );
    }
}
