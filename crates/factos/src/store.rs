//! The surface a backend implements against: the decision process a store
//! runs, its errors, a stream's events, the default limits, and the helpers
//! every backend's idempotent replay shares. The store API itself
//! ([`EventStore`](crate::EventStore), [`AppendError`](crate::AppendError),
//! [`Committed`](crate::Committed), ...) is documented at the crate root.

pub use crate::event_store::{
    DEFAULT_MAX_CONTEXT_EVENTS, DEFAULT_MAX_EVENTS_PER_APPEND, DEFAULT_MAX_PAYLOAD_BYTES,
    DecisionError, DecisionProcess, MAX_IDS_PER_READ, StreamEvents, earlier_attempt,
    event_id_conflict, is_same_append, planned_event_ids, replayed, snapshot_too_large,
    too_many_ids,
};
