//! A leased message, as the lease statement returns it (columns by name).

use factos::{Position, StoreError};

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
    pub(super) token: uuid::Uuid,
}

/// What one lease statement did.
pub(super) struct Batch {
    pub(super) leased: Vec<LeasedMessage>,
    /// Messages parked because their last allowed lease ran out.
    pub(super) parked: usize,
}

pub(super) fn unexpected_row(e: tokio_postgres::Error) -> StoreError {
    crate::error::corrupt("unexpected outbox row").with_source(e)
}

/// A row of the lease statement that was leased under `token`.
pub(super) fn leased_message(
    row: &tokio_postgres::Row,
    token: uuid::Uuid,
) -> Result<LeasedMessage, StoreError> {
    let cause: i64 = row.try_get("event_position").map_err(unexpected_row)?;
    let attempt: i32 = row.try_get("attempts").map_err(unexpected_row)?;
    Ok(LeasedMessage {
        id: row.try_get("id").map_err(unexpected_row)?,
        cause: u64::try_from(cause)
            .ok()
            .and_then(Position::new)
            .ok_or_else(|| crate::error::corrupt("an outbox message without a cause"))?,
        payload: row.try_get("payload").map_err(unexpected_row)?,
        attempt: u32::try_from(attempt).unwrap_or(0),
        last_error: row.try_get("last_error").map_err(unexpected_row)?,
        token,
    })
}
