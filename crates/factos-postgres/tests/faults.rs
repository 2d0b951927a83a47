//! Faults under load: backends terminated and the server restarted in
//! immediate mode while writers dispatch, each command under an idempotency
//! key of its own and retried with that key after every retry-safe error and
//! every unknown commit outcome. Afterwards every command is in the log
//! exactly once, with the ids its key derives and the positions its caller
//! was given, nothing else is, the tag mirror holds exactly the events' tags,
//! the pool recovers by itself, and every failure was a store error that
//! says whether a retry is safe.

#![allow(clippy::unwrap_used, clippy::panic, clippy::too_many_lines)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use factos::{
    DispatchError, EventStore, Query, QueryItem, ReadOptions, StoreErrorKind, StreamId, Tag,
    dispatch_with_query, dispatch_with_query_idempotent, event_id,
};
use factos_postgres::throwaway::{ClusterOptions, TempCluster};
use factos_postgres::{PostgresStore, StoreOptions};
use factos_testkit::model::{Bounded, KitCodec, KitEvent};

/// A command a writer saw through: its key and the (id, position) of the
/// events the successful attempt returned.
struct Acknowledged {
    dispatch: String,
    key: uuid::Uuid,
    events: BTreeSet<(uuid::Uuid, u64)>,
}

/// Terminates every other backend of the database; returns how many.
async fn terminate_backends(cluster: &TempCluster) -> i64 {
    let (client, connection) = cluster
        .config("postgres")
        .connect(factos_postgres::tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to terminate backends: {e}"));
    tokio::spawn(connection);
    client
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE pid <> pg_backend_pid() AND datname = current_database()",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("cannot terminate backends: {e}"))
        .get(0)
}

/// Events whose tags and the mirror's rows differ, both ways.
async fn mirror_mismatches(store: &PostgresStore) -> i64 {
    let schema = store.options().schema.quoted();
    store
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM (SELECT unnest(tags), position FROM {schema}.factos_events
                         EXCEPT SELECT tag, position FROM {schema}.factos_event_tags) a)
                      + (SELECT count(*) FROM (SELECT tag, position FROM {schema}.factos_event_tags
                         EXCEPT SELECT unnest(tags), position FROM {schema}.factos_events) b)"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_command_lands_exactly_once_under_backend_terminations_and_a_crash() {
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
                    let key = uuid::Uuid::now_v7();
                    let command = vec![
                        KitEvent::new("Part", &[&own, &dispatch]),
                        KitEvent::new("Part", &[&own, &dispatch]),
                    ];
                    // The same command under the same key until it succeeds,
                    // whatever the faults (even after `stop`).
                    let started = Instant::now();
                    loop {
                        assert!(
                            started.elapsed() < Duration::from_secs(60),
                            "writer {writer}: {dispatch} did not land within 60 s: {errors:?}"
                        );
                        let outcome = tokio::time::timeout(
                            Duration::from_secs(20),
                            dispatch_with_query_idempotent(
                                &store,
                                &stream,
                                &query,
                                &Bounded { limit: usize::MAX },
                                &KitCodec::default(),
                                &command,
                                key,
                            ),
                        )
                        .await;
                        let Ok(outcome) = outcome else {
                            panic!("writer {writer}: a dispatch hung for 20 s")
                        };
                        match outcome {
                            Ok(done) => {
                                acknowledged.push(Acknowledged {
                                    dispatch,
                                    key,
                                    events: done
                                        .events
                                        .iter()
                                        .map(|e| (e.id, e.position.get()))
                                        .collect(),
                                });
                                break;
                            }
                            Err(DispatchError::Store(e))
                                if e.is_retry_safe()
                                    || e.kind() == StoreErrorKind::CommitOutcomeUnknown =>
                            {
                                *errors
                                    .entry(format!(
                                        "{:?} (retry safe: {})",
                                        e.kind(),
                                        e.is_retry_safe()
                                    ))
                                    .or_default() += 1;
                                // Back off a little while the server is down.
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            Err(e) => panic!("writer {writer}: unexpected {e}"),
                        }
                    }
                }
                (acknowledged, errors)
            })
        })
        .collect();

    // Faults: terminate every other backend a few times, then crash-restart the server.
    let mut terminated = Vec::new();
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
        terminated.push(terminate_backends(&cluster).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut acknowledged = Vec::new();
    let mut errors: HashMap<String, usize> = HashMap::new();
    for writer in writers {
        let (acks, errs) = writer.await.unwrap();
        acknowledged.extend(acks);
        for (kind, count) in errs {
            *errors.entry(kind).or_default() += count;
        }
    }
    println!(
        "{} commands; backends terminated per round: {terminated:?}; errors: {errors:?}",
        acknowledged.len()
    );
    assert!(
        terminated.iter().all(|&n| n > 0),
        "a termination round found no backend: {terminated:?}"
    );
    assert!(
        !errors.is_empty(),
        "the faults never reached a writer: the test proves nothing"
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
    let mut per_dispatch: HashMap<String, BTreeSet<(uuid::Uuid, u64)>> = HashMap::new();
    for event in &log {
        let dispatch = event
            .tags
            .iter()
            .find(|t| t.as_str().starts_with("d:"))
            .map_or_else(|| "none".to_string(), |t| t.as_str().to_string());
        let fresh = per_dispatch
            .entry(dispatch.clone())
            .or_default()
            .insert((event.id, event.position.get()));
        assert!(fresh, "{dispatch}: an event is listed twice");
    }
    let tagless = per_dispatch.remove("none").unwrap_or_default();
    assert_eq!(
        tagless.len(),
        1,
        "only the event after the faults: {tagless:?}"
    );
    for command in &acknowledged {
        let keyed: BTreeSet<uuid::Uuid> = (0..2).map(|i| event_id(command.key, i)).collect();
        let returned: BTreeSet<uuid::Uuid> = command.events.iter().map(|e| e.0).collect();
        assert_eq!(
            returned, keyed,
            "{}: the ids returned are not its key's",
            command.dispatch
        );
        assert_eq!(
            per_dispatch.remove(&command.dispatch).as_ref(),
            Some(&command.events),
            "{}: the log does not hold exactly the events its caller was given",
            command.dispatch
        );
    }
    assert!(
        per_dispatch.is_empty(),
        "commands no caller saw through are in the log: {:?}",
        per_dispatch.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        mirror_mismatches(&store).await,
        0,
        "the tag mirror does not match the events"
    );
}
