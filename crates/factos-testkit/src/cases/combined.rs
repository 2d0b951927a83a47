//! Cases of a combining [`Dispatcher`] (group commit): commands queued on
//! one boundary are decided in one batch exactly as one after the other,
//! and every caller gets its own outcome.

use factos::{DispatchError, Dispatcher, EventStore, Revision};

use super::cached::box_query;
use super::{count, stream};
use crate::CaseResult;
use crate::gated::Gated;
use crate::model::{KitCodec, Shelf, ShelfCommand};

/// Six commands on one boundary through a combining dispatcher: the first
/// leads alone, held at the store's gate, while the other five queue and
/// form the next batch: a panic, a refusal, an event that cannot be
/// encoded, and two accepted commands. The batch commits exactly the two,
/// each with its own event, revision and position; the second (close at 2)
/// was decided on the stored item plus the first's; the cache then holds
/// the context after the batch.
pub(super) async fn combined_batch_commits_exactly_its_accepted_commands<S: EventStore + Clone>(
    store: S,
) -> CaseResult {
    let gated = Gated::new(store.clone());
    let shelf = Shelf::default();
    let dispatcher =
        Dispatcher::new(gated.clone(), shelf.clone(), KitCodec::default()).with_combining(8);
    let query = box_query("batch")?;
    let shelf_stream = stream("shelf");
    let commands = [
        ShelfCommand::Add("batch".into()),
        ShelfCommand::Panic,
        ShelfCommand::CloseAt("batch".into(), 100),
        ShelfCommand::Add("bad\u{7}".into()),
        ShelfCommand::Add("batch".into()),
        ShelfCommand::CloseAt("batch".into(), 2),
    ];
    gated.hold();
    // `join_all` polls in order: the first dispatch reaches the gate, the
    // others queue behind it, then the gate opens.
    let in_flight = futures_util::future::join_all(
        commands
            .iter()
            .map(|command| dispatcher.dispatch_with_query(&shelf_stream, &query, command)),
    );
    let release = async { gated.release() };
    let (outcomes, ()) = futures_util::future::join(in_flight, release).await;
    ensure_eq!(
        gated.decisions(),
        2,
        "decisions the store made for six commands"
    );
    let [first, panicked, refused, unencodable, added, closed] = outcomes
        .try_into()
        .map_err(|_| "six outcomes".to_string())?;
    let first = first.map_err(|e| format!("the lone first command: {e:?}"))?;
    ensure!(
        matches!(panicked, Err(DispatchError::Panicked { .. })),
        "the panic: {panicked:?}"
    );
    ensure!(
        matches!(refused, Err(DispatchError::Domain(_))),
        "close at 100: {refused:?}"
    );
    ensure!(
        matches!(unencodable, Err(DispatchError::Encode(_))),
        "the unencodable item: {unencodable:?}"
    );
    let added = added.map_err(|e| format!("the second item: {e:?}"))?;
    let closed =
        closed.map_err(|e| format!("close at 2 (one stored, one batched before it): {e:?}"))?;
    ensure_eq!(
        (first.events.len(), added.events.len(), closed.events.len()),
        (1, 1, 1),
        "events per accepted command"
    );
    let revisions: Vec<u64> = [&first, &added, &closed]
        .iter()
        .map(|d| d.events[0].revision)
        .collect();
    ensure_eq!(revisions, vec![0, 1, 2], "revisions of the three events");
    ensure_eq!(
        (
            added.append.current_revision,
            closed.append.current_revision
        ),
        (Revision::Current(1), Revision::Current(2)),
        "each command's own stream revision"
    );
    ensure!(
        added.append.position == Some(added.events[0].position)
            && closed.events[0].position > added.events[0].position
            && added.events[0].position > first.events[0].position,
        "positions: {:?} {:?} {:?}",
        first.append,
        added.append,
        closed.append
    );
    ensure_eq!(
        closed.events[0].event.event_type.as_str(),
        "Closed",
        "the close's event"
    );
    ensure_eq!(count(&store).await?, 3, "events stored");
    // The cache holds the context after the batch: two items.
    let _ = shelf.decided_on();
    dispatcher
        .dispatch_with_query(&shelf_stream, &query, &ShelfCommand::Count)
        .await
        .map_err(|e| format!("counting: {e:?}"))?;
    ensure_eq!(shelf.decided_on(), Some(2), "items the next decision saw");
    Ok(())
}

/// A batch whose commands name different streams: each command's events go
/// to its own stream with that stream's revisions, in arrival order, and a
/// command that appends nothing reports where its stream stood at its turn
/// (no events yet, or the revision an earlier command of the batch left).
pub(super) async fn combined_batch_writes_each_command_to_its_own_stream<S: EventStore + Clone>(
    store: S,
) -> CaseResult {
    let gated = Gated::new(store.clone());
    let dispatcher =
        Dispatcher::new(gated.clone(), Shelf::default(), KitCodec::default()).with_combining(8);
    let query = box_query("streams")?;
    let add = || ShelfCommand::Add("streams".into());
    let steps = [
        ("a", add()),
        ("b", add()),
        ("a", ShelfCommand::Nothing),
        ("a", add()),
        ("c", ShelfCommand::Nothing),
        ("b", add()),
        ("b", ShelfCommand::Nothing),
    ];
    let streams: Vec<_> = steps.iter().map(|(name, _)| stream(name)).collect();
    gated.hold();
    let in_flight = futures_util::future::join_all(
        steps
            .iter()
            .zip(&streams)
            .map(|((_, command), on)| dispatcher.dispatch_with_query(on, &query, command)),
    );
    let release = async { gated.release() };
    let (outcomes, ()) = futures_util::future::join(in_flight, release).await;
    ensure_eq!(
        gated.decisions(),
        2,
        "decisions the store made for seven commands"
    );
    let mut reported = Vec::new();
    let mut positions = Vec::new();
    for (n, outcome) in outcomes.into_iter().enumerate() {
        let dispatch = outcome.map_err(|e| format!("command {n}: {e:?}"))?;
        for event in &dispatch.events {
            ensure_eq!(
                &event.stream,
                &streams[n],
                format!("command {n}'s event's stream")
            );
            positions.push(event.position);
        }
        reported.push((
            dispatch
                .events
                .iter()
                .map(|e| e.revision)
                .collect::<Vec<_>>(),
            dispatch.append.current_revision,
        ));
    }
    ensure_eq!(
        reported,
        vec![
            (vec![0], Revision::Current(0)),
            (vec![0], Revision::Current(0)),
            (vec![], Revision::Current(0)),
            (vec![1], Revision::Current(1)),
            (vec![], Revision::NoEvents),
            (vec![1], Revision::Current(1)),
            (vec![], Revision::Current(1)),
        ],
        "each command's revisions and stream revision"
    );
    ensure!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions follow arrival order: {positions:?}"
    );
    for (name, expected) in [("a", 2), ("b", 2), ("c", 0)] {
        let events = store
            .read_stream(&stream(name))
            .await
            .map_err(|e| format!("reading stream {name}: {e}"))?
            .events;
        let revisions: Vec<u64> = events.iter().map(|e| e.revision).collect();
        ensure_eq!(
            revisions,
            (0..expected).collect::<Vec<u64>>(),
            format!("stream {name}'s revisions")
        );
    }
    Ok(())
}
