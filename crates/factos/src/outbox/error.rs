//! Why an outbox operation failed.

use crate::StoreError;

/// Why an outbox operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OutboxError {
    /// An option is out of range.
    InvalidOptions(String),
    /// The message's lease ran out and it was leased again (or acknowledged
    /// by the new holder): this worker's outcome was not recorded.
    LeaseLost {
        /// The message.
        id: i64,
    },
    /// The store failed.
    Store(StoreError),
}

impl std::fmt::Display for OutboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidOptions(reason) => write!(f, "invalid outbox options: {reason}"),
            Self::LeaseLost { id } => write!(
                f,
                "the lease of outbox message {id} ran out before its outcome was recorded"
            ),
            Self::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for OutboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for OutboxError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}
