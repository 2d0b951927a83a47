//! Delivering the effects [`factos::dispatch_with_outbox`] recorded: workers
//! lease due messages of a topic, acknowledge them when the effect is done,
//! and report failures, which are retried with exponential backoff and parked
//! after [`OutboxOptions::max_attempts`].
//!
//! Delivery is at least once: a worker that dies holding a lease (or whose
//! acknowledgement is lost) leaves the message to be leased again when the
//! lease runs out, so effects should be idempotent on the receiving side
//! (the message id is a good idempotency key). A lease that runs out counts
//! as a failed attempt: a message whose workers keep dying is parked after
//! [`OutboxOptions::max_attempts`] like one whose deliveries keep failing.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use factos::{Position, StoreError, StoreErrorKind, Topic};
use futures_util::FutureExt;

use crate::error::{Phase, db_error};
use crate::store::PostgresStore;

/// Largest [`OutboxOptions::batch_size`].
pub const MAX_OUTBOX_BATCH: usize = 1000;
/// Longest lease and longest pause between attempts (100 years): `now()`
/// plus more than this may not fit a PostgreSQL timestamp, so
/// [`Outbox::with_options`] refuses options that would need it.
pub const MAX_OUTBOX_DELAY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
/// How often the pause between attempts doubles at most.
const MAX_DOUBLINGS: u32 = 20;
/// Longest error text kept with a failed message, in bytes (longer texts are cut).
pub const MAX_ERROR_BYTES: usize = 4096;

/// How an [`Outbox`] worker leases and retries.
///
/// ```
/// use std::time::Duration;
/// use factos_postgres::OutboxOptions;
/// let options = OutboxOptions::default().max_attempts(3).lease(Duration::from_secs(10));
/// assert_eq!(options.max_attempts, 3);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OutboxOptions {
    /// Most messages leased at once (1 to [`MAX_OUTBOX_BATCH`]; default 100).
    pub batch_size: usize,
    /// How long a lease lasts (1 ms to [`MAX_OUTBOX_DELAY`]; default 30 s);
    /// a message not acknowledged or failed by then is handed out again, and
    /// the attempt counts as failed.
    pub lease: Duration,
    /// Attempts before a message is parked, whether they failed or their
    /// lease ran out (default 5).
    pub max_attempts: u32,
    /// Pause after a first failure, at most [`MAX_OUTBOX_DELAY`]; it doubles
    /// per attempt (default 1 s).
    pub retry_delay: Duration,
    /// Longest pause between attempts (default 10 min). The longest pause
    /// the options allow (`retry_delay` doubled 20 times, capped by this)
    /// must be at most [`MAX_OUTBOX_DELAY`].
    pub max_retry_delay: Duration,
    /// How often an idle [`Outbox::run`] looks for due messages when no
    /// commit of this process woke it (default 1 s).
    pub poll_interval: Duration,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        Self {
            batch_size: 100,
            lease: Duration::from_secs(30),
            max_attempts: 5,
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(600),
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl OutboxOptions {
    /// Sets [`OutboxOptions::batch_size`].
    #[must_use]
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size;
        self
    }

    /// Sets [`OutboxOptions::lease`].
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets [`OutboxOptions::max_attempts`].
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets [`OutboxOptions::retry_delay`].
    #[must_use]
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Sets [`OutboxOptions::max_retry_delay`].
    #[must_use]
    pub fn max_retry_delay(mut self, delay: Duration) -> Self {
        self.max_retry_delay = delay;
        self
    }

    /// Sets [`OutboxOptions::poll_interval`].
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    fn check(&self) -> Result<(), OutboxError> {
        let invalid = |reason: &str| Err(OutboxError::InvalidOptions(reason.to_string()));
        if !(1..=MAX_OUTBOX_BATCH).contains(&self.batch_size) {
            return invalid("the batch size must be 1 to 1000");
        }
        if self.max_attempts == 0 {
            return invalid("max attempts must be at least 1");
        }
        if self.lease < Duration::from_millis(1) || self.poll_interval.is_zero() {
            return invalid("the lease and the poll interval must be at least 1 ms");
        }
        if self.lease > MAX_OUTBOX_DELAY {
            return invalid("the lease must be at most 100 years (MAX_OUTBOX_DELAY)");
        }
        if self.retry_delay > MAX_OUTBOX_DELAY || self.delay(u32::MAX) > MAX_OUTBOX_DELAY {
            return invalid(
                "the pause between attempts (retry_delay doubled up to 20 times, capped by \
                 max_retry_delay) must stay within 100 years (MAX_OUTBOX_DELAY)",
            );
        }
        Ok(())
    }

    /// The pause after failed attempt `attempt` (1-based); it stops growing
    /// after attempt 21, so `delay(u32::MAX)` is the longest.
    fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(MAX_DOUBLINGS);
        self.retry_delay
            .saturating_mul(factor)
            .min(self.max_retry_delay)
    }
}

/// Why an outbox operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OutboxError {
    /// An option is out of range.
    InvalidOptions(String),
    /// The message's lease ran out and it was leased again (or acknowledged
    /// by the new holder): this worker's outcome was not recorded.
    LeaseLost {
        /// The message.
        id: i64,
    },
    /// The store failed.
    Store(StoreError),
}

impl std::fmt::Display for OutboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidOptions(reason) => write!(f, "invalid outbox options: {reason}"),
            Self::LeaseLost { id } => write!(
                f,
                "the lease of outbox message {id} ran out before its outcome was recorded"
            ),
            Self::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for OutboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for OutboxError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// A message leased to this worker.
#[derive(Debug, Clone)]
pub struct LeasedMessage {
    /// The message's id (stable across attempts: an idempotency key).
    pub id: i64,
    /// Position of the event that caused it.
    pub cause: Position,
    /// Its payload.
    pub payload: Vec<u8>,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// The previous attempt's error, if any.
    pub last_error: Option<String>,
    token: uuid::Uuid,
}

/// What one lease statement did.
struct Batch {
    leased: Vec<LeasedMessage>,
    /// Messages parked because their last allowed lease ran out.
    parked: usize,
}

fn unexpected_row(e: tokio_postgres::Error) -> StoreError {
    crate::error::corrupt("unexpected outbox row").with_source(e)
}

/// A row of the lease statement that was leased under `token`.
fn leased_message(
    row: &tokio_postgres::Row,
    token: uuid::Uuid,
) -> Result<LeasedMessage, StoreError> {
    let cause: i64 = row.try_get(1).map_err(unexpected_row)?;
    let attempt: i32 = row.try_get(4).map_err(unexpected_row)?;
    Ok(LeasedMessage {
        id: row.try_get(0).map_err(unexpected_row)?,
        cause: u64::try_from(cause)
            .ok()
            .and_then(Position::new)
            .ok_or_else(|| crate::error::corrupt("an outbox message without a cause"))?,
        payload: row.try_get(3).map_err(unexpected_row)?,
        attempt: u32::try_from(attempt).unwrap_or(0),
        last_error: row.try_get(5).map_err(unexpected_row)?,
        token,
    })
}

/// Whether [`Outbox::run`] may carry on after `error`. Besides errors that
/// wrote nothing, an acknowledgement or failure whose commit outcome is
/// unknown: it either happened, or the lease runs out and the message is
/// delivered again (delivery is at least once), so nothing is lost.
fn worker_can_continue(error: &StoreError) -> bool {
    error.is_retry_safe() || error.kind() == StoreErrorKind::CommitOutcomeUnknown
}

/// What became of a failed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// It will be handed out again after this pause.
    RetryIn(Duration),
    /// It reached [`OutboxOptions::max_attempts`] and is parked.
    Parked,
}

/// Delivers one outbox message; an error fails the attempt (retried with
/// backoff, parked after [`OutboxOptions::max_attempts`]).
pub trait MessageHandler: Send {
    /// The handler's error (its text is kept with the message).
    type Error: std::fmt::Display + Send;
    /// Performs the effect.
    fn deliver(
        &mut self,
        message: &LeasedMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// The workers' side of one outbox topic.
///
/// ```no_run
/// use factos::Topic;
/// use factos_postgres::{LeasedMessage, MessageHandler, Outbox, PostgresStore, StoreOptions};
///
/// struct SendEmail;
/// impl MessageHandler for SendEmail {
///     type Error = String;
///     async fn deliver(&mut self, message: &LeasedMessage) -> Result<(), String> {
///         println!("email #{}: {} bytes", message.id, message.payload.len());
///         Ok(())
///     }
/// }
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect("postgresql://app@localhost/app", StoreOptions::default())?;
/// let emails = Outbox::new(&store, Topic::new("email")?);
/// // Runs until `stop` completes (here: an hour; in a service, a shutdown signal).
/// let stop = tokio::time::sleep(std::time::Duration::from_secs(3600));
/// emails.run(&mut SendEmail, stop).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Outbox {
    store: PostgresStore,
    topic: Topic,
    options: OutboxOptions,
}

impl Outbox {
    /// The outbox of `topic`, with default options.
    pub fn new(store: &PostgresStore, topic: Topic) -> Self {
        Self {
            store: store.clone(),
            topic,
            options: OutboxOptions::default(),
        }
    }

    /// Sets the options, checked: out of range (including a lease or pause
    /// longer than [`MAX_OUTBOX_DELAY`]) is [`OutboxError::InvalidOptions`].
    pub fn with_options(mut self, options: OutboxOptions) -> Result<Self, OutboxError> {
        options.check()?;
        self.options = options;
        Ok(self)
    }

    /// Leases up to [`OutboxOptions::batch_size`] due messages, oldest
    /// first; concurrent workers get different messages. A message whose
    /// previous lease ran out on its last allowed attempt is parked instead.
    pub async fn lease(&self) -> Result<Vec<LeasedMessage>, OutboxError> {
        Ok(self.lease_batch().await?.leased)
    }

    async fn lease_batch(&self) -> Result<Batch, OutboxError> {
        let client = self.store.client().await?;
        let token = uuid::Uuid::new_v4();
        let limit = i64::try_from(self.options.batch_size).unwrap_or(i64::MAX);
        let lease_ms = i64::try_from(self.options.lease.as_millis()).unwrap_or(i64::MAX);
        let max_attempts = i32::try_from(self.options.max_attempts).unwrap_or(i32::MAX);
        let rows = client
            .query(
                &self.store.statements().outbox_lease,
                &[
                    &self.topic.as_str(),
                    &limit,
                    &token,
                    &lease_ms,
                    &max_attempts,
                ],
            )
            .await
            .map_err(|e| db_error("cannot lease outbox messages", e, Phase::BeforeCommit))?;
        let mut batch = Batch {
            leased: Vec::with_capacity(rows.len()),
            parked: 0,
        };
        for row in rows {
            let parked: bool = row.try_get("parked").map_err(unexpected_row)?;
            if parked {
                let id: i64 = row.try_get(0).map_err(unexpected_row)?;
                tracing::warn!(topic = %self.topic, id, "outbox message parked: its last lease ran out");
                batch.parked += 1;
            } else {
                batch.leased.push(leased_message(&row, token)?);
            }
        }
        // Oldest first, whatever order the update returned them in.
        batch.leased.sort_by_key(|m| m.id);
        Ok(batch)
    }

    /// Records that `message`'s effect is done: it is removed.
    pub async fn ack(&self, message: &LeasedMessage) -> Result<(), OutboxError> {
        let client = self.store.client().await?;
        let removed = client
            .execute(
                &self.store.statements().outbox_ack,
                &[&message.id, &message.token],
            )
            .await
            .map_err(|e| db_error("cannot acknowledge the outbox message", e, Phase::Commit))?;
        if removed == 0 {
            return Err(OutboxError::LeaseLost { id: message.id });
        }
        Ok(())
    }

    /// Records that `message`'s attempt failed with `error` (cut to
    /// [`MAX_ERROR_BYTES`]): it is retried after a backoff, or parked.
    pub async fn fail(
        &self,
        message: &LeasedMessage,
        error: &str,
    ) -> Result<FailOutcome, OutboxError> {
        let mut cut = error.len().min(MAX_ERROR_BYTES);
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        let delay = self.options.delay(message.attempt);
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        let max_attempts = i32::try_from(self.options.max_attempts).unwrap_or(i32::MAX);
        let client = self.store.client().await?;
        let row = client
            .query_opt(
                &self.store.statements().outbox_fail,
                &[
                    &message.id,
                    &message.token,
                    &&error[..cut],
                    &delay_ms,
                    &max_attempts,
                ],
            )
            .await
            .map_err(|e| db_error("cannot record the failed attempt", e, Phase::Commit))?
            .ok_or(OutboxError::LeaseLost { id: message.id })?;
        let parked: bool = row
            .try_get(0)
            .map_err(|e| crate::error::corrupt("unexpected outbox result").with_source(e))?;
        Ok(if parked {
            FailOutcome::Parked
        } else {
            FailOutcome::RetryIn(delay)
        })
    }

    /// Ids of the parked messages of this topic, oldest first.
    pub async fn parked(&self) -> Result<Vec<i64>, OutboxError> {
        let client = self.store.client().await?;
        let rows = client
            .query(
                &self.store.statements().outbox_parked,
                &[&self.topic.as_str()],
            )
            .await
            .map_err(|e| db_error("cannot list parked messages", e, Phase::BeforeCommit))?;
        rows.iter()
            .map(|row| {
                row.try_get(0)
                    .map_err(|e| crate::error::corrupt("unexpected outbox row").with_source(e))
                    .map_err(OutboxError::from)
            })
            .collect()
    }

    /// Puts a parked message back in line with its attempts reset; false if
    /// no parked message has this id.
    pub async fn requeue(&self, id: i64) -> Result<bool, OutboxError> {
        let client = self.store.client().await?;
        let changed = client
            .execute(&self.store.statements().outbox_requeue, &[&id])
            .await
            .map_err(|e| db_error("cannot requeue the message", e, Phase::Commit))?;
        Ok(changed == 1)
    }

    /// Leases, delivers, and acknowledges or fails messages until `stop`
    /// completes (after the batch in hand). Idle, it waits for a commit of
    /// this process or the poll interval. Store errors that lose nothing
    /// (retry-safe ones, and acknowledgements or failures whose commit
    /// outcome is unknown: the message comes due again when its lease runs
    /// out) are logged and the worker carries on after the poll interval.
    pub async fn run<H: MessageHandler>(
        &self,
        handler: &mut H,
        stop: impl Future<Output = ()>,
    ) -> Result<(), OutboxError> {
        self.options.check()?;
        let mut stop = pin!(stop.fuse());
        let mut commits = self.store.commits();
        loop {
            commits.borrow_and_update();
            let delivered = match self.deliver_batch(handler).await {
                Ok(n) => n,
                Err(OutboxError::Store(e)) if worker_can_continue(&e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "outbox worker interrupted; retrying");
                    0
                }
                Err(e) => return Err(e),
            };
            if (&mut stop).now_or_never().is_some() {
                return Ok(());
            }
            if delivered == self.options.batch_size {
                continue;
            }
            tokio::select! {
                () = &mut stop => return Ok(()),
                _ = commits.changed() => {}
                () = tokio::time::sleep(self.options.poll_interval) => {}
            }
        }
    }

    /// One lease and its deliveries; returns how many messages the lease
    /// took (leased or parked).
    async fn deliver_batch<H: MessageHandler>(
        &self,
        handler: &mut H,
    ) -> Result<usize, OutboxError> {
        let Batch { leased, parked } = self.lease_batch().await?;
        for message in &leased {
            let outcome = match handler.deliver(message).await {
                Ok(()) => self.ack(message).await,
                Err(e) => match self.fail(message, &e.to_string()).await {
                    Ok(FailOutcome::Parked) => {
                        tracing::warn!(topic = %self.topic, id = message.id, error = %e, "outbox message parked");
                        Ok(())
                    }
                    Ok(FailOutcome::RetryIn(_)) => Ok(()),
                    Err(e) => Err(e),
                },
            };
            match outcome {
                // Another worker holds it now; its outcome counts.
                Ok(()) | Err(OutboxError::LeaseLost { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(leased.len() + parked)
    }
}
