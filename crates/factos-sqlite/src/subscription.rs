//! Durable subscriptions in the file: a named subscriber with a query and a
//! checkpoint, handing every committed matching event over in position
//! order, at least once ([`EventHandler`]), or exactly once into the same
//! file ([`ProjectionHandler`]: its writes and the checkpoint commit in one
//! transaction).
//!
//! # Why nothing is skipped
//!
//! One writer at a time assigns positions, so a read's snapshot is settled
//! at its head: no event can commit later at or below it. The checkpoint
//! only moves to a position a read saw as settled.
//!
//! # One active instance
//!
//! SQLite has no session locks, so the active instance holds a lease on the
//! subscriber's row (its token and an expiry it renews while it runs, see
//! [`Subscription::with_lease`]). A standby, in this process or another on
//! the file, takes over once the lease ran out. The checkpoint moves by
//! compare-and-set on the previous position and the holder: an instance
//! whose lease was taken over cannot move it
//! ([`SubscriptionError::LeaseLost`]), and its exactly-once batch rolls back.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use factos::subscription::{EventHandler, PoisonPolicy, SubscriptionError, SubscriptionOptions};
use factos::{Position, Query, ReadOptions, StoreError, StoredEvent};
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::error::sqlite_error;
use crate::rows::{self, micros_now};
use crate::write;

/// How long an instance holds a subscriber without renewing (default of
/// [`Subscription::with_lease`]).
pub const DEFAULT_SUBSCRIBER_LEASE: Duration = Duration::from_secs(10);
/// Longest subscriber lease.
const MAX_SUBSCRIBER_LEASE: Duration = Duration::from_secs(24 * 60 * 60);

/// Applies batches of events to tables of the same file, exactly once: the
/// handler's writes and the checkpoint commit in one transaction (the
/// writer's, `BEGIN IMMEDIATE`). It runs on a blocking thread, so it is
/// synchronous and owned by the subscription while it runs.
///
/// ```
/// use factos::StoredEvent;
/// use factos_sqlite::ProjectionHandler;
/// use factos_sqlite::rusqlite::{Error, Transaction};
///
/// /// Counts events per type in a table `event_counts (type TEXT PRIMARY KEY, n INTEGER)`.
/// struct CountByType;
///
/// impl ProjectionHandler for CountByType {
///     type Error = Error;
///     fn apply(&mut self, tx: &Transaction<'_>, events: &[StoredEvent]) -> Result<(), Error> {
///         for event in events {
///             tx.execute(
///                 "INSERT INTO event_counts VALUES (?1, 1)
///                  ON CONFLICT (type) DO UPDATE SET n = n + 1",
///                 [event.event_type.as_str()],
///             )?;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait ProjectionHandler: Send + 'static {
    /// The handler's error: any error type, a `String`, or a boxed error.
    type Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send;
    /// Applies events in position order inside `transaction`. An error rolls
    /// the transaction back and retries the batch.
    fn apply(
        &mut self,
        transaction: &rusqlite::Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), Self::Error>;
}

/// A subscriber as the store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberStatus {
    /// Its name.
    pub name: String,
    /// Its checkpoint (`None` before the first batch).
    pub checkpoint: Option<Position>,
    /// Events of the log past the checkpoint (of any type: an upper bound
    /// of what the subscriber still has to handle).
    pub behind_head: u64,
    /// An instance holds an unexpired lease on it.
    pub active: bool,
}

/// A named, durable subscriber: a query and a checkpoint in the file.
///
/// ```no_run
/// use factos::{Query, StoredEvent};
/// use factos_sqlite::{EventHandler, SqliteStore, Subscription};
///
/// struct Print;
/// impl EventHandler for Print {
///     type Error = std::convert::Infallible;
///     async fn handle(&mut self, events: &[StoredEvent]) -> Result<(), Self::Error> {
///         for e in events { println!("{} {}", e.position, e.event_type); }
///         Ok(())
///     }
/// }
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let store = SqliteStore::open("events.db", Default::default()).await?;
/// let subscription = Subscription::new(&store, "printer", Query::all())?;
/// let stop = tokio::time::sleep(std::time::Duration::from_secs(3600));
/// subscription.run(&mut Print, stop).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Subscription {
    store: SqliteStore,
    name: String,
    query: Query,
    options: SubscriptionOptions,
    lease: Duration,
}

/// This instance's hold on the subscriber.
struct Lease {
    holder: uuid::Uuid,
    checkpoint: i64,
    renewed: Instant,
}

/// What one step did.
struct Step {
    handled: usize,
    /// The batch was full: more events may be waiting.
    full: bool,
}

/// Why handing a batch over did not work.
enum Failure {
    /// The handler failed: retry the batch.
    Handler(Box<dyn std::error::Error + Send + Sync>),
    Subscription(SubscriptionError),
}

impl From<SubscriptionError> for Failure {
    fn from(e: SubscriptionError) -> Self {
        Self::Subscription(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Subscription(SubscriptionError::Store(e))
    }
}

/// How a batch and its checkpoint commit.
trait Apply: Send {
    fn apply(
        &mut self,
        subscription: &Subscription,
        lease: &mut Lease,
        next: i64,
        events: &Arc<[StoredEvent]>,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// The handler first, the checkpoint after it.
struct AtLeastOnce<'a, H>(&'a mut H);

impl<H: EventHandler> Apply for AtLeastOnce<'_, H> {
    async fn apply(
        &mut self,
        subscription: &Subscription,
        lease: &mut Lease,
        next: i64,
        events: &Arc<[StoredEvent]>,
    ) -> Result<(), Failure> {
        self.0
            .handle(events)
            .await
            .map_err(|e| Failure::Handler(e.into()))?;
        subscription.advance(lease, next).await?;
        Ok(())
    }
}

/// The projection's writes and the checkpoint in one transaction. The
/// handler moves to the blocking thread for each batch and back.
struct ExactlyOnce<P>(Option<P>);

impl<P: ProjectionHandler> Apply for ExactlyOnce<P> {
    async fn apply(
        &mut self,
        subscription: &Subscription,
        lease: &mut Lease,
        next: i64,
        events: &Arc<[StoredEvent]>,
    ) -> Result<(), Failure> {
        let mut handler = self.0.take().ok_or_else(|| {
            Failure::from(StoreError::new(
                factos::StoreErrorKind::Other,
                "the projection was lost when its batch panicked",
            ))
        })?;
        let (name, holder, from) = (subscription.name.clone(), lease.holder, lease.checkpoint);
        let until = subscription.lease_end();
        let events = events.clone();
        let (handler, outcome) = subscription
            .store
            .with_writer(move |c| {
                let outcome = project(c, &mut handler, &name, holder, from, next, until, &events);
                Ok((handler, outcome))
            })
            .await?;
        self.0 = Some(handler);
        outcome?;
        lease.checkpoint = next;
        lease.renewed = Instant::now();
        Ok(())
    }
}

/// In one writer transaction: moves the checkpoint (compare-and-set),
/// applies the batch, commits; rolls back on any failure.
#[allow(clippy::too_many_arguments)]
fn project<P: ProjectionHandler>(
    c: &mut Connection,
    handler: &mut P,
    name: &str,
    holder: uuid::Uuid,
    from: i64,
    next: i64,
    until: i64,
    events: &[StoredEvent],
) -> Result<(), Failure> {
    write::rollback(c);
    let tx = c
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| sqlite_error("cannot begin the projection's batch", &e))?;
    if !advance_in(&tx, name, holder, from, next, until)? {
        return Err(SubscriptionError::LeaseLost.into());
    }
    handler
        .apply(&tx, events)
        .map_err(|e| Failure::Handler(e.into()))?;
    tx.commit()
        .map_err(|e| sqlite_error("cannot commit the projection's batch", &e))?;
    Ok(())
}

/// Moves subscriber `name`'s checkpoint from `from` to `to` and renews
/// `holder`'s lease until `until`; false when `holder` lost it.
fn advance_in(
    c: &Connection,
    name: &str,
    holder: uuid::Uuid,
    from: i64,
    to: i64,
    until: i64,
) -> Result<bool, StoreError> {
    c.query_row(
        include_str!("../sql/statements/subscriber_advance.sql"),
        params![
            name,
            holder.as_bytes().as_slice(),
            from,
            to,
            micros_now(),
            until
        ],
        |_| Ok(()),
    )
    .optional()
    .map(|moved| moved.is_some())
    .map_err(|e| sqlite_error("cannot move the checkpoint", &e))
}

/// What taking the subscriber found.
enum Taken {
    Held(i64),
    Busy,
    QueryChanged,
}

impl Subscription {
    /// A subscriber `name` (1 to 128 bytes, no control characters) of the
    /// events matching `query`, with default options.
    pub fn new(store: &SqliteStore, name: &str, query: Query) -> Result<Self, SubscriptionError> {
        factos::subscription::check_name(name)?;
        Ok(Self {
            store: store.clone(),
            name: name.to_string(),
            query,
            options: SubscriptionOptions::default(),
            lease: DEFAULT_SUBSCRIBER_LEASE,
        })
    }

    /// Sets the options (checked: an out-of-range option is an error).
    /// [`PoisonPolicy::Park`] is not on SQLite yet: refused.
    pub fn with_options(mut self, options: SubscriptionOptions) -> Result<Self, SubscriptionError> {
        options.check()?;
        if options.poison == PoisonPolicy::Park {
            return Err(SubscriptionError::InvalidOptions(
                "parking poison events is not on SQLite yet (PoisonPolicy::Stop only)".into(),
            ));
        }
        self.options = options;
        Ok(self)
    }

    /// How long the active instance holds the subscriber without renewing
    /// it (10 ms to a day; default [`DEFAULT_SUBSCRIBER_LEASE`]). It renews
    /// with every batch and every third of the lease while idle; a standby
    /// takes over that long after the active instance died. A handler that
    /// takes longer than this on one batch may find the subscriber taken
    /// over ([`SubscriptionError::LeaseLost`]).
    pub fn with_lease(mut self, lease: Duration) -> Result<Self, SubscriptionError> {
        if lease < Duration::from_millis(10) || lease > MAX_SUBSCRIBER_LEASE {
            return Err(SubscriptionError::InvalidOptions(
                "the subscriber lease must be 10 ms to a day".into(),
            ));
        }
        self.lease = lease;
        Ok(self)
    }

    /// The subscriber's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stored checkpoint: every matching event at or below it has been
    /// handled (`None` before the first batch).
    pub async fn checkpoint(&self) -> Result<Option<Position>, SubscriptionError> {
        let name = self.name.clone();
        Ok(self
            .store
            .with_reader(move |tx| checkpoint_of(tx, &name))
            .await?)
    }

    /// Waits until the subscriber has handled every matching event at or
    /// below `position` (read your writes): `Ok(true)` then, `Ok(false)`
    /// after `timeout`. It watches the checkpoint (every 20 ms at most):
    /// some instance must be running the subscriber.
    pub async fn wait_until_applied(
        &self,
        position: Position,
        timeout: Duration,
    ) -> Result<bool, SubscriptionError> {
        let started = Instant::now();
        let pause = self.options.poll_interval.min(Duration::from_millis(20));
        loop {
            if self.checkpoint().await?.is_some_and(|at| at >= position) {
                return Ok(true);
            }
            if started.elapsed() >= timeout {
                return Ok(false);
            }
            tokio::time::sleep(pause.min(timeout.saturating_sub(started.elapsed()))).await;
        }
    }

    /// Runs `handler` (at least once per event) until `stop` completes:
    /// catches up from the checkpoint, then follows live (woken by this
    /// process's commits, polling for other processes'). Waits while
    /// another instance holds the subscriber and takes over when its lease
    /// runs out. Errors that are safe to retry are retried; it returns on
    /// `stop` (after the batch in hand), or with an error retrying cannot fix.
    pub async fn run<H: EventHandler>(
        &self,
        handler: &mut H,
        stop: impl Future<Output = ()>,
    ) -> Result<(), SubscriptionError> {
        self.run_with(&mut AtLeastOnce(handler), stop).await
    }

    /// Like [`Subscription::run`], exactly once: each batch's writes (made
    /// by `handler` in the transaction it is given) and the checkpoint
    /// commit together. The handler runs on blocking threads, so it is
    /// taken by value; it is given back when `stop` ends the run.
    pub async fn run_projection<P: ProjectionHandler>(
        &self,
        handler: P,
        stop: impl Future<Output = ()>,
    ) -> Result<P, SubscriptionError> {
        let mut apply = ExactlyOnce(Some(handler));
        self.run_with(&mut apply, stop).await?;
        apply.0.ok_or_else(lost_projection)
    }

    /// Handles (at least once) every matching event committed now, then
    /// returns how many it handled; [`SubscriptionError::Busy`] if another
    /// instance holds the subscriber.
    pub async fn catch_up<H: EventHandler>(
        &self,
        handler: &mut H,
    ) -> Result<usize, SubscriptionError> {
        self.catch_up_with(&mut AtLeastOnce(handler)).await
    }

    /// [`Subscription::catch_up`], exactly once (see
    /// [`Subscription::run_projection`]); gives the handler back with the
    /// count.
    pub async fn catch_up_projection<P: ProjectionHandler>(
        &self,
        handler: P,
    ) -> Result<(P, usize), SubscriptionError> {
        let mut apply = ExactlyOnce(Some(handler));
        let count = self.catch_up_with(&mut apply).await?;
        Ok((apply.0.ok_or_else(lost_projection)?, count))
    }

    async fn catch_up_with<A: Apply>(&self, apply: &mut A) -> Result<usize, SubscriptionError> {
        self.options.check()?;
        let mut lease = self.take(uuid::Uuid::new_v4()).await?;
        let mut handled = 0;
        let outcome = loop {
            match self.step(&mut lease, apply).await {
                Ok(step) => {
                    handled += step.handled;
                    if !step.full {
                        break Ok(handled);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        self.release(lease.holder).await;
        outcome
    }

    async fn run_with<A: Apply>(
        &self,
        apply: &mut A,
        stop: impl Future<Output = ()>,
    ) -> Result<(), SubscriptionError> {
        self.options.check()?;
        let mut stop = pin!(stop);
        let mut commits = self.store.commits();
        let holder = uuid::Uuid::new_v4();
        loop {
            let lease = tokio::select! {
                () = &mut stop => {
                    // A take already queued may have committed: give it up.
                    self.release(holder).await;
                    return Ok(());
                }
                lease = self.wait_for_lease(holder) => lease?,
            };
            let mut lease = lease;
            let outcome = self
                .follow(&mut lease, apply, &mut commits, &mut stop)
                .await;
            match outcome {
                Ok(()) => {
                    self.release(lease.holder).await;
                    return Ok(());
                }
                Err(SubscriptionError::Store(e)) if e.is_retry_safe() => {
                    tracing::warn!(subscriber = %self.name, error = %e, "subscription interrupted; retrying");
                    tokio::select! {
                        () = &mut stop => {
                            self.release(lease.holder).await;
                            return Ok(());
                        }
                        () = tokio::time::sleep(self.options.poll_interval) => {}
                    }
                }
                Err(e) => {
                    self.release(lease.holder).await;
                    return Err(e);
                }
            }
        }
    }

    /// Waits until this instance holds the subscriber (trying every poll
    /// interval).
    async fn wait_for_lease(&self, holder: uuid::Uuid) -> Result<Lease, SubscriptionError> {
        loop {
            match self.take(holder).await {
                Ok(lease) => {
                    tracing::info!(subscriber = %self.name, checkpoint = lease.checkpoint, "subscription active");
                    return Ok(lease);
                }
                Err(SubscriptionError::Busy) => {}
                Err(SubscriptionError::Store(e)) if e.is_retry_safe() => {
                    tracing::warn!(subscriber = %self.name, error = %e, "cannot take the subscriber; retrying");
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(self.options.poll_interval).await;
        }
    }

    /// Handles batches while there are events, then waits for a commit of
    /// this process, the poll interval, or the time to renew the lease.
    async fn follow<A: Apply, S: Future<Output = ()>>(
        &self,
        lease: &mut Lease,
        apply: &mut A,
        commits: &mut tokio::sync::watch::Receiver<u64>,
        stop: &mut std::pin::Pin<&mut S>,
    ) -> Result<(), SubscriptionError> {
        loop {
            // Mark the commits seen so far before reading, so a commit
            // during the read wakes the next wait at once.
            commits.borrow_and_update();
            let done = self.step(lease, apply).await?;
            let wait = if done.full {
                Duration::ZERO
            } else {
                self.options.poll_interval.min(self.lease / 3)
            };
            tokio::select! {
                biased;
                () = stop.as_mut() => return Ok(()),
                _ = commits.changed(), if !done.full => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Reads one batch after the checkpoint (settled at the read's head),
    /// hands it over (retrying a failing handler), and moves the checkpoint.
    async fn step<A: Apply>(
        &self,
        lease: &mut Lease,
        apply: &mut A,
    ) -> Result<Step, SubscriptionError> {
        let batch = self.options.batch_size;
        let (events, head) = self.read_batch(lease.checkpoint, batch).await?;
        let full = events.len() == batch;
        let next = match events.last() {
            Some(last) if full => rows::sql_position(last.position),
            _ => head.map_or(0, rows::sql_position).max(lease.checkpoint),
        };
        let behind = head.map_or(0, |h| {
            h.get()
                .saturating_sub(u64::try_from(next.max(0)).unwrap_or(0))
        });
        factos::metrics::record_subscriber_lag(
            &self.name,
            behind,
            events.last().map(|e| e.recorded_at),
        );
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            let renew = lease.renewed.elapsed() >= self.lease / 3;
            if next != lease.checkpoint || renew {
                self.advance(lease, next).await?;
            }
            return Ok(Step { handled: 0, full });
        };
        let (first, last) = (first.position, last.position);
        let events: Arc<[StoredEvent]> = events.into();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match apply.apply(self, lease, next, &events).await {
                Ok(()) => break,
                Err(Failure::Handler(source)) if attempt >= self.options.handler_attempts => {
                    factos::metrics::record_handler_failure(&self.name);
                    return Err(SubscriptionError::Handler {
                        first,
                        last,
                        attempts: attempt,
                        source,
                    });
                }
                Err(Failure::Handler(e)) => {
                    factos::metrics::record_handler_failure(&self.name);
                    tracing::warn!(subscriber = %self.name, attempt, error = %e, "handler failed; retrying");
                    tokio::time::sleep(self.options.delay(attempt)).await;
                }
                Err(Failure::Subscription(e)) => return Err(e),
            }
        }
        factos::metrics::record_subscriber_handled(&self.name, events.len());
        Ok(Step {
            handled: events.len(),
            full,
        })
    }

    /// Up to `limit` matching events after `checkpoint`, and the head, in
    /// one snapshot.
    async fn read_batch(
        &self,
        checkpoint: i64,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, Option<Position>), SubscriptionError> {
        let query = self.query.clone();
        let from = u64::try_from(checkpoint)
            .ok()
            .and_then(|p| Position::new(p.saturating_add(1)));
        Ok(self
            .store
            .with_reader(move |tx| {
                let mut options = ReadOptions::default().limit(limit);
                if let Some(from) = from {
                    options = options.from(from);
                }
                let read = rows::read(tx, &query, options)?;
                Ok((read.events, read.head))
            })
            .await?)
    }

    /// When the lease ends if renewed now, in microseconds since the epoch.
    fn lease_end(&self) -> i64 {
        micros_now().saturating_add(i64::try_from(self.lease.as_micros()).unwrap_or(i64::MAX))
    }

    /// Moves the checkpoint to `to` and renews the lease.
    async fn advance(&self, lease: &mut Lease, to: i64) -> Result<(), SubscriptionError> {
        let (name, holder, from, until) = (
            self.name.clone(),
            lease.holder,
            lease.checkpoint,
            self.lease_end(),
        );
        let moved = self
            .store
            .with_writer(move |c| advance_in(c, &name, holder, from, to, until))
            .await?;
        if !moved {
            return Err(SubscriptionError::LeaseLost);
        }
        lease.checkpoint = to;
        lease.renewed = Instant::now();
        Ok(())
    }

    /// Takes the subscriber for `holder` (creating its row, recording its
    /// query the first time).
    async fn take(&self, holder: uuid::Uuid) -> Result<Lease, SubscriptionError> {
        let (name, until) = (self.name.clone(), self.lease_end());
        let ours = factos::snapshot::SnapshotKey::encode_query(&self.query);
        let taken = self
            .store
            .with_writer(move |c| {
                write::begin(c)?;
                let taken = take_in(c, &name, holder, until, &ours);
                match &taken {
                    Ok(Taken::Held(_)) => write::commit(c)?,
                    _ => write::rollback(c),
                }
                taken
            })
            .await?;
        match taken {
            Taken::Held(checkpoint) => Ok(Lease {
                holder,
                checkpoint,
                renewed: Instant::now(),
            }),
            Taken::Busy => Err(SubscriptionError::Busy),
            Taken::QueryChanged => Err(SubscriptionError::QueryChanged {
                subscriber: self.name.clone(),
            }),
        }
    }

    /// Gives the subscriber up at once, so a standby takes over without
    /// waiting for the lease to run out. Best effort: a failure leaves the
    /// lease to run out.
    async fn release(&self, holder: uuid::Uuid) {
        let name = self.name.clone();
        let released = self
            .store
            .with_writer(move |c| {
                c.execute(
                    "UPDATE factos_subscriptions SET holder = NULL, held_until = 0
                     WHERE name = ?1 AND holder = ?2",
                    params![name, holder.as_bytes().as_slice()],
                )
                .map_err(|e| sqlite_error("cannot release the subscriber", &e))
            })
            .await;
        if let Err(e) = released {
            tracing::debug!(subscriber = %self.name, error = %e, "cannot release the subscriber; its lease runs out");
        }
    }
}

/// Takes the subscriber in the open transaction.
fn take_in(
    c: &Connection,
    name: &str,
    holder: uuid::Uuid,
    until: i64,
    query: &str,
) -> Result<Taken, StoreError> {
    let now = micros_now();
    c.execute(
        "INSERT INTO factos_subscriptions (name, updated_at) VALUES (?1, ?2)
         ON CONFLICT (name) DO NOTHING",
        params![name, now],
    )
    .map_err(|e| sqlite_error("cannot create the checkpoint", &e))?;
    let row = c
        .query_row(
            include_str!("../sql/statements/subscriber_take.sql"),
            params![name, holder.as_bytes().as_slice(), now, until],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?)),
        )
        .optional()
        .map_err(|e| sqlite_error("cannot take the subscriber", &e))?;
    let Some((checkpoint, recorded)) = row else {
        return Ok(Taken::Busy);
    };
    match recorded {
        Some(recorded) if recorded != query => Ok(Taken::QueryChanged),
        Some(_) => Ok(Taken::Held(checkpoint)),
        None => {
            c.execute(
                "UPDATE factos_subscriptions SET query = ?2 WHERE name = ?1",
                params![name, query],
            )
            .map_err(|e| sqlite_error("cannot record the subscriber's query", &e))?;
            Ok(Taken::Held(checkpoint))
        }
    }
}

/// A subscriber's checkpoint (`None` before its first batch, or unknown).
fn checkpoint_of(c: &Connection, name: &str) -> Result<Option<Position>, StoreError> {
    let position: Option<i64> = c
        .query_row(
            "SELECT position FROM factos_subscriptions WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| sqlite_error("cannot read the checkpoint", &e))?;
    Ok(position
        .and_then(|p| u64::try_from(p).ok())
        .and_then(Position::new))
}

fn lost_projection() -> SubscriptionError {
    SubscriptionError::Store(StoreError::new(
        factos::StoreErrorKind::Other,
        "the projection was lost when its batch panicked",
    ))
}

impl SqliteStore {
    /// Every subscriber of the file, by name.
    pub async fn subscribers(&self) -> Result<Vec<SubscriberStatus>, StoreError> {
        self.with_reader(|tx| {
            let head = rows::head(tx)?.map_or(0, rows::sql_position);
            let now = micros_now();
            let mut statement = tx
                .prepare(
                    "SELECT name, position, holder IS NOT NULL AND held_until >= ?1
                     FROM factos_subscriptions ORDER BY name",
                )
                .map_err(|e| sqlite_error("cannot list the subscribers", &e))?;
            let found = statement
                .query_map([now], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, bool>(2)?,
                    ))
                })
                .map_err(|e| sqlite_error("cannot list the subscribers", &e))?;
            let mut subscribers = Vec::new();
            for row in found {
                let (name, position, active) =
                    row.map_err(|e| sqlite_error("cannot list the subscribers", &e))?;
                subscribers.push(SubscriberStatus {
                    name,
                    checkpoint: u64::try_from(position).ok().and_then(Position::new),
                    behind_head: u64::try_from(head.saturating_sub(position)).unwrap_or(0),
                    active,
                });
            }
            Ok(subscribers)
        })
        .await
    }

    /// Moves subscriber `name`'s checkpoint to `position` (0: the start),
    /// to rebuild or skip; its recorded query is forgotten (the next run
    /// records its own). [`SubscriptionError::Busy`] while an instance
    /// holds it; false when there is no such subscriber.
    pub async fn reset_subscriber(
        &self,
        name: &str,
        position: u64,
    ) -> Result<bool, SubscriptionError> {
        let position = i64::try_from(position).map_err(|_| {
            SubscriptionError::InvalidOptions("the position must be at most 2^63-1".into())
        })?;
        self.change_idle_subscriber(
            name,
            "UPDATE factos_subscriptions SET position = ?2, query = NULL, updated_at = ?3
             WHERE name = ?1",
            Some(position),
        )
        .await
    }

    /// Forgets subscriber `name` (its checkpoint and query), after a
    /// rebuild under a new name took over. [`SubscriptionError::Busy`]
    /// while an instance holds it; false when there is no such subscriber.
    pub async fn remove_subscriber(&self, name: &str) -> Result<bool, SubscriptionError> {
        self.change_idle_subscriber(
            name,
            "DELETE FROM factos_subscriptions WHERE name = ?1",
            None,
        )
        .await
    }

    /// Runs `sql` on subscriber `name` if no instance holds it.
    async fn change_idle_subscriber(
        &self,
        name: &str,
        sql: &'static str,
        position: Option<i64>,
    ) -> Result<bool, SubscriptionError> {
        factos::subscription::check_name(name)?;
        let name = name.to_string();
        let changed = self
            .with_writer(move |c| {
                write::begin(c)?;
                let now = micros_now();
                let held: Option<bool> = c
                    .query_row(
                        "SELECT holder IS NOT NULL AND held_until >= ?2
                         FROM factos_subscriptions WHERE name = ?1",
                        params![name, now],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| sqlite_error("cannot read the subscriber", &e))?;
                let outcome = match held {
                    None => Ok(None),
                    Some(true) => Ok(Some(false)),
                    Some(false) => {
                        let changed = match position {
                            Some(p) => c.execute(sql, params![name, p, now]),
                            None => c.execute(sql, params![name]),
                        };
                        changed
                            .map(|_| Some(true))
                            .map_err(|e| sqlite_error("cannot change the subscriber", &e))
                    }
                };
                match &outcome {
                    Ok(Some(true)) => write::commit(c)?,
                    _ => write::rollback(c),
                }
                outcome
            })
            .await?;
        match changed {
            None => Ok(false),
            Some(true) => Ok(true),
            Some(false) => Err(SubscriptionError::Busy),
        }
    }
}
