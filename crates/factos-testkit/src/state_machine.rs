//! A model-based test of [`Dispatcher`]: random sequences of steps over a few
//! overlapping queries, through several dispatchers with small caches (so
//! entries are evicted) on the store instances given (separate pools on
//! PostgreSQL; clones of one log in memory), mixed with free-function
//! dispatches and plain appends of "another process". After every step but a
//! keyed retry the decision is compared with the model, a fresh fold of the
//! log; a keyed retry must report its first attempt's events (ids and
//! positions) and append nothing. The run does not observe whether a step
//! hit the cache, was evicted or took the guarded path: it checks outcomes.
//!
//! The steps cover the paths a cache can get wrong: decisions that append
//! nothing, one or several events; domain refusals; decider panics; keyed
//! (idempotent) dispatches and their retries; outbox dispatches; other
//! writers moving a context between two cached decisions. Steps run one at
//! a time, so the model is exact: a decision must have been made on exactly
//! the events matching its query in the log as it was before the step, and
//! the log afterwards must be that log plus exactly the decided events.
//!
//! [`run`] returns a [`MachineReport`] that counts what was walked, so a
//! caller can require every kind of step to have happened.

use std::sync::{Arc, Mutex, PoisonError};

use factos::{
    Decider, Dispatch, DispatchError, Dispatcher, EventStore, OutboxMessage, Query, QueryItem,
    Reactor, ReadOptions, StoredEvent, StreamId, Topic, reactor_fn,
};

use factos::snapshot::SnapshotPolicy;

use crate::RecordedEffects;
use crate::gated::Gated;
use crate::model::{KitCodec, KitEvent};
use crate::oracle::Rng;

/// Sizes of a [`run`].
#[derive(Debug, Clone, Copy)]
pub struct MachineConfig {
    /// Steps of the run.
    pub steps: usize,
    /// Seed of the pseudo-random choices (a failure reproduces by seed).
    pub seed: u64,
}

/// What a [`run`] walked, per kind of step.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MachineReport {
    /// Cached decisions that appended nothing.
    pub empty: usize,
    /// Cached decisions that appended one event.
    pub single: usize,
    /// Cached decisions that appended several events.
    pub several: usize,
    /// Domain refusals.
    pub refused: usize,
    /// Decider panics.
    pub panicked: usize,
    /// Keyed dispatches (first attempts).
    pub keyed: usize,
    /// Keyed retries that returned the first attempt's events.
    pub replayed: usize,
    /// Outbox dispatches.
    pub outbox: usize,
    /// Free-function dispatches under a condition narrower than the read.
    pub narrower: usize,
    /// Effects recorded (outbox dispatches, single and combined).
    pub mailed: usize,
    /// Outbox dispatches that committed events, none of which the reactor
    /// reacts to (they commit as plain dispatches do).
    pub outbox_without_effects: usize,
    /// Free-function dispatches and plain appends (other writers).
    pub foreign: usize,
    /// Combined steps: several commands (each on its own stream) queued
    /// behind one in flight and decided as one batch.
    pub combined: usize,
    /// Keyed commands and keyed retries inside combined steps.
    pub combined_keyed: usize,
    /// Outbox commands inside combined steps.
    pub combined_outbox: usize,
    /// Cache misses that started from a snapshot (dispatchers 1, 4, ...
    /// keep snapshots).
    pub snapshot_loads: u64,
}

/// What the model's decider is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineCommand {
    /// Append these events (none: the "already done" answer).
    Append(Vec<KitEvent>),
    /// Refuse.
    Refuse,
    /// Panic in `decide`.
    Panic,
}

/// A command the model's decider was given, and the state it decided on.
type Decision = (MachineCommand, Vec<String>);

/// The model's decider: its state is the bodies of the events folded, in
/// order, and every `decide` writes down the state it decided on.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    decided_on: Arc<Mutex<Option<Vec<String>>>>,
    /// Every command decided, with the state it was decided on, since the
    /// last [`Recorder::take_history`].
    history: Arc<Mutex<Vec<Decision>>>,
}

impl Recorder {
    fn take(&self) -> Option<Vec<String>> {
        self.decided_on
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn take_history(&self) -> Vec<Decision> {
        std::mem::take(&mut *self.history.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Decider for Recorder {
    type State = Vec<String>;
    type Command = MachineCommand;
    type Event = KitEvent;
    type Error = String;

    fn initial(&self) -> Vec<String> {
        Vec::new()
    }

    fn decide(
        &self,
        seen: &Vec<String>,
        command: &MachineCommand,
    ) -> Result<Vec<KitEvent>, String> {
        *self
            .decided_on
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(seen.clone());
        self.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((command.clone(), seen.clone()));
        match command {
            MachineCommand::Append(events) => Ok(events.clone()),
            MachineCommand::Refuse => Err("refused".to_string()),
            #[allow(clippy::panic)]
            MachineCommand::Panic => panic!("the model's decider was told to panic"),
        }
    }

    fn evolve(&self, mut seen: Vec<String>, event: &KitEvent) -> Vec<String> {
        seen.push(event.body.clone());
        seen
    }
}

const TYPES: &[&str] = &["A", "B", "C"];
const TAGS: &[&str] = &["x:1", "x:2", "y:1"];

fn queries() -> Result<Vec<Query>, String> {
    let item = |types: &[&str], tags: &[&str]| {
        QueryItem::parse(types.iter().copied(), tags.iter().copied()).map_err(|e| e.to_string())
    };
    Ok(vec![
        Query::item(item(&["A"], &["x:1"])?),
        Query::item(item(&[], &["x:1"])?),
        Query::item(item(&["A", "B"], &[])?),
        Query::from_items([item(&["A"], &["x:1"])?, item(&["B"], &["y:1"])?]),
        Query::all(),
    ])
}

fn random_events(rng: &mut Rng, step: usize, most: usize) -> Vec<KitEvent> {
    (0..rng.below(most + 1))
        .map(|index| {
            let tags: Vec<&str> = (0..rng.below(3)).map(|_| rng.pick(TAGS)).collect();
            KitEvent::new(rng.pick(TYPES), &tags).with_body(format!("{step}.{index}"))
        })
        .collect()
}

/// The command of a plain cached decision of `kind` (0 to 12): mostly
/// decisions that append nothing or one event, some several, a refusal, a panic.
fn random_command(kind: usize, rng: &mut Rng, step: usize) -> MachineCommand {
    match kind {
        0..=4 => MachineCommand::Append(Vec::new()),
        5..=8 => MachineCommand::Append(vec![
            KitEvent::new(rng.pick(TYPES), &[rng.pick(TAGS)]).with_body(format!("{step}.0")),
        ]),
        9..=10 => {
            let mut events = random_events(rng, step, 3);
            events.push(
                KitEvent::new(rng.pick(TYPES), &[rng.pick(TAGS)]).with_body(format!("{step}.x")),
            );
            MachineCommand::Append(events)
        }
        11 => MachineCommand::Refuse,
        _ => MachineCommand::Panic,
    }
}

/// The model: the bodies of the events matching `query`, in position order.
async fn fold<S: EventStore>(store: &S, query: &Query) -> Result<Vec<String>, String> {
    let read = store
        .read(query, ReadOptions::default())
        .await
        .map_err(|e| format!("model read: {e}"))?;
    read.events.iter().map(body).collect()
}

fn body(event: &StoredEvent) -> Result<String, String> {
    serde_json::from_slice::<KitEvent>(&event.data)
        .map(|e| e.body)
        .map_err(|e| format!("undecodable event at {}: {e}", event.position))
}

async fn log<S: EventStore>(store: &S) -> Result<Vec<StoredEvent>, String> {
    Ok(store
        .read(&Query::all(), ReadOptions::default())
        .await
        .map_err(|e| format!("log read: {e}"))?
        .events)
}

/// Whether the log still starts with `before`, and the bodies of the events
/// after it.
async fn appended_since<S: EventStore>(
    store: &S,
    before: &[StoredEvent],
) -> Result<(bool, Vec<String>), String> {
    let after = log(store).await?;
    let appended = after
        .get(before.len()..)
        .unwrap_or_default()
        .iter()
        .map(body)
        .collect::<Result<_, _>>()?;
    Ok((after.get(..before.len()) == Some(before), appended))
}

type Dispatchers<S> = Vec<Dispatcher<Gated<S>, Recorder, KitCodec>>;

/// One step's context: where it runs and what the model expects.
struct Step<'a, S> {
    number: usize,
    dispatcher: &'a Dispatcher<Gated<S>, Recorder, KitCodec>,
    query: &'a Query,
    stream: StreamId,
    expected_state: Vec<String>,
}

/// Runs `config.steps` random steps. `stores` are instances of one store
/// (separate pools and caches, as in several processes); dispatcher `i` uses
/// `stores[i % len]` and caches `cache_entries[i]` contexts (1 or 2 evict);
/// the even ones combine concurrent dispatches (group commit), and only
/// they take combined steps. `effects_held` reads the effects the store holds
/// (its outbox); after every step they must be exactly the effects of the
/// events the outbox dispatches committed and the model's reactor reacts
/// to (every type but `C`), one message each, caused by its event.
///
/// # Errors
///
/// The first step whose outcome differs from the model's, explained.
pub async fn run<S, F, R>(
    stores: &[S],
    cache_entries: &[usize],
    config: MachineConfig,
    effects_held: F,
) -> Result<MachineReport, String>
where
    S: EventStore + Clone + 'static,
    F: Fn() -> R,
    R: std::future::Future<Output = Result<RecordedEffects, String>>,
{
    let first = stores.first().ok_or("no store")?;
    let recorder = Recorder::default();
    let dispatchers: Dispatchers<S> = cache_entries
        .iter()
        .enumerate()
        .map(|(i, &entries)| {
            let dispatcher = Dispatcher::new(
                Gated::new(stores[i % stores.len()].clone()),
                recorder.clone(),
                KitCodec::default(),
            )
            .with_cache_entries(entries);
            // Every third keeps snapshots, so its cache misses (it evicts)
            // start from one.
            let dispatcher = if i % 3 == 1 {
                dispatcher.with_snapshots(SnapshotPolicy::every("model", 1, 2))
            } else {
                dispatcher
            };
            if i % 2 == 0 {
                dispatcher.with_combining(crate::MACHINE_BATCH)
            } else {
                dispatcher
            }
        })
        .collect();
    if dispatchers.is_empty() {
        return Err("no dispatcher".into());
    }
    let queries = queries()?;
    let mut rng = Rng::new(config.seed);
    let mut report = MachineReport::default();
    let mut keyed: Vec<KeyedAttempt> = Vec::new();
    let mut effects = sorted(effects_held().await?);
    for number in 0..config.steps {
        let query = &queries[rng.below(queries.len())];
        let index = rng.below(dispatchers.len());
        let dispatcher = &dispatchers[index];
        let stream = StreamId::new(format!("s{}", rng.below(3))).map_err(|e| e.to_string())?;
        let before = log(first).await?;
        let step = Step {
            number,
            dispatcher,
            query,
            stream,
            expected_state: fold(first, query).await?,
        };
        let why = |e: String| format!("step {number} on {query} (seed {}): {e}", config.seed);
        let _ = recorder.take();
        let mut mailed = Vec::new();
        match rng.below(20) {
            kind @ 0..=12 => {
                let command = random_command(kind, &mut rng, number);
                decide(&step, &recorder, command, &before, &mut report).await
            }
            13..=14 => {
                keyed_step(&step, &recorder, &mut rng, &mut keyed, &before, &mut report).await
            }
            15..=16 if first.can_record_effects() => {
                outbox_step(
                    &step,
                    &recorder,
                    &mut rng,
                    &before,
                    &mut mailed,
                    &mut report,
                )
                .await
            }
            // The even dispatchers combine.
            17..=18 if index % 2 == 0 => {
                let mail = &mut mailed;
                combined_step(
                    &step,
                    &recorder,
                    &mut rng,
                    &mut keyed,
                    &before,
                    mail,
                    &mut report,
                )
                .await
            }
            _ => foreign_step(&step, first, &mut rng, &before, &mut report).await,
        }
        .map_err(why)?;
        report.mailed += mailed.len();
        effects = sorted(effects.into_iter().chain(mailed).collect());
        let now = sorted(effects_held().await?);
        if now != effects {
            return Err(why(format!(
                "the store holds the effects {now:?}, the model {effects:?}"
            )));
        }
    }
    report.snapshot_loads = dispatchers.iter().map(|d| d.snapshot_stats().loaded).sum();
    Ok(report)
}

/// Checks a dispatch's outcome against the model: the state it decided on,
/// and the log afterwards (the events before plus exactly those decided).
async fn check<S: EventStore>(
    step: &Step<'_, S>,
    recorder: &Recorder,
    command: &MachineCommand,
    outcome: &Result<Dispatch<KitEvent>, DispatchError<String>>,
    before: &[StoredEvent],
) -> Result<(), String> {
    let decided_on = recorder.take();
    if decided_on.as_ref() != Some(&step.expected_state) {
        return Err(format!(
            "decided on {decided_on:?}, a fresh fold is {:?}",
            step.expected_state
        ));
    }
    let (prefix_kept, appended) = appended_since(step.dispatcher.store(), before).await?;
    let expected: Vec<String> = match (command, outcome) {
        (MachineCommand::Append(events), Ok(_)) => events.iter().map(|e| e.body.clone()).collect(),
        (MachineCommand::Refuse, Err(DispatchError::Domain(_)))
        | (MachineCommand::Panic, Err(DispatchError::Panicked { .. })) => Vec::new(),
        (_, other) => return Err(format!("{command:?} gave {other:?}")),
    };
    if !prefix_kept || appended != expected {
        return Err(format!(
            "{command:?} appended {appended:?}, expected {expected:?}"
        ));
    }
    if let Ok(dispatch) = outcome {
        let bodies: Vec<&str> = dispatch
            .events
            .iter()
            .map(|r| r.event.body.as_str())
            .collect();
        if bodies != expected.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(format!(
                "the dispatch reported {bodies:?}, expected {expected:?}"
            ));
        }
    }
    Ok(())
}

async fn decide<S: EventStore>(
    step: &Step<'_, S>,
    recorder: &Recorder,
    command: MachineCommand,
    before: &[StoredEvent],
    report: &mut MachineReport,
) -> Result<(), String> {
    let outcome = step
        .dispatcher
        .dispatch_with_query(&step.stream, step.query, &command)
        .await;
    check(step, recorder, &command, &outcome, before).await?;
    match &command {
        MachineCommand::Append(events) if events.is_empty() => report.empty += 1,
        MachineCommand::Append(events) if events.len() == 1 => report.single += 1,
        MachineCommand::Append(_) => report.several += 1,
        MachineCommand::Refuse => report.refused += 1,
        MachineCommand::Panic => report.panicked += 1,
    }
    Ok(())
}

/// A committed keyed dispatch, to be retried later with its key.
#[derive(Clone)]
struct KeyedAttempt {
    key: uuid::Uuid,
    query: Query,
    stream: StreamId,
    command: MachineCommand,
    committed: Vec<(uuid::Uuid, u64)>,
}

/// A first keyed dispatch, or a retry of an earlier key: the retry appends
/// nothing and reports the first attempt's events (ids and positions).
async fn keyed_step<S: EventStore>(
    step: &Step<'_, S>,
    recorder: &Recorder,
    rng: &mut Rng,
    keyed: &mut Vec<KeyedAttempt>,
    before: &[StoredEvent],
    report: &mut MachineReport,
) -> Result<(), String> {
    let ids = |d: &Dispatch<KitEvent>| -> Vec<(uuid::Uuid, u64)> {
        d.events.iter().map(|r| (r.id, r.position.get())).collect()
    };
    if !keyed.is_empty() && rng.below(2) == 0 {
        let first = keyed[rng.below(keyed.len())].clone();
        let retry = step
            .dispatcher
            .dispatch_with_query_idempotent(&first.stream, &first.query, &first.command, first.key)
            .await
            .map_err(|e| format!("keyed retry: {e:?}"))?;
        let _ = recorder.take();
        if ids(&retry) != first.committed {
            return Err(format!(
                "the keyed retry reported {:?}, the first attempt {:?}",
                ids(&retry),
                first.committed
            ));
        }
        if log(step.dispatcher.store()).await?.len() != before.len() {
            return Err("the keyed retry appended".into());
        }
        report.replayed += 1;
        return Ok(());
    }
    let mut events = random_events(rng, step.number, 2);
    events.push(KitEvent::new("A", &["x:1"]).with_body(format!("{}.k", step.number)));
    let command = MachineCommand::Append(events);
    let key = uuid::Uuid::new_v4();
    let outcome = step
        .dispatcher
        .dispatch_with_query_idempotent(&step.stream, step.query, &command, key)
        .await;
    check(step, recorder, &command, &outcome, before).await?;
    if let Ok(dispatch) = &outcome {
        keyed.push(KeyedAttempt {
            key,
            query: step.query.clone(),
            stream: step.stream.clone(),
            committed: ids(dispatch),
            command,
        });
    }
    report.keyed += 1;
    Ok(())
}

/// The model's outbox reactor: one message per event but those of type
/// `C` (it does not react to them: a decision of only `C` events commits as
/// a plain one), its body.
fn body_mail()
-> impl Reactor<Event = KitEvent, Effect = OutboxMessage> + Clone + Send + Sync + 'static {
    let topic = Topic::new("model").unwrap_or_else(|e| unreachable!("the model's topic: {e}"));
    reactor_fn(move |r: &factos::Recorded<KitEvent>| {
        vec![OutboxMessage::new(
            topic.clone(),
            r.event.body.clone().into_bytes(),
        )]
    })
    .when(mailed)
}

/// Whether the model's reactor reacts to `event`.
fn mailed(event: &KitEvent) -> bool {
    event.event_type != "C"
}

/// The effects the model's reactor gives for a committed outbox dispatch.
fn mail_of(dispatch: &Dispatch<KitEvent>) -> impl Iterator<Item = (u64, Vec<u8>)> + '_ {
    dispatch
        .events
        .iter()
        .filter(|r| mailed(&r.event))
        .map(|r| (r.position.get(), r.event.body.clone().into_bytes()))
}

fn sorted(mut effects: RecordedEffects) -> RecordedEffects {
    effects.sort();
    effects
}

async fn outbox_step<S: EventStore>(
    step: &Step<'_, S>,
    recorder: &Recorder,
    rng: &mut Rng,
    before: &[StoredEvent],
    mailed: &mut RecordedEffects,
    report: &mut MachineReport,
) -> Result<(), String> {
    let reactor = body_mail();
    let mut events = random_events(rng, step.number, 2);
    if rng.below(3) == 0 {
        // Only events the reactor does not react to: no effects.
        for event in &mut events {
            event.event_type = "C".to_string();
        }
    }
    let command = MachineCommand::Append(events);
    let outcome = step
        .dispatcher
        .dispatch_with_outbox(&step.stream, step.query, &command, &reactor)
        .await;
    check(step, recorder, &command, &outcome, before).await?;
    if let Ok(dispatch) = &outcome {
        let before = mailed.len();
        mailed.extend(mail_of(dispatch));
        if mailed.len() == before && !dispatch.events.is_empty() {
            report.outbox_without_effects += 1;
        }
    }
    report.outbox += 1;
    Ok(())
}

/// A condition narrower than `query`: its first item, or on all events the
/// events of type `A`.
fn narrower(query: &Query) -> Result<Query, String> {
    match query.items().first() {
        Some(item) => Ok(Query::item(item.clone())),
        None => Ok(Query::item(
            QueryItem::parse(["A"], [] as [&str; 0]).map_err(|e| e.to_string())?,
        )),
    }
}

/// Another writer: a free-function dispatch (some under a narrower
/// condition) or a plain append.
async fn foreign_step<S: EventStore>(
    step: &Step<'_, S>,
    store: &S,
    rng: &mut Rng,
    before: &[StoredEvent],
    report: &mut MachineReport,
) -> Result<(), String> {
    let mut events = random_events(rng, step.number, 2);
    events.push(
        KitEvent::new(rng.pick(TYPES), &[rng.pick(TAGS)]).with_body(format!("{}.f", step.number)),
    );
    let expected: Vec<String> = events.iter().map(|e| e.body.clone()).collect();
    let how = rng.below(3);
    if how == 0 {
        let encoded = events
            .iter()
            .map(|e| factos::Codec::encode(&KitCodec::default(), e).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        store
            .append(&step.stream, encoded, factos::AppendCondition::None)
            .await
            .map_err(|e| format!("foreign append: {e}"))?;
    } else {
        let recorder = Recorder::default();
        let command = MachineCommand::Append(events);
        let codec = KitCodec::default();
        if how == 1 {
            factos::dispatch_with_query(
                store,
                &step.stream,
                step.query,
                &recorder,
                &codec,
                &command,
            )
            .await
            .map_err(|e| format!("foreign dispatch: {e:?}"))?;
        } else {
            // A narrower condition: the decision still reads the whole query.
            let condition = narrower(step.query)?;
            factos::dispatch_with_condition(
                store,
                &step.stream,
                step.query,
                &condition,
                &recorder,
                &codec,
                &command,
            )
            .await
            .map_err(|e| format!("dispatch under the condition {condition}: {e:?}"))?;
            report.narrower += 1;
        }
        if recorder.take().as_ref() != Some(&step.expected_state) {
            return Err(
                "a free-function dispatch decided on another state than a fresh fold".into(),
            );
        }
    }
    let (_, appended) = appended_since(store, before).await?;
    if appended != expected {
        return Err(format!(
            "the foreign dispatch appended {appended:?}, expected {expected:?}"
        ));
    }
    report.foreign += 1;
    Ok(())
}

/// How a command of a combined step is dispatched.
enum Via {
    Plain,
    /// With an outbox reactor (on stores that record effects).
    Outbox,
    /// Idempotent, under a new key.
    Keyed(uuid::Uuid),
    /// The retry of an earlier keyed dispatch on the same query: it must
    /// report its first attempt's events, append nothing and decide nothing.
    Retry(KeyedAttempt),
}

/// One command of a combined step.
struct Combined {
    stream: StreamId,
    command: MachineCommand,
    via: Via,
}

/// Two to five commands of random kinds, each on a random stream, some of
/// them keyed, some retries of earlier keyed dispatches and some outbox
/// dispatches (on stores that record effects), through a
/// combining dispatcher: the first reaches the store's gate, the others
/// queue behind it and form one batch. The model is sequential: every
/// command but the retries must have been decided, in order, on the fresh
/// fold plus the matching events of the commands accepted before it, got
/// its own outcome (a keyed one with the ids its key derives), and the log
/// grows by exactly the accepted commands' events, in order, each on its
/// command's stream; each retry reports its first attempt.
async fn combined_step<S: EventStore>(
    step: &Step<'_, S>,
    recorder: &Recorder,
    rng: &mut Rng,
    keyed: &mut Vec<KeyedAttempt>,
    before: &[StoredEvent],
    mailed: &mut RecordedEffects,
    report: &mut MachineReport,
) -> Result<(), String> {
    let commands = random_combined(step, rng, keyed)?;
    let gate = step.dispatcher.store();
    let decisions_before = gate.decisions();
    let _ = recorder.take_history();
    gate.hold();
    let in_flight = futures_util::future::join_all(commands.iter().map(|c| place(step, c)));
    let release = async { gate.release() };
    let (outcomes, ()) = futures_util::future::join(in_flight, release).await;
    let _ = recorder.take();
    expect_decisions(&commands, gate.decisions() - decisions_before)?;
    let history = recorder.take_history();
    let mut decided = last_decisions(&commands, &history).into_iter();
    let mut state = step.expected_state.clone();
    let mut expected_log: Vec<String> = Vec::new();
    for (n, (c, outcome)) in commands.iter().zip(&outcomes).enumerate() {
        if let Via::Retry(first) = &c.via {
            let reported = outcome.as_ref().map(|d| {
                d.events
                    .iter()
                    .map(|r| (r.id, r.position.get()))
                    .collect::<Vec<_>>()
            });
            if !reported.as_ref().is_ok_and(|ids| ids == &first.committed) {
                return Err(format!(
                    "retry {n} reported {reported:?}, its first attempt {:?}",
                    first.committed
                ));
            }
            report.replayed += 1;
            report.combined_keyed += 1;
            continue;
        }
        if matches!(c.via, Via::Outbox) {
            report.combined_outbox += 1;
            if let Ok(dispatch) = outcome {
                mailed.extend(mail_of(dispatch));
            }
        }
        let decided_on = decided.next().flatten();
        if decided_on != Some(&state) {
            return Err(format!(
                "command {n} of {:?} decided on {decided_on:?}, sequentially it is {state:?}",
                commands.iter().map(|c| &c.command).collect::<Vec<_>>()
            ));
        }
        match (&c.command, outcome) {
            (MachineCommand::Append(events), Ok(dispatch)) => {
                check_combined_dispatch(n, c, events, dispatch)?;
                for event in events {
                    expected_log.push(event.body.clone());
                    if kit_event_matches(event, step.query) {
                        state.push(event.body.clone());
                    }
                }
                if let Via::Keyed(key) = c.via
                    && !dispatch.events.is_empty()
                {
                    keyed.push(KeyedAttempt {
                        key,
                        query: step.query.clone(),
                        stream: c.stream.clone(),
                        command: c.command.clone(),
                        committed: dispatch
                            .events
                            .iter()
                            .map(|r| (r.id, r.position.get()))
                            .collect(),
                    });
                    report.keyed += 1;
                    report.combined_keyed += 1;
                }
            }
            (MachineCommand::Refuse, Err(DispatchError::Domain(_)))
            | (MachineCommand::Panic, Err(DispatchError::Panicked { .. })) => {}
            (command, other) => return Err(format!("command {n}, {command:?}, gave {other:?}")),
        }
    }
    let (prefix_kept, appended) = appended_since(step.dispatcher.store(), before).await?;
    if !prefix_kept || appended != expected_log {
        return Err(format!(
            "the batch appended {appended:?}, expected {expected_log:?}"
        ));
    }
    report.combined += 1;
    Ok(())
}

/// The state each fresh (not retried) command of a combined step was last
/// decided on, in command order: matched from the newest decision back,
/// each command to the newest decision of its command before the later
/// commands' ones. A store may decide a command more than once in one
/// dispatch (on a cached state first, then on a fresh read when the
/// context moved or the cached decision refused); only the last counts.
fn last_decisions<'h>(
    commands: &[Combined],
    history: &'h [Decision],
) -> Vec<Option<&'h Vec<String>>> {
    let mut end = history.len();
    let mut found: Vec<Option<&Vec<String>>> = commands
        .iter()
        .rev()
        .filter(|c| !matches!(c.via, Via::Retry(_)))
        .map(|c| {
            let at = history[..end]
                .iter()
                .rposition(|(command, _)| command == &c.command)?;
            end = at;
            Some(&history[at].1)
        })
        .collect();
    found.reverse();
    found
}

/// The commands of a combined step: random kinds and streams, some keyed,
/// some retries of earlier keyed dispatches on the step's query.
fn random_combined<S: EventStore>(
    step: &Step<'_, S>,
    rng: &mut Rng,
    keyed: &[KeyedAttempt],
) -> Result<Vec<Combined>, String> {
    let retries: Vec<&KeyedAttempt> = keyed.iter().filter(|k| &k.query == step.query).collect();
    let outbox = step.dispatcher.store().can_record_effects();
    (0..2 + rng.below(4))
        .map(|n| {
            let via = match rng.below(6) {
                0 => Via::Keyed(uuid::Uuid::new_v4()),
                2 if outbox => Via::Outbox,
                1 if !retries.is_empty() => Via::Retry(retries[rng.below(retries.len())].clone()),
                _ => Via::Plain,
            };
            if let Via::Retry(first) = &via {
                return Ok(Combined {
                    stream: first.stream.clone(),
                    command: first.command.clone(),
                    via,
                });
            }
            let stream = StreamId::new(format!("s{}", rng.below(3))).map_err(|e| e.to_string())?;
            let command = random_command(rng.below(13), rng, step.number * 10 + n);
            Ok(Combined {
                stream,
                command,
                via,
            })
        })
        .collect()
}

/// Dispatches one command of a combined step as its via says.
async fn place<S: EventStore>(
    step: &Step<'_, S>,
    c: &Combined,
) -> Result<Dispatch<KitEvent>, DispatchError<String>> {
    let (dispatcher, query) = (step.dispatcher, step.query);
    match &c.via {
        Via::Outbox => {
            dispatcher
                .dispatch_with_outbox(&c.stream, query, &c.command, &body_mail())
                .await
        }
        Via::Plain => {
            dispatcher
                .dispatch_with_query(&c.stream, query, &c.command)
                .await
        }
        Via::Keyed(key) => {
            dispatcher
                .dispatch_with_query_idempotent(&c.stream, query, &c.command, *key)
                .await
        }
        Via::Retry(first) => {
            dispatcher
                .dispatch_with_query_idempotent(&c.stream, query, &c.command, first.key)
                .await
        }
    }
}

/// The gate's count for a combined step: the lone first, each later retry
/// alone (a replay is found before the batch decides), and one batch for
/// the other commands, if any.
fn expect_decisions(commands: &[Combined], decisions: usize) -> Result<(), String> {
    let rest = commands.get(1..).unwrap_or_default();
    let retries = rest
        .iter()
        .filter(|c| matches!(c.via, Via::Retry(_)))
        .count();
    let expected = 1 + retries + usize::from(retries < rest.len());
    if decisions != expected {
        return Err(format!(
            "{} commands ({retries} later retries) took {decisions} decisions, not {expected}",
            commands.len()
        ));
    }
    Ok(())
}

/// A combined command's dispatch: its events as decided, on its stream,
/// under the ids its key derives when it is keyed.
fn check_combined_dispatch(
    n: usize,
    c: &Combined,
    events: &[KitEvent],
    dispatch: &Dispatch<KitEvent>,
) -> Result<(), String> {
    let bodies: Vec<&str> = dispatch
        .events
        .iter()
        .map(|r| r.event.body.as_str())
        .collect();
    let expected: Vec<&str> = events.iter().map(|e| e.body.as_str()).collect();
    if bodies != expected || dispatch.events.iter().any(|r| r.stream != c.stream) {
        return Err(format!(
            "command {n} reported {:?}, expected {expected:?} on {}",
            dispatch.events, c.stream
        ));
    }
    if let Via::Keyed(key) = c.via {
        let ids: Vec<uuid::Uuid> = dispatch.events.iter().map(|r| r.id).collect();
        let derived: Vec<uuid::Uuid> = (0..ids.len()).map(|i| factos::event_id(key, i)).collect();
        if ids != derived {
            return Err(format!(
                "keyed command {n} wrote ids {ids:?}, its key derives {derived:?}"
            ));
        }
    }
    Ok(())
}

/// Whether a kit event, once stored, matches `query`.
fn kit_event_matches(event: &KitEvent, query: &Query) -> bool {
    let tags: Vec<&str> = event.tags.iter().map(String::as_str).collect();
    factos::Tags::parse(tags.iter().copied())
        .ok()
        .zip(factos::EventType::new(event.event_type.clone()).ok())
        .is_some_and(|(tags, event_type)| query.matches(&event_type, &tags))
}
