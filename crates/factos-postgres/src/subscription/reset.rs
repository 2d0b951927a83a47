//! Resetting a subscriber: its checkpoint moved to a position (0: replay
//! from the start) and its recorded query forgotten, so the next run, with
//! whatever query it has, starts there.

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
        let position = to.map_or(0, |p| i64::try_from(p.get()).unwrap_or(i64::MAX));
        let reset = client
            .query_opt(&sql.subscriber_reset, &[&name, &position])
            .await
            .map_err(|e| db_error("cannot reset the subscriber", e, Phase::BeforeCommit))?;
        let _ = client.execute(&sql.subscriber_unlock, &[&key]).await;
        Ok(reset.is_some())
    }
}
