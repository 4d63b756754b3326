//! Where the server is (connection strings and URLs), opening a session on
//! it with the SET options the filtered index needs, and the pool's
//! connection manager.

use std::fmt;
use std::sync::{Arc, Mutex};

use percent_encoding::percent_decode_str;
use proxy_core::secrecy::{ExposeSecret, SecretString};
use tiberius::{AuthMethod, Client, Config, EncryptionLevel, Row, ToSql};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use crate::error::MssqlStoreError;
use crate::options::MssqlStoreOptions;

/// The default SQL Server port.
pub const DEFAULT_PORT: u16 = 1433;

/// A tiberius client over Tokio's TCP stream.
pub(crate) type TdsClient = Client<Compat<TcpStream>>;

/// Where and how to log in: a tiberius [`Config`] plus a description of
/// the server that is safe to show (`host:port`, never credentials).
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) config: Config,
    pub(crate) server: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Wraps a programmatically built config.
    pub(crate) fn from_config(config: Config) -> Self {
        let server = config.get_addr();
        Self { config, server }
    }

    /// Reads an ADO.NET connection string (`server=tcp:host,1433;user
    /// id=…`), a JDBC URL (`jdbc:sqlserver://…`) or an `mssql://` /
    /// `sqlserver://` URL.
    pub(crate) fn parse(text: &str) -> Result<Self, MssqlStoreError> {
        let trimmed = text.trim();
        let lower = trimmed.get(..12).unwrap_or(trimmed).to_ascii_lowercase();
        if lower.starts_with("mssql://") || lower.starts_with("sqlserver://") {
            return UrlParts::parse(trimmed)?.into_target();
        }
        // The parsers' messages can quote characters of the text (and so of
        // a password): keep only which form failed.
        if lower.starts_with("jdbc:") {
            return Config::from_jdbc_string(trimmed)
                .map(Self::from_config)
                .map_err(|_| MssqlStoreError::InvalidConnectionString {
                    reason: "not a valid JDBC URL (quote values holding ';' or '=' in braces)"
                        .to_owned(),
                });
        }
        if !trimmed.contains('=') {
            return Err(MssqlStoreError::InvalidConnectionString {
                reason: "expected an ADO.NET connection string (key=value;…), a jdbc:sqlserver:// \
                         URL or an mssql://user:password@host:port/database URL"
                    .to_owned(),
            });
        }
        Config::from_ado_string(trimmed)
            .map(Self::from_config)
            .map_err(|_| MssqlStoreError::InvalidConnectionString {
                reason: "not a valid ADO.NET connection string (quote values holding ';' or '=' \
                         with single or double quotes)"
                    .to_owned(),
            })
    }
}

/// The parts of an `mssql://user:password@host:port/database?option=value`
/// URL, decoded.
pub(crate) struct UrlParts {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: SecretString,
    pub(crate) database: Option<String>,
    pub(crate) encrypt: Option<EncryptionLevel>,
    pub(crate) trust_server_certificate: bool,
    pub(crate) trust_server_certificate_ca: Option<String>,
    pub(crate) application_name: Option<String>,
    pub(crate) instance: Option<String>,
}

/// Query parameters an `mssql://` URL may carry.
pub(crate) const URL_PARAMETERS: [&str; 5] = [
    "encrypt",
    "trust_server_certificate",
    "trust_server_certificate_ca",
    "application_name",
    "instance",
];

impl UrlParts {
    pub(crate) fn parse(text: &str) -> Result<Self, MssqlStoreError> {
        let invalid = |reason: String| MssqlStoreError::InvalidConnectionString { reason };
        // url's own error never quotes the input.
        let url = url::Url::parse(text).map_err(|e| invalid(format!("not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "mssql" | "sqlserver") {
            return Err(invalid(format!(
                "scheme {:?} is neither mssql nor sqlserver",
                url.scheme()
            )));
        }
        let host = match url.host() {
            Some(url::Host::Domain(domain)) if !domain.is_empty() => domain.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(invalid("the URL names no host".to_owned())),
        };
        let user = decode("user name", url.username())?;
        if user.is_empty() {
            return Err(invalid(
                "the URL names no user (mssql://user:password@host/database); for Windows \
                 authentication use an ADO.NET connection string"
                    .to_owned(),
            ));
        }
        let password = SecretString::from(decode("password", url.password().unwrap_or(""))?);
        let database = decode("database", url.path().trim_start_matches('/'))?;
        if database.contains('/') {
            return Err(invalid(format!(
                "the path must be a single database name, got {database:?}"
            )));
        }
        let mut parts = UrlParts {
            host,
            port: url.port().unwrap_or(DEFAULT_PORT),
            user,
            password,
            database: Some(database).filter(|d| !d.is_empty()),
            encrypt: None,
            trust_server_certificate: false,
            trust_server_certificate_ca: None,
            application_name: None,
            instance: None,
        };
        for (key, value) in url.query_pairs() {
            let flag = |value: &str| match value.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" | "on" => Ok(true),
                "false" | "no" | "0" | "off" => Ok(false),
                _ => Err(invalid(format!(
                    "{key} must be true or false, got {value:?}"
                ))),
            };
            match key.as_ref() {
                "encrypt" => {
                    parts.encrypt = Some(if flag(&value)? {
                        EncryptionLevel::Required
                    } else {
                        // Off still encrypts the login (SQL Server insists).
                        EncryptionLevel::Off
                    });
                }
                "trust_server_certificate" => parts.trust_server_certificate = flag(&value)?,
                "trust_server_certificate_ca" => {
                    parts.trust_server_certificate_ca = Some(value.into_owned());
                }
                "application_name" => parts.application_name = Some(value.into_owned()),
                "instance" => parts.instance = Some(value.into_owned()),
                other => {
                    return Err(invalid(format!(
                        "unknown URL parameter {other:?} (known: {})",
                        URL_PARAMETERS.join(", ")
                    )));
                }
            }
        }
        Ok(parts)
    }

    pub(crate) fn into_target(self) -> Result<Target, MssqlStoreError> {
        let mut config = Config::new();
        config.host(&self.host);
        config.port(self.port);
        config.authentication(AuthMethod::sql_server(
            &self.user,
            self.password.expose_secret(),
        ));
        if let Some(database) = &self.database {
            config.database(database);
        }
        if let Some(level) = self.encrypt {
            config.encryption(level);
        }
        if self.trust_server_certificate {
            config.trust_cert();
        }
        if let Some(ca) = &self.trust_server_certificate_ca {
            config.trust_cert_ca(ca);
        }
        if let Some(name) = &self.application_name {
            config.application_name(name);
        }
        if let Some(instance) = &self.instance {
            config.instance_name(instance);
        }
        let server = match &self.instance {
            Some(instance) => format!("{}\\{instance}", self.host),
            None => format!("{}:{}", self.host, self.port),
        };
        Ok(Target { config, server })
    }
}

fn decode(what: &str, raw: &str) -> Result<String, MssqlStoreError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| MssqlStoreError::InvalidConnectionString {
            reason: format!("the {what} is not valid UTF-8 after percent-decoding"),
        })
}

/// The SET options a filtered index needs, with the value each must have:
/// SQL Server refuses writes to the table otherwise (error 1934).
pub(crate) const REQUIRED_SET_OPTIONS: [(&str, bool); 7] = [
    ("ANSI_NULLS", true),
    ("ANSI_PADDING", true),
    ("ANSI_WARNINGS", true),
    ("ARITHABORT", true),
    ("CONCAT_NULL_YIELDS_NULL", true),
    ("QUOTED_IDENTIFIER", true),
    ("NUMERIC_ROUNDABORT", false),
];

/// The batch that prepares every new session, then reports the SET options
/// as the session sees them.
///
/// Sent as a plain SQL batch, not through `sp_executesql`: SET statements
/// inside `sp_executesql` last only until it returns, while a batch's SETs
/// stay for the whole session.
pub(crate) fn session_setup_batch(lock_timeout_millis: i32) -> String {
    let mut sql = String::new();
    for (option, on) in REQUIRED_SET_OPTIONS {
        sql.push_str(&format!(
            "SET {option} {};\n",
            if on { "ON" } else { "OFF" }
        ));
    }
    // XACT_ABORT: any run-time error rolls the whole transaction back, so a
    // failed batch never leaves a half-done reservation or an open
    // transaction. READ COMMITTED: the store's reasoning assumes it (a
    // session left in SNAPSHOT would turn waits into update conflicts).
    sql.push_str("SET XACT_ABORT ON;\nSET NOCOUNT ON;\n");
    sql.push_str("SET TRANSACTION ISOLATION LEVEL READ COMMITTED;\n");
    sql.push_str(&format!("SET LOCK_TIMEOUT {lock_timeout_millis};\n"));
    let checks: Vec<String> = REQUIRED_SET_OPTIONS
        .iter()
        .map(|(option, _)| format!("CAST(SESSIONPROPERTY('{option}') AS int) AS [{option}]"))
        .collect();
    sql.push_str(&format!("SELECT {};", checks.join(", ")));
    sql
}

/// Compares what `SESSIONPROPERTY` reported with what the filtered index
/// needs; the first mismatch is an error naming the option.
pub(crate) fn check_session_options(
    reported: &[(&'static str, Option<i32>)],
) -> Result<(), MssqlStoreError> {
    let state = |on: bool| if on { "ON" } else { "OFF" };
    for (option, required) in REQUIRED_SET_OPTIONS {
        let found = reported
            .iter()
            .find(|(name, _)| *name == option)
            .and_then(|(_, value)| *value);
        let ok = match found {
            Some(value) => (value == 1) == required,
            None => false,
        };
        if !ok {
            return Err(MssqlStoreError::SessionOption {
                option,
                found: match found {
                    Some(1) => "ON",
                    Some(0) => "OFF",
                    _ => "unknown",
                },
                expected: state(required),
            });
        }
    }
    Ok(())
}

/// Opens one session: TCP, TLS and login (following one Azure redirect),
/// then the SET options.
pub(crate) async fn open_session(
    target: &Target,
    options: &MssqlStoreOptions,
) -> Result<TdsClient, MssqlStoreError> {
    let connect = async {
        let mut config = target.config.clone();
        config.command_timeout(options.command_timeout);
        let mut client = match login(&config, &target.server).await {
            // Azure SQL gateways may send the client to another node.
            Err(MssqlStoreError::Handshake {
                source: tiberius::error::Error::Routing { host, port },
                ..
            }) => {
                config.host(&host);
                config.port(port);
                login(&config, &format!("{host}:{port}")).await?
            }
            other => other?,
        };
        let setup = session_setup_batch(options.lock_timeout_millis());
        let row = client
            .simple_query(setup)
            .await
            .map_err(|e| MssqlStoreError::from_login(&target.server, e))?
            .into_row()
            .await
            .map_err(|e| MssqlStoreError::from_login(&target.server, e))?;
        let reported: Vec<(&'static str, Option<i32>)> = REQUIRED_SET_OPTIONS
            .iter()
            .enumerate()
            .map(|(i, (option, _))| {
                let value = row
                    .as_ref()
                    .and_then(|r| r.try_get::<i32, _>(i).ok().flatten());
                (*option, value)
            })
            .collect();
        check_session_options(&reported)?;
        Ok(client)
    };
    tokio::time::timeout(options.connect_timeout, connect)
        .await
        .map_err(|_| MssqlStoreError::ConnectTimeout {
            server: target.server.clone(),
            after: options.connect_timeout,
        })?
}

async fn login(config: &Config, server: &str) -> Result<TdsClient, MssqlStoreError> {
    let tcp = tcp_connect(config)
        .await
        .map_err(|source| MssqlStoreError::Unreachable {
            server: server.to_owned(),
            source,
        })?;
    // Reservations are small request/response exchanges: send at once.
    tcp.set_nodelay(true)
        .map_err(|source| MssqlStoreError::Unreachable {
            server: server.to_owned(),
            source,
        })?;
    Client::connect(config.clone(), tcp.compat_write())
        .await
        .map_err(|e| MssqlStoreError::from_login(server, e))
}

#[cfg(feature = "sql-browser")]
async fn tcp_connect(config: &Config) -> std::io::Result<TcpStream> {
    use tiberius::SqlBrowser;
    TcpStream::connect_named(config)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
}

#[cfg(not(feature = "sql-browser"))]
async fn tcp_connect(config: &Config) -> std::io::Result<TcpStream> {
    TcpStream::connect(config.get_addr()).await
}

/// A pooled session and whether it can be trusted for the next request.
pub(crate) struct Connection {
    pub(crate) client: TdsClient,
    /// Set while a request is in flight and left set when it fails: a
    /// request abandoned half-way (its future dropped) or failed leaves the
    /// wire or the session in an unknown state, and the pool then discards
    /// the connection instead of reusing it.
    pub(crate) suspect: bool,
}

impl Connection {
    /// Runs `sql` with `params` and collects every result set, reading the
    /// response to its end so that an error after the rows is not missed.
    pub(crate) async fn query(
        &mut self,
        sql: &str,
        params: &[&dyn ToSql],
    ) -> Result<Vec<Vec<Row>>, MssqlStoreError> {
        self.suspect = true;
        let result = async { self.client.query(sql, params).await?.into_results().await }.await;
        match result {
            Ok(results) => {
                self.suspect = false;
                Ok(results)
            }
            Err(e) => Err(MssqlStoreError::from_tiberius(e)),
        }
    }

    /// Runs `sql` and returns the rows of its first result set.
    pub(crate) async fn rows(
        &mut self,
        sql: &str,
        params: &[&dyn ToSql],
    ) -> Result<Vec<Row>, MssqlStoreError> {
        Ok(self
            .query(sql, params)
            .await?
            .into_iter()
            .next()
            .unwrap_or_default())
    }
}

/// Opens sessions for the pool.
pub(crate) struct ConnectionManager {
    pub(crate) target: Target,
    pub(crate) options: MssqlStoreOptions,
}

impl bb8::ManageConnection for ConnectionManager {
    type Connection = Connection;
    type Error = MssqlStoreError;

    async fn connect(&self) -> Result<Connection, MssqlStoreError> {
        let client = open_session(&self.target, &self.options).await?;
        Ok(Connection {
            client,
            suspect: false,
        })
    }

    async fn is_valid(&self, connection: &mut Connection) -> Result<(), MssqlStoreError> {
        connection.query("SELECT 1", &[]).await.map(|_| ())
    }

    fn has_broken(&self, connection: &mut Connection) -> bool {
        connection.suspect
    }
}

/// Keeps the pool's background connect errors for [`MssqlStoreError::PoolTimeout`].
#[derive(Debug, Clone)]
pub(crate) struct LastErrorSink(pub(crate) Arc<Mutex<Option<Arc<MssqlStoreError>>>>);

impl bb8::ErrorSink<MssqlStoreError> for LastErrorSink {
    fn sink(&self, error: MssqlStoreError) {
        tracing::warn!(error = %error, "SQL Server pool could not open a connection");
        if let Ok(mut last) = self.0.lock() {
            *last = Some(Arc::new(error));
        }
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<MssqlStoreError>> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const SECRET: &str = "s3cr:t/p@ss;w%rd";

    fn parse_err(text: &str) -> String {
        match Target::parse(text) {
            Err(e) => {
                let shown = format!("{e} {e:?}");
                assert!(!shown.contains("s3cr"), "password leaked: {shown}");
                shown
            }
            Ok(target) => panic!("{text} parsed as {target:?}"),
        }
    }

    #[test]
    fn url_credentials_are_percent_decoded() {
        let url = "mssql://app%40corp:s3cr%3At%2Fp%40ss%3Bw%25rd@db.example.com:14330/Proxy%20DB";
        let parts = UrlParts::parse(url).unwrap();
        assert_eq!(parts.host, "db.example.com");
        assert_eq!(parts.port, 14330);
        assert_eq!(parts.user, "app@corp");
        assert_eq!(parts.password.expose_secret(), SECRET);
        assert_eq!(parts.database.as_deref(), Some("Proxy DB"));
        let target = parts.into_target().unwrap();
        assert_eq!(target.server, "db.example.com:14330");
        assert_eq!(target.config.get_addr(), "db.example.com:14330");
        let shown = format!("{target:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
    }

    #[test]
    fn url_defaults_and_parameters() {
        let parts = UrlParts::parse(
            "sqlserver://sa:pw@[::1]/?trust_server_certificate=true&encrypt=false&application_name=scraper",
        )
        .unwrap();
        assert_eq!(parts.host, "::1");
        assert_eq!(parts.port, DEFAULT_PORT);
        assert_eq!(parts.database, None);
        assert!(parts.trust_server_certificate);
        assert!(matches!(parts.encrypt, Some(EncryptionLevel::Off)));
        assert_eq!(parts.application_name.as_deref(), Some("scraper"));
        let parts = UrlParts::parse("MSSQL://sa:pw@127.0.0.1/test").unwrap();
        assert_eq!(parts.host, "127.0.0.1");
        assert_eq!(parts.database.as_deref(), Some("test"));
        assert!(parts.encrypt.is_none());
        assert!(!parts.trust_server_certificate);
    }

    #[test]
    fn a_password_with_reserved_characters_never_appears_in_errors() {
        // Unknown parameter, bad flag, missing host, nested path: each error
        // names the problem but never the password.
        let cases = [
            (
                "mssql://sa:s3cr%3At@db/x?encrypted=true",
                "unknown URL parameter \"encrypted\"",
            ),
            (
                "mssql://sa:s3cr%3At@db/x?encrypt=maybe",
                "encrypt must be true or false",
            ),
            ("mssql://sa:s3cr%3At@db/a/b", "single database name"),
            ("mssql://:s3cr%3At@db/x", "names no user"),
            ("mssql://sa:s3cr%FFt@db/x", "not valid UTF-8"),
        ];
        for (url, expected) in cases {
            let shown = parse_err(url);
            assert!(shown.contains(expected), "{url}: {shown}");
        }
    }

    #[test]
    fn ado_and_jdbc_strings_are_accepted_and_their_errors_do_not_quote_them() {
        let target = Target::parse(
            "server=tcp:db.example.com,1533;database=proxy;user id=sa;password='s3cr;t=1';TrustServerCertificate=true",
        )
        .unwrap();
        assert_eq!(target.server, "db.example.com:1533");
        assert!(!format!("{target:?}").contains("s3cr"));
        let target =
            Target::parse("jdbc:sqlserver://db.example.com:1534;user=sa;password={s3cr;t}")
                .unwrap();
        assert_eq!(target.server, "db.example.com:1534");

        let shown = parse_err("server=tcp:db,1433;password='s3cr;t");
        assert!(shown.contains("ADO.NET"), "{shown}");
        let shown = parse_err("s3cr3t-and-nonsense");
        assert!(
            shown.contains("expected an ADO.NET connection string"),
            "{shown}"
        );
    }

    #[test]
    fn session_setup_sets_then_reports_every_filtered_index_option() {
        let sql = session_setup_batch(2500);
        for (option, on) in REQUIRED_SET_OPTIONS {
            let set = format!("SET {option} {};", if on { "ON" } else { "OFF" });
            assert!(sql.contains(&set), "missing {set}");
            assert!(sql.contains(&format!("SESSIONPROPERTY('{option}')")));
        }
        assert!(sql.contains("SET XACT_ABORT ON;"));
        assert!(sql.contains("SET LOCK_TIMEOUT 2500;"));
        assert!(sql.contains("READ COMMITTED"));
        // The SETs come before the report.
        assert!(sql.find("SET ANSI_NULLS").unwrap() < sql.find("SELECT").unwrap());
    }

    #[test]
    fn session_options_are_checked_one_by_one() {
        let good: Vec<(&'static str, Option<i32>)> = REQUIRED_SET_OPTIONS
            .iter()
            .map(|(o, on)| (*o, Some(i32::from(*on))))
            .collect();
        assert!(check_session_options(&good).is_ok());

        for (option, _) in REQUIRED_SET_OPTIONS {
            let mut bad = good.clone();
            for entry in &mut bad {
                if entry.0 == option {
                    entry.1 = entry.1.map(|v| 1 - v);
                }
            }
            match check_session_options(&bad) {
                Err(MssqlStoreError::SessionOption {
                    option: named,
                    found,
                    expected,
                }) => {
                    assert_eq!(named, option);
                    assert_ne!(found, expected);
                }
                other => panic!("{option}: {other:?}"),
            }
        }
        let missing: Vec<_> = good
            .iter()
            .copied()
            .filter(|(o, _)| *o != "ANSI_NULLS")
            .collect();
        match check_session_options(&missing) {
            Err(MssqlStoreError::SessionOption { option, found, .. }) => {
                assert_eq!((option, found), ("ANSI_NULLS", "unknown"));
            }
            other => panic!("{other:?}"),
        }
    }
}
