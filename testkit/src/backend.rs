//! Finding test backends: skip loudly when a server is not configured,
//! fail in CI when a configured one is unreachable.
//!
//! Backend tests read their server's URL from an environment variable
//! (`POSTGRES_URL`, `REDIS_URL`, `MSSQL_URL`, …). When it is not set the test
//! is skipped and one line on standard error says how to run it. When it is
//! set but the server cannot be reached, the test is skipped too — unless
//! `PROXY_TEST_STRICT=1`, as in CI, where that is a failure.

use std::collections::HashSet;
use std::fmt::Display;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// The variable that turns an unreachable configured backend into a failure.
pub const STRICT_VAR: &str = "PROXY_TEST_STRICT";

/// Whether `PROXY_TEST_STRICT` is set to `1` or `true`.
pub fn strict() -> bool {
    std::env::var(STRICT_VAR).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

/// Writes `line` to standard error once per process, bypassing the test
/// harness's output capture so that skips are visible in a normal run.
pub fn say_once(line: &str) {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let seen = SEEN.get_or_init(|| Mutex::new(HashSet::new()));
    let first = seen
        .lock()
        .map(|mut s| s.insert(line.to_owned()))
        .unwrap_or(true);
    if first {
        // Direct writes are not captured by libtest, unlike eprintln!.
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

/// The URL in `var`, or `None` (after saying how to set it) when unset.
///
/// `example` is shown in the skip line, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`. With testkit's `containers`
/// feature, an unset `POSTGRES_URL`, `REDIS_URL` or `MSSQL_URL` instead
/// gives the URL of a Docker container when an engine is reachable.
pub fn url_from_env(var: &str, example: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            #[cfg(feature = "containers")]
            if let Some(url) = crate::containers::url_for_unset_var(var) {
                return url;
            }
            say_once(&format!(
                "skipping {var} tests: set {var}={example} to run them"
            ));
            None
        }
    }
}

/// Handles a backend that is configured but failed to connect: panics in
/// strict mode, otherwise says so once and returns `None` (skip).
///
/// The error is printed with `Display`; make sure it holds no password.
// Failing the test is the point in strict mode.
#[allow(clippy::panic)]
pub fn unreachable<S>(var: &str, error: impl Display) -> Option<S> {
    let line = format!("skipping {var} tests: the configured server is unreachable: {error}");
    if strict() {
        panic!("{line} ({STRICT_VAR} is set, so this is a failure)");
    }
    say_once(&line);
    None
}

/// Connects with `connect` to the URL in `var`; `None` skips the test.
///
/// ```ignore
/// async fn store() -> Option<PostgresStore> {
///     testkit::backend::store_or_skip("POSTGRES_URL", "postgres://postgres@127.0.0.1/test",
///         |url| async move { PostgresStore::connect(&url).await }).await
/// }
/// ```
pub async fn store_or_skip<S, E, F, Fut>(var: &str, example: &str, connect: F) -> Option<S>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<S, E>>,
    E: Display,
{
    let url = url_from_env(var, example)?;
    match connect(url).await {
        Ok(store) => Some(store),
        Err(error) => unreachable(var, error),
    }
}

/// An error and its sources on one line (`outer: inner: root`), for skip
/// lines and failure messages.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
