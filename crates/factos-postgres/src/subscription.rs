//! Durable subscriptions: a named subscriber with a query and a checkpoint
//! stored in PostgreSQL, delivering every committed matching event in
//! position order, at least once, or exactly once into the same database.
//!
//! # Why nothing is skipped
//!
//! Positions are allocated at insert and become visible at commit, so a
//! reader can see position 12 while 11 is still in flight. A subscriber only
//! reads at a *settled* position (every position at or below it belongs to a
//! finished transaction; see `DESIGN.md`) and only moves its checkpoint up to
//! that position, so an event that commits late with a lower position is
//! always still ahead of the checkpoint.
//!
//! # One active instance
//!
//! Several processes may run the same subscriber. The active one holds a
//! session-level advisory lock on its own connection and does everything on
//! that connection: if it dies, the server drops the connection, the lock is
//! released, an open batch transaction rolls back, and a standby takes over
//! at its next attempt ([`SubscriptionOptions::poll_interval`]). The
//! checkpoint moves by compare-and-set, so even an instance that lost its
//! lease without noticing cannot move it.

use std::future::Future;
use std::pin::pin;

use factos::{Position, Query, StoredEvent};
use futures_util::FutureExt;

use crate::error::{Phase, db_error, pool_error};
use crate::store::PostgresStore;
use crate::store::read::ForwardRead;
use crate::wakeup::Listening;

mod delivery;
mod handler;
mod parked;
mod partition;
mod reset;

use delivery::{Apply, AtLeastOnce, ExactlyOnce, Failure};
pub use factos::subscription::{
    EventHandler, MAX_BATCH_SIZE, MAX_NAME_BYTES, SubscriptionError, SubscriptionOptions,
};
pub use handler::ProjectionHandler;
pub use parked::{MAX_PARKED_ERROR_BYTES, ParkedEvent, PoisonPolicy};
pub(crate) use partition::PartitionFilter;
pub use partition::{MAX_PARTITIONS, PartitionedSubscription, Partitioning};

/// A named, durable subscriber: a query and a checkpoint in PostgreSQL.
///
/// ```no_run
/// use factos::{Query, StoredEvent};
/// use factos_postgres::{EventHandler, PostgresStore, StoreOptions, Subscription};
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
/// let store = PostgresStore::connect("postgresql://app@localhost/app", StoreOptions::default())?;
/// let subscription = Subscription::new(&store, "printer", Query::all())?;
/// // Catches up, then follows live until `stop` completes (here: an hour;
/// // in a service, a shutdown signal).
/// let stop = tokio::time::sleep(std::time::Duration::from_secs(3600));
/// subscription.run(&mut Print, stop).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Subscription {
    store: PostgresStore,
    name: String,
    query: Query,
    options: SubscriptionOptions,
    lock_key: i64,
    /// The partition of a [`PartitionedSubscription`] this is, if one.
    partition: Option<std::sync::Arc<PartitionFilter>>,
}

/// The active instance's connection (holding the subscriber's lock) and
/// the checkpoint as it knows it.
struct Lease {
    client: deadpool_postgres::ClientWrapper,
    checkpoint: i64,
    /// Under [`PoisonPolicy::Park`], after a batch failed: events are handed
    /// over one at a time until the checkpoint reaches this position (the
    /// failed batch's last event), so the poison one can be parked alone.
    narrow_until: Option<i64>,
}

/// What a subscription hands its handler: a batch (the checkpoint moves to
/// `next` with it) or one requeued parked event.
enum Handing<'a> {
    Batch {
        next: i64,
        events: &'a [StoredEvent],
    },
    Parked(&'a StoredEvent),
}

/// The handler's last error after every attempt failed, and how many.
type Exhausted = (u32, Box<dyn std::error::Error + Send + Sync>);

/// What one step did.
struct Step {
    handled: usize,
    /// The batch was full: more events may be waiting.
    full: bool,
}

impl Subscription {
    /// A subscriber `name` (1 to 128 bytes, no control characters) of the
    /// events matching `query`, with default options.
    pub fn new(store: &PostgresStore, name: &str, query: Query) -> Result<Self, SubscriptionError> {
        factos::subscription::check_name(name)?;
        Ok(Self {
            store: store.clone(),
            name: name.to_string(),
            query,
            options: SubscriptionOptions::default(),
            lock_key: store.keys().subscriber(name),
            partition: None,
        })
    }

    /// Sets the options (checked: an out-of-range option is an error).
    pub fn with_options(mut self, options: SubscriptionOptions) -> Result<Self, SubscriptionError> {
        options.check()?;
        self.options = options;
        Ok(self)
    }

    /// The subscriber's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stored checkpoint: every matching event at or below it has been
    /// handled (`None` before the first batch).
    pub async fn checkpoint(&self) -> Result<Option<Position>, SubscriptionError> {
        let client = self.store.client().await?;
        let row = client
            .query_opt(&self.store.statements().checkpoint_read, &[&self.name])
            .await
            .map_err(|e| db_error("cannot read the checkpoint", e, Phase::BeforeCommit))?;
        let position: i64 = match row {
            Some(row) => row
                .try_get(0)
                .map_err(|e| crate::error::corrupt("unexpected checkpoint").with_source(e))?,
            None => 0,
        };
        Ok(crate::rows::stored_position(position))
    }

    /// Waits until the subscriber has handled every matching event at or
    /// below `position` (its checkpoint is there or past it), for a read
    /// model that must show a write the caller just made (read your
    /// writes): `Ok(true)` then, `Ok(false)` after `timeout`. It only
    /// watches the checkpoint (every 20 ms at most, or the poll interval if
    /// shorter): some instance must be running the subscriber.
    pub async fn wait_until_applied(
        &self,
        position: Position,
        timeout: std::time::Duration,
    ) -> Result<bool, SubscriptionError> {
        let started = std::time::Instant::now();
        let pause = self
            .options
            .poll_interval
            .min(std::time::Duration::from_millis(20));
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
    /// catches up from the checkpoint, then follows live. Waits while another
    /// instance holds the subscriber and takes over when it goes away.
    /// Errors that are safe to retry (a lost connection, a restarting server)
    /// are retried; it returns on `stop` (after the batch in hand), or with
    /// an error that retrying cannot fix.
    pub async fn run<H: EventHandler>(
        &self,
        handler: &mut H,
        stop: impl Future<Output = ()>,
    ) -> Result<(), SubscriptionError> {
        self.run_with(&mut AtLeastOnce(handler), stop).await
    }

    /// Like [`Subscription::run`], exactly once: each batch's writes (made by
    /// `handler` in the transaction it is given) and the checkpoint commit
    /// together, so a batch is either applied with its checkpoint or not at all.
    pub async fn run_projection<P: ProjectionHandler>(
        &self,
        handler: &mut P,
        stop: impl Future<Output = ()>,
    ) -> Result<(), SubscriptionError> {
        self.run_with(&mut ExactlyOnce(handler), stop).await
    }

    /// Handles (at least once) every matching event settled now, then
    /// returns how many it handled; [`SubscriptionError::Busy`] if another
    /// instance holds the subscriber.
    pub async fn catch_up<H: EventHandler>(
        &self,
        handler: &mut H,
    ) -> Result<usize, SubscriptionError> {
        self.catch_up_with(&mut AtLeastOnce(handler)).await
    }

    /// [`Subscription::catch_up`], exactly once (see [`Subscription::run_projection`]).
    pub async fn catch_up_projection<P: ProjectionHandler>(
        &self,
        handler: &mut P,
    ) -> Result<usize, SubscriptionError> {
        self.catch_up_with(&mut ExactlyOnce(handler)).await
    }

    async fn catch_up_with<A: Apply>(&self, apply: &mut A) -> Result<usize, SubscriptionError> {
        self.options.check()?;
        let mut lease = self.try_lease().await?.ok_or(SubscriptionError::Busy)?;
        let mut handled = 0;
        loop {
            let step = self.step(&mut lease, apply).await?;
            handled += step.handled;
            if !step.full {
                self.release(lease).await;
                return Ok(handled);
            }
        }
    }

    async fn run_with<A: Apply>(
        &self,
        apply: &mut A,
        stop: impl Future<Output = ()>,
    ) -> Result<(), SubscriptionError> {
        self.options.check()?;
        let mut stop = pin!(stop.fuse());
        let mut commits = self.store.commits();
        let mut listening: Option<Listening> = None;
        loop {
            let lease = tokio::select! {
                () = &mut stop => return Ok(()),
                lease = self.lease(&mut listening) => lease,
            };
            let outcome = match lease {
                Ok(mut lease) => {
                    let outcome = self
                        .follow(&mut lease, apply, &mut commits, &mut listening, &mut stop)
                        .await;
                    if outcome.is_ok() {
                        self.release(lease).await;
                    }
                    outcome
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(SubscriptionError::Store(e)) if e.is_retry_safe() => {
                    // The lease's connection is dropped (closed): the lock is
                    // released and any open batch rolled back; start over.
                    tracing::warn!(subscriber = %self.name, error = %e, "subscription interrupted; retrying");
                    tokio::select! {
                        () = &mut stop => return Ok(()),
                        () = tokio::time::sleep(self.options.poll_interval) => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until this instance holds the subscriber. A standby keeps one
    /// connection and tries the lock on it every poll interval (no new
    /// server process per attempt).
    async fn lease(&self, listening: &mut Option<Listening>) -> Result<Lease, SubscriptionError> {
        let mut standby: Option<deadpool_postgres::ClientWrapper> = None;
        loop {
            let client = match standby.take() {
                Some(client) if !client.is_closed() => client,
                _ => self.connection().await?,
            };
            match self.try_lock(client).await? {
                Ok(lease) => {
                    tracing::info!(subscriber = %self.name, checkpoint = lease.checkpoint, "subscription active");
                    return Ok(lease);
                }
                Err(client) => standby = Some(client),
            }
            // Commits do not say the holder went away, so there is nothing
            // better to wait on than the poll interval.
            drop(listening.take());
            tokio::time::sleep(self.options.poll_interval).await;
        }
    }

    /// Takes the subscriber if no other instance holds it.
    async fn try_lease(&self) -> Result<Option<Lease>, SubscriptionError> {
        let client = self.connection().await?;
        Ok(self.try_lock(client).await?.ok())
    }

    /// A connection of the subscriber's own, taken out of the pool, so
    /// closing it releases the lock.
    async fn connection(&self) -> Result<deadpool_postgres::ClientWrapper, SubscriptionError> {
        let object = self.store.pool().get().await.map_err(pool_error)?;
        Ok(deadpool_postgres::Object::take(object))
    }

    /// Tries the subscriber's session lock on `client`; holding it, reads the
    /// checkpoint (creating it at 0). Hands the connection back if another
    /// instance holds the lock.
    async fn try_lock(
        &self,
        client: deadpool_postgres::ClientWrapper,
    ) -> Result<Result<Lease, deadpool_postgres::ClientWrapper>, SubscriptionError> {
        let locked: bool = client
            .query_one(&self.store.statements().subscriber_lock, &[&self.lock_key])
            .await
            .map_err(|e| db_error("cannot take the subscriber's lock", e, Phase::BeforeCommit))?
            .try_get(0)
            .map_err(|e| crate::error::corrupt("unexpected lock result").with_source(e))?;
        if !locked {
            return Ok(Err(client));
        }
        let sql = self.store.statements();
        client
            .execute(&sql.checkpoint_create, &[&self.name])
            .await
            .map_err(|e| db_error("cannot create the checkpoint", e, Phase::BeforeCommit))?;
        let checkpoint: i64 = client
            .query_one(&sql.checkpoint_read, &[&self.name])
            .await
            .map_err(|e| db_error("cannot read the checkpoint", e, Phase::BeforeCommit))?
            .try_get(0)
            .map_err(|e| crate::error::corrupt("unexpected checkpoint").with_source(e))?;
        let mut ours = factos::snapshot::SnapshotKey::encode_query(&self.query);
        if let Some(partition) = &self.partition {
            ours.push_str(&partition.describe());
        }
        let recorded: Option<String> = client
            .query_one(&sql.subscriber_query, &[&self.name, &ours])
            .await
            .map_err(|e| {
                db_error(
                    "cannot record the subscriber's query",
                    e,
                    Phase::BeforeCommit,
                )
            })?
            .try_get(0)
            .map_err(|e| crate::error::corrupt("unexpected subscriber query").with_source(e))?;
        if recorded.as_deref() != Some(ours.as_str()) {
            let _ = client
                .execute(&sql.subscriber_unlock, &[&self.lock_key])
                .await;
            return Err(SubscriptionError::QueryChanged {
                subscriber: self.name.clone(),
            });
        }
        Ok(Ok(Lease {
            client,
            checkpoint,
            narrow_until: None,
        }))
    }

    /// Gives the subscriber up at once (dropping the connection would too,
    /// but only once the server notices), so a standby or a status query
    /// sees it free when `run` returns.
    async fn release(&self, lease: Lease) {
        if let Err(e) = lease
            .client
            .execute(
                &self.store.statements().subscriber_unlock,
                &[&self.lock_key],
            )
            .await
        {
            tracing::debug!(subscriber = %self.name, error = %e, "cannot release the subscriber; closing its connection");
        }
    }

    /// Handles batches while there are events, then waits for a wake-up
    /// (a commit in this process, a notification, or the poll interval).
    async fn follow<A: Apply>(
        &self,
        lease: &mut Lease,
        apply: &mut A,
        commits: &mut tokio::sync::watch::Receiver<u64>,
        listening: &mut Option<Listening>,
        stop: &mut std::pin::Pin<&mut futures_util::future::Fuse<impl Future<Output = ()>>>,
    ) -> Result<(), SubscriptionError> {
        let mut listen_again_at = std::time::Instant::now();
        loop {
            // Mark the commits seen so far before reading, so a commit
            // during the read wakes the next wait at once.
            commits.borrow_and_update();
            if let Some(l) = listening.as_mut() {
                l.notifications.borrow_and_update();
            }
            let done = self.step(lease, apply).await?;
            if (&mut *stop).now_or_never().is_some() {
                return Ok(());
            }
            if done.full {
                continue;
            }
            // A failed attempt to listen is retried once per poll interval,
            // not on every wake-up.
            if listening.is_none()
                && listen_again_at <= std::time::Instant::now()
                && let Some(opened) = self.store.listen().await
            {
                match opened {
                    Ok(l) => *listening = Some(l),
                    Err(e) => {
                        tracing::debug!(error = %e, "no listening connection; polling");
                        listen_again_at = std::time::Instant::now() + self.options.poll_interval;
                    }
                }
            }
            let notified = async {
                match listening.as_mut() {
                    Some(l) => {
                        if l.notifications.changed().await.is_err() {
                            // The listening connection closed: reopen it next time.
                            *listening = None;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut *stop => return Ok(()),
                _ = commits.changed() => {}
                () = notified => {}
                () = tokio::time::sleep(self.options.poll_interval) => {}
            }
        }
    }

    /// Hands requeued parked events over, if any; else reads one batch after
    /// the checkpoint at a settled position, hands it to the handler, and
    /// moves the checkpoint (parking a poison event under
    /// [`PoisonPolicy::Park`]).
    async fn step<A: Apply>(
        &self,
        lease: &mut Lease,
        apply: &mut A,
    ) -> Result<Step, SubscriptionError> {
        let retried = self.retry_requeued(lease, apply).await?;
        crate::metrics::subscriber_handled(&self.name, retried);
        if lease
            .narrow_until
            .is_some_and(|until| lease.checkpoint >= until)
        {
            lease.narrow_until = None;
        }
        let batch = match lease.narrow_until {
            Some(_) => 1,
            None => self.options.batch_size,
        };
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        let (mark, events, head) = self
            .store
            .batch_read(
                &lease.client,
                &ForwardRead::new(&self.query, lease.checkpoint, Some(limit))
                    .of_partition(self.partition.as_deref()),
            )
            .await?;
        let full = events.len() == batch;
        // Everything matching at or below the settled mark was read, unless
        // the batch was full: then only up to its last event.
        let next = match events.last() {
            Some(last) if full => i64::try_from(last.position.get()).unwrap_or(i64::MAX),
            _ => mark.max(lease.checkpoint),
        };
        let behind = head.map_or(0, |h| {
            h.get()
                .saturating_sub(u64::try_from(next.max(0)).unwrap_or(0))
        });
        crate::metrics::subscriber_lag(&self.name, behind, events.last().map(|e| e.recorded_at));
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            if next != lease.checkpoint {
                self.advance(&lease.client, lease.checkpoint, next).await?;
                lease.checkpoint = next;
            }
            return Ok(Step {
                handled: retried,
                full,
            });
        };
        let handing = Handing::Batch {
            next,
            events: &events,
        };
        let mut handled = events.len();
        if let Err((attempts, source)) = self.hand_over(lease, apply, handing).await? {
            match self.options.poison {
                PoisonPolicy::Park if events.len() > 1 => {
                    tracing::warn!(subscriber = %self.name, first = %first.position, last = %last.position, error = %source, "batch failed; handing its events over one at a time");
                    lease.narrow_until =
                        Some(i64::try_from(last.position.get()).unwrap_or(i64::MAX));
                    return Ok(Step {
                        handled: retried,
                        full: true,
                    });
                }
                PoisonPolicy::Park => {
                    tracing::warn!(subscriber = %self.name, position = %first.position, error = %source, "parking the event");
                    self.park(lease, first, next, source.as_ref(), attempts)
                        .await?;
                    handled = 0;
                }
                _ => {
                    return Err(SubscriptionError::Handler {
                        first: first.position,
                        last: last.position,
                        attempts,
                        source,
                    });
                }
            }
        }
        lease.checkpoint = next;
        crate::metrics::subscriber_handled(&self.name, handled);
        Ok(Step {
            handled: handled + retried,
            full,
        })
    }

    /// Hands `handing` over up to [`SubscriptionOptions::handler_attempts`]
    /// times, with the retry delays between; `Ok(Err(..))` when every
    /// attempt failed.
    async fn hand_over<A: Apply>(
        &self,
        lease: &mut Lease,
        apply: &mut A,
        handing: Handing<'_>,
    ) -> Result<Result<(), Exhausted>, SubscriptionError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = match handing {
                Handing::Batch { next, events } => apply.apply(self, lease, next, events).await,
                Handing::Parked(event) => apply.apply_parked(self, lease, event).await,
            };
            match outcome {
                Ok(()) => return Ok(Ok(())),
                Err(Failure::Handler(source)) if attempt >= self.options.handler_attempts => {
                    crate::metrics::handler_failed(&self.name);
                    return Ok(Err((attempt, source)));
                }
                Err(Failure::Handler(e)) => {
                    crate::metrics::handler_failed(&self.name);
                    tracing::warn!(subscriber = %self.name, attempt, error = %e, "handler failed; retrying");
                    tokio::time::sleep(self.options.delay(attempt)).await;
                }
                Err(Failure::Subscription(e)) => return Err(e),
            }
        }
    }

    /// Hands the requeued parked events over (at most a batch), each
    /// parked again with its new error if it still fails; how many were
    /// handled. Only under [`PoisonPolicy::Park`] (no query otherwise).
    async fn retry_requeued<A: Apply>(
        &self,
        lease: &mut Lease,
        apply: &mut A,
    ) -> Result<usize, SubscriptionError> {
        if self.options.poison != PoisonPolicy::Park {
            return Ok(0);
        }
        let limit = i64::try_from(self.options.batch_size).unwrap_or(i64::MAX);
        let sql = self.store.statements();
        let rows = lease
            .client
            .query(&sql.parked_requeued, &[&self.name, &limit])
            .await
            .map_err(|e| {
                db_error(
                    "cannot read the requeued parked events",
                    e,
                    Phase::BeforeCommit,
                )
            })?;
        if rows.is_empty() {
            return Ok(0);
        }
        let ids = rows
            .iter()
            .map(|row| row.try_get::<_, uuid::Uuid>("event_id"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| crate::error::corrupt("unexpected parked event row").with_source(e))?;
        let events = lease
            .client
            .query(&sql.read_by_ids, &[&ids])
            .await
            .map_err(|e| db_error("cannot read the parked events", e, Phase::BeforeCommit))?
            .iter()
            .map(crate::rows::stored_event)
            .collect::<Result<Vec<_>, _>>()?;
        let mut handled = 0;
        for event in &events {
            match self.hand_over(lease, apply, Handing::Parked(event)).await? {
                Ok(()) => handled += 1,
                Err((attempts, source)) => {
                    tracing::warn!(subscriber = %self.name, position = %event.position, error = %source, "the requeued event failed again; parking it");
                    self.repark(&lease.client, event, source.as_ref(), attempts)
                        .await?;
                }
            }
        }
        Ok(handled)
    }

    /// Parks `event` and moves the checkpoint past it (to `next`) in one
    /// transaction.
    async fn park(
        &self,
        lease: &mut Lease,
        event: &StoredEvent,
        next: i64,
        error: &(dyn std::error::Error + Send + Sync),
        attempts: u32,
    ) -> Result<(), SubscriptionError> {
        let from = lease.checkpoint;
        let transaction = lease
            .client
            .transaction()
            .await
            .map_err(|e| db_error("cannot begin parking the event", e, Phase::BeforeCommit))?;
        self.record_parked(&*transaction, event, error, attempts)
            .await?;
        let moved = transaction
            .query_opt(
                &self.store.statements().checkpoint_advance,
                &[&self.name, &from, &next],
            )
            .await
            .map_err(|e| db_error("cannot move the checkpoint", e, Phase::BeforeCommit))?;
        if moved.is_none() {
            let _ = transaction.rollback().await;
            return Err(SubscriptionError::LeaseLost);
        }
        transaction
            .commit()
            .await
            .map_err(|e| db_error("cannot commit the parked event", e, Phase::BeforeCommit))?;
        Ok(())
    }

    /// Parks a requeued `event` again after a failed retry: its row keeps
    /// the new error, counts the attempts and is no longer requeued (a row
    /// dropped meanwhile stays dropped).
    async fn repark(
        &self,
        client: &tokio_postgres::Client,
        event: &StoredEvent,
        error: &(dyn std::error::Error + Send + Sync),
        attempts: u32,
    ) -> Result<(), SubscriptionError> {
        let (position, _) = parked::parked_key(event);
        let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
        client
            .query_opt(
                &self.store.statements().parked_repark,
                &[
                    &self.name,
                    &position,
                    &parked::parked_error(error),
                    &attempts,
                ],
            )
            .await
            .map_err(|e| db_error("cannot park the event again", e, Phase::BeforeCommit))?;
        Ok(())
    }

    /// Parks `event` (a new row, or the existing one's error and attempts).
    async fn record_parked(
        &self,
        client: &impl tokio_postgres::GenericClient,
        event: &StoredEvent,
        error: &(dyn std::error::Error + Send + Sync),
        attempts: u32,
    ) -> Result<(), SubscriptionError> {
        let (position, id) = parked::parked_key(event);
        let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
        client
            .execute(
                &self.store.statements().parked_record,
                &[
                    &self.name,
                    &position,
                    &id,
                    &parked::parked_error(error),
                    &attempts,
                ],
            )
            .await
            .map_err(|e| db_error("cannot park the event", e, Phase::BeforeCommit))?;
        Ok(())
    }

    /// Forgets `event`'s parked row (its retry was handled, at least once).
    async fn forget_parked(
        &self,
        client: &tokio_postgres::Client,
        event: &StoredEvent,
    ) -> Result<(), SubscriptionError> {
        let (position, _) = parked::parked_key(event);
        client
            .execute(
                &self.store.statements().parked_drop,
                &[&self.name, &position],
            )
            .await
            .map_err(|e| db_error("cannot forget the parked event", e, Phase::BeforeCommit))?;
        Ok(())
    }

    /// Moves the checkpoint from `from` to `to` (outside a transaction).
    async fn advance(
        &self,
        client: &tokio_postgres::Client,
        from: i64,
        to: i64,
    ) -> Result<(), SubscriptionError> {
        let moved = client
            .query_opt(
                &self.store.statements().checkpoint_advance,
                &[&self.name, &from, &to],
            )
            .await
            // Safe to retry whatever happened: the next lease reads the
            // checkpoint again and goes on from wherever it is.
            .map_err(|e| db_error("cannot move the checkpoint", e, Phase::BeforeCommit))?;
        moved.map(|_| ()).ok_or(SubscriptionError::LeaseLost)
    }
}
