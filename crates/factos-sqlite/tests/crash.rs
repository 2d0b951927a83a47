//! Crash safety: a child process (this test binary, run again as a writer)
//! dispatches under load and is killed with SIGKILL, five times. After each
//! kill the file opens, every dispatch the child acknowledged is in it with
//! both of its events (nothing partial), and `verify` finds no fault.
//!
//! And exactly-once projections: a child process running a projection is
//! killed mid-run, four times; after each kill the projection holds every
//! event up to the checkpoint once and nothing past it, and the next child
//! takes the subscriber over once the dead one's lease ran out.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use factos::{Decider, EventStore, Query, ReadOptions, StreamId, Tag};
use factos_sqlite::{
    ProjectionHandler, SqliteOptions, SqliteStore, Subscription, SubscriptionOptions, rusqlite,
};
use factos_testkit::model::{KitCodec, KitEvent};

const FILE: &str = "FACTOS_SQLITE_CRASH_FILE";
const PROJECTION_FILE: &str = "FACTOS_SQLITE_CRASH_PROJECTION_FILE";
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

/// Writes each event's position into `projected` (no key: a duplicate
/// would show), pausing inside each batch's transaction so kills land
/// there too.
struct Positions;

impl ProjectionHandler for Positions {
    type Error = rusqlite::Error;
    fn apply(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        events: &[factos::StoredEvent],
    ) -> Result<(), rusqlite::Error> {
        for event in events {
            tx.execute(
                "INSERT INTO projected (position) VALUES (?1)",
                [i64::try_from(event.position.get()).unwrap()],
            )?;
        }
        std::thread::sleep(Duration::from_millis(3));
        Ok(())
    }
}

fn projection(store: &SqliteStore) -> Subscription {
    Subscription::new(store, "positions", Query::all())
        .unwrap()
        .with_options(
            SubscriptionOptions::default()
                .batch_size(25)
                .poll_interval(Duration::from_millis(20)),
        )
        .unwrap()
        .with_lease(Duration::from_millis(200))
        .unwrap()
}

/// The child: runs the projection until the parent kills it. Runs only
/// when the parent sets the environment; otherwise it passes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_projection() {
    let Ok(file) = std::env::var(PROJECTION_FILE) else {
        return;
    };
    let store = SqliteStore::open(&file, SqliteOptions::default())
        .await
        .unwrap();
    projection(&store)
        .run_projection(Positions, std::future::pending())
        .await
        .unwrap();
}

/// (rows, distinct positions, highest position) of the projection.
fn projected(file: &std::path::Path) -> (i64, i64, i64) {
    let c = rusqlite::Connection::open(file).unwrap();
    c.query_row(
        "SELECT count(*), count(DISTINCT position), coalesce(max(position), 0) FROM projected",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

async fn append_many(store: &SqliteStore, n: usize) {
    for chunk in 0..n / 50 {
        let events = (0..50)
            .map(|i| {
                factos::NewEvent::new(
                    factos::EventType::new("Happened").unwrap(),
                    format!("{chunk}-{i}").into_bytes(),
                )
            })
            .collect();
        store
            .append(
                &StreamId::new("load").unwrap(),
                events,
                factos::AppendCondition::None,
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_killed_mid_run_applies_every_event_exactly_once() {
    if std::env::var(FILE).is_ok() || std::env::var(PROJECTION_FILE).is_ok() {
        return;
    }
    let dir = common::Dir::new();
    let (file, store) = dir
        .store_with("CREATE TABLE projected (position INTEGER NOT NULL)")
        .await;
    let subscription = projection(&store);
    let mut checkpoints = Vec::new();
    let mut killed_mid_run = 0;
    for round in 0..4u64 {
        append_many(&store, 1500).await;
        let head = i64::try_from(1500 * (round + 1)).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child_projection",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(PROJECTION_FILE, &file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill the child as soon as it has committed a batch of this round
        // (its checkpoint moved), while most of the round is still ahead
        // of it; a fixed sleep let a fast child finish first (CI, once).
        let before = checkpoints.last().copied().unwrap_or(0);
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            let at = subscription
                .checkpoint()
                .await
                .unwrap()
                .map_or(0, |p| i64::try_from(p.get()).unwrap());
            if at > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let checkpoint = subscription
            .checkpoint()
            .await
            .unwrap()
            .map_or(0, |p| i64::try_from(p.get()).unwrap());
        let (rows, distinct, highest) = projected(&file);
        // Every event is projected up to the checkpoint (they all match),
        // once, and nothing past it: a killed batch left nothing.
        assert_eq!(
            (rows, distinct, highest),
            (checkpoint, checkpoint, checkpoint),
            "round {round}"
        );
        checkpoints.push(checkpoint);
        if checkpoint < head {
            killed_mid_run += 1;
        }
    }
    assert!(
        killed_mid_run > 0,
        "every child finished before its kill: no kill landed mid-run ({checkpoints:?})"
    );
    assert!(
        checkpoints.windows(2).all(|w| w[0] < w[1]),
        "a child made no progress (it must take over from the dead one): {checkpoints:?}"
    );
    // The last child's lease runs out; this process finishes the work.
    tokio::time::sleep(Duration::from_millis(300)).await;
    subscription.catch_up_projection(Positions).await.unwrap();
    let head = store
        .read(&Query::all(), ReadOptions::default().backwards().limit(1))
        .await
        .unwrap()
        .events[0]
        .position
        .get();
    let head = i64::try_from(head).unwrap();
    assert_eq!(projected(&file), (head, head, head));
    println!("checkpoints at the kills: {checkpoints:?}, head {head}");
}
