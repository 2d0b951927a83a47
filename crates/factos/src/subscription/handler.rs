//! What an application gives a subscription: a handler of batches, at
//! least once. (Exactly-once projections write through the store's own
//! transactions, so each store has its own projection trait.)

use std::future::Future;

use crate::StoredEvent;

/// Handles batches of events, at least once: a batch whose checkpoint did
/// not commit (a crash, a lost connection) is handed over again, so the
/// handler should be idempotent. For writes to the same database, use a
/// projection handler (the
/// store's `ProjectionHandler`) instead: exactly once.
pub trait EventHandler: Send {
    /// The handler's error: any error type, a `String`, or a boxed error.
    type Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send;
    /// Handles events in position order. An error retries the batch.
    fn handle(
        &mut self,
        events: &[StoredEvent],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
