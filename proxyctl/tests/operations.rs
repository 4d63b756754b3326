//! migrate → acquire → list → release → sweep through the real binary, on
//! SQLite (a temporary file) and on PostgreSQL when `POSTGRES_URL` is set,
//! with the fake network running in the test process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    CONFIGURATION, FAILURE, USAGE, assert_error, json_ok, proxyctl, run, stderr, stdout, unique,
};
use serde_json::Value;
use testkit::net::{DEFAULT_GATEWAY_PASSWORD, FakeNetwork};

/// Flags that point `acquire` at the fake network.
fn fake_provider_args(network: &FakeNetwork) -> Vec<String> {
    let mut args = vec![
        "--provider".to_owned(),
        "decodo".to_owned(),
        "--gateway".to_owned(),
        network.gateway.addr().to_string(),
        "--username".to_owned(),
        "cli-test".to_owned(),
        "--password".to_owned(),
        DEFAULT_GATEWAY_PASSWORD.to_owned(),
        "--allow-private-ips".to_owned(),
    ];
    for judge in network.judge_urls() {
        args.push("--judge".to_owned());
        args.push(judge);
    }
    args
}

/// The whole operator flow against one store URL.
async fn operator_flow(store: &str) {
    let network = FakeNetwork::start(4).await.unwrap();
    let domain = format!("{}.example", unique("ops"));
    let app = unique("cli");

    let mut cmd = proxyctl();
    cmd.args(["--json", "migrate", "--store", store]);
    json_ok(&run(cmd).await);

    let mut cmd = proxyctl();
    cmd.args(["--json", "acquire", "--store", store, "--domain", &domain])
        .args(["--app", &app, "--ttl", "120"])
        .args(fake_provider_args(&network));
    let output = run(cmd).await;
    let acquired = json_ok(&output);
    assert!(
        !stdout(&output).contains(DEFAULT_GATEWAY_PASSWORD),
        "the proxy password is never printed"
    );
    assert_eq!(acquired["domain"], domain.as_str());
    assert_eq!(acquired["app_id"], app.as_str());
    let ip = acquired["ip"].as_str().unwrap().to_owned();
    assert!(
        network.gateway.exits().iter().any(|e| e.to_string() == ip),
        "{ip} is one of the gateway's exits"
    );
    assert!(acquired["proxy"].as_str().unwrap().contains(":***@"));
    let lease_id = acquired["lease_id"].as_str().unwrap().to_owned();

    // A second acquire for the same domain gets another exit IP.
    let mut cmd = proxyctl();
    cmd.args(["--json", "acquire", "--store", store, "--domain", &domain])
        .args(["--app", &app])
        .args(fake_provider_args(&network));
    let second = json_ok(&run(cmd).await);
    assert_ne!(second["ip"], acquired["ip"]);

    let list = |extra: &[&str]| {
        let mut cmd = proxyctl();
        cmd.args(["--json", "list", "--store", store]).args(extra);
        cmd
    };
    let listed = json_ok(&run(list(&["--domain", &domain])).await);
    assert_eq!(listed["count"], 2, "{listed}");
    let row = find(&listed, &lease_id);
    assert_eq!(row["state"], "held");
    assert_eq!(row["ip"], ip.as_str());
    let listed = json_ok(&run(list(&["--app", &app])).await);
    assert_eq!(listed["count"], 2);
    let other = json_ok(&run(list(&["--domain", "nobody-here.example"])).await);
    assert_eq!(other["count"], 0);

    let mut cmd = proxyctl();
    cmd.args(["--json", "release", "--store", store, "--id", &lease_id]);
    let released = json_ok(&run(cmd).await);
    assert_eq!(released["outcome"], "released");

    // Releasing again: nothing is held under that id.
    let mut cmd = proxyctl();
    cmd.args(["release", "--store", store, "--id", &lease_id]);
    assert_error(&run(cmd).await, FAILURE, "no active reservation");

    let listed = json_ok(&run(list(&["--domain", &domain])).await);
    assert_eq!(listed["count"], 1);
    let history = json_ok(&run(list(&["--domain", &domain, "--all"])).await);
    assert_eq!(find(&history, &lease_id)["state"], "released");

    // Human-readable listing names the lease and the IP.
    let output = run(list(&["--domain", &domain])).await;
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains(second["ip"].as_str().unwrap()), "{text}");

    let mut cmd = proxyctl();
    cmd.args([
        "--json",
        "sweep",
        "--store",
        store,
        "--purge-older-than",
        "0s",
    ]);
    let swept = json_ok(&run(cmd).await);
    assert!(swept["purged"].as_u64().unwrap() >= 1, "{swept}");
    let history = json_ok(&run(list(&["--domain", &domain, "--all"])).await);
    assert!(
        history["reservations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != lease_id.as_str()),
        "the released row was purged: {history}"
    );

    // Clean up the other lease.
    let mut cmd = proxyctl();
    cmd.args(["release", "--store", store, "--id"])
        .arg(second["lease_id"].as_str().unwrap());
    let output = run(cmd).await;
    assert!(output.status.success(), "{}", stderr(&output));
}

fn find<'a>(listing: &'a Value, id: &str) -> &'a Value {
    listing["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("lease {id} not listed: {listing}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_flow_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("ops.db").display());
    operator_flow(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_flow_on_postgres() {
    let Some(url) =
        testkit::backend::url_from_env("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
    else {
        return;
    };
    operator_flow(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_from_a_config_file_with_env_overrides() {
    let network = FakeNetwork::start(2).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file_store = format!("sqlite://{}", dir.path().join("file.db").display());
    let env_store = format!("sqlite://{}", dir.path().join("env.db").display());
    let judges: Vec<String> = network
        .judge_urls()
        .iter()
        .map(|j| format!("{j:?}"))
        .collect();
    let config = format!(
        "app_id = \"from-file\"\n\
         [store]\nurl = \"{file_store}\"\n\
         [settings]\njudges = [{}]\nttl_seconds = 90\n\
         [provider]\nprovider = \"decodo\"\nusername = \"cfg\"\npassword = \"wrong-password\"\n\
         host = \"{}\"\nport = {}\n\
         [judge]\nallow_private_ips = true\n",
        judges.join(", "),
        network.gateway.addr().ip(),
        network.gateway.addr().port(),
    );
    let path = dir.path().join("proxyctl.toml");
    std::fs::write(&path, config).unwrap();

    // The password in the file is wrong: the gateway answers 407, which is
    // a configuration error (exit 3), and the password is not printed.
    let mut cmd = proxyctl();
    cmd.arg("--config")
        .arg(&path)
        .args(["acquire", "--domain", "config.example"]);
    let output = run(cmd).await;
    assert_error(&output, CONFIGURATION, "configuration");
    assert!(!stderr(&output).contains("wrong-password"));

    // The environment overrides the file (password, store, TTL).
    let mut cmd = proxyctl();
    cmd.env("PROXYCTL_CONFIG", &path)
        .env("PROXYCTL_PROVIDER_PASSWORD", DEFAULT_GATEWAY_PASSWORD)
        .env("PROXYCTL_STORE", &env_store)
        .env("PROXY_TTL_SECONDS", "45")
        .args(["--json", "acquire", "--domain", "config.example"]);
    let acquired = json_ok(&run(cmd).await);
    assert_eq!(acquired["app_id"], "from-file");
    let time =
        |key: &str| chrono::DateTime::parse_from_rfc3339(acquired[key].as_str().unwrap()).unwrap();
    assert_eq!(
        (time("expires_at") - time("reserved_at")).num_seconds(),
        45,
        "PROXY_TTL_SECONDS overrides the file"
    );

    // …and flags override the environment.
    let mut cmd = proxyctl();
    cmd.env("PROXYCTL_STORE", &env_store)
        .args(["--json", "list", "--domain", "config.example"]);
    assert_eq!(
        json_ok(&run(cmd).await)["count"],
        1,
        "acquired into the env store"
    );
    let mut cmd = proxyctl();
    cmd.env("PROXYCTL_STORE", &env_store)
        .args(["--json", "list", "--store", &file_store]);
    assert_eq!(
        json_ok(&run(cmd).await)["count"],
        0,
        "--store wins over PROXYCTL_STORE"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_rejects_bad_input_before_touching_anything() {
    let network = FakeNetwork::start(1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("bad.db").display());
    let mut cmd = proxyctl();
    cmd.args(["acquire", "--store", &store, "--domain", "bad domain!"])
        .args(fake_provider_args(&network));
    assert_error(&run(cmd).await, USAGE, "--domain");

    let mut cmd = proxyctl();
    cmd.args([
        "acquire",
        "--store",
        &store,
        "--domain",
        "ok.example",
        "--ttl",
        "0",
    ])
    .args(fake_provider_args(&network));
    assert_error(&run(cmd).await, USAGE, "--ttl");

    let mut cmd = proxyctl();
    cmd.args(["acquire", "--store", &store, "--domain", "ok.example"]);
    assert_error(&run(cmd).await, CONFIGURATION, "provider is not configured");

    let mut cmd = proxyctl();
    cmd.args(["acquire", "--store", &store, "--domain", "ok.example"])
        .args(["--provider", "oxylab", "--username", "u", "--password", "p"]);
    assert_error(&run(cmd).await, CONFIGURATION, "oxylabs");
}
