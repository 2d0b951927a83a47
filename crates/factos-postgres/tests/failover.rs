//! Failover: writers run against a primary that replicates synchronously
//! (`synchronous_commit = remote_apply`) to a hot standby; replication
//! stalls, the primary crashes (its processes killed) with commits waiting
//! for the standby, and the standby is promoted while they write. The store
//! is configured with both hosts and `target_session_attrs=read-write`, so
//! its pool reconnects to whichever is the primary. On the new primary:
//! every acknowledged append is there at its position, every decision is
//! whole or absent, and a subscriber resumes from its checkpoint and
//! receives the whole log.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use factos::{
    AppendCondition, EventStore, EventType, NewEvent, Query, ReadOptions, StoreErrorKind,
    StoredEvent, StreamId,
};
use factos_postgres::throwaway::{ClusterOptions, TempCluster};
use factos_postgres::{PostgresStore, StoreOptions, Subscription, SubscriptionOptions};
use tokio_postgres::config::TargetSessionAttrs;

/// How each append ended, by stream (one append of two events per stream).
#[derive(Debug)]
enum Outcome {
    Acknowledged(Vec<u64>),
    /// Failed before the commit: nothing may be written.
    NotWritten,
    /// The connection broke during the commit: whole or absent.
    Unknown,
}

/// Stops the primary's WAL sender (replication stalls: commits wait for
/// the standby), lets writers commit into the stall for 300 ms, then kills
/// the primary's processes (a crash: the stalled commits never reach the
/// standby).
async fn crash_with_replication_stalled(primary: &TempCluster) {
    let client = {
        let (client, connection) = primary
            .config("postgres")
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    };
    let row = client
        .query_one(
            "SELECT (SELECT pid FROM pg_stat_replication LIMIT 1), pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    let (sender, backend): (i32, i32) = (row.get(0), row.get(1));
    let stat = std::fs::read_to_string(format!("/proc/{backend}/stat")).unwrap();
    // The field after the parenthesised command name: state, then the parent.
    let postmaster: i32 = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap();
    let signal = |name: &str, pid: i32| {
        let status = std::process::Command::new("kill")
            .args([name, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {name} {pid}");
    };
    signal("-STOP", sender);
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal("-KILL", postmaster);
    signal("-KILL", sender);
    drop(client);
    // The orphaned backends notice the postmaster is gone and exit.
    primary.stop_immediate().ok();
}

fn setting(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

/// A primary replicating synchronously to a hot standby, and a store that
/// knows both hosts and connects to whichever accepts writes.
async fn clusters() -> (TempCluster, TempCluster, PostgresStore) {
    let primary = TempCluster::start_with(&ClusterOptions {
        settings: vec![
            setting("synchronous_standby_names", "*"),
            setting("synchronous_commit", "remote_apply"),
            setting("wal_writer_delay", "10ms"),
        ],
        ..ClusterOptions::default()
    })
    .unwrap();
    // The standby copies the primary's configuration; once promoted it has
    // no standby of its own to wait for.
    let standby = primary
        .start_standby(&ClusterOptions {
            settings: vec![setting("synchronous_standby_names", "")],
            ..ClusterOptions::default()
        })
        .unwrap();
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(primary.socket_dir())
        .host_path(standby.socket_dir())
        .port(5432)
        .user("postgres")
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(2))
        .target_session_attrs(TargetSessionAttrs::ReadWrite);
    let store = PostgresStore::from_config(config, 8, StoreOptions::default()).unwrap();
    store.migrate().await.unwrap();
    (primary, standby, store)
}

/// Appends two events to a new stream per step until `stop`; each step's
/// stream and outcome, and the error kinds seen.
async fn write_until(
    store: PostgresStore,
    writer: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<(StreamId, Outcome)>, HashMap<StoreErrorKind, usize>) {
    let mut outcomes = Vec::new();
    let mut errors: HashMap<StoreErrorKind, usize> = HashMap::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let stream = StreamId::new(format!("w{writer}-{n}")).unwrap();
        let events = (0..2)
            .map(|i| {
                NewEvent::new(
                    EventType::new("Step").unwrap(),
                    format!("{{\"i\":{i}}}").into_bytes(),
                )
            })
            .collect();
        let outcome = match store.append(&stream, events, AppendCondition::None).await {
            Ok(committed) => {
                Outcome::Acknowledged(committed.events.iter().map(|e| e.position.get()).collect())
            }
            Err(factos::AppendError::Store(e)) => {
                *errors.entry(e.kind()).or_default() += 1;
                if e.is_retry_safe() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Outcome::NotWritten
                } else if e.kind() == StoreErrorKind::CommitOutcomeUnknown {
                    Outcome::Unknown
                } else {
                    panic!("writer {writer}: an error a failover should not cause: {e:?}");
                }
            }
            Err(other) => panic!("writer {writer}: {other:?}"),
        };
        outcomes.push((stream, outcome));
    }
    (outcomes, errors)
}

/// Checks each append's outcome against the log; (acknowledged, of
/// unknown outcome and written).
fn check_appends(outcomes: &[(StreamId, Outcome)], log: &[StoredEvent]) -> (usize, usize) {
    let mut by_stream: HashMap<&str, Vec<u64>> = HashMap::new();
    for event in log {
        by_stream
            .entry(event.stream.as_str())
            .or_default()
            .push(event.position.get());
    }
    let (mut acknowledged, mut unknown_written) = (0, 0);
    for (stream, outcome) in outcomes {
        let stored = by_stream.get(stream.as_str()).cloned().unwrap_or_default();
        match outcome {
            Outcome::Acknowledged(positions) => {
                acknowledged += 1;
                assert_eq!(
                    &stored, positions,
                    "acknowledged append to {stream} lost or moved"
                );
            }
            Outcome::NotWritten => assert!(
                stored.is_empty(),
                "{stream}: written after an error that said nothing was"
            ),
            Outcome::Unknown => {
                assert!(
                    stored.is_empty() || stored.len() == 2,
                    "{stream}: partly written: {stored:?}"
                );
                unknown_written += usize::from(!stored.is_empty());
            }
        }
    }
    (acknowledged, unknown_written)
}

/// Waits until the subscriber has received every event of `log` (at least
/// once: the batch in hand when the primary died may come again); how many
/// came again.
async fn received_all(collected: &common::Collect, log: &[StoredEvent]) -> usize {
    let expected: BTreeSet<u64> = log.iter().map(|e| e.position.get()).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let seen = collected.positions();
        if seen.iter().max() >= expected.last() {
            let distinct: BTreeSet<u64> = seen.iter().copied().collect();
            assert_eq!(
                distinct, expected,
                "the subscriber skipped events across the failover"
            );
            return seen.len() - distinct.len();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the subscriber did not resume"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_standby_has_every_acknowledged_append_and_the_subscriber_resumes() {
    let (primary, standby, store) = clusters().await;
    let subscriber = Subscription::new(&store, "through-failover", Query::all())
        .unwrap()
        .with_options(SubscriptionOptions::default().poll_interval(Duration::from_millis(100)))
        .unwrap();
    let collected = common::Collect::default();
    let (stop_subscriber, subscriber_stopped) = tokio::sync::oneshot::channel::<()>();
    let subscribing = {
        let mut handler = collected.clone();
        tokio::spawn(async move {
            subscriber
                .run(&mut handler, async {
                    let _ = subscriber_stopped.await;
                })
                .await
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(write_until(store.clone(), w, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    crash_with_replication_stalled(&primary).await;
    standby.promote().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);

    let mut outcomes = Vec::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for writer in writers {
        let (o, e) = writer.await.unwrap();
        outcomes.extend(o);
        for (kind, count) in e {
            *errors.entry(format!("{kind:?}")).or_default() += count;
        }
    }
    // The store now reads the new primary.
    let log = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap()
        .events;
    let (acknowledged, unknown_written) = check_appends(&outcomes, &log);
    let acknowledged_after = outcomes
        .iter()
        .rev()
        .take_while(|(_, o)| matches!(o, Outcome::Acknowledged(_)))
        .count();
    assert!(
        acknowledged > 0 && acknowledged_after > 0,
        "writes must go on after the failover"
    );
    assert!(
        !errors.is_empty(),
        "the writers never saw the primary go away"
    );
    let redelivered = received_all(&collected, &log).await;
    let _ = stop_subscriber.send(());
    subscribing.await.unwrap().unwrap();
    eprintln!(
        "{} appends, {acknowledged} acknowledged, {unknown_written} of unknown outcome written, \
         errors {errors:?}, {} events, {redelivered} delivered again",
        outcomes.len(),
        log.len()
    );
}
