//! The concurrency oracle: many writers make conditional decisions on
//! overlapping contexts at once; afterwards the log is replayed and every
//! decision is checked against what it read.
//!
//! Each decision records in its first event the positions of the matching
//! events it was fed. The guarantee holds when, for every committed
//! decision, the events matching its query *before its first event* are
//! exactly those it read. This also catches an event that committed late
//! with a lower position (a context that "changed in the past"), which
//! checking only for events after `after` misses.
//!
//! [`random_decisions`], [`racers`] and [`disjoint_writers`] each return an
//! [`OracleReport`]; `violations` must be empty.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use factos::store::{DecisionError, DecisionProcess};
use factos::{
    AppendCondition, Codec, ConditionFailure, Decider, DecodeError, Dispatcher, EncodeError,
    EventStore, EventType, NewEvent, Position, Query, QueryItem, ReadOptions, StoreErrorKind,
    StoredEvent, StreamId, Tags, dispatch_with_query,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Barrier;

use crate::model::{Bounded, KitCodec, KitEvent};

/// Types the random decisions use.
const TYPES: &[&str] = &["A", "B", "C"];
/// Tags the random decisions use: few, so contexts overlap often.
const TAGS: &[&str] = &["x:1", "x:2", "y:1", "y:2"];
/// Decisions of one writer per epoch. Each epoch has its own vocabulary
/// (`A.3`, `x:1.3`, ...), so contexts stay small however long a soak runs;
/// writers move through epochs at about the same pace, so they still overlap.
const DECISIONS_PER_EPOCH: usize = 10;
/// Stream labels shared by all writers, so revisions race too.
const STREAMS: &[&str] = &["s0", "s1", "s2", "s3"];
/// One decision in this many is labelled with a stream of its own
/// ([`StreamId::unique`]): the query alone must still guard it.
const UNIQUE_STREAM_ONE_IN: usize = 5;

/// The stream a random decision is labelled with: mostly a shared label,
/// sometimes one of its own.
fn random_stream(rng: &mut Rng) -> Result<StreamId, String> {
    if rng.below(UNIQUE_STREAM_ONE_IN) == 0 {
        return Ok(StreamId::unique());
    }
    StreamId::new(rng.pick(STREAMS)).map_err(|e| e.to_string())
}
/// Most attempts of one decision before the oracle gives up on it.
const MAX_ATTEMPTS: usize = 200;

/// What an oracle run saw.
#[derive(Debug, Default)]
pub struct OracleReport {
    /// Decisions committed.
    pub committed: usize,
    /// Attempts that failed their condition and were decided again.
    pub condition_failures: usize,
    /// Attempts refused by the store for contention (serialization, deadlock) and retried.
    pub contention_retries: usize,
    /// Attempts the store itself began again during the run
    /// ([`EventStore::internal_retries`]: backoffs on busy keys, conditions
    /// decided again, cached fast paths that fell back).
    pub store_retries: u64,
    /// Committed decisions that appended nothing (checked against what they read).
    pub empty_decisions: usize,
    /// Everything that broke the guarantee, readable.
    pub violations: Vec<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Committed decisions dispatched with an outbox reactor
    /// ([`cached_decisions`], on stores that record effects).
    pub outbox_decisions: usize,
    /// Events of [`foreign_writes`] that committed decisions read (checked
    /// like the others: a decision that missed one is a violation).
    pub foreign_events_read: usize,
}

impl std::fmt::Display for OracleReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} committed ({} empty), {} condition failures retried, {} contention retries, {} store retries, {} violations in {:.1} s",
            self.committed,
            self.empty_decisions,
            self.condition_failures,
            self.contention_retries,
            self.store_retries,
            self.violations.len(),
            self.elapsed.as_secs_f64()
        )?;
        for violation in self.violations.iter().take(20) {
            write!(f, "\n  {violation}")?;
        }
        Ok(())
    }
}

/// Sizes of a [`random_decisions`] run.
#[derive(Debug, Clone, Copy)]
pub struct OracleConfig {
    /// Concurrent writers.
    pub writers: usize,
    /// Decisions each writer commits.
    pub decisions_per_writer: usize,
    /// Seed of the pseudo-random choices.
    pub seed: u64,
}

impl OracleConfig {
    /// The CI size (32 writers × 25 decisions), or, when the environment
    /// variable `FACTOS_ORACLE_SOAK` holds a number, that many decisions in total.
    pub fn from_env() -> Self {
        let total: Option<usize> = std::env::var("FACTOS_ORACLE_SOAK")
            .ok()
            .and_then(|v| v.parse().ok());
        let writers = 32;
        Self {
            writers,
            decisions_per_writer: total.map_or(25, |t| t.div_ceil(writers)),
            seed: 0x5eed,
        }
    }
}

/// A small deterministic generator (xorshift64*), so failures reproduce by seed.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    pub(crate) fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }

    fn some<'a>(&mut self, from: &[&'a str], most: usize) -> Vec<&'a str> {
        let count = 1 + self.below(most);
        let mut chosen: Vec<&str> = (0..count).map(|_| self.pick(from)).collect();
        chosen.sort_unstable();
        chosen.dedup();
        chosen
    }
}

fn in_epoch(names: Vec<&str>, epoch: usize) -> Vec<String> {
    names.into_iter().map(|n| format!("{n}.{epoch}")).collect()
}

fn parse_epoch_item(types: Vec<&str>, tags: Vec<&str>, epoch: usize) -> QueryItem {
    let (types, tags) = (in_epoch(types, epoch), in_epoch(tags, epoch));
    QueryItem::parse(types, tags)
        .unwrap_or_else(|e| unreachable!("oracle vocabulary is valid: {e}"))
}

/// Items beyond the key limit (64) make a query take the table lock.
const WIDE_QUERY_ITEMS: usize = 70;
/// Tags on each event of a wide decision: two such events carry more keys
/// than one append takes one by one (64), so the append takes the coarse key.
const WIDE_EVENT_TAGS: usize = 20;

/// A random query of the epoch's vocabulary; "all events" only in epoch 0,
/// where the log is still short; sometimes more items than the key limit.
/// One random decision in this many appends under a condition narrower
/// than its read.
const NARROWER_CONDITION_ONE_IN: usize = 4;

/// A condition narrower than `query`: one of its items, keeping one of the
/// item's types (a query on all events: another random query).
fn narrower(rng: &mut Rng, query: &Query, epoch: usize) -> Query {
    let Some(item) = query.items().get(rng.below(query.items().len().max(1))) else {
        return random_query(rng, epoch);
    };
    let types = item.types();
    let kept: Vec<factos::EventType> = if types.is_empty() {
        Vec::new()
    } else {
        vec![types[rng.below(types.len())].clone()]
    };
    Query::item(factos::QueryItem::from_parts(
        kept,
        item.tags().iter().cloned(),
    ))
}

fn random_query(rng: &mut Rng, epoch: usize) -> Query {
    match rng.below(20) {
        0 if epoch == 0 => Query::all(),
        19 => {
            let real = parse_epoch_item(rng.some(TYPES, 1), rng.some(TAGS, 1), epoch);
            let padding = (0..WIDE_QUERY_ITEMS).map(|i| {
                let tag = format!("pad{i}");
                parse_epoch_item(vec![], vec![tag.as_str()], epoch)
            });
            Query::from_items(std::iter::once(real).chain(padding))
        }
        0..=4 => Query::item(parse_epoch_item(rng.some(TYPES, 2), vec![], epoch)),
        5..=8 => Query::item(parse_epoch_item(vec![], rng.some(TAGS, 2), epoch)),
        9..=14 => Query::item(parse_epoch_item(
            rng.some(TYPES, 2),
            rng.some(TAGS, 2),
            epoch,
        )),
        _ => Query::from_items([
            parse_epoch_item(rng.some(TYPES, 1), rng.some(TAGS, 1), epoch),
            parse_epoch_item(vec![], rng.some(TAGS, 2), epoch),
        ]),
    }
}

/// What the oracle writes in each event's payload (fields are private: only
/// the oracle reads them).
#[derive(Debug, Serialize, Deserialize)]
pub struct Mark {
    decision: u64,
    epoch: usize,
    index: usize,
    /// Positions the decision was fed (first event only).
    #[serde(default)]
    seen: Option<Vec<u64>>,
    /// Events the decision's state was folded from, as (decision, index), for
    /// decisions made through a [`Dispatcher`] that cannot see positions (first event only).
    #[serde(default)]
    seen_ids: Option<Vec<(u64, usize)>>,
    /// The store-visible type and tags (written by [`OracleCodec`]).
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    tags: Vec<String>,
    /// Written by [`foreign_writes`] (another process, say): no decision of
    /// this run, but decisions must see it like any other event.
    #[serde(default)]
    foreign: bool,
}

/// A decision that remembers what it was fed and writes it down.
struct Recording {
    decision: u64,
    epoch: usize,
    seen: Vec<u64>,
    events: Vec<(EventType, Tags)>,
}

impl DecisionProcess for Recording {
    type Error = String;

    fn evolve(&mut self, event: &StoredEvent) -> Result<(), String> {
        self.seen.push(event.position.get());
        Ok(())
    }

    fn decide(&mut self) -> Result<Vec<NewEvent>, String> {
        self.events
            .iter()
            .enumerate()
            .map(|(index, (event_type, tags))| {
                let mark = Mark {
                    decision: self.decision,
                    epoch: self.epoch,
                    index,
                    seen: (index == 0).then(|| self.seen.clone()),
                    seen_ids: None,
                    event_type: String::new(),
                    tags: Vec::new(),
                    foreign: false,
                };
                let data = serde_json::to_vec(&mark).map_err(|e| e.to_string())?;
                Ok(NewEvent::new(event_type.clone(), data).with_tags(tags.clone()))
            })
            .collect()
    }
}

/// The events of a random decision: none (a third of them: the "already
/// done" answer), one or two; now and then two events with so many tags that
/// the append takes the coarse key.
fn random_events(rng: &mut Rng, epoch: usize) -> Result<Vec<(EventType, Tags)>, String> {
    if rng.below(25) == 0 {
        return (0..2)
            .map(|_| {
                let event_type = EventType::new(format!("{}.{epoch}", rng.pick(TYPES)))
                    .map_err(|e| e.to_string())?;
                let mut tags = vec![format!("{}.{epoch}", rng.pick(TAGS))];
                tags.extend(
                    (1..WIDE_EVENT_TAGS)
                        .map(|i| format!("w{}.{epoch}", rng.below(1000) + i * 1000)),
                );
                Ok((event_type, Tags::parse(tags).map_err(|e| e.to_string())?))
            })
            .collect();
    }
    (0..rng.below(3))
        .map(|_| {
            let event_type = EventType::new(format!("{}.{epoch}", rng.pick(TYPES)))
                .map_err(|e| e.to_string())?;
            let tag_count = rng.below(3);
            let tags = if tag_count == 0 {
                Tags::empty()
            } else {
                Tags::parse(in_epoch(rng.some(TAGS, tag_count), epoch))
                    .map_err(|e| e.to_string())?
            };
            Ok((event_type, tags))
        })
        .collect()
}

#[derive(Default)]
struct Counters {
    condition_failures: AtomicU64,
    contention_retries: AtomicU64,
    outbox_decisions: AtomicU64,
}

/// A committed decision, as its writer saw it.
#[derive(Debug, Clone)]
struct Decided {
    decision: u64,
    query: Query,
    /// The append condition, when narrower than the read
    /// ([`EventStore::decide_with_condition`]).
    condition: Option<Query>,
    /// Events appended.
    appended: usize,
    /// Positions of the events the decision was fed, when its writer knows
    /// them (always for decisions that appended nothing, whose events cannot
    /// say it): checked against the log.
    seen: Option<Vec<u64>>,
    /// The identities (decision, index) of the events a cached decision's
    /// state was folded from; the replay turns them into positions.
    seen_ids: Option<Vec<(u64, usize)>>,
    /// The context position the store reported, if the writer can know it.
    reported_context: ReportedContext,
}

/// What a writer knows of the context position of its decision.
#[derive(Debug, Clone, Copy)]
enum ReportedContext {
    /// The store reported it (`None`: nothing matched).
    At(Option<u64>),
    /// A dispatch through a [`Dispatcher`] does not say it.
    Unknown,
}

/// What every writer task of a random-decisions run returns.
type WriterResult = Result<Vec<Decided>, String>;

/// Waits for the writers and starts the report with their decisions and counters.
async fn gather(
    tasks: Vec<tokio::task::JoinHandle<WriterResult>>,
    counters: &Counters,
) -> (OracleReport, HashMap<u64, Decided>) {
    let mut report = OracleReport::default();
    let mut decisions: HashMap<u64, Decided> = HashMap::new();
    for task in tasks {
        match task.await {
            Ok(Ok(committed)) => {
                for decided in committed {
                    report.empty_decisions += usize::from(decided.appended == 0);
                    decisions.insert(decided.decision, decided);
                }
            }
            Ok(Err(e)) => report.violations.push(e),
            Err(e) => report.violations.push(format!("writer task failed: {e}")),
        }
    }
    report.committed = decisions.len();
    report.condition_failures =
        usize::try_from(counters.condition_failures.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
    report.contention_retries =
        usize::try_from(counters.contention_retries.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
    report.outbox_decisions =
        usize::try_from(counters.outbox_decisions.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
    (report, decisions)
}

/// The internal retries of all `stores` together.
fn retries_of<S: EventStore>(stores: &[S]) -> u64 {
    stores.iter().map(EventStore::internal_retries).sum()
}

/// Runs the random-decisions oracle on `stores`: instances of one store
/// (several pools, or strategies mixed on one schema), which must start
/// empty; writer `w` uses `stores[w % len]`.
pub async fn random_decisions<S>(stores: &[S], config: OracleConfig) -> OracleReport
where
    S: EventStore + Clone + 'static,
{
    let started = Instant::now();
    let Some(first) = stores.first() else {
        let mut report = OracleReport::default();
        report.violations.push("no store".into());
        return report;
    };
    let retries_before = retries_of(stores);
    let counters = Arc::new(Counters::default());
    let barrier = Arc::new(Barrier::new(config.writers));
    let mut tasks = Vec::with_capacity(config.writers);
    for writer in 0..config.writers {
        let store = stores[writer % stores.len()].clone();
        let (counters, barrier) = (counters.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng =
                Rng::new(config.seed ^ (writer as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut committed: Vec<Decided> = Vec::new();
            barrier.wait().await;
            for n in 0..config.decisions_per_writer {
                let decision = (writer as u64) << 32 | n as u64;
                let epoch = n / DECISIONS_PER_EPOCH;
                let query = random_query(&mut rng, epoch);
                let condition = (rng.below(NARROWER_CONDITION_ONE_IN) == 0)
                    .then(|| narrower(&mut rng, &query, epoch));
                let events = random_events(&mut rng, epoch)?;
                let stream = random_stream(&mut rng)?;
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let mut process = Recording {
                        decision,
                        epoch,
                        seen: Vec::new(),
                        events: events.clone(),
                    };
                    let outcome = match &condition {
                        Some(narrower) => {
                            store
                                .decide_with_condition(&stream, &query, narrower, &mut process)
                                .await
                        }
                        None => store.decide_with_query(&stream, &query, &mut process).await,
                    };
                    match outcome {
                        Ok(done) => {
                            committed.push(Decided {
                                decision,
                                query: query.clone(),
                                condition: condition.clone(),
                                appended: done.events.len(),
                                seen: Some(process.seen),
                                seen_ids: None,
                                reported_context: ReportedContext::At(
                                    done.context_position.map(Position::get),
                                ),
                            });
                            break;
                        }
                        Err(DecisionError::ConditionFailed(_)) => {
                            counters.condition_failures.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(DecisionError::Store(e)) if e.kind() == StoreErrorKind::Contention => {
                            counters.contention_retries.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(DecisionError::Store(e)) => {
                            return Err(format!("decision {decision}: store error: {e}"));
                        }
                        Err(DecisionError::Invalid(e)) => {
                            return Err(format!("decision {decision}: invalid: {e}"));
                        }
                        Err(DecisionError::Process(e)) => {
                            return Err(format!("decision {decision}: {e}"));
                        }
                        Err(other) => {
                            return Err(format!("decision {decision}: failed: {other:?}"));
                        }
                    }
                    if attempts >= MAX_ATTEMPTS {
                        return Err(format!("decision {decision} failed {attempts} times"));
                    }
                }
            }
            WriterResult::Ok(committed)
        }));
    }
    let (mut report, decisions) = gather(tasks, &counters).await;
    report.store_retries = retries_of(stores) - retries_before;
    match first.read(&Query::all(), ReadOptions::default()).await {
        Ok(log) => replay(&log.events, &decisions, &mut report),
        Err(e) => report.violations.push(format!("cannot read the log: {e}")),
    }
    report.elapsed = started.elapsed();
    report
}

/// Checks the log against the committed decisions: ownership, completeness,
/// what each decision read, and stream revisions, in one readable pass.
#[allow(clippy::too_many_lines)]
fn replay(log: &[StoredEvent], decisions: &HashMap<u64, Decided>, report: &mut OracleReport) {
    let violations = &mut report.violations;
    if log.windows(2).any(|w| w[0].position >= w[1].position) {
        violations.push("positions are not strictly increasing".to_string());
    }
    let mut found: HashMap<u64, Vec<(usize, Position)>> = HashMap::new();
    let mut firsts: Vec<(u64, usize, Position, Vec<u64>)> = Vec::new();
    let mut by_id: HashMap<(u64, usize), u64> = HashMap::new();
    let mut foreign: std::collections::HashSet<u64> = std::collections::HashSet::new();
    for event in log {
        if let Ok(mark) = serde_json::from_slice::<Mark>(&event.data) {
            by_id.insert((mark.decision, mark.index), event.position.get());
            if mark.foreign {
                foreign.insert(event.position.get());
            }
        }
    }
    for event in log {
        let mark: Mark = match serde_json::from_slice(&event.data) {
            Ok(mark) => mark,
            Err(e) => {
                violations.push(format!(
                    "event at {} is not the oracle's: {e}",
                    event.position
                ));
                continue;
            }
        };
        if mark.foreign {
            continue;
        }
        if !decisions.contains_key(&mark.decision) {
            violations.push(format!(
                "event at {} belongs to decision {} that did not commit",
                event.position, mark.decision
            ));
        }
        found
            .entry(mark.decision)
            .or_default()
            .push((mark.index, event.position));
        if let Some(seen) = mark.seen {
            firsts.push((mark.decision, mark.epoch, event.position, seen));
        } else if let Some(ids) = mark.seen_ids {
            // An identity that is not in the log reads as position 0: a miss.
            let seen = ids
                .iter()
                .map(|id| by_id.get(id).copied().unwrap_or(0))
                .collect();
            firsts.push((mark.decision, mark.epoch, event.position, seen));
        }
    }
    for (decision, decided) in decisions {
        let indexes: Vec<usize> = found
            .get(decision)
            .map(|v| v.iter().map(|(i, _)| *i).collect())
            .unwrap_or_default();
        if indexes != (0..decided.appended).collect::<Vec<_>>() {
            violations.push(format!(
                "decision {decision} committed {} events, the log holds indexes {indexes:?}",
                decided.appended
            ));
        }
        // An identity that is not in the log reads as position 0: a miss.
        let seen = decided.seen.clone().or_else(|| {
            decided.seen_ids.as_ref().map(|ids| {
                ids.iter()
                    .map(|id| by_id.get(id).copied().unwrap_or(0))
                    .collect()
            })
        });
        check_what_was_read(log, decided, seen.as_deref(), violations);
    }
    // Queries only name their epoch's vocabulary (or all events, in epoch 0),
    // so only events of the same epoch can match: replay per epoch.
    let mut by_epoch: HashMap<usize, Vec<&StoredEvent>> = HashMap::new();
    for event in log {
        if let Ok(mark) = serde_json::from_slice::<Mark>(&event.data) {
            by_epoch.entry(mark.epoch).or_default().push(event);
        }
    }
    let mut foreign_read = 0;
    for (decision, epoch, first, seen) in firsts {
        foreign_read += seen.iter().filter(|p| foreign.contains(p)).count();
        let Some(Decided {
            query, condition, ..
        }) = decisions.get(&decision)
        else {
            continue;
        };
        let candidates: Vec<&StoredEvent> = if query.is_all() {
            log.iter().collect()
        } else {
            by_epoch.get(&epoch).cloned().unwrap_or_default()
        };
        let before = |q: &Query| -> Vec<u64> {
            candidates
                .iter()
                .take_while(|e| e.position < first)
                .filter(|e| e.matches(q))
                .map(|e| e.position.get())
                .collect()
        };
        let read = before(query);
        // Under a narrower condition the decision may have missed events of
        // its read, never one of its condition.
        let must_see = condition.as_ref().map_or_else(|| read.clone(), before);
        let missed: Vec<u64> = must_see
            .iter()
            .filter(|p| !seen.contains(p))
            .copied()
            .collect();
        let extra: Vec<u64> = seen.iter().filter(|p| !read.contains(p)).copied().collect();
        let exact = condition.is_some() || read == seen;
        if !missed.is_empty() || !extra.is_empty() || !exact {
            let on = condition
                .as_ref()
                .map_or_else(String::new, |c| format!(" under the condition {c}"));
            violations.push(format!(
                "decision {decision} at {first} on {query}{on}: missed {missed:?}, read events that are not before it {extra:?}"
            ));
        }
    }
    let mut streams: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for event in log {
        streams
            .entry(event.stream.as_str())
            .or_default()
            .push(event.revision);
    }
    for (stream, mut revisions) in streams {
        revisions.sort_unstable();
        if revisions != (0..revisions.len() as u64).collect::<Vec<_>>() {
            violations.push(format!(
                "stream {stream} revisions are not 0..n: {revisions:?}"
            ));
        }
    }
    report.foreign_events_read = foreign_read;
}

/// Decision ids of [`foreign_writes`] start here (a run's own are
/// `writer << 32 | n`, far below).
const FOREIGN_DECISIONS: u64 = 1 << 62;

/// Appends `appends` batches of one or two events in the oracle's
/// vocabulary of random epochs below `epochs`, without a condition, on a
/// stream of their own, marked foreign: what another process writing to
/// the store looks like to a concurrent [`random_decisions`] run, whose
/// replay then requires its decisions to have seen them like any other
/// matching event ([`OracleReport::foreign_events_read`]).
///
/// # Errors
///
/// The first append that failed.
pub async fn foreign_writes<S: EventStore>(
    store: &S,
    appends: usize,
    epochs: usize,
    seed: u64,
) -> Result<usize, String> {
    let mut rng = Rng::new(seed);
    let stream = StreamId::new("foreign").map_err(|e| e.to_string())?;
    let mut written = 0;
    for n in 0..appends {
        let epoch = rng.below(epochs.max(1));
        let mut events = random_events(&mut rng, epoch)?;
        if events.is_empty() {
            events = random_events(&mut rng, epoch)?;
        }
        let batch = events
            .into_iter()
            .enumerate()
            .map(|(index, (event_type, tags))| {
                let mark = Mark {
                    decision: FOREIGN_DECISIONS + n as u64,
                    epoch,
                    index,
                    seen: None,
                    seen_ids: None,
                    event_type: String::new(),
                    tags: Vec::new(),
                    foreign: true,
                };
                let data = serde_json::to_vec(&mark).map_err(|e| e.to_string())?;
                Ok(NewEvent::new(event_type, data).with_tags(tags))
            })
            .collect::<Result<Vec<_>, String>>()?;
        written += batch.len();
        store
            .append(&stream, batch, AppendCondition::None)
            .await
            .map_err(|e| format!("foreign append {n}: {e}"))?;
    }
    Ok(written)
}

/// Checks what a decision says it read against the log, where it can: the
/// events it was fed must be exactly the matching events up to the context
/// position the store reported (no matching event can appear at or below
/// it) or, without one, up to the last event fed (no hole, no repeat). This
/// is the only check of a decision that appended nothing.
fn check_what_was_read(
    log: &[StoredEvent],
    decided: &Decided,
    seen: Option<&[u64]>,
    violations: &mut Vec<String>,
) {
    let Some(seen) = seen else {
        return;
    };
    let last_fed = seen.last().copied();
    let up_to = match decided.reported_context {
        ReportedContext::At(Some(context)) if last_fed.is_some_and(|fed| fed > context) => {
            violations.push(format!(
                "decision {} was fed events up to {last_fed:?}, above its context position {context}",
                decided.decision
            ));
            return;
        }
        ReportedContext::At(Some(context)) => context,
        ReportedContext::At(None) if last_fed.is_some() => {
            violations.push(format!(
                "decision {} was fed events up to {last_fed:?} but reported no context position",
                decided.decision
            ));
            return;
        }
        ReportedContext::At(None) => return,
        ReportedContext::Unknown => match last_fed {
            Some(fed) => fed,
            None => return,
        },
    };
    let matching: Vec<u64> = log
        .iter()
        .filter(|e| e.position.get() <= up_to && e.matches(&decided.query))
        .map(|e| e.position.get())
        .collect();
    if matching != seen {
        violations.push(format!(
            "decision {} on {} read {seen:?}, the log holds {matching:?} up to {up_to}",
            decided.decision, decided.query
        ));
    }
}

/// Grants a command while the context holds fewer than the command's quota:
/// the racers' decider (the quota grows by one each round, so one boundary
/// serves every round and cached states go stale between rounds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Quota;

/// The command of [`Quota`]: a quota and the events to append under it.
#[derive(Debug, Clone)]
pub struct QuotaCommand {
    quota: usize,
    events: Vec<KitEvent>,
}

impl Decider for Quota {
    type State = usize;
    type Command = QuotaCommand;
    type Event = KitEvent;
    type Error = &'static str;

    fn initial(&self) -> usize {
        0
    }

    fn decide(&self, seen: &usize, command: &QuotaCommand) -> Result<Vec<KitEvent>, &'static str> {
        if *seen >= command.quota {
            Err("quota reached")
        } else {
            Ok(command.events.clone())
        }
    }

    fn evolve(&self, seen: usize, _: &KitEvent) -> usize {
        seen + 1
    }
}

/// How the racers dispatch: the free function (reads the whole context), or
/// [`Dispatcher`]s with their caches (racer `r` uses `dispatchers[r % len]`).
pub enum Via<S> {
    /// [`dispatch_with_query`] on the store.
    Store(S),
    /// [`dispatch_with_query`] on instances of one store (racer `r` uses
    /// `stores[r % len]`), e.g. strategies mixed on one schema.
    Stores(Vec<S>),
    /// Cached dispatchers.
    Dispatchers(Vec<Arc<Dispatcher<S, Quota, KitCodec>>>),
}

impl<S: EventStore + Clone + 'static> Via<S> {
    /// How many stores or dispatchers the racers share out.
    fn instances(&self) -> usize {
        match self {
            Via::Store(_) => 1,
            Via::Stores(stores) => stores.len(),
            Via::Dispatchers(dispatchers) => dispatchers.len(),
        }
    }

    async fn dispatch(
        &self,
        racer: usize,
        stream: &StreamId,
        query: &Query,
        command: &QuotaCommand,
    ) -> Result<(), factos::DispatchError<&'static str>> {
        match self {
            Via::Store(store) => {
                dispatch_with_query(store, stream, query, &Quota, &KitCodec::default(), command)
                    .await
                    .map(|_| ())
            }
            Via::Stores(stores) => dispatch_with_query(
                &stores[racer % stores.len()],
                stream,
                query,
                &Quota,
                &KitCodec::default(),
                command,
            )
            .await
            .map(|_| ()),
            Via::Dispatchers(dispatchers) => dispatchers[racer % dispatchers.len()]
                .dispatch_with_query(stream, query, command)
                .await
                .map(|_| ()),
        }
    }

    async fn read(&self, query: &Query) -> Result<usize, String> {
        let store = match self {
            Via::Store(store) => store,
            Via::Stores(stores) => stores.first().ok_or("no store")?,
            Via::Dispatchers(dispatchers) => dispatchers.first().ok_or("no dispatcher")?.store(),
        };
        Ok(store
            .read(query, ReadOptions::default())
            .await
            .map_err(|e| e.to_string())?
            .events
            .len())
    }
}

/// `racers` dispatches start together on one boundary, round after round;
/// exactly one may win each round (round `r` grants the `r + 1`-th claim).
pub async fn racers<S>(via: Via<S>, racers: usize, rounds: usize) -> OracleReport
where
    S: EventStore + Clone + 'static,
{
    let started = Instant::now();
    let mut report = OracleReport::default();
    if via.instances() == 0 {
        report
            .violations
            .push("no store or dispatcher to race on".into());
        return report;
    }
    let via = Arc::new(via);
    let Ok(item) = QueryItem::parse(["Claimed"], ["race:1"]) else {
        report.violations.push("invalid boundary".into());
        return report;
    };
    let query = Query::item(item);
    for round in 0..rounds {
        let barrier = Arc::new(Barrier::new(racers));
        let tasks: Vec<_> = (0..racers)
            .map(|racer| {
                let (via, query, barrier) = (via.clone(), query.clone(), barrier.clone());
                tokio::spawn(async move {
                    let stream =
                        StreamId::new(format!("racer-{racer}")).map_err(|e| e.to_string())?;
                    let command = QuotaCommand {
                        quota: round + 1,
                        events: vec![KitEvent::new("Claimed", &["race:1"])],
                    };
                    barrier.wait().await;
                    match via.dispatch(racer, &stream, &query, &command).await {
                        Ok(()) => Ok((true, false)),
                        Err(factos::DispatchError::Domain(_)) => Ok((false, false)),
                        Err(factos::DispatchError::AppendConditionFailed(
                            ConditionFailure::EventsMatched { .. },
                        )) => Ok((false, true)),
                        Err(e) => Err(format!("round {round}, racer {racer}: {e}")),
                    }
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await {
                Ok(Ok((won, conflicted))) => {
                    winners += usize::from(won);
                    report.condition_failures += usize::from(conflicted);
                }
                Ok(Err(e)) => report.violations.push(e),
                Err(e) => report.violations.push(e.to_string()),
            }
        }
        report.committed += winners;
        if winners != 1 {
            report
                .violations
                .push(format!("round {round}: {winners} winners"));
        }
        match via.read(&query).await {
            Ok(count) if count == round + 1 => {}
            Ok(count) => report.violations.push(format!(
                "round {round}: {count} claims on the boundary, expected {}",
                round + 1
            )),
            Err(e) => report.violations.push(e),
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// Writers on disjoint boundaries (shared types and stream labels, own
/// tags) must never see a condition failure or a contention error, and the
/// store must never begin an attempt again on its own: the report counts
/// all three (`condition_failures`, `contention_retries`, `store_retries`;
/// a writer retries a retryable error, so each is counted, not fatal).
pub async fn disjoint_writers<S>(
    store: &S,
    writers: usize,
    decisions_per_writer: usize,
) -> OracleReport
where
    S: EventStore + Clone + 'static,
{
    let started = Instant::now();
    let retries_before = store.internal_retries();
    let counters = Arc::new(Counters::default());
    let barrier = Arc::new(Barrier::new(writers));
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let (store, barrier, counters) = (store.clone(), barrier.clone(), counters.clone());
            tokio::spawn(async move {
                let own = format!("own:{writer}");
                let event_type = TYPES[writer % TYPES.len()];
                let query = Query::item(
                    QueryItem::parse([event_type], [own.as_str()]).map_err(|e| e.to_string())?,
                );
                let stream =
                    StreamId::new(STREAMS[writer % STREAMS.len()]).map_err(|e| e.to_string())?;
                barrier.wait().await;
                let mut step = 0;
                while step < decisions_per_writer {
                    let command = vec![KitEvent::new(event_type, &[&own])];
                    match dispatch_with_query(
                        &store,
                        &stream,
                        &query,
                        &Bounded { limit: usize::MAX },
                        &KitCodec::default(),
                        &command,
                    )
                    .await
                    {
                        Ok(_) => step += 1,
                        Err(factos::DispatchError::AppendConditionFailed(_)) => {
                            counters.condition_failures.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if e.is_retryable() => {
                            counters.contention_retries.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => return Err(format!("writer {writer}, step {step}: {e}")),
                    }
                }
                Ok::<usize, String>(decisions_per_writer)
            })
        })
        .collect();
    let mut report = OracleReport::default();
    for task in tasks {
        match task.await {
            Ok(Ok(n)) => report.committed += n,
            Ok(Err(e)) => report.violations.push(e),
            Err(e) => report.violations.push(e.to_string()),
        }
    }
    report.condition_failures =
        usize::try_from(counters.condition_failures.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
    report.contention_retries =
        usize::try_from(counters.contention_retries.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
    report.store_retries = store.internal_retries() - retries_before;
    report.elapsed = started.elapsed();
    report
}

/// The oracle's event as a domain event, for decisions made through a
/// [`Dispatcher`] (whose deciders see events, not positions).
pub type OracleEvent = Mark;

/// Encodes [`OracleEvent`]s: type and tags from the fields, JSON payload.
#[derive(Debug, Clone, Copy, Default)]
pub struct OracleCodec;

impl Codec for OracleCodec {
    type Event = OracleEvent;

    fn encode(&self, event: &OracleEvent) -> Result<NewEvent, EncodeError> {
        let data = serde_json::to_vec(event).map_err(|e| EncodeError::Serialize(e.to_string()))?;
        Ok(
            NewEvent::new(EventType::new(event.event_type.clone())?, data)
                .with_tags(Tags::parse(event.tags.iter().cloned())?),
        )
    }

    fn decode(&self, stored: &StoredEvent) -> Result<OracleEvent, DecodeError> {
        serde_json::from_slice(&stored.data).map_err(|e| DecodeError::InvalidData {
            event_type: stored.event_type.clone(),
            version: stored.version,
            message: e.to_string(),
        })
    }
}

/// Folds the identities of the events it is fed and writes them into the
/// first event it decides.
#[derive(Debug, Clone, Copy, Default)]
pub struct Witness;

/// What a [`Witness`] decision appends.
#[derive(Debug, Clone)]
pub struct WitnessCommand {
    /// The [`cached_decisions`] run, so concurrent runs in one process keep
    /// their notes apart.
    run: u64,
    decision: u64,
    epoch: usize,
    events: Vec<(String, Vec<String>)>,
}

/// What each [`Witness`] decision last decided on, by (run, decision): the
/// only record of a decision that appended nothing.
static DECIDED_ON: std::sync::LazyLock<Mutex<DecidedOn>> =
    std::sync::LazyLock::new(|| Mutex::new(HashMap::new()));

/// The identities a decision's state was folded from, by (run, decision).
type DecidedOn = HashMap<(u64, u64), Vec<(u64, usize)>>;

/// Numbers the [`cached_decisions`] runs of this process.
static RUNS: AtomicU64 = AtomicU64::new(0);

fn decided_on() -> std::sync::MutexGuard<'static, DecidedOn> {
    DECIDED_ON.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Decider for Witness {
    type State = Vec<(u64, usize)>;
    type Command = WitnessCommand;
    type Event = OracleEvent;
    type Error = std::convert::Infallible;

    fn initial(&self) -> Self::State {
        Vec::new()
    }

    fn decide(
        &self,
        seen: &Self::State,
        command: &WitnessCommand,
    ) -> Result<Vec<OracleEvent>, Self::Error> {
        decided_on().insert((command.run, command.decision), seen.clone());
        Ok(command
            .events
            .iter()
            .enumerate()
            .map(|(index, (event_type, tags))| Mark {
                decision: command.decision,
                epoch: command.epoch,
                index,
                seen: None,
                seen_ids: (index == 0).then(|| seen.clone()),
                event_type: event_type.clone(),
                tags: tags.clone(),
                foreign: false,
            })
            .collect())
    }

    fn evolve(&self, mut seen: Self::State, event: &OracleEvent) -> Self::State {
        seen.push((event.decision, event.index));
        seen
    }
}

/// A [`cached_decisions`] writer's dispatch: plain, or with the oracle's
/// outbox reactor.
async fn witness_dispatch<S: EventStore>(
    dispatcher: &Dispatcher<S, Witness, OracleCodec>,
    stream: &StreamId,
    query: &Query,
    command: &WitnessCommand,
    outbox: bool,
) -> Result<factos::Dispatch<OracleEvent>, factos::DispatchError<std::convert::Infallible>> {
    if outbox {
        dispatcher
            .dispatch_with_outbox(stream, query, command, &mark_mail())
            .await
    } else {
        dispatcher.dispatch_with_query(stream, query, command).await
    }
}

/// One decision in this many of [`cached_decisions`] is an outbox dispatch.
const OUTBOX_ONE_IN: usize = 3;

/// The oracle's outbox reactor: a message for each event of even index,
/// so some outbox decisions record effects and some record none.
fn mark_mail() -> impl factos::Reactor<Event = OracleEvent, Effect = factos::OutboxMessage>
+ Clone
+ Send
+ Sync
+ 'static {
    let topic =
        factos::Topic::new("oracle").unwrap_or_else(|e| unreachable!("the oracle's topic: {e}"));
    factos::reactor_fn(move |_: &factos::Recorded<OracleEvent>| {
        vec![factos::OutboxMessage::new(topic.clone(), Vec::new())]
    })
    .when(|mark: &OracleEvent| mark.index % 2 == 0)
}

/// The random-decisions oracle through [`Dispatcher`]s with their context
/// caches on: writer `w` uses `dispatchers[w % len]`, so several caches (one
/// per store instance, as in several processes) race on the same contexts.
pub async fn cached_decisions<S>(
    dispatchers: Vec<Arc<Dispatcher<S, Witness, OracleCodec>>>,
    config: OracleConfig,
) -> OracleReport
where
    S: EventStore + Clone + 'static,
{
    let started = Instant::now();
    if dispatchers.is_empty() {
        let mut report = OracleReport::default();
        report.violations.push("no dispatcher".into());
        return report;
    }
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let stores: Vec<S> = dispatchers.iter().map(|d| d.store().clone()).collect();
    let retries_before = retries_of(&stores);
    let counters = Arc::new(Counters::default());
    let effects = stores.iter().all(EventStore::can_record_effects);
    let barrier = Arc::new(Barrier::new(config.writers));
    let mut tasks = Vec::with_capacity(config.writers);
    for writer in 0..config.writers {
        let dispatcher = dispatchers[writer % dispatchers.len()].clone();
        let (counters, barrier) = (counters.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng =
                Rng::new(config.seed ^ (writer as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut committed: Vec<Decided> = Vec::new();
            barrier.wait().await;
            for n in 0..config.decisions_per_writer {
                let decision = (writer as u64) << 32 | n as u64;
                let epoch = n / DECISIONS_PER_EPOCH;
                let query = random_query(&mut rng, epoch);
                let events: Vec<(String, Vec<String>)> = random_events(&mut rng, epoch)?
                    .into_iter()
                    .map(|(t, tags)| {
                        (
                            t.into_string(),
                            tags.iter().map(|g| g.as_str().to_string()).collect(),
                        )
                    })
                    .collect();
                let stream = random_stream(&mut rng)?;
                let command = WitnessCommand {
                    run,
                    decision,
                    epoch,
                    events,
                };
                // One decision in three goes through an outbox reactor that
                // reacts to some of its events: the paths that keep the
                // transaction open for effects, and those that do not.
                let outbox = effects && rng.below(OUTBOX_ONE_IN) == 0;
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let outcome =
                        witness_dispatch(&dispatcher, &stream, &query, &command, outbox).await;
                    match outcome {
                        Ok(done) => {
                            if outbox {
                                counters.outbox_decisions.fetch_add(1, Ordering::Relaxed);
                            }
                            committed.push(Decided {
                                decision,
                                query: query.clone(),
                                condition: None,
                                appended: done.events.len(),
                                seen: None,
                                seen_ids: decided_on().remove(&(run, decision)),
                                reported_context: ReportedContext::Unknown,
                            });
                            break;
                        }
                        Err(factos::DispatchError::AppendConditionFailed(_)) => {
                            counters.condition_failures.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(factos::DispatchError::Store(e))
                            if e.kind() == StoreErrorKind::Contention =>
                        {
                            counters.contention_retries.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => return Err(format!("decision {decision}: {e}")),
                    }
                    if attempts >= MAX_ATTEMPTS {
                        return Err(format!("decision {decision} failed {attempts} times"));
                    }
                }
            }
            WriterResult::Ok(committed)
        }));
    }
    let (mut report, decisions) = gather(tasks, &counters).await;
    report.store_retries = retries_of(&stores) - retries_before;
    decided_on().retain(|(r, _), _| *r != run);
    let Some(first) = dispatchers.first() else {
        report.violations.push("no dispatcher".into());
        return report;
    };
    match first
        .store()
        .read(&Query::all(), ReadOptions::default())
        .await
    {
        Ok(log) => replay(&log.events, &decisions, &mut report),
        Err(e) => report.violations.push(format!("cannot read the log: {e}")),
    }
    report.elapsed = started.elapsed();
    report
}
