//! What an application gives an outbox worker: the delivery of one
//! message, and what became of a failed one.

use std::future::Future;
use std::time::Duration;

use super::LeasedMessage;

/// What became of a failed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// It will be handed out again after this pause.
    RetryIn(Duration),
    /// It reached [`OutboxOptions::max_attempts`](super::OutboxOptions::max_attempts) and is parked.
    Parked,
}

/// Delivers one outbox message; an error fails the attempt (retried with
/// backoff, parked after [`OutboxOptions::max_attempts`](super::OutboxOptions::max_attempts)).
pub trait MessageHandler: Send {
    /// The handler's error (its text is kept with the message).
    type Error: std::fmt::Display + Send;
    /// Performs the effect.
    fn deliver(
        &mut self,
        message: &LeasedMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
