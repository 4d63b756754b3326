//! Several OS processes sharing one SQLite file: on every round, of all the
//! reservers in all the processes racing on one key, exactly one wins.
//!
//! The test re-executes its own binary as the child processes (selected by
//! the `STORE_SQLITE_RACE_CHILD` environment variable and `--exact`), so it
//! runs under plain `cargo test` with no helper binary. Children start each
//! round together at an agreed wall-clock instant and print one line per
//! reserve attempt; the parent checks the tally and the database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proxy_core::{
    AppId, ListFilter, ReservationKey, ReservationState, ReservationStore, ReserveOutcome,
    TargetDomain, Ttl,
};
use store_sqlite::SqliteStore;
use tokio::sync::Barrier;

const CHILD_ENV: &str = "STORE_SQLITE_RACE_CHILD";
/// Starts each line a child reports an attempt on.
const MARKER: &str = "race-attempt: ";
const CHILDREN: usize = 6;
const TASKS_PER_CHILD: usize = 4;
const DOMAIN: &str = "race.multi-process.test";
/// Time for every child to start and open the database before round 0.
const START_DELAY: Duration = Duration::from_secs(3);
const ROUND_SPACING: Duration = Duration::from_millis(150);
/// A child that has not finished by then is killed and the test fails.
const CHILD_DEADLINE: Duration = Duration::from_secs(120);

/// What a child is asked to do, passed in [`CHILD_ENV`].
struct ChildSpec {
    test: String,
    database: String,
    start_unix_ms: u128,
    rounds: u32,
    child: usize,
}

impl ChildSpec {
    fn encode(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}",
            self.test, self.database, self.start_unix_ms, self.rounds, self.child
        )
    }

    fn decode(text: &str) -> Self {
        let parts: Vec<&str> = text.split('\n').collect();
        assert_eq!(parts.len(), 5, "malformed {CHILD_ENV}: {text:?}");
        Self {
            test: parts[0].to_owned(),
            database: parts[1].to_owned(),
            start_unix_ms: parts[2].parse().expect("start time"),
            rounds: parts[3].parse().expect("rounds"),
            child: parts[4].parse().expect("child index"),
        }
    }
}

/// The key raced for in `round`.
fn round_key(round: u32) -> ReservationKey {
    let [_, _, hi, lo] = round.to_be_bytes();
    ReservationKey::parse(&format!("198.18.{hi}.{lo}"), DOMAIN).expect("valid key")
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
}

/// Child mode: race `TASKS_PER_CHILD` tasks on each round's key and print
/// one `race …` line per attempt.
fn run_child(spec: &ChildSpec) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // Every child opens (and migrates) the file itself, as independent
        // scrapers would.
        let store = Arc::new(
            SqliteStore::open(&spec.database)
                .await
                .expect("child opens the database"),
        );
        let ttl = Ttl::from_secs(600).expect("ttl");
        for round in 0..spec.rounds {
            let start = spec.start_unix_ms + u128::from(round) * ROUND_SPACING.as_millis();
            let wait = start.saturating_sub(unix_ms());
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            let barrier = Arc::new(Barrier::new(TASKS_PER_CHILD));
            let tasks: Vec<_> = (0..TASKS_PER_CHILD)
                .map(|task| {
                    let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
                    let app = AppId::new(format!("child{}-task{task}", spec.child)).expect("app");
                    tokio::spawn(async move {
                        barrier.wait().await;
                        store.try_reserve(&round_key(round), &app, ttl).await
                    })
                })
                .collect();
            for (task, handle) in tasks.into_iter().enumerate() {
                let line = match handle.await.expect("reserver task") {
                    Ok(ReserveOutcome::Reserved(lease)) => {
                        format!("won {} {}", lease.id, lease.generation)
                    }
                    Ok(ReserveOutcome::Taken) => "taken".to_owned(),
                    Err(e) => format!("error {}", error_chain(&e).replace('\n', " ")),
                };
                println!("{MARKER}{round} {} {task} {line}", spec.child);
            }
        }
        store.close().await;
    });
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// One attempt as a child reported it.
#[derive(Debug)]
enum Attempt {
    Won { id: String, generation: u64 },
    Taken,
    Error(String),
}

/// Starts the children, waits for them, and returns each round's attempts.
fn race(test: &str, database: &Path, rounds: u32) -> BTreeMap<u32, Vec<Attempt>> {
    let exe = std::env::current_exe().expect("test binary path");
    let start_unix_ms = unix_ms() + START_DELAY.as_millis();
    let mut children = Vec::new();
    for child in 0..CHILDREN {
        let spec = ChildSpec {
            test: test.to_owned(),
            database: database.to_str().expect("UTF-8 path").to_owned(),
            start_unix_ms,
            rounds,
            child,
        };
        let mut process = Command::new(&exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, spec.encode())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start child process");
        // Drain the pipes on threads so a chatty child never blocks on a full
        // pipe while we wait for it.
        let mut stdout = process.stdout.take().expect("child stdout");
        let mut stderr = process.stderr.take().expect("child stderr");
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            stdout.read_to_string(&mut text).map(|_| text)
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            stderr.read_to_string(&mut text).map(|_| text)
        });
        children.push((process, out, err));
    }

    let deadline = Instant::now() + START_DELAY + CHILD_DEADLINE;
    let mut attempts: BTreeMap<u32, Vec<Attempt>> = BTreeMap::new();
    let mut failures = Vec::new();
    for (index, (mut process, out, err)) in children.into_iter().enumerate() {
        let status = loop {
            if let Some(status) = process.try_wait().expect("poll child") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = process.kill();
                let _ = process.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = out.join().expect("stdout reader").expect("read stdout");
        let stderr = err.join().expect("stderr reader").expect("read stderr");
        match status {
            Some(status) if status.success() => {}
            Some(status) => failures.push(format!(
                "child {index} exited with {status}:\n{stdout}\n{stderr}"
            )),
            None => failures.push(format!(
                "child {index} did not finish in time:\n{stdout}\n{stderr}"
            )),
        }
        // Found anywhere in a line: libtest prints "test <name> ... " without
        // a newline before the test's own output.
        for line in stdout
            .lines()
            .filter_map(|l| l.find(MARKER).map(|at| &l[at + MARKER.len()..]))
        {
            let fields: Vec<&str> = line.splitn(4, ' ').collect();
            assert_eq!(fields.len(), 4, "malformed line {line:?}");
            let round: u32 = fields[0].parse().expect("round");
            let outcome = fields[3];
            let attempt = if let Some(won) = outcome.strip_prefix("won ") {
                let (id, generation) = won.split_once(' ').expect("id and generation");
                Attempt::Won {
                    id: id.to_owned(),
                    generation: generation.parse().expect("generation"),
                }
            } else if outcome == "taken" {
                Attempt::Taken
            } else {
                Attempt::Error(outcome.to_owned())
            };
            attempts.entry(round).or_default().push(attempt);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
    attempts
}

/// Checks the tally of every round and that the database holds exactly the
/// winners.
fn assert_one_winner_per_round(
    runtime: &tokio::runtime::Runtime,
    database: &Path,
    rounds: u32,
    attempts: &BTreeMap<u32, Vec<Attempt>>,
) {
    let contenders = CHILDREN * TASKS_PER_CHILD;
    let mut winners = Vec::new();
    for round in 0..rounds {
        let round_attempts = attempts
            .get(&round)
            .unwrap_or_else(|| panic!("round {round}: no attempts reported"));
        assert_eq!(
            round_attempts.len(),
            contenders,
            "round {round}: every reserver reports once"
        );
        let errors: Vec<_> = round_attempts
            .iter()
            .filter_map(|a| match a {
                Attempt::Error(e) => Some(e),
                _ => None,
            })
            .collect();
        assert!(errors.is_empty(), "round {round}: errors {errors:?}");
        let won: Vec<_> = round_attempts
            .iter()
            .filter_map(|a| match a {
                Attempt::Won { id, generation } => Some((id.clone(), *generation)),
                _ => None,
            })
            .collect();
        let taken = round_attempts
            .iter()
            .filter(|a| matches!(a, Attempt::Taken))
            .count();
        assert_eq!(won.len(), 1, "round {round}: winners {won:?}");
        assert_eq!(taken, contenders - 1, "round {round}: Taken count");
        winners.extend(won);
    }

    let rows = runtime.block_on(async {
        let store = SqliteStore::open(database).await.expect("reopen");
        let domain = TargetDomain::parse(DOMAIN).expect("domain");
        let rows = store
            .list(&ListFilter::domain(domain).with_released())
            .await
            .expect("list");
        store.close().await;
        rows
    });
    let mut stored: Vec<_> = rows
        .iter()
        .map(|r| {
            assert_eq!(r.state, ReservationState::Held, "{r:?}");
            (r.lease.id.to_string(), r.lease.generation)
        })
        .collect();
    stored.sort();
    winners.sort();
    assert_eq!(
        stored, winners,
        "the database holds exactly the reported winners, nothing else"
    );
}

fn parent_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Whether this process is a child started by [`race`]; a child started for
/// `test` plays its part before this returns.
fn child_mode(test: &str) -> bool {
    match std::env::var(CHILD_ENV) {
        Ok(spec) => {
            let spec = ChildSpec::decode(&spec);
            if spec.test == test {
                run_child(&spec);
            }
            true
        }
        Err(_) => false,
    }
}

/// Six processes of four reservers each race on one key per round, 30
/// rounds, on a file created beforehand.
#[test]
fn processes_race_one_winner_per_round() {
    const TEST: &str = "processes_race_one_winner_per_round";
    const ROUNDS: u32 = 30;
    if child_mode(TEST) {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let database = dir.path().join("race.db");
    let runtime = parent_runtime();
    runtime.block_on(async {
        SqliteStore::open(&database)
            .await
            .expect("create the database")
            .close()
            .await;
    });
    let attempts = race(TEST, &database, ROUNDS);
    assert_one_winner_per_round(&runtime, &database, ROUNDS, &attempts);
}

/// The same race on a file that does not exist yet: every child creates,
/// switches to WAL and migrates it at the same moment.
#[test]
fn processes_create_the_file_together() {
    const TEST: &str = "processes_create_the_file_together";
    const ROUNDS: u32 = 5;
    if child_mode(TEST) {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let database = dir.path().join("fresh.db");
    let attempts = race(TEST, &database, ROUNDS);
    assert_one_winner_per_round(&parent_runtime(), &database, ROUNDS, &attempts);
}
