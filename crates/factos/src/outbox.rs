//! The outbox's types: the effects a store records in the transaction of
//! the dispatch that caused them, their limits, and what a store's workers
//! share (their options, the handler they call, what they lease).
//!
//! A [`Reactor`](crate::Reactor) turns committed events into effects after
//! the commit; if the process dies in between, the effects are lost although
//! the events are not. [`dispatch_with_outbox`](crate::dispatch_with_outbox)
//! closes that gap: the reactor runs between the append and the commit (the
//! events' positions are final by then) and its [`OutboxMessage`](crate::OutboxMessage)s are
//! stored in the same transaction, so the events and their effects commit
//! together or not at all. Workers of the store (`factos_postgres::Outbox`,
//! `factos_sqlite::Outbox`) then deliver them.

mod error;
mod handler;
mod message;
mod options;

pub use crate::effect::{MAX_EFFECT_PAYLOAD_BYTES, MAX_EFFECTS_PER_DISPATCH};
pub use error::OutboxError;
pub use handler::{FailOutcome, MessageHandler};
pub use message::LeasedMessage;
pub use options::{MAX_ERROR_BYTES, MAX_OUTBOX_BATCH, MAX_OUTBOX_DELAY, OutboxOptions};

/// `error` cut to at most [`MAX_ERROR_BYTES`] at a character boundary, as
/// workers keep it with a failed message.
#[must_use]
pub fn cut_error(error: &str) -> &str {
    let mut cut = error.len().min(MAX_ERROR_BYTES);
    while !error.is_char_boundary(cut) {
        cut -= 1;
    }
    &error[..cut]
}
