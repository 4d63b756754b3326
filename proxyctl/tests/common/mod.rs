//! Running the real `proxyctl` binary from tests.
#![allow(dead_code, unreachable_pub)]

use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

/// Exit codes the binary documents.
pub const FAILURE: i32 = 1;
pub const USAGE: i32 = 2;
pub const CONFIGURATION: i32 = 3;
pub const STORE_UNAVAILABLE: i32 = 4;

/// The binary, with no configuration leaking in from the environment.
pub fn proxyctl() -> Command {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("proxyctl");
    for var in [
        "PROXYCTL_CONFIG",
        "PROXYCTL_STORE",
        "PROXYCTL_APP",
        "PROXYCTL_PROVIDER_PASSWORD",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    for var in proxy_core_env() {
        cmd.env_remove(var);
    }
    cmd
}

fn proxy_core_env() -> [&'static str; 6] {
    [
        "PROXY_JUDGES",
        "PROXY_TTL_SECONDS",
        "PROXY_ACQUIRE_TIMEOUT",
        "PROXY_RECHECK_INTERVAL",
        "PROXY_MAX_JUDGE_FAILURES",
        "PROXY_COLLISIONS_BEFORE_BACKOFF",
    ]
}

/// Runs `cmd` off the async runtime (the fake network keeps serving on the
/// runtime's threads meanwhile).
pub async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("proxyctl runs"))
        .await
        .expect("the blocking task finishes")
}

/// Stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success and parses stdout as one JSON object.
pub fn json_ok(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
    let text = stdout(output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line expected, got: {text}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts the exit code and that stderr is one `proxyctl: error:` line.
pub fn assert_error(output: &Output, code: i32, contains: &str) {
    let err = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {err}",
        stdout(output)
    );
    let line = err
        .lines()
        .find(|l| l.starts_with("proxyctl: error:"))
        .unwrap_or_else(|| panic!("no error line in: {err}"));
    assert!(
        line.contains(contains),
        "{line:?} should contain {contains:?}"
    );
}

/// A random suffix so tests sharing a database do not meet.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid_like())
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{:08x}{:04x}", nanos, std::process::id() & 0xffff)
}
