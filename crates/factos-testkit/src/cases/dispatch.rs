//! Cases of the dispatch functions over a store: `dispatch_with_query`
//! (committed events, refusals, empty and large decisions, decode, encode
//! and panic failures writing nothing, the codec seeing only matching rows),
//! `read_context`, `load_stream`, the stream `dispatch` and the idempotent
//! dispatch (once, and under racing retries).

use std::sync::Arc;

use factos::{
    AppendCondition, Codec, DecodeError, DispatchError, EncodeError, EventStore, Query, Revision,
    ValidationError, dispatch, dispatch_with_query, load_stream, read_context,
};
use tokio::sync::Barrier;

use super::{LOG, count, forwards, query, raw, seed, stream};
use crate::CaseResult;

/// Most attempts of one racer of `idempotent_racers_append_once`.
const RACER_ATTEMPTS: usize = 200;
use crate::model::{Bounded, CountingCodec, KitCodec, KitEvent, LIMIT_REACHED, Panicking};

pub(super) async fn dispatch_with_query_returns_committed_events<S: EventStore>(
    store: S,
) -> CaseResult {
    seed(&store, LOG).await?;
    let q = query(&["A"], &["x:1"])?;
    let command = vec![
        KitEvent::new("A", &["x:1", "z:9"]),
        KitEvent::new("B", &["x:1"]),
    ];
    let result = dispatch_with_query(
        &store,
        &stream("s"),
        &q,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &command,
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    ensure_eq!(result.events.len(), 2, "recorded events");
    ensure_eq!(
        result.events[0].event.body,
        "2",
        "the decision saw the two matching events"
    );
    ensure_eq!(
        result.append.current_revision,
        Revision::Current(1),
        "current revision"
    );
    ensure_eq!(
        result.append.position,
        result.events.last().map(|e| e.position),
        "append position"
    );
    let read = store
        .read(&Query::all(), forwards().from(result.events[0].position))
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(read.events.len(), 2, "events read back");
    for (recorded, stored) in result.events.iter().zip(&read.events) {
        ensure_eq!(recorded.id, stored.id, "id");
        ensure_eq!(recorded.position, stored.position, "position");
        ensure_eq!(recorded.revision, stored.revision, "revision");
        ensure_eq!(recorded.tags, stored.tags, "tags");
        ensure_eq!(recorded.metadata, stored.metadata, "metadata");
        ensure_eq!(
            KitCodec::default()
                .decode(stored)
                .map_err(|e| e.to_string())?,
            recorded.event,
            "decoded event"
        );
    }
    Ok(())
}

pub(super) async fn dispatch_with_query_domain_error_writes_nothing<S: EventStore>(
    store: S,
) -> CaseResult {
    seed(&store, LOG).await?;
    let q = query(&[], &["x:1"])?;
    let outcome = dispatch_with_query(
        &store,
        &stream("s"),
        &q,
        &Bounded { limit: 4 },
        &KitCodec::default(),
        &vec![KitEvent::new("A", &["x:1"])],
    )
    .await;
    ensure!(
        matches!(outcome, Err(DispatchError::Domain(LIMIT_REACHED))),
        "expected the domain error, got {outcome:?}"
    );
    ensure_eq!(
        count(&store).await?,
        LOG.len(),
        "events after a refused command"
    );
    Ok(())
}

pub(super) async fn dispatch_with_query_without_events<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    let result = dispatch_with_query(
        &store,
        &stream("seed"),
        &query(&["A"], &[])?,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &Vec::new(),
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    ensure!(
        result.events.is_empty(),
        "no event was decided but some were recorded"
    );
    ensure_eq!(result.append.position, None, "position");
    ensure_eq!(
        result.append.current_revision,
        Revision::Current(7),
        "the stream's current revision"
    );
    let empty = dispatch_with_query(
        &store,
        &stream("fresh"),
        &query(&["A"], &[])?,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &Vec::new(),
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    ensure_eq!(
        empty.append.current_revision,
        Revision::NoEvents,
        "revision of an empty stream"
    );
    ensure_eq!(
        empty.append.current_revision.as_i64(),
        -1,
        "the original's -1"
    );
    ensure_eq!(count(&store).await?, LOG.len(), "events");
    Ok(())
}

pub(super) async fn dispatch_with_query_many_events<S: EventStore>(store: S) -> CaseResult {
    let command: Vec<KitEvent> = (0..200)
        .map(|i| KitEvent::new("Many", &["batch:1", &format!("n:{i}")]))
        .collect();
    let result = dispatch_with_query(
        &store,
        &stream("s"),
        &query(&["Many"], &[])?,
        &Bounded { limit: 1 },
        &KitCodec::default(),
        &command,
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    ensure_eq!(result.events.len(), 200, "recorded events");
    let revisions: Vec<u64> = result.events.iter().map(|e| e.revision).collect();
    ensure_eq!(revisions, (0..200).collect::<Vec<u64>>(), "revisions");
    ensure!(
        result
            .events
            .windows(2)
            .all(|w| w[0].position < w[1].position),
        "positions not increasing"
    );
    for (i, recorded) in result.events.iter().enumerate() {
        ensure_eq!(recorded.event.tags[1], format!("n:{i}"), "event order");
    }
    let read = store
        .read(&query(&[], &["batch:1"])?, forwards())
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(read.events.len(), 200, "events found by their tag");
    Ok(())
}

/// A matching row the codec cannot decode fails the dispatch with a decode
/// error that names the row (position, id, stream, revision, type, version)
/// and writes nothing.
pub(super) async fn dispatch_decode_error_on_matching_row<S: EventStore>(store: S) -> CaseResult {
    seed(&store, &[("A", &["y:1"])]).await?;
    let stored = store
        .append(
            &stream("foreign"),
            vec![raw(KitCodec::UNDECODABLE, &["x:1"])?],
            AppendCondition::None,
        )
        .await
        .map_err(|e| e.to_string())?;
    let row = stored
        .events
        .first()
        .ok_or("the row was not stored")?
        .clone();
    let outcome = dispatch_with_query(
        &store,
        &stream("s"),
        &query(&[], &["x:1"])?,
        &Bounded { limit: 10 },
        &KitCodec::strict(),
        &vec![KitEvent::new("A", &["x:1"])],
    )
    .await;
    let Err(DispatchError::Decode(undecodable)) = outcome else {
        return Err(format!("expected a decode error, got {outcome:?}"));
    };
    ensure!(
        matches!(undecodable.error, DecodeError::UnknownEvent { .. }),
        "expected an unknown-event decode error, got {undecodable:?}"
    );
    ensure_eq!(
        (
            undecodable.position,
            undecodable.id,
            &undecodable.stream,
            undecodable.revision,
            &undecodable.event_type,
            undecodable.version
        ),
        (
            row.position,
            row.id,
            &row.stream,
            row.revision,
            &row.event_type,
            row.version
        ),
        "the decode error names the row"
    );
    let said = undecodable.to_string();
    ensure!(
        said.contains(&row.position.to_string()) && said.contains(&row.id.to_string()),
        "the message names neither position nor id: {said}"
    );
    ensure_eq!(count(&store).await?, 2, "events after a failed decode");
    Ok(())
}

pub(super) async fn codec_sees_only_matching_rows<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    store
        .append(
            &stream("foreign"),
            vec![raw(KitCodec::UNDECODABLE, &["x:1"])?],
            AppendCondition::None,
        )
        .await
        .map_err(|e| e.to_string())?;
    let codec = CountingCodec {
        inner: KitCodec::strict(),
        ..CountingCodec::default()
    };
    let q = query(&["A"], &["y:1"])?;
    dispatch_with_query(
        &store,
        &stream("s"),
        &q,
        &Bounded { limit: 10 },
        &codec,
        &vec![KitEvent::new("A", &["y:1"])],
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    // Type A with y:1 matches indexes 2 and 4 of the log: two rows decoded, no more.
    ensure_eq!(
        codec.decoded.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "rows decoded"
    );
    Ok(())
}

pub(super) async fn dispatch_panic_is_caught<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    let outcome = dispatch_with_query(
        &store,
        &stream("s"),
        &query(&["A"], &[])?,
        &Panicking,
        &KitCodec::default(),
        &(),
    )
    .await;
    ensure!(
        matches!(outcome, Err(DispatchError::Panicked { .. })),
        "expected a caught panic, got {outcome:?}"
    );
    ensure_eq!(count(&store).await?, LOG.len(), "events after a panic");
    // The store still works afterwards.
    let q = query(&["A"], &[])?;
    dispatch_with_query(
        &store,
        &stream("s"),
        &q,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &vec![KitEvent::new("A", &[])],
    )
    .await
    .map_err(|e| format!("after a panic: {e:?}"))?;
    Ok(())
}

pub(super) async fn dispatch_encode_error_writes_nothing<S: EventStore>(store: S) -> CaseResult {
    let command = vec![
        KitEvent::new("A", &["fine"]),
        KitEvent::new("A", &["bad\0tag"]),
    ];
    let outcome = dispatch_with_query(
        &store,
        &stream("s"),
        &query(&["A"], &[])?,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &command,
    )
    .await;
    ensure!(
        matches!(
            outcome,
            Err(DispatchError::Encode(EncodeError::Invalid(
                ValidationError::ForbiddenCharacter { .. }
            )))
        ),
        "expected an encode error, got {outcome:?}"
    );
    ensure_eq!(count(&store).await?, 0, "events after an encode error");
    Ok(())
}

pub(super) async fn read_context_folds_matching_events<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    let q = query(&["A"], &[])?;
    let context = read_context(&store, &q, &Bounded { limit: 10 }, &KitCodec::default())
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(context.state, 3, "folded state");
    ensure_eq!(context.events.len(), 3, "events");
    ensure_eq!(
        context.position,
        Some(positions[4]),
        "position of the last matching event, not the head"
    );
    ensure_eq!(
        context.append_condition,
        AppendCondition::fail_if_events_match(q.clone(), Some(positions[4])),
        "append condition"
    );
    let fresh = read_context(
        &store,
        &query(&["Z"], &[])?,
        &Bounded { limit: 10 },
        &KitCodec::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    ensure_eq!(fresh.position, None, "position of an empty context");
    ensure_eq!(fresh.state, 0, "state of an empty context");
    Ok(())
}

pub(super) async fn load_stream_folds_the_stream<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    let loaded = load_stream(
        &store,
        &stream("seed"),
        &Bounded { limit: 10 },
        &KitCodec::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    ensure_eq!(loaded.state, LOG.len(), "folded state");
    ensure_eq!(loaded.revision, Revision::Current(7), "revision");
    ensure_eq!(loaded.events.len(), LOG.len(), "events");
    let empty = load_stream(
        &store,
        &stream("none"),
        &Bounded { limit: 10 },
        &KitCodec::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    ensure_eq!(
        empty.revision,
        Revision::NoEvents,
        "revision of an empty stream"
    );
    Ok(())
}

pub(super) async fn stream_dispatch_revisions<S: EventStore>(store: S) -> CaseResult {
    let s = stream("account");
    for expected in 0..5u64 {
        let result = dispatch(
            &store,
            &s,
            &Bounded { limit: 10 },
            &KitCodec::default(),
            &vec![KitEvent::new("Deposited", &[])],
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
        ensure_eq!(result.events[0].revision, expected, "revision");
        ensure_eq!(
            result.events[0].event.body,
            expected.to_string(),
            "events the decision saw"
        );
        ensure_eq!(
            result.append.current_revision,
            Revision::Current(expected),
            "current revision"
        );
    }
    Ok(())
}

pub(super) async fn stream_dispatch_domain_error<S: EventStore>(store: S) -> CaseResult {
    let s = stream("once");
    dispatch(
        &store,
        &s,
        &Bounded { limit: 1 },
        &KitCodec::default(),
        &vec![KitEvent::new("A", &[])],
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    let outcome = dispatch(
        &store,
        &s,
        &Bounded { limit: 1 },
        &KitCodec::default(),
        &vec![KitEvent::new("A", &[])],
    )
    .await;
    ensure!(
        matches!(outcome, Err(DispatchError::Domain(LIMIT_REACHED))),
        "expected the domain error, got {outcome:?}"
    );
    ensure_eq!(count(&store).await?, 1, "events");
    Ok(())
}

pub(super) async fn idempotent_dispatch_appends_once<S: EventStore>(store: S) -> CaseResult {
    let q = query(&["Paid"], &["invoice:1"])?;
    let key = uuid::Uuid::now_v7();
    let command = vec![
        KitEvent::new("Paid", &["invoice:1"]),
        KitEvent::new("Paid", &["invoice:1", "part:2"]),
    ];
    let first = factos::dispatch_with_query_idempotent(
        &store,
        &stream("invoice-1"),
        &q,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &command,
        key,
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    // The retry decides on a context that now holds the first attempt's events,
    // and still reports what that attempt committed instead of appending again.
    let retry = factos::dispatch_with_query_idempotent(
        &store,
        &stream("invoice-1"),
        &q,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &command,
        key,
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    let ids = |d: &factos::Dispatch<KitEvent>| {
        d.events
            .iter()
            .map(|e| (e.id, e.position))
            .collect::<Vec<_>>()
    };
    ensure_eq!(
        ids(&retry),
        ids(&first),
        "the retry reports the first attempt's events"
    );
    ensure_eq!(
        retry.events[0].event.body,
        "0",
        "the first attempt's payload is reported"
    );
    ensure_eq!(count(&store).await?, 2, "events after a retried dispatch");
    ensure_eq!(
        first.events[0].id,
        factos::event_id(key, 0),
        "ids derive from the key"
    );
    let other = factos::dispatch_with_query_idempotent(
        &store,
        &stream("invoice-1"),
        &q,
        &Bounded { limit: 10 },
        &KitCodec::default(),
        &command,
        uuid::Uuid::now_v7(),
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    ensure_eq!(other.events[0].revision, 2, "another key appends");
    Ok(())
}

pub(super) async fn idempotent_racers_append_once<S: EventStore + Clone + 'static>(
    store: S,
) -> CaseResult {
    let key = uuid::Uuid::now_v7();
    let barrier = Arc::new(Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let q = query(&["Paid"], &["invoice:2"])?;
                barrier.wait().await;
                let command = vec![KitEvent::new("Paid", &["invoice:2"])];
                // Bounded, so a store that keeps refusing fails the case
                // instead of hanging it (eight racers need a few retries).
                for _ in 0..RACER_ATTEMPTS {
                    match factos::dispatch_with_query_idempotent(
                        &store,
                        &stream("invoice-2"),
                        &q,
                        &Bounded { limit: 100 },
                        &KitCodec::default(),
                        &command,
                        key,
                    )
                    .await
                    {
                        Ok(done) => {
                            return Ok::<_, String>(
                                done.events
                                    .iter()
                                    .map(|e| (e.id, e.position))
                                    .collect::<Vec<_>>(),
                            );
                        }
                        Err(e) if e.is_retryable() => {}
                        Err(e) => return Err(format!("{e:?}")),
                    }
                }
                Err(format!(
                    "still refused (retryable) after {RACER_ATTEMPTS} attempts"
                ))
            })
        })
        .collect();
    let mut reported = Vec::new();
    for task in tasks {
        reported.push(task.await.map_err(|e| e.to_string())??);
    }
    let stored: Vec<_> = store
        .read(&Query::all(), forwards())
        .await
        .map_err(|e| e.to_string())?
        .events
        .iter()
        .map(|e| (e.id, e.position))
        .collect();
    ensure_eq!(stored.len(), 1, "events after eight racers with one key");
    ensure_eq!(
        stored[0].0,
        factos::event_id(key, 0),
        "the stored event's id derives from the key"
    );
    for events in reported {
        ensure_eq!(
            events,
            stored,
            "every racer reports the one stored event, id and position"
        );
    }
    Ok(())
}

/// An outbox reactor that fails after the append, while the effects of
/// the appended events are asked for (a panic in `react`, or more effects
/// than one dispatch may record), fails the dispatch and writes nothing:
/// the events and their effects commit together or not at all. Through the
/// free function, a warm dispatcher's cache, and a combining dispatcher.
/// On stores that cannot record effects the case only checks the refusal.
pub(super) async fn a_reactor_failing_after_the_append_writes_nothing<
    S: EventStore + Clone + 'static,
>(
    store: S,
) -> CaseResult {
    let q = query(&["A"], &["fails:1"])?;
    let command = vec![KitEvent::new("A", &["fails:1"])];
    let topic = factos::Topic::new("fails").map_err(|e| e.to_string())?;
    let panicking = {
        let topic = topic.clone();
        factos::reactor_fn(move |_: &factos::Recorded<KitEvent>| {
            // Always panics (the topic is "fails"); written as an
            // assertion so the closure still has a type.
            assert_ne!(topic.as_str(), "fails", "react panics");
            Vec::new()
        })
    };
    let too_many = factos::reactor_fn(move |_: &factos::Recorded<KitEvent>| {
        vec![
            factos::OutboxMessage::new(topic.clone(), Vec::new());
            factos::outbox::MAX_EFFECTS_PER_DISPATCH + 1
        ]
    });
    let failed = |e: &KitDispatchError| {
        matches!(e, DispatchError::Panicked { .. } | DispatchError::Encode(_))
    };
    let what = "events after a reactor failing in react";
    failing_outbox_dispatches_write_nothing(&store, &q, &command, panicking, failed, what).await?;
    failing_outbox_dispatches_write_nothing(&store, &q, &command, too_many, failed, what).await
}

/// How a kit outbox dispatch fails.
type KitDispatchError = DispatchError<<Bounded as factos::Decider>::Error>;

/// Dispatches `command` with `reactor` through the free function, a warm
/// dispatcher's cache (warmed by a decision that appends nothing) and a
/// combining dispatcher: each must fail as `failed` accepts, and nothing may
/// be stored after them (`what` names the count). On stores that cannot
/// record effects only the refusal is checked.
async fn failing_outbox_dispatches_write_nothing<S, R>(
    store: &S,
    q: &Query,
    command: &Vec<KitEvent>,
    reactor: R,
    failed: impl Fn(&KitDispatchError) -> bool,
    what: &str,
) -> CaseResult
where
    S: EventStore + Clone + 'static,
    R: factos::Reactor<Event = KitEvent, Effect = factos::OutboxMessage>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let decider = Bounded { limit: 10 };
    let codec = KitCodec::default();
    let free =
        factos::dispatch_with_outbox(store, &stream("p"), q, &decider, &codec, command, &reactor)
            .await;
    if !store.can_record_effects() {
        ensure!(
            free.is_err(),
            "a store without effects accepted an outbox dispatch"
        );
        return Ok(());
    }
    ensure!(
        free.as_ref().is_err_and(&failed),
        "the free function: {free:?}"
    );
    for combining in [None, Some(4)] {
        let dispatcher = factos::Dispatcher::new(store.clone(), decider, codec.clone());
        let dispatcher = match combining {
            Some(commands) => dispatcher.with_combining(commands),
            None => dispatcher,
        };
        dispatcher
            .dispatch_with_query(&stream("p"), q, &Vec::new())
            .await
            .map_err(|e| format!("warming: {e:?}"))?;
        let outcome = dispatcher
            .dispatch_with_outbox(&stream("p"), q, command, &reactor)
            .await;
        ensure!(
            outcome.as_ref().is_err_and(&failed),
            "a dispatcher (combining {combining:?}): {outcome:?}"
        );
    }
    ensure_eq!(count(store).await?, 0, what);
    Ok(())
}

/// An outbox reactor that panics deciding whether it reacts to a decided
/// event (`Reactor::reacts_to`) fails the dispatch as a caught panic and
/// writes nothing: through the free function, a warm dispatcher's cache,
/// and a combining dispatcher. On stores that cannot record effects the
/// case only checks the refusal.
pub(super) async fn a_reactor_panicking_in_reacts_to_writes_nothing<
    S: EventStore + Clone + 'static,
>(
    store: S,
) -> CaseResult {
    let q = query(&["A"], &["panics:1"])?;
    let command = vec![KitEvent::new("A", &["panics:1"])];
    let topic = factos::Topic::new("panics").map_err(|e| e.to_string())?;
    let reactor = factos::reactor_fn(move |_: &factos::Recorded<KitEvent>| {
        vec![factos::OutboxMessage::new(topic.clone(), Vec::new())]
    })
    .when(|_: &KitEvent| -> bool {
        #[allow(clippy::panic)]
        {
            panic!("reacts_to panics")
        }
    });
    failing_outbox_dispatches_write_nothing(
        &store,
        &q,
        &command,
        reactor,
        |e: &KitDispatchError| matches!(e, DispatchError::Panicked { .. }),
        "events after panics in reacts_to",
    )
    .await
}
