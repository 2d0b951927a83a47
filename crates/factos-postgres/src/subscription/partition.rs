//! Partitioned subscribers: one subscription split into N partitions by the
//! tags starting with a chosen prefix (`account:`), each partition a
//! subscriber of its own (checkpoint, lock, parked events), so several
//! processes share the work and each partition key's events keep their
//! order.
//!
//! # Which events a partition gets
//!
//! A tag with the prefix belongs to partition `md5(tag)[0..4] mod N` (the
//! first 32 bits of its MD5, unsigned, computed in SQL: the same on every
//! server, so no event changes partition while its checkpoint stands). An
//! event goes to every partition one of its prefixed tags belongs to (a
//! transfer tagged with two accounts reaches both accounts' partitions), and
//! to partition 0 when it has no such tag. Within a partition, events come
//! in position order, so the events of one key do too.
//!
//! # Who runs which partition
//!
//! A running process is a *member*: it holds one of N member slots (a
//! session advisory lock on a connection of its own; a process that finds
//! every slot taken waits). Every poll interval it lists the held slots
//! (`pg_locks`), and if its slot is the r-th of M it runs the partitions p
//! with `p mod M = r`. A member that goes away (stopped, killed, cut off)
//! frees its slot with its connection, so the others see M shrink and take
//! its partitions; a new member makes the others give some up. A partition
//! changes hands through its own lock: the old holder finishes the batch in
//! hand and releases it, the new one waits for it. Exactly-once projections
//! keep their guarantee per partition (the batch and its checkpoint commit
//! together), so a member killed mid-batch loses only its uncommitted batch.
//!
//! The number of partitions is part of each partition's name: a subscriber
//! split another way is another subscriber (start it from the old one's
//! lowest checkpoint, or reset).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;

use factos::Query;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};

use super::{
    EventHandler, ProjectionHandler, Subscription, SubscriptionError, SubscriptionOptions,
};
use crate::error::{Phase, db_error, pool_error};
use crate::store::PostgresStore;

/// Most partitions of a subscriber: each running partition holds a
/// connection of the pool (and one that listens for commits), so this also
/// bounds what one process may take from the server.
pub const MAX_PARTITIONS: u32 = 64;

/// How a subscriber is split: by the tags starting with `tag_prefix`, into
/// `partitions` partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitioning {
    tag_prefix: String,
    partitions: u32,
}

impl Partitioning {
    /// Splits by the tags starting with `tag_prefix` (not empty, at most
    /// 128 bytes) into `partitions` (1 to [`MAX_PARTITIONS`]).
    pub fn by_tag_prefix(tag_prefix: &str, partitions: u32) -> Result<Self, SubscriptionError> {
        if tag_prefix.chars().any(char::is_control) {
            return Err(SubscriptionError::InvalidOptions(
                "a partition tag prefix has no control characters".to_string(),
            ));
        }
        if tag_prefix.is_empty() || tag_prefix.len() > 128 {
            return Err(SubscriptionError::InvalidOptions(format!(
                "a partition tag prefix is 1 to 128 bytes, not {}",
                tag_prefix.len()
            )));
        }
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(SubscriptionError::InvalidOptions(format!(
                "a subscriber has 1 to {MAX_PARTITIONS} partitions, not {partitions}"
            )));
        }
        Ok(Self {
            tag_prefix: tag_prefix.to_string(),
            partitions,
        })
    }

    /// The tag prefix.
    pub fn tag_prefix(&self) -> &str {
        &self.tag_prefix
    }

    /// How many partitions.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }
}

/// One partition, as its reads filter events (the statement's parameters).
#[derive(Debug, Clone)]
pub(crate) struct PartitionFilter {
    pub(crate) prefix: String,
    pub(crate) index: i32,
    pub(crate) count: i32,
}

impl PartitionFilter {
    /// What the partition's recorded query says beyond the query itself, so a
    /// changed prefix is refused like a changed query.
    pub(crate) fn describe(&self) -> String {
        // Plain text, not Rust's `{:?}` (its escaping may change with the
        // toolchain, and a changed text is a changed query).
        format!(
            " partition {} of {} by tag prefix {}",
            self.index, self.count, self.prefix
        )
    }
}

/// A subscriber split into partitions by the tags starting with a prefix:
/// each partition is a [`Subscription`] of its own (checkpoint, lock, parked
/// events), the processes running it share the partitions and rebalance as
/// they come and go, and a partition's events (so each key's) come in
/// position order. An event goes to every partition one of its prefixed
/// tags belongs to (the first 32 bits of the tag's MD5 modulo the count),
/// and to partition 0 without one (`DESIGN.md`, "Partitioned subscribers").
///
/// ```no_run
/// use factos::{Query, StoredEvent};
/// use factos_postgres::{EventHandler, PartitionedSubscription, Partitioning, PostgresStore, StoreOptions};
///
/// struct Print(u32);
/// impl EventHandler for Print {
///     type Error = std::convert::Infallible;
///     async fn handle(&mut self, events: &[StoredEvent]) -> Result<(), Self::Error> {
///         for e in events { println!("partition {}: {} {}", self.0, e.position, e.event_type); }
///         Ok(())
///     }
/// }
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect("postgresql://app@localhost/app", StoreOptions::default())?;
/// let by_account = Partitioning::by_tag_prefix("account:", 8)?;
/// let subscription = PartitionedSubscription::new(&store, "ledger", &Query::all(), &by_account)?;
/// // Runs this process's share of the 8 partitions until `stop`.
/// let stop = tokio::time::sleep(std::time::Duration::from_secs(3600));
/// subscription.run(Print, stop).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PartitionedSubscription {
    store: PostgresStore,
    name: String,
    partitions: Vec<Subscription>,
    options: SubscriptionOptions,
    member_keys: Vec<i64>,
}

/// The connection holding this process's member slot.
struct Member {
    client: deadpool_postgres::ClientWrapper,
    slot: usize,
}

/// A partition's run with its number.
type TrackedRun<'a> =
    Pin<Box<dyn Future<Output = (u32, u64, Result<(), SubscriptionError>)> + Send + 'a>>;

/// A partition's stop: when the loop tells it, or drops its sender.
type Told = tokio::sync::oneshot::Receiver<()>;

/// `told` as the stop future a subscription's run takes.
async fn stopped(told: Told) {
    let _ = told.await;
}

impl PartitionedSubscription {
    /// A subscriber `name` of the events matching `query`, split by
    /// `partitioning`; partition `i` of `n` is the subscriber `name/i-of-n`
    /// (its name must fit [`MAX_NAME_BYTES`](super::MAX_NAME_BYTES)).
    pub fn new(
        store: &PostgresStore,
        name: &str,
        query: &Query,
        partitioning: &Partitioning,
    ) -> Result<Self, SubscriptionError> {
        factos::subscription::check_name(name)?;
        let count = partitioning.partitions;
        let partitions = (0..count)
            .map(|index| {
                let mut partition =
                    Subscription::new(store, &format!("{name}/{index}-of-{count}"), query.clone())?;
                partition.partition = Some(Arc::new(PartitionFilter {
                    prefix: partitioning.tag_prefix.clone(),
                    index: i32::try_from(index).unwrap_or(i32::MAX),
                    count: i32::try_from(count).unwrap_or(i32::MAX),
                }));
                Ok(partition)
            })
            .collect::<Result<Vec<_>, SubscriptionError>>()?;
        let member_keys = (0..count)
            .map(|slot| store.keys().subscriber(&format!("{name}/member-{slot}")))
            .collect();
        Ok(Self {
            store: store.clone(),
            name: name.to_string(),
            partitions,
            options: SubscriptionOptions::default(),
            member_keys,
        })
    }

    /// Sets the options of every partition (checked).
    pub fn with_options(mut self, options: SubscriptionOptions) -> Result<Self, SubscriptionError> {
        options.check()?;
        self.partitions = self
            .partitions
            .into_iter()
            .map(|p| p.with_options(options.clone()))
            .collect::<Result<_, _>>()?;
        self.options = options;
        Ok(self)
    }

    /// The partitions, in order: each a [`Subscription`] of its own (its
    /// checkpoint, `catch_up`, `reset`, parked events).
    pub fn partitions(&self) -> &[Subscription] {
        &self.partitions
    }

    /// Runs this process's share of the partitions (at least once), each
    /// with its own handler from `handlers(partition)`, until `stop`
    /// completes; rebalances every poll interval as members come and go.
    /// Returns on `stop` (after each partition's batch in hand) or with the
    /// first error a partition cannot retry.
    pub async fn run<H: EventHandler>(
        &self,
        handlers: impl FnMut(u32) -> H + Send,
        stop: impl Future<Output = ()>,
    ) -> Result<(), SubscriptionError> {
        self.run_partitions(
            handlers,
            |partition, mut handler, told| async move {
                partition.run(&mut handler, stopped(told)).await
            },
            stop,
        )
        .await
    }

    /// Like [`PartitionedSubscription::run`], exactly once per partition
    /// (see [`Subscription::run_projection`]).
    pub async fn run_projection<P: ProjectionHandler>(
        &self,
        handlers: impl FnMut(u32) -> P + Send,
        stop: impl Future<Output = ()>,
    ) -> Result<(), SubscriptionError> {
        self.run_partitions(
            handlers,
            |partition, mut handler, told| async move {
                partition.run_projection(&mut handler, stopped(told)).await
            },
            stop,
        )
        .await
    }

    /// The membership loop: starts `run(partition, handlers(index), told)`
    /// for each partition this process should run, tells the others to stop.
    async fn run_partitions<'a, H, R>(
        &'a self,
        mut handlers: impl FnMut(u32) -> H + Send,
        run: impl Fn(Subscription, H, Told) -> R + Send,
        stop: impl Future<Output = ()>,
    ) -> Result<(), SubscriptionError>
    where
        H: Send + 'a,
        R: Future<Output = Result<(), SubscriptionError>> + Send + 'a,
    {
        self.options.check()?;
        let mut stop = pin!(stop.fuse());
        // Each run is numbered, so a run that ends after its partition was
        // started again does not take the new run's stop with it.
        let mut running: FuturesUnordered<TrackedRun<'a>> = FuturesUnordered::new();
        let mut stops: HashMap<u32, (u64, tokio::sync::oneshot::Sender<()>)> = HashMap::new();
        let mut runs: u64 = 0;
        let mut member: Option<Member> = None;
        let outcome = loop {
            match self.targets(&mut member).await {
                Ok(target) => {
                    stops.retain(|index, _| target.contains(index));
                    for index in target {
                        if stops.contains_key(&index) {
                            continue;
                        }
                        let (tell, told) = tokio::sync::oneshot::channel();
                        runs += 1;
                        let number = runs;
                        stops.insert(index, (number, tell));
                        let partition = self.partitions[index as usize].clone();
                        let handler = handlers(index);
                        running.push(Box::pin(
                            run(partition, handler, told)
                                .map(move |outcome| (index, number, outcome)),
                        ));
                    }
                }
                Err(SubscriptionError::Store(e)) if e.is_retry_safe() => {
                    tracing::warn!(subscriber = %self.name, error = %e, "cannot see the members; keeping the partitions held");
                    member = None;
                }
                Err(e) => break Err(e),
            }
            tokio::select! {
                () = &mut stop => break Ok(()),
                Some((index, run, outcome)) = running.next(), if !running.is_empty() => {
                    if stops.get(&index).is_some_and(|(current, _)| *current == run) {
                        stops.remove(&index);
                    }
                    if let Err(e) = outcome {
                        break Err(e);
                    }
                }
                () = tokio::time::sleep(self.options.poll_interval) => {}
            }
        };
        // Partitions stop after their batch in hand; the member slot goes
        // with its connection.
        stops.clear();
        while let Some((_, _, finished)) = running.next().await {
            if let Err(e) = finished
                && outcome.is_ok()
            {
                return Err(e);
            }
        }
        if let Some(member) = member {
            let _ = member
                .client
                .execute(
                    &self.store.statements().subscriber_unlock,
                    &[&self.member_keys[member.slot]],
                )
                .await;
        }
        outcome
    }

    /// The partitions this process should run now: takes a member slot if
    /// it has none (none free: no partition), then its share by its rank
    /// among the held slots.
    async fn targets(
        &self,
        member: &mut Option<Member>,
    ) -> Result<BTreeSet<u32>, SubscriptionError> {
        if member.as_ref().is_none_or(|m| m.client.is_closed()) {
            *member = self.join().await?;
        }
        let Some(me) = member.as_ref() else {
            return Ok(BTreeSet::new());
        };
        let (high, low): (Vec<i64>, Vec<i64>) = self
            .member_keys
            .iter()
            .map(|key| {
                let bytes = key.to_be_bytes();
                let half = |from: usize| {
                    let mut word = [0; 4];
                    word.copy_from_slice(&bytes[from..from + 4]);
                    i64::from(u32::from_be_bytes(word))
                };
                (half(0), half(4))
            })
            .unzip();
        let rows = me
            .client
            .query(&self.store.statements().members_live, &[&high, &low])
            .await
            .map_err(|e| {
                db_error(
                    "cannot list the subscriber's members",
                    e,
                    Phase::BeforeCommit,
                )
            })?;
        let live: Vec<usize> = rows
            .iter()
            .map(|row| row.try_get::<_, i64>(0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| crate::error::corrupt("unexpected member slot").with_source(e))?
            .into_iter()
            .filter_map(|ordinal| usize::try_from(ordinal - 1).ok())
            .collect();
        let Some(rank) = live.iter().position(|slot| *slot == me.slot) else {
            // Our slot is not listed: the connection lost it. Join again next time.
            *member = None;
            return Ok(BTreeSet::new());
        };
        let members = u32::try_from(live.len()).unwrap_or(u32::MAX);
        let rank = u32::try_from(rank).unwrap_or(u32::MAX);
        Ok((0..self.partitions.len())
            .filter_map(|p| u32::try_from(p).ok())
            .filter(|p| p % members == rank)
            .collect())
    }

    /// Takes the first free member slot on a connection of its own; `None`
    /// when every slot is held.
    async fn join(&self) -> Result<Option<Member>, SubscriptionError> {
        let object = self.store.pool().get().await.map_err(pool_error)?;
        let client = deadpool_postgres::Object::take(object);
        for (slot, key) in self.member_keys.iter().enumerate() {
            let taken: bool = client
                .query_one(&self.store.statements().subscriber_lock, &[key])
                .await
                .map_err(|e| db_error("cannot take a member slot", e, Phase::BeforeCommit))?
                .try_get(0)
                .map_err(|e| crate::error::corrupt("unexpected lock result").with_source(e))?;
            if taken {
                tracing::info!(subscriber = %self.name, slot, "member joined");
                return Ok(Some(Member { client, slot }));
            }
        }
        Ok(None)
    }
}
