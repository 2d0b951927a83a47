//! A leased message, as the lease statement returns it (columns by name).

use factos::outbox::LeasedMessage;
use factos::{Position, StoreError};

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
    Ok(LeasedMessage::new(
        row.try_get("id").map_err(unexpected_row)?,
        u64::try_from(cause)
            .ok()
            .and_then(Position::new)
            .ok_or_else(|| crate::error::corrupt("an outbox message without a cause"))?,
        row.try_get("payload").map_err(unexpected_row)?,
        u32::try_from(attempt).unwrap_or(0),
        row.try_get("last_error").map_err(unexpected_row)?,
        token,
    ))
}
