//! Large batches (hundreds of events per append) keep every guarantee of
//! small ones: conditions, revisions, replays, settled positions, the tag
//! mirror, checked on a real server.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::Collect;

use std::time::Duration;

use factos::{
    AppendCondition, AppendError, EventStore, EventType, Metadata, NewEvent, Query, QueryItem,
    ReadOptions, StreamId, Tag, Tags,
};
use factos_postgres::{StoreOptions, Subscription, SubscriptionOptions};

/// A large batch.
const LARGE: usize = 250;

fn batch(n: usize, tag: &str) -> Vec<NewEvent> {
    (0..n)
        .map(|i| {
            NewEvent::new(
                EventType::new("Imported").unwrap(),
                format!("{{\"n\":{i}, \"s\":\"'; DROP TABLE x; -- é\"}}").into_bytes(),
            )
            .with_tags(Tags::parse([tag.to_string(), format!("row:{i}")]).unwrap())
            .with_metadata(Metadata::new().with("source", "legacy \"system\"").unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_round_trips_and_continues_its_stream() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let stream = StreamId::new("import").unwrap();
    let small = store
        .append(&stream, batch(3, "set:a"), AppendCondition::None)
        .await
        .unwrap();
    let sent = batch(LARGE + 150, "set:b");
    let bulk = store
        .append(&stream, sent.clone(), AppendCondition::None)
        .await
        .unwrap();
    let after = store
        .append(&stream, batch(2, "set:c"), AppendCondition::None)
        .await
        .unwrap();
    assert_eq!(bulk.events.len(), sent.len());
    assert_eq!(bulk.events[0].revision, 3);
    assert_eq!(after.events[0].revision, 3 + sent.len() as u64);
    assert!(bulk.events[0].position > small.position.unwrap());
    let stored = store.read_stream(&stream).await.unwrap();
    let revisions: Vec<u64> = stored.events.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, (0..(5 + sent.len() as u64)).collect::<Vec<_>>());
    for (stored, sent) in stored.events[3..3 + sent.len()].iter().zip(&sent) {
        assert_eq!(
            (
                &stored.id,
                &stored.event_type,
                &stored.tags,
                &stored.metadata,
                &stored.data
            ),
            (
                &sent.id,
                &sent.event_type,
                &sent.tags,
                &sent.metadata,
                &sent.data
            )
        );
    }
    for (returned, stored) in bulk.events.iter().zip(&stored.events[3..]) {
        assert_eq!(returned, stored);
    }
    // Reads by tag find the copied events through the mirror.
    let b = store
        .read(
            &Query::tagged_with_all([Tag::new("set:b").unwrap()]),
            ReadOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(b.events.len(), sent.len());
    assert_eq!(common::mirror_mismatches(&store).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_under_a_failed_condition_writes_nothing_and_a_retry_is_replayed() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let stream = StreamId::new("import").unwrap();
    let seen = store
        .append(&stream, batch(2, "set:a"), AppendCondition::None)
        .await
        .unwrap();
    store
        .append(
            &StreamId::new("other").unwrap(),
            batch(1, "set:a"),
            AppendCondition::None,
        )
        .await
        .unwrap();
    let context = Query::item(QueryItem::parse(["Imported"], ["set:a"]).unwrap());
    let refused = store
        .append(
            &stream,
            batch(LARGE, "set:b"),
            AppendCondition::fail_if_events_match(context.clone(), seen.position),
        )
        .await;
    assert!(
        matches!(refused, Err(AppendError::ConditionFailed(_))),
        "{refused:?}"
    );
    let all = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(all.events.len(), 3, "the refused batch wrote nothing");

    // The same ids again (a retry after an unknown outcome): replayed, once.
    let ids_batch = batch(LARGE, "set:c");
    let first = store
        .append(&stream, ids_batch.clone(), AppendCondition::None)
        .await
        .unwrap();
    let retry = store
        .append(&stream, ids_batch, AppendCondition::None)
        .await
        .unwrap();
    assert!(!first.replayed);
    assert!(retry.replayed);
    assert_eq!(first.events, retry.events);
    let all = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(all.events.len(), 3 + LARGE);
    assert_eq!(common::mirror_mismatches(&store).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_and_small_writers_keep_positions_settled_for_a_live_subscriber() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let seen = Collect::default();
    let subscription = Subscription::new(&store, "importer", Query::all())
        .unwrap()
        .with_options(
            SubscriptionOptions::default()
                .poll_interval(Duration::from_millis(20))
                .batch_size(97),
        )
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let live = {
        let mut seen = seen.clone();
        tokio::spawn(async move {
            subscription
                .run(&mut seen, async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    let mut writers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for round in 0..6 {
                // Large and small appends interleave on one stream per writer.
                let n = if round % 2 == 0 { LARGE + 20 } else { 3 };
                store
                    .append(
                        &StreamId::new(format!("w{w}")).unwrap(),
                        batch(n, &format!("writer:{w}")),
                        AppendCondition::None,
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let logged: Vec<u64> = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.position.get())
        .collect();
    let start = std::time::Instant::now();
    while seen.0.lock().unwrap().len() < logged.len() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the subscriber fell behind"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(stop);
    live.await.unwrap().unwrap();
    assert_eq!(
        *seen.0.lock().unwrap(),
        logged,
        "every event once, in order"
    );
    for w in 0..4 {
        let stream = store
            .read_stream(&StreamId::new(format!("w{w}")).unwrap())
            .await
            .unwrap();
        let revisions: Vec<u64> = stream.events.iter().map(|e| e.revision).collect();
        assert_eq!(revisions, (0..revisions.len() as u64).collect::<Vec<_>>());
    }
    assert_eq!(common::mirror_mismatches(&store).await, 0);
}
