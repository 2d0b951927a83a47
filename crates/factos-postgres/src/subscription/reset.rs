//! Resetting a subscriber: its checkpoint moved to a position (0: replay
//! from the start) and its recorded query forgotten, so the next run, with
//! whatever query it has, starts there. Removing one: its checkpoint and
//! parked events forgotten (blue/green: once a projection rebuilt under a
//! new name has caught up and readers use it, the old one goes).

use factos::Position;

use super::SubscriptionError;
use crate::error::{Phase, db_error, pool_error};
use crate::store::PostgresStore;

impl PostgresStore {
    /// Moves subscriber `name`'s checkpoint to `to` (`None`: the start, so
    /// it handles every matching event again) and forgets its recorded
    /// query. `false` when there is no such subscriber;
    /// [`SubscriptionError::Busy`] while an instance runs it (stop it first).
    /// The subscriber must not need the events at or below `to`: they are
    /// never handed to it.
    pub async fn reset_subscriber(
        &self,
        name: &str,
        to: Option<Position>,
    ) -> Result<bool, SubscriptionError> {
        let position = to.map_or(0, |p| i64::try_from(p.get()).unwrap_or(i64::MAX));
        let statement = &self.statements().subscriber_reset;
        self.while_holding_subscriber(
            name,
            statement,
            &[&name, &position],
            "cannot reset the subscriber",
        )
        .await
    }

    /// Forgets subscriber `name`: its checkpoint, its recorded query and
    /// its parked events (a subscription under the name starts from the
    /// beginning again). `false` when there is no such subscriber;
    /// [`SubscriptionError::Busy`] while an instance runs it (stop it
    /// first). For blue/green rebuilds: run the new projection under a new
    /// name beside the old one, wait until it has applied the head
    /// ([`Subscription::wait_until_applied`](crate::Subscription::wait_until_applied)),
    /// switch the readers, stop the old one and remove it. Needs `DELETE` on
    /// `factos_subscriptions` and `factos_parked_events` (an operator's
    /// grant; the CLI's `factos subscriptions remove`).
    pub async fn remove_subscriber(&self, name: &str) -> Result<bool, SubscriptionError> {
        let statement = &self.statements().subscriber_remove;
        self.while_holding_subscriber(name, statement, &[&name], "cannot remove the subscriber")
            .await
    }

    /// Runs `statement` (which returns the subscriber's row, if there is
    /// one) while holding subscriber `name`'s lock, so no instance runs it
    /// meanwhile: whether a row came back; [`SubscriptionError::Busy`] when
    /// an instance holds the lock.
    async fn while_holding_subscriber(
        &self,
        name: &str,
        statement: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        context: &'static str,
    ) -> Result<bool, SubscriptionError> {
        let key = self.keys().subscriber(name);
        let sql = self.statements();
        // The subscriber's own lock, on a connection of its own (closing it
        // releases the lock whatever happens here).
        let client = deadpool_postgres::Object::take(self.pool().get().await.map_err(pool_error)?);
        let locked: bool = client
            .query_one(&sql.subscriber_lock, &[&key])
            .await
            .map_err(|e| db_error("cannot take the subscriber's lock", e, Phase::BeforeCommit))?
            .try_get(0)
            .map_err(|e| crate::error::corrupt("unexpected lock result").with_source(e))?;
        if !locked {
            return Err(SubscriptionError::Busy);
        }
        let changed = client
            .query_opt(statement, params)
            .await
            .map_err(|e| db_error(context, e, Phase::BeforeCommit))?;
        let _ = client.execute(&sql.subscriber_unlock, &[&key]).await;
        Ok(changed.is_some())
    }
}
