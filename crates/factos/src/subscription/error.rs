//! Why a subscription stopped or could not start.

use crate::{Position, StoreError};

/// Why a subscription stopped or could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// The subscriber name is empty, too long or holds control characters.
    InvalidName(String),
    /// An option is out of range.
    InvalidOptions(String),
    /// Another instance holds the subscriber (from a subscription's
    /// `catch_up`, and from resetting or removing a running subscriber).
    Busy,
    /// The subscriber's checkpoint was moved under another query: going on
    /// with this one would skip the history of events only it matches.
    /// Reset the subscriber (the store's `reset_subscriber`,
    /// `factos subscriptions reset`) to start this query from a position,
    /// or run it under a new name. Nothing was handled.
    QueryChanged {
        /// The subscriber.
        subscriber: String,
    },
    /// The checkpoint moved under this instance: another instance took the
    /// subscriber over. Nothing of the batch was kept by the exactly-once
    /// helper.
    LeaseLost,
    /// The handler failed on the batch `first..=last` every time it was
    /// tried; the checkpoint stays before `first`.
    Handler {
        /// Position of the batch's first event.
        first: Position,
        /// Position of the batch's last event.
        last: Position,
        /// How many times the batch was tried.
        attempts: u32,
        /// The handler's last error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store failed (errors that are safe to retry are retried by
    /// a subscription's `run` itself).
    Store(StoreError),
}

impl std::fmt::Display for SubscriptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidName(reason) => write!(f, "invalid subscriber name: {reason}"),
            Self::InvalidOptions(reason) => write!(f, "invalid subscription options: {reason}"),
            Self::Busy => f.write_str("another instance is running this subscriber"),
            Self::QueryChanged { subscriber } => write!(
                f,
                "subscriber {subscriber} was run with another query; reset it (factos subscriptions reset) or use a new name"
            ),
            Self::LeaseLost => f.write_str(
                "the checkpoint moved under this instance: another instance took the subscriber over",
            ),
            Self::Handler {
                first,
                last,
                attempts,
                source,
            } => write!(
                f,
                "the handler failed on events {first}..={last} {attempts} times: {source}"
            ),
            Self::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SubscriptionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Handler { source, .. } => Some(source.as_ref()),
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for SubscriptionError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}
