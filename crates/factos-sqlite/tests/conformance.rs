//! The SQLite store passes the conformance suite, the concurrency oracle
//! (one store, several store instances on one file, and a second process
//! writing to the file), the model-based test and the seed's tickets race.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::Dir;
use factos_sqlite::{SqliteOptions, SqliteStore};
use factos_testkit::oracle::{self, OracleConfig, Via};
use factos_testkit::state_machine::{self, MachineConfig};

/// Set for the child process of [`a_second_process_writing_to_the_file_is_seen_by_every_decision`].
const FOREIGN_FILE: &str = "FACTOS_SQLITE_FOREIGN_FILE";

/// The child: appends the oracle's foreign events to the file until the
/// parent kills it. Runs only when the parent sets the environment;
/// otherwise it passes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_child_writer() {
    let Ok(file) = std::env::var(FOREIGN_FILE) else {
        return;
    };
    let store = SqliteStore::open(&file, SqliteOptions::default())
        .await
        .unwrap();
    for round in 0.. {
        oracle::foreign_writes(&store, 10, 3, round + 1)
            .await
            .unwrap();
        // Writes spread over the parent's run rather than in one burst.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// The oracle on two instances in this process while another process (this
/// test binary, run again) appends events its queries match: every decision
/// must have seen every matching event committed before it, whichever
/// process wrote it, and some decisions read the other process's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_process_writing_to_the_file_is_seen_by_every_decision() {
    if std::env::var(FOREIGN_FILE).is_ok() {
        return;
    }
    let dir = Dir::new();
    let stores = instances(&dir, 2).await;
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "foreign_child_writer",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(FOREIGN_FILE, stores[0].path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed however the test ends, so a failure does not leave it writing.
    let mut child = KillOnDrop(child);
    // Let the child start writing before the decisions begin.
    let started = std::time::Instant::now();
    while foreign_count(&stores[0]).await == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the child wrote nothing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let report = oracle::random_decisions(&stores, OracleConfig::from_env()).await;
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    println!(
        "with a second process writing: {report}, {} foreign events read",
        report.foreign_events_read
    );
    assert!(report.violations.is_empty(), "{report}");
    assert!(report.committed >= 800, "{report}");
    assert!(
        report.foreign_events_read > 0,
        "no decision read an event of the other process: {report}"
    );
}

/// A child process, killed when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Events on the foreign writer's stream.
async fn foreign_count(store: &SqliteStore) -> usize {
    use factos::EventStore;
    store
        .read_stream(&factos::StreamId::new("foreign").unwrap())
        .await
        .unwrap()
        .events
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sqlite_store_passes_the_conformance_suite() {
    let dir = Dir::new();
    factos_testkit::assert_conformance(|| dir.store()).await;
}

/// Several instances (each with its own writer and readers, as in several
/// processes) on one file.
async fn instances(dir: &Dir, count: usize) -> Vec<SqliteStore> {
    let file = dir.file();
    let mut stores = Vec::new();
    for _ in 0..count {
        stores.push(
            SqliteStore::open(&file, SqliteOptions::default())
                .await
                .unwrap(),
        );
    }
    stores
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sqlite_store_passes_the_concurrency_oracle() {
    let dir = Dir::new();
    for count in [1, 3] {
        let stores = instances(&dir, count).await;
        let report = oracle::random_decisions(&stores, OracleConfig::from_env()).await;
        let (transactions, writes) = stores.iter().fold((0, 0), |(t, w), store| {
            let groups = store.group_commits();
            (t + groups.transactions, w + groups.writes)
        });
        println!(
            "{count} instances, random decisions: {report}; {writes} writes in {transactions} writer transactions"
        );
        assert!(report.violations.is_empty(), "{report}");
        assert!(report.committed >= 800, "{report}");
        assert!(report.empty_decisions > 0, "{report}");
        // The oracle walked group commits: some transactions ran several writes.
        assert!(writes > transactions, "no write shared a commit");
        let stores = instances(&dir, count).await;
        let report = oracle::racers(Via::Stores(stores), 16, 40).await;
        println!("{count} instances, racers: {report}");
        assert!(report.violations.is_empty(), "{report}");
        let stores = instances(&dir, count).await;
        let report = oracle::disjoint_writers(&stores[0], 16, 20).await;
        println!("disjoint: {report}");
        assert!(report.violations.is_empty(), "{report}");
        assert_eq!(report.committed, 16 * 20, "{report}");
    }
}

/// Cached dispatchers (their fast path decides on the cached state and
/// lets the writer's condition prove it current), plain and combining, on
/// two instances of one file: the random decisions and the racers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_dispatchers_on_sqlite_pass_the_oracle() {
    use std::sync::Arc;
    let dir = Dir::new();
    for combining in [None, Some(8)] {
        let stores = instances(&dir, 2).await;
        let dispatchers = stores
            .iter()
            .map(|store| {
                let d =
                    factos::Dispatcher::new(store.clone(), oracle::Witness, oracle::OracleCodec);
                Arc::new(match combining {
                    Some(n) => d.with_combining(n),
                    None => d,
                })
            })
            .collect();
        let report = oracle::cached_decisions(dispatchers, OracleConfig::from_env()).await;
        println!("combining {combining:?}, cached random decisions: {report}");
        assert!(report.violations.is_empty(), "{report}");
        assert!(report.empty_decisions > 0, "{report}");
        assert!(report.outbox_decisions > 0, "{report}");
        let stores = instances(&dir, 2).await;
        let dispatchers = stores
            .iter()
            .map(|store| {
                let d = factos::Dispatcher::new(
                    store.clone(),
                    oracle::Quota,
                    factos_testkit::model::KitCodec::default(),
                );
                Arc::new(match combining {
                    Some(n) => d.with_combining(n),
                    None => d,
                })
            })
            .collect();
        let report = oracle::racers(Via::Dispatchers(dispatchers), 16, 40).await;
        println!("combining {combining:?}, cached racers: {report}");
        assert!(report.violations.is_empty(), "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dispatchers_on_sqlite_decide_as_a_fresh_fold_would() {
    let dir = Dir::new();
    for seed in 1..=3 {
        let stores = instances(&dir, 2).await;
        let file = stores[0].path().to_path_buf();
        let report = state_machine::run(
            &stores,
            &[1, 2, factos::DEFAULT_CACHE_ENTRIES],
            MachineConfig { steps: 150, seed },
            || common::recorded_effects(file.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        println!("seed {seed}: {report:?}");
        assert!(
            report.empty > 0
                && report.outbox > 0
                && report.mailed > 0
                && report.outbox_without_effects > 0
                && report.combined_outbox > 0
                && report.replayed > 0
                && report.foreign > 0
                && report.combined > 0
                && report.narrower > 0,
            "seed {seed}: a kind of step was not walked: {report:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tickets_race_sells_exactly_the_capacity() {
    let dir = Dir::new();
    let store = dir.store().await;
    let outcome = factos_examples::tickets::run_sale(&store, "concert-1", 100, 300, 64)
        .await
        .unwrap();
    assert_eq!(outcome.accepted, 100, "{outcome:?}");
    assert_eq!(outcome.sold_out, 200, "{outcome:?}");
    assert_eq!(outcome.events_stored, 100, "{outcome:?}");
}
