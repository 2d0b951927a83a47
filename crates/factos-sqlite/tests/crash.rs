//! Crash safety: a child process (this test binary, run again as a writer)
//! dispatches under load and is killed with SIGKILL, five times. After each
//! kill the file opens, every dispatch the child acknowledged is in it with
//! both of its events (nothing partial), and `verify` finds no fault.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use factos::{Decider, EventStore, Query, ReadOptions, StreamId, Tag};
use factos_sqlite::{SqliteOptions, SqliteStore};
use factos_testkit::model::{KitCodec, KitEvent};

const FILE: &str = "FACTOS_SQLITE_CRASH_FILE";
const ACKS: &str = "FACTOS_SQLITE_CRASH_ACKS";

/// Appends two events per command, whatever the context.
struct Pair;

impl Decider for Pair {
    type State = usize;
    type Command = usize;
    type Event = KitEvent;
    type Error = String;
    fn initial(&self) -> usize {
        0
    }
    fn decide(&self, _: &usize, n: &usize) -> Result<Vec<KitEvent>, String> {
        let tag = format!("n:{}", n % 7);
        Ok(vec![
            KitEvent::new("First", &[&tag]).with_body(n.to_string()),
            KitEvent::new("Second", &[&tag]).with_body(n.to_string()),
        ])
    }
    fn evolve(&self, seen: usize, _: &KitEvent) -> usize {
        seen + 1
    }
}

/// The child: four tasks dispatching keyed commands as fast as they can;
/// each key is acknowledged (written to the acks file and flushed) once
/// its dispatch returned, until the parent kills the process. Runs only
/// when the parent sets the environment; otherwise it passes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_writer() {
    let (Ok(file), Ok(acks)) = (std::env::var(FILE), std::env::var(ACKS)) else {
        return;
    };
    let store = SqliteStore::open(&file, SqliteOptions::default())
        .await
        .unwrap();
    let mut acked = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(acks)
        .unwrap();
    let (done, mut keys) = tokio::sync::mpsc::unbounded_channel::<uuid::Uuid>();
    for writer in 0..4usize {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            for n in (writer..).step_by(4) {
                let key = uuid::Uuid::new_v4();
                let query = Query::tagged_with_all([Tag::new(format!("n:{}", n % 7)).unwrap()]);
                factos::dispatch_with_query_idempotent(
                    &store,
                    &StreamId::for_request(key),
                    &query,
                    &Pair,
                    &KitCodec::default(),
                    &n,
                    key,
                )
                .await
                .unwrap();
                done.send(key).unwrap();
            }
        });
    }
    while let Some(key) = keys.recv().await {
        // One write per line: a kill between two writes would leave half a line.
        acked.write_all(format!("{key}\n").as_bytes()).unwrap();
        acked.sync_data().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_dispatches_survive_sigkill() {
    if std::env::var(FILE).is_ok() {
        return;
    }
    let dir = common::Dir::new();
    let file = dir.file();
    let acks = dir.0.join("acks");
    let mut acknowledged = 0;
    for round in 0..5u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(FILE, &file)
            .env(ACKS, &acks)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let it write a while (differently each round), then kill it.
        tokio::time::sleep(Duration::from_millis(300 + 150 * round)).await;
        child.kill().unwrap();
        child.wait().unwrap();

        let store = SqliteStore::open(&file, SqliteOptions::default())
            .await
            .unwrap();
        assert!(store.verify().await.unwrap().is_empty(), "round {round}");
        // A line the kill cut short (no newline yet) was not acknowledged.
        let text = std::fs::read_to_string(&acks).unwrap_or_default();
        let keys: Vec<uuid::Uuid> = text
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| l.trim_end().parse().unwrap())
            .collect();
        assert!(
            keys.len() > acknowledged,
            "round {round}: the child acknowledged nothing new"
        );
        acknowledged = keys.len();
        let ids: Vec<uuid::Uuid> = keys
            .iter()
            .flat_map(|k| [factos::event_id(*k, 0), factos::event_id(*k, 1)])
            .collect();
        for chunk in ids.chunks(1000) {
            let found = store.read_by_ids(chunk).await.unwrap();
            assert_eq!(
                found.len(),
                chunk.len(),
                "round {round}: an acknowledged event is missing"
            );
        }
        // Nothing partial: every decision's two events, or none.
        let all = store
            .read(&Query::all(), ReadOptions::default())
            .await
            .unwrap()
            .events;
        let mut by_stream = std::collections::HashMap::<&str, usize>::new();
        for event in &all {
            *by_stream.entry(event.stream.as_str()).or_default() += 1;
        }
        assert!(
            by_stream.values().all(|&n| n == 2),
            "round {round}: a decision's events were written in part"
        );
    }
    println!("{acknowledged} acknowledged dispatches over 5 kills");
}
