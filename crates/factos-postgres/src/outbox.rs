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

use factos::{StoreError, StoreErrorKind, Topic};
use futures_util::FutureExt;

use crate::error::{Phase, db_error};
use crate::store::PostgresStore;

mod message;

pub use factos::outbox::{
    FailOutcome, LeasedMessage, MAX_ERROR_BYTES, MAX_OUTBOX_BATCH, MAX_OUTBOX_DELAY,
    MessageHandler, OutboxError, OutboxOptions,
};
use message::{Batch, leased_message, unexpected_row};

/// Whether [`Outbox::run`] may carry on after `error`. Besides errors that
/// wrote nothing, an acknowledgement or failure whose commit outcome is
/// unknown: it either happened, or the lease runs out and the message is
/// delivered again (delivery is at least once), so nothing is lost.
fn worker_can_continue(error: &StoreError) -> bool {
    error.is_retry_safe() || error.kind() == StoreErrorKind::CommitOutcomeUnknown
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
                let id: i64 = row.try_get("id").map_err(unexpected_row)?;
                tracing::warn!(topic = %self.topic, id, "outbox message parked: its last lease ran out");
                crate::metrics::outbox_attempt(self.topic.as_str(), "parked");
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
                &[&message.id, &message.lease()],
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
        let delay = self.options.delay(message.attempt);
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        let max_attempts = i32::try_from(self.options.max_attempts).unwrap_or(i32::MAX);
        let client = self.store.client().await?;
        let row = client
            .query_opt(
                &self.store.statements().outbox_fail,
                &[
                    &message.id,
                    &message.lease(),
                    &factos::outbox::cut_error(error),
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

    /// Puts a parked message of this topic back in line with its attempts
    /// reset; false if no parked message of this topic has this id.
    pub async fn requeue(&self, id: i64) -> Result<bool, OutboxError> {
        let client = self.store.client().await?;
        let changed = client
            .execute(
                &self.store.statements().outbox_requeue,
                &[&id, &self.topic.as_str()],
            )
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
        let mut counted_at: Option<std::time::Instant> = None;
        let mut counted_topics = std::collections::HashSet::new();
        loop {
            commits.borrow_and_update();
            if counted_at.is_none_or(|at| at.elapsed() >= self.options.poll_interval) {
                counted_at = Some(std::time::Instant::now());
                self.record_counts(&mut counted_topics).await;
            }
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

    /// Sets the `factos_outbox_messages` gauges of every topic (a failure
    /// to count is logged: the counts are for dashboards only).
    async fn record_counts(&self, counted: &mut std::collections::HashSet<String>) {
        match self.store.outbox_topics().await {
            Ok(topics) => {
                let now: std::collections::HashSet<String> =
                    topics.iter().map(|t| t.topic.clone()).collect();
                // A topic whose last message went has no row: its gauges go to 0.
                for gone in counted.difference(&now) {
                    crate::metrics::outbox_messages(gone, 0, 0, 0);
                }
                for t in topics {
                    crate::metrics::outbox_messages(&t.topic, t.waiting, t.leased, t.parked);
                }
                *counted = now;
            }
            Err(e) => tracing::debug!(topic = %self.topic, error = %e, "cannot count the outbox"),
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
                Ok(()) => {
                    crate::metrics::outbox_attempt(self.topic.as_str(), "delivered");
                    self.ack(message).await
                }
                Err(e) => match self.fail(message, &e.to_string()).await {
                    Ok(FailOutcome::Parked) => {
                        crate::metrics::outbox_attempt(self.topic.as_str(), "parked");
                        tracing::warn!(topic = %self.topic, id = message.id, error = %e, "outbox message parked");
                        Ok(())
                    }
                    Ok(FailOutcome::RetryIn(_)) => {
                        crate::metrics::outbox_attempt(self.topic.as_str(), "failed");
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
