//! Cases of a combining [`Dispatcher`] (group commit): commands queued on
//! one boundary are decided in one batch exactly as one after the other,
//! and every caller gets its own outcome.

use factos::{
    Dispatch, DispatchError, Dispatcher, EventStore, Position, Query, Revision, StreamId, event_id,
};

use super::cached::box_query;
use super::{count, stream};
use crate::CaseResult;
use crate::gated::Gated;
use crate::model::{Bounded, KitCodec, KitEvent, LIMIT_REACHED, Shelf, ShelfCommand};

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

/// Keyed (idempotent) commands keep their keys in batches, on boundaries
/// [`Bounded`] by their size:
/// - the keyed commands of a batch write the ids their keys derive, and
///   retried together they report exactly those events and append nothing;
/// - a retry whose first attempt committed before its batch formed is
///   replayed, not decided again (decided again on its now full context it
///   would be refused);
/// - a retry whose first attempt commits while its batch waits at the
///   store (after the batch looked for earlier attempts) makes the batch's
///   append collide on its ids: nothing of the batch is written, the retry
///   is replayed and the other command commits.
pub(super) async fn combined_keyed_commands_keep_their_keys<S: EventStore + Clone>(
    store: S,
) -> CaseResult {
    keyed_batch_writes_and_replays_its_ids(&store).await?;
    keyed_retry_in_a_batch_is_not_decided_again(&store).await?;
    keyed_retry_racing_its_batch_is_replayed(&store).await
}

type Keyed<S> = Dispatcher<Gated<S>, Bounded, KitCodec>;
type Order = (Vec<KitEvent>, Option<uuid::Uuid>);

fn keyed_dispatcher<S: EventStore + Clone>(store: &S, limit: usize) -> (Gated<S>, Keyed<S>) {
    let gated = Gated::new(store.clone());
    let dispatcher =
        Dispatcher::new(gated.clone(), Bounded { limit }, KitCodec::default()).with_combining(8);
    (gated, dispatcher)
}

fn paid(invoice: &str, events: usize) -> Vec<KitEvent> {
    (0..events)
        .map(|_| KitEvent::new("Paid", &[&format!("invoice:{invoice}")]))
        .collect()
}

/// Dispatches `orders` (keyed or not) on `query` while the gate holds: the
/// first leads alone, the others queue and form the next batch.
async fn dispatch_held<S: EventStore + Clone>(
    gated: &Gated<S>,
    dispatcher: &Keyed<S>,
    query: &Query,
    orders: &[Order],
) -> Vec<Result<Dispatch<KitEvent>, DispatchError<&'static str>>> {
    let on = stream("invoices");
    gated.hold();
    let in_flight = futures_util::future::join_all(
        orders
            .iter()
            .map(|order| place(dispatcher, &on, query, order)),
    );
    let release = async { gated.release() };
    futures_util::future::join(in_flight, release).await.0
}

/// Dispatches one order: keyed (idempotent) or not.
async fn place<S: EventStore + Clone>(
    dispatcher: &Keyed<S>,
    on: &StreamId,
    query: &Query,
    (command, key): &Order,
) -> Result<Dispatch<KitEvent>, DispatchError<&'static str>> {
    match key {
        Some(key) => {
            dispatcher
                .dispatch_with_query_idempotent(on, query, command, *key)
                .await
        }
        None => dispatcher.dispatch_with_query(on, query, command).await,
    }
}

fn ids_and_positions(
    outcome: &Result<Dispatch<KitEvent>, DispatchError<&'static str>>,
) -> Result<Vec<(uuid::Uuid, Position)>, String> {
    let dispatch = outcome.as_ref().map_err(|e| format!("{e:?}"))?;
    Ok(dispatch.events.iter().map(|e| (e.id, e.position)).collect())
}

async fn keyed_batch_writes_and_replays_its_ids<S: EventStore + Clone>(store: &S) -> CaseResult {
    let (gated, dispatcher) = keyed_dispatcher(store, 10);
    let query = super::query(&["Paid"], &["invoice:b"])?;
    let (k2, k3) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let orders = [
        (Vec::new(), None),
        (paid("b", 1), Some(k2)),
        (paid("b", 1), None),
        (paid("b", 2), Some(k3)),
    ];
    let first = dispatch_held(&gated, &dispatcher, &query, &orders).await;
    ensure_eq!(gated.decisions(), 2, "decisions for four commands");
    let firsts = first
        .iter()
        .map(ids_and_positions)
        .collect::<Result<Vec<_>, _>>()?;
    let ids = |n: usize| firsts[n].iter().map(|(id, _)| *id).collect::<Vec<_>>();
    ensure_eq!(
        ids(1),
        vec![event_id(k2, 0)],
        "the first keyed command's id"
    );
    ensure_eq!(
        ids(3),
        vec![event_id(k3, 0), event_id(k3, 1)],
        "the second keyed command's ids"
    );
    ensure_eq!(count(store).await?, 4, "events after the batch");
    let retries = [
        (Vec::new(), None),
        (paid("b", 1), Some(k2)),
        (paid("b", 2), Some(k3)),
    ];
    let again = dispatch_held(&gated, &dispatcher, &query, &retries).await;
    ensure_eq!(
        ids_and_positions(&again[1])?,
        firsts[1],
        "the first keyed retry reports its first attempt"
    );
    ensure_eq!(
        ids_and_positions(&again[2])?,
        firsts[3],
        "the second keyed retry reports its first attempt"
    );
    ensure_eq!(count(store).await?, 4, "events after the retries");
    Ok(())
}

async fn keyed_retry_in_a_batch_is_not_decided_again<S: EventStore + Clone>(
    store: &S,
) -> CaseResult {
    let (gated, dispatcher) = keyed_dispatcher(store, 2);
    let query = super::query(&["Paid"], &["invoice:a"])?;
    let key = uuid::Uuid::new_v4();
    let first = dispatcher
        .dispatch_with_query_idempotent(&stream("invoices"), &query, &paid("a", 2), key)
        .await;
    let first = ids_and_positions(&first).map_err(|e| format!("the first attempt: {e}"))?;
    let orders = [
        (Vec::new(), None),
        (paid("a", 2), Some(key)),
        (Vec::new(), None),
    ];
    let outcomes = dispatch_held(&gated, &dispatcher, &query, &orders).await;
    ensure_eq!(
        ids_and_positions(&outcomes[1]).map_err(|e| format!("the retry: {e}"))?,
        first,
        "the retry in a batch reports its first attempt"
    );
    ensure_eq!(count(store).await?, 4 + 2, "events after the retry");
    Ok(())
}

/// A keyed retry whose first attempt commits while its batch waits at the
/// store: on a boundary of 10 the retry decides again and its append
/// collides on its ids; on a boundary of 2, full after the first attempt,
/// deciding again would refuse it, so the batch must notice the attempt in
/// its context. Either way the retry reports the first attempt; the other
/// command commits (10) or is refused on the full boundary (2).
async fn keyed_retry_racing_its_batch_is_replayed<S: EventStore + Clone>(store: &S) -> CaseResult {
    let before = count(store).await?;
    let other = race(store, "c", 10, 1).await?;
    ensure!(
        other.as_ref().is_ok_and(|d| d.events.len() == 1),
        "the other command of the batch on a boundary of 10: {other:?}"
    );
    ensure_eq!(
        count(store).await?,
        before + 2,
        "events after the first race"
    );
    let other = race(store, "d", 2, 2).await?;
    ensure!(
        matches!(other, Err(DispatchError::Domain(LIMIT_REACHED))),
        "the other command on the full boundary of 2: {other:?}"
    );
    ensure_eq!(
        count(store).await?,
        before + 4,
        "events after the second race"
    );
    Ok(())
}

/// The race of [`keyed_retry_racing_its_batch_is_replayed`] on invoice
/// `invoice`, [`Bounded`] by `limit`, the keyed command paying `events`
/// times: checks the retry's report, returns the other command's outcome.
async fn race<S: EventStore + Clone>(
    store: &S,
    invoice: &str,
    limit: usize,
    events: usize,
) -> Result<Result<Dispatch<KitEvent>, DispatchError<&'static str>>, String> {
    let (gated, dispatcher) = keyed_dispatcher(store, limit);
    let query = super::query(&["Paid"], &[&format!("invoice:{invoice}")])?;
    let on = stream("invoices");
    let key = uuid::Uuid::new_v4();
    let orders = [
        (Vec::new(), None),
        (paid(invoice, events), Some(key)),
        (paid(invoice, 1), None),
    ];
    gated.hold();
    let in_flight = futures_util::future::join_all(
        orders
            .iter()
            .map(|order| place(&dispatcher, &on, &query, order)),
    );
    // The lone first passes; the batch of the other two looks for earlier
    // attempts, finds none and waits at the gate; the keyed command's first
    // attempt then commits, behind the dispatcher's back.
    let first_attempt = async {
        gated.let_one_through();
        let mut waited = 0;
        while !(gated.decisions() == 1 && gated.waiting() == 1) {
            waited += 1;
            if waited > 10_000 {
                gated.release();
                return Err("the batch never reached the gate".to_string());
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let first = factos::dispatch_with_query_idempotent(
            gated.inner(),
            &on,
            &query,
            &Bounded { limit },
            &KitCodec::default(),
            &paid(invoice, events),
            key,
        )
        .await;
        gated.release();
        ids_and_positions(&first).map_err(|e| format!("the first attempt: {e}"))
    };
    let (mut outcomes, first) = futures_util::future::join(in_flight, first_attempt).await;
    let first = first?;
    ensure_eq!(
        ids_and_positions(&outcomes[1]).map_err(|e| format!("the racing retry: {e}"))?,
        first,
        format!(
            "the retry reports the attempt that committed while its batch waited (limit {limit})"
        )
    );
    Ok(outcomes.remove(2))
}

/// (cause position, payload) of every effect a store recorded, in order.
pub type RecordedEffects = Vec<(u64, Vec<u8>)>;

/// Outbox dispatches in batches (group commit) record each command's
/// effects by its own reactor, caused by its own events, in the batch's
/// transaction: a batch of an outbox command, a plain one, a refused outbox
/// one and a second outbox command commits in one decision with exactly the
/// two outbox commands' effects; a reactor that panics in a batch leaves
/// only its own command out (the others commit alone, with their effects).
/// `recorded` reads the effects `store` holds.
///
/// # Errors
///
/// Says which command or effect differs.
pub async fn combined_outbox_dispatches_record_each_commands_effects<S, F, R>(
    store: S,
    recorded: F,
) -> CaseResult
where
    S: EventStore + Clone,
    F: Fn() -> R,
    R: std::future::Future<Output = Result<RecordedEffects, String>>,
{
    let gated = Gated::new(store.clone());
    let dispatcher =
        Dispatcher::new(gated.clone(), Shelf::default(), KitCodec::default()).with_combining(8);
    let query = box_query("mail")?;
    let on = stream("mail");
    let add = || ShelfCommand::Add("mail".into());
    let orders = [
        (add(), Some("lead")),
        (add(), Some("a")),
        (add(), None),
        (ShelfCommand::CloseAt("mail".into(), 100), Some("refused")),
        (add(), Some("b")),
    ];
    let outcomes = dispatch_with_mail(&gated, &dispatcher, &on, &query, &orders, None).await;
    ensure_eq!(gated.decisions(), 2, "decisions for five commands");
    ensure!(
        matches!(outcomes[3], Err(DispatchError::Domain(_))),
        "the refused command: {:?}",
        outcomes[3]
    );
    let position = |n: usize| -> Result<u64, String> {
        let dispatch = outcomes[n]
            .as_ref()
            .map_err(|e| format!("command {n}: {e:?}"))?;
        Ok(dispatch.events.first().ok_or("no event")?.position.get())
    };
    let mut expected = vec![
        (position(0)?, b"lead".to_vec()),
        (position(1)?, b"a".to_vec()),
        (position(4)?, b"b".to_vec()),
    ];
    position(2)?;
    ensure_eq!(recorded().await?, expected, "effects after the batch");
    // A panicking reactor in the next batch: each command goes alone.
    let orders = [(add(), None), (add(), Some("c")), (add(), Some("panics"))];
    let outcomes =
        dispatch_with_mail(&gated, &dispatcher, &on, &query, &orders, Some("panics")).await;
    ensure!(
        matches!(outcomes[2], Err(DispatchError::Panicked { .. })),
        "the command whose reactor panics: {:?}",
        outcomes[2]
    );
    let c = outcomes[1]
        .as_ref()
        .map_err(|e| format!("the command beside the panic: {e:?}"))?;
    expected.push((
        c.events.first().ok_or("no event")?.position.get(),
        b"c".to_vec(),
    ));
    ensure_eq!(recorded().await?, expected, "effects after the panic");
    ensure_eq!(count(&store).await?, 4 + 2, "events stored");
    Ok(())
}

/// Dispatches `orders` while the gate holds (the first leads alone, the
/// others form one batch): each with an outbox reactor mailing its name,
/// or plain; the reactor of the one named `panics` panics.
async fn dispatch_with_mail<S: EventStore + Clone>(
    gated: &Gated<S>,
    dispatcher: &Dispatcher<Gated<S>, Shelf, KitCodec>,
    on: &StreamId,
    query: &Query,
    orders: &[(ShelfCommand, Option<&'static str>)],
    panics: Option<&'static str>,
) -> Vec<Result<Dispatch<KitEvent>, DispatchError<String>>> {
    gated.hold();
    let in_flight =
        futures_util::future::join_all(orders.iter().map(|(command, mail)| async move {
            match mail {
                Some(name) => {
                    let name: &'static str = name;
                    let topic = factos::Topic::new("mail").unwrap_or_else(|e| unreachable!("{e}"));
                    let panicking = panics == Some(name);
                    let mail = factos::reactor_fn(move |_: &factos::Recorded<KitEvent>| {
                        assert!(!panicking, "the reactor panics on purpose");
                        vec![factos::OutboxMessage::new(
                            topic.clone(),
                            name.as_bytes().to_vec(),
                        )]
                    });
                    dispatcher
                        .dispatch_with_outbox(on, query, command, &mail)
                        .await
                }
                None => dispatcher.dispatch_with_query(on, query, command).await,
            }
        }));
    let release = async { gated.release() };
    futures_util::future::join(in_flight, release).await.0
}
