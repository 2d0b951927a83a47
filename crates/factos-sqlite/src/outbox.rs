//! Delivering the effects [`factos::dispatch_with_outbox`] recorded in the
//! file: workers lease due messages of a topic, acknowledge them when the
//! effect is done, and report failures, retried with exponential backoff
//! and parked after [`OutboxOptions::max_attempts`].
//!
//! Delivery is at least once: a worker that dies holding a lease leaves the
//! message to be leased again when the lease runs out (which counts as a
//! failed attempt), so effects should be idempotent on the receiving side
//! (the message id is a good idempotency key). Leases, acknowledgements and
//! failures are short transactions of the file's writer; workers in several
//! processes on one file get different messages.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use factos::outbox::{FailOutcome, LeasedMessage, MessageHandler, OutboxError, OutboxOptions};
use factos::{StoreError, Topic};
use rusqlite::{OptionalExtension, params};

use crate::SqliteStore;
use crate::error::sqlite_error;
use crate::rows::{micros_now, position};
use crate::write;

/// The workers' side of one outbox topic in a SQLite file.
///
/// ```no_run
/// use factos::Topic;
/// use factos_sqlite::{LeasedMessage, MessageHandler, Outbox, SqliteStore};
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
/// let store = SqliteStore::open("events.db", Default::default()).await?;
/// let emails = Outbox::new(&store, Topic::new("email")?);
/// // Runs until `stop` completes (here: an hour; in a service, a shutdown signal).
/// let stop = tokio::time::sleep(std::time::Duration::from_secs(3600));
/// emails.run(&mut SendEmail, stop).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Outbox {
    store: SqliteStore,
    topic: Topic,
    options: OutboxOptions,
}

/// What one lease did.
struct Batch {
    leased: Vec<LeasedMessage>,
    /// Messages parked because their last allowed lease ran out.
    parked: usize,
}

/// Microseconds of `duration`, saturated.
fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

impl Outbox {
    /// The outbox of `topic`, with default options.
    pub fn new(store: &SqliteStore, topic: Topic) -> Self {
        Self {
            store: store.clone(),
            topic,
            options: OutboxOptions::default(),
        }
    }

    /// Sets the options, checked: out of range is
    /// [`OutboxError::InvalidOptions`].
    pub fn with_options(mut self, options: OutboxOptions) -> Result<Self, OutboxError> {
        options.check()?;
        self.options = options;
        Ok(self)
    }

    /// Leases up to [`OutboxOptions::batch_size`] due messages, oldest
    /// first; concurrent workers get different messages. Messages whose
    /// lease ran out on their last allowed attempt are parked instead.
    pub async fn lease(&self) -> Result<Vec<LeasedMessage>, OutboxError> {
        Ok(self.lease_batch().await?.leased)
    }

    async fn lease_batch(&self) -> Result<Batch, OutboxError> {
        let topic = self.topic.as_str().to_string();
        let limit = i64::try_from(self.options.batch_size).unwrap_or(i64::MAX);
        let lease = micros(self.options.lease);
        let max_attempts = i64::from(self.options.max_attempts);
        let token = uuid::Uuid::new_v4();
        let batch = self
            .store
            .with_writer(move |c| {
                write::begin(c)?;
                let leased = lease_in(c, &topic, limit, lease, max_attempts, token);
                match leased {
                    Ok(batch) => write::commit(c).map(|()| batch),
                    Err(e) => {
                        write::rollback(c);
                        Err(e)
                    }
                }
            })
            .await?;
        if batch.parked > 0 {
            tracing::warn!(topic = %self.topic, parked = batch.parked, "outbox messages parked: their last lease ran out");
            for _ in 0..batch.parked {
                factos::metrics::record_outbox_attempt(self.topic.as_str(), "parked");
            }
        }
        Ok(batch)
    }

    /// Records that `message`'s effect is done: it is removed.
    /// [`OutboxError::LeaseLost`] when its lease ran out and another worker
    /// leased it meanwhile.
    pub async fn ack(&self, message: &LeasedMessage) -> Result<(), OutboxError> {
        let (id, lease) = (message.id, message.lease());
        let removed = self
            .store
            .with_writer(move |c| {
                c.execute(
                    include_str!("../sql/statements/outbox_ack.sql"),
                    params![id, lease.as_bytes().as_slice()],
                )
                .map_err(|e| sqlite_error("cannot acknowledge the outbox message", &e))
            })
            .await?;
        if removed == 0 {
            return Err(OutboxError::LeaseLost { id: message.id });
        }
        Ok(())
    }

    /// Records that `message`'s attempt failed with `error` (cut to
    /// [`factos::outbox::MAX_ERROR_BYTES`]): it is retried after a backoff,
    /// or parked.
    pub async fn fail(
        &self,
        message: &LeasedMessage,
        error: &str,
    ) -> Result<FailOutcome, OutboxError> {
        let delay = self.options.delay(message.attempt);
        let (id, lease) = (message.id, message.lease());
        let error = factos::outbox::cut_error(error).to_string();
        let max_attempts = i64::from(self.options.max_attempts);
        let parked = self
            .store
            .with_writer(move |c| {
                let now = micros_now();
                c.query_row(
                    include_str!("../sql/statements/outbox_fail.sql"),
                    params![
                        id,
                        lease.as_bytes().as_slice(),
                        error,
                        now.saturating_add(micros(delay)),
                        now,
                        max_attempts
                    ],
                    |r| r.get::<_, bool>(0),
                )
                .optional()
                .map_err(|e| sqlite_error("cannot record the failed attempt", &e))
            })
            .await?
            .ok_or(OutboxError::LeaseLost { id: message.id })?;
        Ok(if parked {
            FailOutcome::Parked
        } else {
            FailOutcome::RetryIn(delay)
        })
    }

    /// Ids of the parked messages of this topic, oldest first.
    pub async fn parked(&self) -> Result<Vec<i64>, OutboxError> {
        let topic = self.topic.as_str().to_string();
        Ok(self
            .store
            .with_reader(move |tx| {
                let mut statement = tx
                    .prepare(
                        "SELECT id FROM factos_outbox WHERE topic = ?1 AND parked_at IS NOT NULL ORDER BY id",
                    )
                    .map_err(|e| sqlite_error("cannot list parked messages", &e))?;
                let ids = statement
                    .query_map([topic], |r| r.get::<_, i64>(0))
                    .map_err(|e| sqlite_error("cannot list parked messages", &e))?;
                ids.collect::<Result<Vec<_>, _>>()
                    .map_err(|e| sqlite_error("cannot list parked messages", &e))
            })
            .await?)
    }

    /// Puts a parked message of this topic back in line with its attempts
    /// reset; false if no parked message of this topic has this id.
    pub async fn requeue(&self, id: i64) -> Result<bool, OutboxError> {
        let topic = self.topic.as_str().to_string();
        let changed = self
            .store
            .with_writer(move |c| {
                c.execute(
                    include_str!("../sql/statements/outbox_requeue.sql"),
                    params![id, topic, micros_now()],
                )
                .map_err(|e| sqlite_error("cannot requeue the message", &e))
            })
            .await?;
        if changed == 1 {
            self.store.wake();
        }
        Ok(changed == 1)
    }

    /// Leases, delivers, and acknowledges or fails messages until `stop`
    /// completes (after the batch in hand). Idle, it waits for a commit of
    /// this process, the poll interval (workers of other processes on the
    /// file poll), or the time the topic's next message comes due (a
    /// backoff, or a lease running out). Store errors that are safe to retry are logged and the worker
    /// carries on after the poll interval.
    pub async fn run<H: MessageHandler>(
        &self,
        handler: &mut H,
        stop: impl Future<Output = ()>,
    ) -> Result<(), OutboxError> {
        self.options.check()?;
        let mut stop = pin!(stop);
        let mut commits = self.store.commits();
        loop {
            commits.borrow_and_update();
            let taken = match self.deliver_batch(handler).await {
                Ok(taken) => taken,
                Err(OutboxError::Store(e)) if e.is_retry_safe() => {
                    tracing::warn!(topic = %self.topic, error = %e, "outbox worker interrupted; retrying");
                    tokio::select! {
                        () = &mut stop => return Ok(()),
                        () = tokio::time::sleep(self.options.poll_interval) => continue,
                    }
                }
                Err(e) => return Err(e),
            };
            if taken == self.options.batch_size {
                tokio::select! {
                    biased;
                    () = &mut stop => return Ok(()),
                    () = std::future::ready(()) => continue,
                }
            }
            tokio::select! {
                () = &mut stop => return Ok(()),
                _ = commits.changed() => {}
                () = tokio::time::sleep(self.idle_wait().await) => {}
            }
        }
    }

    /// How long an idle worker sleeps when no commit wakes it: until the
    /// next message of the topic comes due (a backoff or a lease running
    /// out, whichever worker set it), at most the poll interval.
    async fn idle_wait(&self) -> Duration {
        let topic = self.topic.as_str().to_string();
        let next = self
            .store
            .with_reader(move |tx| {
                tx.query_row(
                    "SELECT min(available_at) FROM factos_outbox WHERE topic = ?1 AND parked_at IS NULL",
                    [topic],
                    |r| r.get::<_, Option<i64>>(0),
                )
                .map_err(|e| sqlite_error("cannot read when the next message is due", &e))
            })
            .await;
        match next {
            Ok(Some(due)) => {
                let micros = u64::try_from(due.saturating_sub(micros_now())).unwrap_or(0);
                Duration::from_micros(micros).min(self.options.poll_interval)
            }
            Ok(None) | Err(_) => self.options.poll_interval,
        }
    }

    /// One lease and its deliveries; how many messages the lease took
    /// (leased or parked).
    async fn deliver_batch<H: MessageHandler>(
        &self,
        handler: &mut H,
    ) -> Result<usize, OutboxError> {
        let Batch { leased, parked } = self.lease_batch().await?;
        for message in &leased {
            let topic = self.topic.as_str();
            let outcome = match handler.deliver(message).await {
                Ok(()) => {
                    factos::metrics::record_outbox_attempt(topic, "delivered");
                    self.ack(message).await
                }
                Err(e) => match self.fail(message, &e.to_string()).await {
                    Ok(FailOutcome::Parked) => {
                        factos::metrics::record_outbox_attempt(topic, "parked");
                        tracing::warn!(topic = %self.topic, id = message.id, error = %e, "outbox message parked");
                        Ok(())
                    }
                    Ok(FailOutcome::RetryIn(_)) => {
                        factos::metrics::record_outbox_attempt(topic, "failed");
                        Ok(())
                    }
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

/// Parks the expired last attempts, then leases due messages, in the open
/// transaction.
fn lease_in(
    c: &rusqlite::Connection,
    topic: &str,
    limit: i64,
    lease: i64,
    max_attempts: i64,
    token: uuid::Uuid,
) -> Result<Batch, StoreError> {
    let now = micros_now();
    let parked = {
        let mut statement = c
            .prepare_cached(include_str!("../sql/statements/outbox_park_expired.sql"))
            .map_err(|e| sqlite_error("cannot park expired messages", &e))?;
        let rows = statement
            .query_map(params![topic, now, max_attempts], |r| r.get::<_, i64>(0))
            .map_err(|e| sqlite_error("cannot park expired messages", &e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| sqlite_error("cannot park expired messages", &e))?
            .len()
    };
    let mut statement = c
        .prepare_cached(include_str!("../sql/statements/outbox_lease.sql"))
        .map_err(|e| sqlite_error("cannot lease outbox messages", &e))?;
    let rows = statement
        .query_map(
            params![
                topic,
                now,
                limit,
                token.as_bytes().as_slice(),
                now.saturating_add(lease)
            ],
            |r| {
                Ok((
                    r.get::<_, i64>("id")?,
                    r.get::<_, i64>("event_position")?,
                    r.get::<_, Vec<u8>>("payload")?,
                    r.get::<_, i64>("attempts")?,
                    r.get::<_, Option<String>>("last_error")?,
                ))
            },
        )
        .map_err(|e| sqlite_error("cannot lease outbox messages", &e))?;
    let mut leased = Vec::new();
    for row in rows {
        let (id, cause, payload, attempt, last_error) =
            row.map_err(|e| sqlite_error("cannot lease outbox messages", &e))?;
        leased.push(LeasedMessage::new(
            id,
            position(cause)?,
            payload,
            u32::try_from(attempt).unwrap_or(u32::MAX),
            last_error,
            token,
        ));
    }
    // Oldest first, whatever order the update returned them in.
    leased.sort_by_key(|m| m.id);
    Ok(Batch { leased, parked })
}

/// The outbox messages of one topic, by state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxTopic {
    /// The topic.
    pub topic: String,
    /// Messages without a lease: due now, or after a failure's backoff.
    pub waiting: u64,
    /// Messages under a lease that has not run out (a message whose lease
    /// ran out counts in none of the three until a worker leases it again).
    pub leased: u64,
    /// Messages parked after too many attempts.
    pub parked: u64,
}

impl SqliteStore {
    /// The outbox messages per topic (topics with at least one message, by
    /// name): waiting, leased and parked.
    pub async fn outbox_topics(&self) -> Result<Vec<OutboxTopic>, StoreError> {
        self.with_reader(|tx| {
            let mut statement = tx
                .prepare(
                    "SELECT topic,
                            sum(parked_at IS NULL AND lease_token IS NULL),
                            sum(parked_at IS NULL AND lease_token IS NOT NULL AND available_at > ?1),
                            sum(parked_at IS NOT NULL)
                     FROM factos_outbox GROUP BY topic ORDER BY topic",
                )
                .map_err(|e| sqlite_error("cannot read the outbox", &e))?;
            let rows = statement
                .query_map([micros_now()], |r| {
                    let count = |i| r.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
                    Ok(OutboxTopic {
                        topic: r.get(0)?,
                        waiting: count(1)?,
                        leased: count(2)?,
                        parked: count(3)?,
                    })
                })
                .map_err(|e| sqlite_error("cannot read the outbox", &e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| sqlite_error("cannot read the outbox", &e))
        })
        .await
    }
}
