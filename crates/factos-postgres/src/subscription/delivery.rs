//! How a batch and its checkpoint commit: the handler first and the
//! checkpoint after it (at least once), or both in one transaction (exactly
//! once).

use std::future::Future;

use factos::{StoreError, StoreErrorKind, StoredEvent};

use super::{EventHandler, Lease, ProjectionHandler, Subscription, SubscriptionError};
use crate::error::{Phase, db_error};

/// Why handing a batch over did not work.
pub(super) enum Failure {
    /// The handler failed: retry the batch.
    Handler(Box<dyn std::error::Error + Send + Sync>),
    Subscription(SubscriptionError),
}

impl From<SubscriptionError> for Failure {
    fn from(e: SubscriptionError) -> Self {
        Self::Subscription(e)
    }
}

/// How a batch and its checkpoint are committed, and how a requeued parked
/// event and its parked row.
pub(super) trait Apply: Send {
    fn apply(
        &mut self,
        subscription: &Subscription,
        lease: &mut Lease,
        next: i64,
        events: &[StoredEvent],
    ) -> impl Future<Output = Result<(), Failure>> + Send;

    /// Hands a requeued parked `event` over again (the checkpoint is past
    /// it already) and, when that worked, forgets its parked row.
    fn apply_parked(
        &mut self,
        subscription: &Subscription,
        lease: &mut Lease,
        event: &StoredEvent,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
}

pub(super) struct AtLeastOnce<'a, H>(pub(super) &'a mut H);

impl<H: EventHandler> Apply for AtLeastOnce<'_, H> {
    async fn apply(
        &mut self,
        subscription: &Subscription,
        lease: &mut Lease,
        next: i64,
        events: &[StoredEvent],
    ) -> Result<(), Failure> {
        self.0
            .handle(events)
            .await
            .map_err(|e| Failure::Handler(e.into()))?;
        subscription
            .advance(&lease.client, lease.checkpoint, next)
            .await?;
        Ok(())
    }

    async fn apply_parked(
        &mut self,
        subscription: &Subscription,
        lease: &mut Lease,
        event: &StoredEvent,
    ) -> Result<(), Failure> {
        self.0
            .handle(std::slice::from_ref(event))
            .await
            .map_err(|e| Failure::Handler(e.into()))?;
        // At least once: if this fails, the event is handed over again.
        subscription.forget_parked(&lease.client, event).await?;
        Ok(())
    }
}

pub(super) struct ExactlyOnce<'a, P>(pub(super) &'a mut P);

impl<P: ProjectionHandler> Apply for ExactlyOnce<'_, P> {
    async fn apply(
        &mut self,
        subscription: &Subscription,
        lease: &mut Lease,
        next: i64,
        events: &[StoredEvent],
    ) -> Result<(), Failure> {
        let from = lease.checkpoint;
        let transaction = begin(&mut lease.client, "cannot begin the batch").await?;
        if let Err(e) = self.0.apply(&transaction, events).await {
            // A failed rollback means a broken connection: the server rolls
            // back anyway.
            let _ = transaction.rollback().await;
            if lease.client.is_closed() {
                // The handler failed because the subscriber's connection
                // (and with it its lease) is gone: not the handler's fault;
                // `run` takes the lease again and retries the batch.
                return Err(SubscriptionError::Store(StoreError::new(
                    StoreErrorKind::Unavailable,
                    "the subscriber's connection closed during a batch",
                ))
                .into());
            }
            return Err(Failure::Handler(e.into()));
        }
        let moved = transaction
            .query_opt(
                &subscription.store.statements().checkpoint_advance,
                &[&subscription.name, &from, &next],
            )
            .await
            .map_err(|e| db_error("cannot move the checkpoint", e, Phase::BeforeCommit))
            .map_err(SubscriptionError::from)?;
        if moved.is_none() {
            let _ = transaction.rollback().await;
            return Err(SubscriptionError::LeaseLost.into());
        }
        // If the connection breaks during COMMIT the outcome is unknown, but
        // retrying is safe: the next lease reads the checkpoint again, which
        // says whether the batch (and its writes) committed.
        commit(transaction, "cannot commit the batch").await
    }

    /// Exactly once: the event's writes and the deletion of its parked row
    /// commit together (a parked row already gone, dropped meanwhile, rolls
    /// the writes back).
    async fn apply_parked(
        &mut self,
        subscription: &Subscription,
        lease: &mut Lease,
        event: &StoredEvent,
    ) -> Result<(), Failure> {
        let transaction = begin(&mut lease.client, "cannot begin the parked event's retry").await?;
        if let Err(e) = self
            .0
            .apply(&transaction, std::slice::from_ref(event))
            .await
        {
            let _ = transaction.rollback().await;
            return Err(Failure::Handler(e.into()));
        }
        let at = i64::try_from(event.position.get()).unwrap_or(i64::MAX);
        let forgotten = transaction
            .query_opt(
                &subscription.store.statements().parked_drop,
                &[&subscription.name, &at],
            )
            .await
            .map_err(|e| db_error("cannot forget the parked event", e, Phase::BeforeCommit))
            .map_err(SubscriptionError::from)?;
        if forgotten.is_none() {
            let _ = transaction.rollback().await;
            return Ok(());
        }
        commit(transaction, "cannot commit the parked event's retry").await
    }
}

/// Begins the transaction an exactly-once delivery commits in.
async fn begin<'c>(
    client: &'c mut deadpool_postgres::ClientWrapper,
    context: &'static str,
) -> Result<deadpool_postgres::Transaction<'c>, Failure> {
    let transaction = client
        .transaction()
        .await
        .map_err(|e| db_error(context, e, Phase::BeforeCommit))
        .map_err(SubscriptionError::from)?;
    Ok(transaction)
}

/// Commits an exactly-once delivery's transaction.
async fn commit(
    transaction: deadpool_postgres::Transaction<'_>,
    context: &'static str,
) -> Result<(), Failure> {
    transaction
        .commit()
        .await
        .map_err(|e| db_error(context, e, Phase::BeforeCommit))
        .map_err(SubscriptionError::from)?;
    Ok(())
}
