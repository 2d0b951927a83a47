//! Poison events: an event a subscriber's handler failed on every time it
//! was tried is, under [`PoisonPolicy::Park`], recorded with its error and
//! passed (the checkpoint moves past it in the same transaction), so the
//! subscriber goes on. Parked events are listed, requeued (handed over
//! again, out of position order) and dropped here and with
//! `factos subscriptions parked|retry|drop`.

use std::time::SystemTime;

pub use factos::subscription::PoisonPolicy;
use factos::{Position, StoreError, StoredEvent};

use crate::error::{Phase, corrupt, db_error};
use crate::store::PostgresStore;

/// Longest error text a parked event keeps, in bytes (longer ones are cut
/// at a character boundary).
pub const MAX_PARKED_ERROR_BYTES: usize = 4096;

/// An event a subscriber parked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParkedEvent {
    /// Its position.
    pub position: Position,
    /// Its id.
    pub event_id: uuid::Uuid,
    /// The handler's last error (at most [`MAX_PARKED_ERROR_BYTES`]).
    pub error: String,
    /// How many times the handler was given it, over every retry.
    pub attempts: u32,
    /// Requeued: the subscriber hands it over again at its next step.
    pub requeued: bool,
    /// When it was last parked.
    pub parked_at: SystemTime,
}

impl PostgresStore {
    /// Subscriber `subscriber`'s parked events, in position order.
    pub async fn parked_events(&self, subscriber: &str) -> Result<Vec<ParkedEvent>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(&self.statements().parked_list, &[&subscriber])
            .await
            .map_err(|e| db_error("cannot list the parked events", e, Phase::BeforeCommit))?;
        let unexpected = |e| corrupt("unexpected parked event row").with_source(e);
        rows.iter()
            .map(|row| {
                let position: i64 = row.try_get("position").map_err(unexpected)?;
                let attempts: i32 = row.try_get("attempts").map_err(unexpected)?;
                Ok(ParkedEvent {
                    position: crate::rows::stored_position(position)
                        .ok_or_else(|| corrupt("a parked event at position 0"))?,
                    event_id: row.try_get("event_id").map_err(unexpected)?,
                    error: row.try_get("error").map_err(unexpected)?,
                    attempts: u32::try_from(attempts).unwrap_or(0),
                    requeued: row.try_get("requeued").map_err(unexpected)?,
                    parked_at: row.try_get("parked_at").map_err(unexpected)?,
                })
            })
            .collect()
    }

    /// Asks subscriber `subscriber` to hand its parked event at `position`
    /// over again (at its next step, before new events). `false` when no
    /// such event is parked.
    pub async fn requeue_parked(
        &self,
        subscriber: &str,
        position: Position,
    ) -> Result<bool, StoreError> {
        self.parked_change(
            &self.statements().parked_requeue,
            subscriber,
            position,
            "requeue",
        )
        .await
    }

    /// Forgets subscriber `subscriber`'s parked event at `position`: the
    /// subscriber never hands it over. `false` when no such event is parked.
    pub async fn drop_parked(
        &self,
        subscriber: &str,
        position: Position,
    ) -> Result<bool, StoreError> {
        self.parked_change(&self.statements().parked_drop, subscriber, position, "drop")
            .await
    }

    async fn parked_change(
        &self,
        statement: &str,
        subscriber: &str,
        position: Position,
        verb: &str,
    ) -> Result<bool, StoreError> {
        let at = i64::try_from(position.get()).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let row = client
            .query_opt(statement, &[&subscriber, &at])
            .await
            .map_err(|e| {
                db_error(
                    &format!("cannot {verb} the parked event"),
                    e,
                    Phase::BeforeCommit,
                )
            })?;
        Ok(row.is_some())
    }
}

/// `error` as a parked event keeps it.
pub(super) fn parked_error(error: &(dyn std::error::Error + Send + Sync)) -> String {
    let mut text = error.to_string();
    if text.len() > MAX_PARKED_ERROR_BYTES {
        let mut end = MAX_PARKED_ERROR_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The parked row's values for `event`: position and id.
pub(super) fn parked_key(event: &StoredEvent) -> (i64, uuid::Uuid) {
    (
        i64::try_from(event.position.get()).unwrap_or(i64::MAX),
        event.id,
    )
}
