//! The demo, `provider url`, the benchmarks, the judge commands and the
//! error cases, through the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{
    CONFIGURATION, FAILURE, STORE_UNAVAILABLE, USAGE, assert_error, json_ok, proxyctl, run, stderr,
    stdout,
};
use predicates::prelude::*;
use testkit::net::{DEFAULT_GATEWAY_PASSWORD, FakeNetwork, JudgeFault};

#[test]
fn demo_runs_the_workers_and_finds_no_overlap() {
    let output = proxyctl()
        .args(["demo", "--workers", "4", "--jobs", "40", "--json"])
        .output()
        .unwrap();
    let summary = json_ok(&output);
    assert_eq!(summary["jobs"], 40);
    let done = summary["jobs_done"].as_u64().unwrap();
    let failed = summary["jobs_failed"].as_u64().unwrap();
    assert_eq!(done + failed, 40, "{summary}");
    assert!(done > 0);
    let acquisitions = summary["acquisitions"].as_u64().unwrap();
    assert!(acquisitions >= 4, "every worker acquired: {summary}");
    assert_eq!(summary["holds"].as_u64().unwrap(), acquisitions);
    assert!(summary["collisions"].is_u64());
    assert!(summary["cooldowns"].is_u64());
    let rotations = summary["rotations"].as_object().unwrap();
    for kind in ["blocked", "captcha", "rate_limited"] {
        assert!(rotations[kind].is_u64(), "{kind} listed: {summary}");
    }
    assert_eq!(summary["overlaps"], 0, "{summary}");
    assert_eq!(summary["wrong_exit_pages"], 0, "{summary}");
    // Every page the site served was counted by the metrics.
    let site_requests = summary["site_requests"].as_u64().unwrap();
    let target = summary["metrics"]["targets"]["127.0.0.1"]["requests"]
        .as_u64()
        .unwrap();
    assert_eq!(site_requests, target, "{summary}");
}

#[test]
fn demo_prints_a_summary_for_people() {
    proxyctl()
        .args(["demo", "--workers", "2", "--jobs", "10"])
        .assert()
        .success()
        .stdout(predicate::str::contains("acquisitions"))
        .stdout(predicate::str::contains("rotations"))
        .stdout(predicate::str::contains("invariant OK"));
}

#[test]
fn demo_on_postgres() {
    let Some(url) =
        testkit::backend::url_from_env("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
    else {
        return;
    };
    let output = proxyctl()
        .args([
            "demo",
            "--workers",
            "3",
            "--jobs",
            "15",
            "--json",
            "--store",
            &url,
        ])
        .output()
        .unwrap();
    let summary = json_ok(&output);
    assert_eq!(summary["overlaps"], 0, "{summary}");
    assert_eq!(summary["jobs"], 15);
}

#[test]
fn provider_url_is_redacted_unless_revealed() {
    let args = [
        "provider",
        "url",
        "--provider",
        "oxylabs",
        "--username",
        "acme",
        "--password",
        "p@ss:w0rd",
        "--country",
        "us",
        "--session",
        "abc123",
    ];
    let output = proxyctl().args(args).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("http://customer-acme-cc-US-sessid-abc123:***@pr.oxylabs.io:7777"),
        "{text}"
    );
    assert!(!text.contains("p@ss") && !text.contains("p%40ss"), "{text}");

    let output = proxyctl().args(args).arg("--reveal").output().unwrap();
    assert!(
        stdout(&output)
            .contains("http://customer-acme-cc-US-sessid-abc123:p%40ss%3Aw0rd@pr.oxylabs.io:7777"),
        "{}",
        stdout(&output)
    );

    let json = json_ok(&proxyctl().args(args).arg("--json").output().unwrap());
    assert_eq!(json["label"], "oxylabs:us:7777");
    assert_eq!(json["session"], "abc123");
    assert_eq!(json["revealed"], false);
    assert!(!json.to_string().contains("p@ss"));

    // The password can come from the environment instead of the flag.
    let output = proxyctl()
        .env("PROXYCTL_PROVIDER_PASSWORD", "from-env-secret")
        .args([
            "provider",
            "url",
            "--provider",
            "decodo",
            "--username",
            "acme",
        ])
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            "7000",
            "--session",
            "s1",
            "--reveal",
        ])
        .output()
        .unwrap();
    assert!(
        stdout(&output).contains("user-acme-session-s1:from-env-secret@127.0.0.1:7000"),
        "{}",
        stdout(&output)
    );

    // A session id outside the provider's alphabet is refused.
    let output = proxyctl()
        .args(["provider", "url", "--provider", "netnut", "--username", "u"])
        .args(["--password", "pw", "--session", "not-a-number"])
        .output()
        .unwrap();
    assert_error(&output, USAGE, "--session");
}

#[test]
fn bench_store_prints_one_json_line() {
    let output = proxyctl()
        .args(["bench", "store", "--store", "memory://", "--clients", "2"])
        .args(["--seconds", "0.3", "--keys", "50", "--json"])
        .output()
        .unwrap();
    let report = json_ok(&output);
    for field in [
        "attempts",
        "attempts_per_s",
        "reserved",
        "taken",
        "errors",
        "p50_ms",
        "p99_ms",
        "max_rss_mb",
    ] {
        assert!(report[field].is_number(), "{field} in {report}");
    }
    assert!(report["attempts"].as_u64().unwrap() > 0);
    assert_eq!(
        report["attempts"].as_u64().unwrap(),
        report["reserved"].as_u64().unwrap() + report["taken"].as_u64().unwrap()
    );
    assert_eq!(report["errors"], 0);
}

#[test]
fn bench_acquire_prints_one_json_line_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("bench.db").display());
    let output = proxyctl()
        .args([
            "bench",
            "acquire",
            "--store",
            &store,
            "--domain",
            "bench.example",
        ])
        .args(["--workers", "4", "--acquisitions", "24", "--hold-ms", "5"])
        .args(["--exits", "6", "--random-exits", "--json"])
        .output()
        .unwrap();
    let report = json_ok(&output);
    for field in [
        "acquisitions",
        "wall_s",
        "acq_per_s",
        "p50_ms",
        "p99_ms",
        "collisions",
        "duplicates",
        "max_rss_mb",
    ] {
        assert!(report[field].is_number(), "{field} in {report}");
    }
    assert_eq!(report["acquisitions"], 24, "{report}");
    assert_eq!(report["duplicates"], 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_acquire_through_an_external_gateway() {
    let network = FakeNetwork::start(8).await.unwrap();
    let mut cmd = proxyctl();
    cmd.args(["bench", "acquire", "--store", "memory://", "--workers", "2"])
        .args(["--acquisitions", "6", "--hold-ms", "1", "--json"])
        .args(["--gateway", &network.gateway.addr().to_string()])
        .args([
            "--provider",
            "brightdata",
            "--username",
            "brd-customer-c1-zone-res",
        ])
        .args([
            "--password",
            DEFAULT_GATEWAY_PASSWORD,
            "--allow-private-ips",
        ]);
    for judge in network.judge_urls() {
        cmd.args(["--judge", &judge]);
    }
    let output = run(cmd).await;
    assert!(!stdout(&output).contains(DEFAULT_GATEWAY_PASSWORD));
    let report = json_ok(&output);
    assert_eq!(report["acquisitions"], 6, "{report}");
    assert_eq!(report["duplicates"], 0);
    assert!(
        network.gateway.stats().sessions >= 6,
        "sessions went through the gateway"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judges_check_direct_and_through_a_proxy() {
    let network = FakeNetwork::start(2).await.unwrap();
    let judge_args: Vec<String> = network
        .judge_urls()
        .into_iter()
        .flat_map(|j| ["--judge".to_owned(), j])
        .collect();

    let mut cmd = proxyctl();
    cmd.args(["--json", "judges", "check"]).args(&judge_args);
    let report = json_ok(&run(cmd).await);
    assert_eq!(report["answered"], 3, "{report}");
    assert_eq!(report["via"], "direct");
    for judge in report["judges"].as_array().unwrap() {
        assert_eq!(judge["ip"], "127.0.0.1", "{report}");
        assert_eq!(judge["public"], false);
    }

    let proxy = network.gateway.proxy_url(Some("check1")).unwrap();
    let mut cmd = proxyctl();
    cmd.args(["--json", "judges", "check", "--via", &proxy.expose_url()])
        .args(&judge_args);
    let output = run(cmd).await;
    assert!(!stdout(&output).contains(DEFAULT_GATEWAY_PASSWORD));
    let report = json_ok(&output);
    let exit = network.gateway.exit_of("check1").unwrap().to_string();
    assert!(
        report["via"].as_str().unwrap().contains(":***@"),
        "{report}"
    );
    for judge in report["judges"].as_array().unwrap() {
        assert_eq!(judge["ip"], exit.as_str(), "{report}");
    }

    // One judge failing is shown; all failing is exit 1.
    network.judges[0].set_fault(Some(JudgeFault::Status(503)));
    let mut cmd = proxyctl();
    cmd.args(["judges", "check"]).args(&judge_args);
    let output = run(cmd).await;
    assert!(output.status.success());
    assert!(stdout(&output).contains("HTTP 503"), "{}", stdout(&output));
    assert!(stdout(&output).contains("2 of 3 judges answered"));
    for judge in &network.judges {
        judge.set_fault(Some(JudgeFault::Garbage));
    }
    let mut cmd = proxyctl();
    cmd.args(["judges", "check"]).args(&judge_args);
    assert_error(&run(cmd).await, FAILURE, "no judge answered");
}

#[test]
fn serve_judge_answers_until_stopped() {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("proxyctl"))
        .args(["--json", "serve-judge", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let listening: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = listening["listen"].as_str().unwrap().to_owned();
    let answer = http_get(&addr, "/json");
    child.kill().unwrap();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("{\"ip\":\"127.0.0.1\"}"), "{answer}");
}

/// A minimal HTTP/1.1 GET over a std socket.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn errors_are_one_line_with_documented_codes() {
    // Unknown store scheme: configuration; the password is not echoed.
    let output = proxyctl()
        .args(["list", "--store", "mysql://root:hunter2@127.0.0.1/db"])
        .output()
        .unwrap();
    assert_error(&output, CONFIGURATION, "unknown store URL scheme");
    assert!(stderr(&output).contains("mysql://root:***@127.0.0.1/db"));
    assert!(!stderr(&output).contains("hunter2"));
    assert!(
        stderr(&output).contains("postgres://"),
        "valid schemes listed"
    );

    // No store at all.
    let output = proxyctl().args(["list"]).output().unwrap();
    assert_error(&output, CONFIGURATION, "store is not configured");

    // A config file that does not exist / does not parse.
    let output = proxyctl()
        .args(["--config", "/nonexistent/proxyctl.toml", "list"])
        .output()
        .unwrap();
    assert_error(&output, CONFIGURATION, "cannot read config file");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[store]\nurl = \"memory://\"\n[setings]\nttl_seconds = 5\n",
    )
    .unwrap();
    let output = proxyctl()
        .arg("--config")
        .arg(&path)
        .arg("list")
        .output()
        .unwrap();
    assert_error(&output, CONFIGURATION, "setings");

    // Bad domain: usage.
    let output = proxyctl()
        .args([
            "list",
            "--store",
            "memory://",
            "--domain",
            "no spaces.example",
        ])
        .output()
        .unwrap();
    assert_error(&output, USAGE, "--domain");

    // Bad flag and bad duration: clap's usage errors, exit 2.
    let output = proxyctl().args(["list", "--colour"]).output().unwrap();
    assert_eq!(output.status.code(), Some(USAGE));
    let output = proxyctl()
        .args([
            "sweep",
            "--store",
            "memory://",
            "--purge-older-than",
            "soon",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(USAGE));

    // A server that is not there: store unavailable; the password is not
    // echoed.
    let output = proxyctl()
        .args(["list", "--store", "postgres://app:s3cretpw@127.0.0.1:1/db"])
        .output()
        .unwrap();
    assert_error(&output, STORE_UNAVAILABLE, "127.0.0.1:1");
    assert!(!stderr(&output).contains("s3cretpw"), "{}", stderr(&output));

    // Unknown lease id.
    let output = proxyctl()
        .args(["release", "--store", "memory://", "--id", "42"])
        .output()
        .unwrap();
    assert_error(&output, FAILURE, "no active reservation has id 42");
}

#[test]
fn migrate_says_what_it_did() {
    proxyctl()
        .args(["migrate", "--store", "memory://"])
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to do"));
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("m.db").display());
    proxyctl()
        .args(["migrate", "--store", &store])
        .assert()
        .success()
        .stdout(predicate::str::contains("schema up to date"));
    assert!(dir.path().join("m.db").exists());
}

#[test]
fn help_documents_exit_codes_and_env() {
    proxyctl()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes"))
        .stdout(predicate::str::contains("5  invariant violated"))
        .stdout(predicate::str::contains("PROXYCTL_STORE"));
}
