//! What a store's durable subscriptions share: the handler they call (at
//! least once), their options and limits, and why they stop. The stores
//! run them (`factos_postgres::Subscription`, `factos_sqlite::Subscription`):
//! a named subscriber with a query and a checkpoint, delivering every
//! committed matching event in position order.

mod error;
mod handler;
mod options;

pub use error::SubscriptionError;
pub use handler::EventHandler;
pub use options::{MAX_BATCH_SIZE, MAX_NAME_BYTES, SubscriptionOptions};

/// What a subscription does with an event its handler failed on
/// [`handler_attempts`](SubscriptionOptions::handler_attempts) times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoisonPolicy {
    /// The subscription stops with [`SubscriptionError::Handler`];
    /// the checkpoint stays before the batch (the default).
    #[default]
    Stop,
    /// The failing batch is handed over again one event at a time, so the
    /// events before the poison one are handled; the poison event is parked
    /// (recorded with its error, the checkpoint moved past it in one
    /// transaction) and the subscription goes on. An exactly-once
    /// projection never commits the parked event's writes.
    Park,
}

/// Checks a subscriber's name: 1 to [`MAX_NAME_BYTES`] bytes, no control
/// characters.
///
/// # Errors
///
/// [`SubscriptionError::InvalidName`], saying why.
pub fn check_name(name: &str) -> Result<(), SubscriptionError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(SubscriptionError::InvalidName(format!(
            "{name:?} must be 1 to {MAX_NAME_BYTES} bytes"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(SubscriptionError::InvalidName(format!(
            "{name:?} holds a control character"
        )));
    }
    Ok(())
}
