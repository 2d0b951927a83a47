//! A message as a worker leases it.

use crate::Position;

/// A message leased to a worker.
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    lease: uuid::Uuid,
}

impl LeasedMessage {
    /// A message leased under `lease` (for stores' workers: acknowledging
    /// or failing it needs the lease it was taken under).
    pub fn new(
        id: i64,
        cause: Position,
        payload: Vec<u8>,
        attempt: u32,
        last_error: Option<String>,
        lease: uuid::Uuid,
    ) -> Self {
        Self {
            id,
            cause,
            payload,
            attempt,
            last_error,
            lease,
        }
    }

    /// The lease it was taken under.
    pub fn lease(&self) -> uuid::Uuid {
        self.lease
    }
}
