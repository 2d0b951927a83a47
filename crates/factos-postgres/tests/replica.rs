//! Replica reads on a real hot standby (`pg_basebackup -R`, streaming over
//! unix sockets): a replica never hands out a position at or below which an
//! event can still appear, whether the primary has a late commit open or the
//! standby has paused its replay; once replay resumes, reads and a
//! subscriber on the replica catch up.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use factos::{
    AppendCondition, EventStore, EventType, NewEvent, Query, ReadOptions, StreamId, Tags,
};
use factos_postgres::deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use factos_postgres::throwaway::{ClusterOptions, TempCluster};
use factos_postgres::{PostgresStore, ReplicaOptions, StoreOptions, Subscription};

/// A primary and its hot standby.
struct Pair {
    primary: TempCluster,
    standby: TempCluster,
}

fn pair() -> Pair {
    // The test clusters commit asynchronously: WAL reaches the standby when
    // the WAL writer flushes it (200 ms by default), which a replica read
    // waiting for the primary's newest point would wait for.
    let primary = TempCluster::start_with(&ClusterOptions {
        settings: vec![("wal_writer_delay".into(), "10ms".into())],
        ..ClusterOptions::default()
    })
    .unwrap();
    let standby = primary.start_standby(&ClusterOptions::default()).unwrap();
    Pair { primary, standby }
}

fn pool(cluster: &TempCluster) -> Pool {
    let manager = Manager::from_config(
        cluster.config("postgres"),
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager).max_size(8).build().unwrap()
}

async fn primary_store(pair: &Pair) -> PostgresStore {
    let store =
        PostgresStore::from_config(pair.primary.config("postgres"), 8, StoreOptions::default())
            .unwrap();
    store.migrate().await.unwrap();
    store
}

fn event(n: u32) -> NewEvent {
    NewEvent::new(
        EventType::new("Seat").unwrap(),
        format!("{{\"n\":{n}}}").into_bytes(),
    )
    .with_tags(Tags::parse([format!("seat:{n}")]).unwrap())
}

async fn append(store: &PostgresStore, n: u32) -> u64 {
    let stream = StreamId::new(format!("s-{n}")).unwrap();
    store
        .append(&stream, vec![event(n)], AppendCondition::None)
        .await
        .unwrap()
        .position
        .unwrap()
        .get()
}

/// Waits until the standby has replayed everything the primary has written.
async fn caught_up(pair: &Pair) {
    let (primary, standby) = (pool(&pair.primary), pool(&pair.standby));
    let written: String = primary
        .get()
        .await
        .unwrap()
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let standby = standby.get().await.unwrap();
    for _ in 0..3000 {
        let replayed: bool = standby
            .query_one(
                "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                &[&written],
            )
            .await
            .unwrap()
            .get(0);
        if replayed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the standby did not replay up to {written} within 30 s");
}

async fn set_replay(pair: &Pair, paused: bool) {
    let standby = pool(&pair.standby).get().await.unwrap();
    let call = if paused {
        "pg_wal_replay_pause"
    } else {
        "pg_wal_replay_resume"
    };
    standby
        .batch_execute(&format!("SELECT {call}()"))
        .await
        .unwrap();
    if paused {
        for _ in 0..1000 {
            let state: String = standby
                .query_one("SELECT pg_get_wal_replay_pause_state()", &[])
                .await
                .unwrap()
                .get(0);
            if state == "paused" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("replay did not pause");
    }
}

async fn replica_positions(store: &PostgresStore) -> (Vec<u64>, Option<u64>) {
    let read = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap();
    (
        read.events.iter().map(|e| e.position.get()).collect(),
        read.head.map(factos::Position::get),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_never_skips_an_event_while_replay_is_paused_or_a_commit_is_late() {
    let pair = pair();
    let store = primary_store(&pair).await;
    let replica = store.with_replica(
        pool(&pair.standby),
        ReplicaOptions::default().replay_wait(Duration::from_millis(200)),
    );
    let mut first = Vec::new();
    for n in 1..=3 {
        first.push(append(&store, n).await);
    }
    caught_up(&pair).await;
    let (seen, head) = replica_positions(&replica).await;
    assert_eq!(
        seen, first,
        "a replica that has replayed everything reads everything"
    );
    assert_eq!(head, first.last().copied());
    let subscriber = Subscription::new(&replica, "on-replica", Query::all()).unwrap();
    let collected = common::Collect::default();
    subscriber.catch_up(&mut collected.clone()).await.unwrap();
    assert_eq!(collected.positions(), first);

    // On the primary a writer holds a lower position open while a later one
    // commits; the standby replays the later commit.
    let (late, late_position) = common::in_flight_writer(&store, "Seat", "seat:late").await;
    let after_late = append(&store, 4).await;
    assert!(after_late > u64::try_from(late_position).unwrap());
    caught_up(&pair).await;
    // A replica read waits for the late writer like a primary read would
    // (the primary's settled mark does).
    let waiting = {
        let replica = replica.clone();
        tokio::spawn(async move { replica_positions(&replica).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a replica read handed out a position while a lower one was in flight"
    );
    // Replay stops before the late commit reaches the standby: it shows
    // the later event and not the lower, late one.
    set_replay(&pair, true).await;
    late.batch_execute("COMMIT").await.unwrap();
    let newest = append(&store, 5).await;
    // The primary's mark now covers both, but the replica has not replayed
    // the late commit: it reads at an older point, complete below its head
    // (reading at the primary's mark would skip the late event).
    let (seen, head) = waiting.await.unwrap();
    assert_eq!(
        (seen, head),
        (first.clone(), first.last().copied()),
        "paused replica, first read"
    );
    let (seen, head) = replica_positions(&replica).await;
    assert_eq!(
        (seen, head),
        (first.clone(), first.last().copied()),
        "paused replica, second read"
    );
    subscriber.catch_up(&mut collected.clone()).await.unwrap();
    assert_eq!(
        collected.positions(),
        first,
        "a subscriber on a paused replica handed out nothing new"
    );
    let checkpoint = subscriber
        .checkpoint()
        .await
        .unwrap()
        .map_or(0, factos::Position::get);
    assert!(
        checkpoint < u64::try_from(late_position).unwrap(),
        "the subscriber's checkpoint ({checkpoint}) passed the late event ({late_position}) the replica has not replayed"
    );

    // Replay resumes: both catch up, nothing skipped, in order.
    set_replay(&pair, false).await;
    caught_up(&pair).await;
    let mut all = first.clone();
    all.extend([u64::try_from(late_position).unwrap(), after_late, newest]);
    all.sort_unstable();
    let (seen, head) = replica_positions(&replica).await;
    assert_eq!(seen, all);
    assert_eq!(head, Some(newest));
    subscriber.catch_up(&mut collected.clone()).await.unwrap();
    assert_eq!(collected.positions(), all);
    // Reads backwards too.
    let last_two = replica
        .read(&Query::all(), ReadOptions::default().backwards().limit(2))
        .await
        .unwrap();
    let positions: Vec<u64> = last_two.events.iter().map(|e| e.position.get()).collect();
    assert_eq!(positions, vec![all[all.len() - 1], all[all.len() - 2]]);
}

/// Concurrent writers on the primary, reads and a live subscriber on the
/// replica: every read equals the primary's final log at or below the head
/// it reported, and the subscriber receives the whole log in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_reads_under_concurrent_writers_are_complete_below_their_head() {
    let pair = pair();
    let store = primary_store(&pair).await;
    // The standby has the schema once it has replayed the migration.
    caught_up(&pair).await;
    let replica = store.with_replica(pool(&pair.standby), ReplicaOptions::default());
    // Never waiting for replay, it reads at older points while the replica lags.
    let eager = store.with_replica(
        pool(&pair.standby),
        ReplicaOptions::default().replay_wait(Duration::ZERO),
    );
    let writers: Vec<_> = (0..4u32)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..250 {
                    append(&store, w * 1000 + i).await;
                }
            })
        })
        .collect();
    let subscriber = Subscription::new(&replica, "live-on-replica", Query::all()).unwrap();
    let collected = common::Collect::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = {
        let subscriber = subscriber.clone();
        let mut handler = collected.clone();
        tokio::spawn(async move {
            subscriber
                .run(&mut handler, async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    let mut reads = Vec::new();
    let started = std::time::Instant::now();
    while writers.iter().any(|w| !w.is_finished()) {
        reads.push(replica_positions(&replica).await);
        reads.push(replica_positions(&eager).await);
    }
    let reading_ms = started.elapsed().as_millis();
    for writer in writers {
        writer.await.unwrap();
    }
    let log: Vec<u64> = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.position.get())
        .collect();
    assert_eq!(log.len(), 1000);
    let nonempty = reads.iter().filter(|(seen, _)| !seen.is_empty()).count();
    assert!(
        nonempty > 0,
        "no replica read saw an event ({} reads)",
        reads.len()
    );
    for (seen, head) in &reads {
        let head = head.unwrap_or(0);
        let expected: Vec<u64> = log.iter().copied().filter(|p| *p <= head).collect();
        assert_eq!(
            seen, &expected,
            "a replica read at head {head} is not the log below it"
        );
    }
    let all = collected.wait_for(log.len(), Duration::from_secs(30)).await;
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    assert_eq!(
        all, log,
        "the subscriber on the replica received the log out of order or with gaps"
    );
    eprintln!(
        "{} replica reads in {reading_ms} ms, {nonempty} with events",
        reads.len()
    );
}
