//! The outbox's types: the effects a store records in the transaction of
//! the dispatch that caused them, and their limits.
//!
//! A [`Reactor`](crate::Reactor) turns committed events into effects after
//! the commit; if the process dies in between, the effects are lost although
//! the events are not. [`dispatch_with_outbox`](crate::dispatch_with_outbox)
//! closes that gap: the reactor runs between the append and the commit (the
//! events' positions are final by then) and its [`OutboxMessage`](crate::OutboxMessage)s are
//! stored in the same transaction, so the events and their effects commit
//! together or not at all. Workers of the store (for PostgreSQL,
//! `factos_postgres::Outbox`) then deliver them.

pub use crate::effect::{MAX_EFFECT_PAYLOAD_BYTES, MAX_EFFECTS_PER_DISPATCH};
