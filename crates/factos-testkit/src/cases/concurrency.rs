//! Cases of concurrency: racers on one boundary or one stream (exactly one
//! winner a round), disjoint boundaries (never a conflict), one stream
//! label shared by disjoint queries, and racers each on a stream of its own.

use std::sync::Arc;

use factos::{
    ConditionFailure, DispatchError, EventStore, Revision, StreamId, dispatch, dispatch_with_query,
};
use tokio::sync::Barrier;

use super::{count, forwards, query, stream};
use crate::CaseResult;
use crate::model::{Bounded, KitCodec, KitEvent};

/// Racers on a boundary per round.
const RACERS: usize = 16;
/// Rounds of the racers cases here (the concurrency oracle runs many more).
const RACE_ROUNDS: usize = 10;

pub(super) async fn racers_on_one_boundary_one_winner<S: EventStore + Clone + 'static>(
    store: S,
) -> CaseResult {
    for round in 0..RACE_ROUNDS {
        let boundary = format!("race:{round}");
        let q = query(&[], &[&boundary])?;
        let barrier = Arc::new(Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|racer| {
                let (store, q, barrier, boundary) =
                    (store.clone(), q.clone(), barrier.clone(), boundary.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let command = vec![KitEvent::new("Claimed", &[&boundary])];
                    dispatch_with_query(
                        &store,
                        &stream(&format!("racer-{racer}")),
                        &q,
                        &Bounded { limit: 1 },
                        &KitCodec::default(),
                        &command,
                    )
                    .await
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.map_err(|e| e.to_string())? {
                Ok(_) => winners += 1,
                Err(DispatchError::Domain(_) | DispatchError::AppendConditionFailed(_)) => {}
                Err(e) => return Err(format!("round {round}: unexpected error {e:?}")),
            }
        }
        ensure_eq!(winners, 1, format!("winners in round {round}"));
        let stored = store
            .read(&q, forwards())
            .await
            .map_err(|e| e.to_string())?;
        ensure_eq!(
            stored.events.len(),
            1,
            format!("events on the boundary in round {round}")
        );
    }
    Ok(())
}

pub(super) async fn racers_on_one_stream_one_winner<S: EventStore + Clone + 'static>(
    store: S,
) -> CaseResult {
    for round in 0..RACE_ROUNDS {
        let s = stream(&format!("contested-{round}"));
        let barrier = Arc::new(Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|_| {
                let (store, s, barrier) = (store.clone(), s.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    dispatch(
                        &store,
                        &s,
                        &Bounded { limit: 1 },
                        &KitCodec::default(),
                        &vec![KitEvent::new("Claimed", &[])],
                    )
                    .await
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.map_err(|e| e.to_string())? {
                Ok(_) => winners += 1,
                Err(
                    DispatchError::Domain(_)
                    | DispatchError::AppendConditionFailed(ConditionFailure::StreamRevision {
                        ..
                    }),
                ) => {}
                Err(e) => return Err(format!("round {round}: unexpected error {e:?}")),
            }
        }
        ensure_eq!(winners, 1, format!("winners in round {round}"));
        let read = store.read_stream(&s).await.map_err(|e| e.to_string())?;
        ensure_eq!(
            read.revision,
            Revision::Current(0),
            format!("revision in round {round}")
        );
    }
    Ok(())
}

pub(super) async fn disjoint_boundaries_never_conflict<S: EventStore + Clone + 'static>(
    store: S,
) -> CaseResult {
    const WRITERS: usize = 16;
    const DISPATCHES: usize = 10;
    let barrier = Arc::new(Barrier::new(WRITERS));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let boundary = format!("own:{writer}");
                let q = query(&["Step"], &[&boundary])?;
                barrier.wait().await;
                for step in 0..DISPATCHES {
                    let command = vec![KitEvent::new("Step", &[&boundary])];
                    let result = dispatch_with_query(
                        &store,
                        &stream(&format!("writer-{writer}")),
                        &q,
                        &Bounded { limit: usize::MAX },
                        &KitCodec::default(),
                        &command,
                    )
                    .await
                    .map_err(|e| format!("writer {writer}, step {step}: {e:?}"))?;
                    ensure_eq!(
                        result.events[0].event.body,
                        step.to_string(),
                        format!("writer {writer} context")
                    );
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    ensure_eq!(count(&store).await?, WRITERS * DISPATCHES, "events");
    Ok(())
}

pub(super) async fn shared_stream_label_disjoint_queries<S: EventStore + Clone + 'static>(
    store: S,
) -> CaseResult {
    const WRITERS: usize = 16;
    let barrier = Arc::new(Barrier::new(WRITERS));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let boundary = format!("mine:{writer}");
                let q = query(&[], &[&boundary])?;
                barrier.wait().await;
                dispatch_with_query(
                    &store,
                    &stream("shared-label"),
                    &q,
                    &Bounded { limit: 1 },
                    &KitCodec::default(),
                    &vec![KitEvent::new("Done", &[&boundary])],
                )
                .await
                .map_err(|e| format!("writer {writer}: {e:?}"))?;
                Ok::<(), String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let read = store
        .read_stream(&stream("shared-label"))
        .await
        .map_err(|e| e.to_string())?;
    let revisions: Vec<u64> = read.events.iter().map(|e| e.revision).collect();
    ensure_eq!(
        revisions,
        (0..WRITERS as u64).collect::<Vec<_>>(),
        "revisions of the shared stream"
    );
    Ok(())
}

/// Racers on one query, each on a stream of its own ([`StreamId::unique`]):
/// the query alone still lets exactly one win a round, and the winner's
/// events are revisions 0, 1 of its own stream. A keyed dispatch on
/// [`StreamId::for_request`] retried is a replay (one copy stored).
pub(super) async fn unique_streams_keep_the_query_boundary<S: EventStore + Clone + 'static>(
    store: S,
) -> CaseResult {
    for round in 0..RACE_ROUNDS {
        let boundary = format!("unique:{round}");
        let q = query(&[], &[&boundary])?;
        let barrier = Arc::new(Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|_| {
                let (store, q, barrier, boundary) =
                    (store.clone(), q.clone(), barrier.clone(), boundary.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let command = vec![
                        KitEvent::new("Claimed", &[&boundary]),
                        KitEvent::new("Noted", &[&boundary]),
                    ];
                    dispatch_with_query(
                        &store,
                        &StreamId::unique(),
                        &q,
                        &Bounded { limit: 1 },
                        &KitCodec::default(),
                        &command,
                    )
                    .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.map_err(|e| e.to_string())? {
                Ok(dispatch) => winners.push(dispatch),
                Err(DispatchError::Domain(_) | DispatchError::AppendConditionFailed(_)) => {}
                Err(e) => return Err(format!("round {round}: {e:?}")),
            }
        }
        ensure_eq!(winners.len(), 1, format!("winners of round {round}"));
        let won = &winners[0];
        let streams: Vec<&StreamId> = won.events.iter().map(|e| &e.stream).collect();
        ensure!(
            streams
                .iter()
                .all(|s| *s == streams[0] && s.as_str().starts_with("decision-")),
            "the winner's events are not on one stream of its own: {streams:?}"
        );
        let revisions: Vec<u64> = won.events.iter().map(|e| e.revision).collect();
        ensure_eq!(
            revisions,
            vec![0, 1],
            "revisions of the winner's own stream"
        );
    }
    let key = uuid::Uuid::now_v7();
    let q = query(&[], &["unique:keyed"])?;
    let command = vec![KitEvent::new("Claimed", &["unique:keyed"])];
    let mut ids = Vec::new();
    for _ in 0..2 {
        let dispatch = factos::dispatch_with_query_idempotent(
            &store,
            &StreamId::for_request(key),
            &q,
            &Bounded { limit: 1 },
            &KitCodec::default(),
            &command,
            key,
        )
        .await
        .map_err(|e| format!("keyed dispatch: {e:?}"))?;
        ids.push(dispatch.events.iter().map(|e| e.id).collect::<Vec<_>>());
    }
    ensure_eq!(ids[0], ids[1], "a retry on the request's stream replays");
    let stored = store
        .read(&q, forwards())
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(
        stored.events.len(),
        1,
        "copies of the keyed command's event"
    );
    Ok(())
}
