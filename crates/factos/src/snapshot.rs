//! Persistent snapshots of decision states: a cold [`Dispatcher`](crate::Dispatcher)
//! (a new process, an evicted cache entry) starts from the state a store
//! kept, folded up to a position, instead of folding the whole context.
//!
//! A snapshot is trusted exactly like a cached state: the append condition
//! after its position proves it current, and a catch-up reads only the
//! events after it. Its key names the decider and the version of its state
//! (change the version whenever `evolve` or the state's shape changes: old
//! snapshots are then never loaded) and the query it folds.

use crate::{Position, Query};

/// Largest snapshot state a store keeps, in bytes.
pub const MAX_SNAPSHOT_BYTES: usize = 16 << 20;

/// Where a snapshot is kept: the decider's name and state version, and the
/// query, in an encoding no other query shares.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapshotKey {
    /// The decider's name (1 to 128 bytes), as the application gives it.
    pub decider: String,
    /// The version of the decider's state and fold.
    pub state_version: u32,
    /// The query, encoded so that two different queries never share it
    /// ([`SnapshotKey::encode_query`]).
    pub query: String,
}

impl SnapshotKey {
    /// The key of `query`'s state under `decider` at `state_version`.
    pub fn new(decider: &str, state_version: u32, query: &Query) -> Self {
        Self {
            decider: decider.to_string(),
            state_version,
            query: Self::encode_query(query),
        }
    }

    /// `query` as a key: every type and tag length-prefixed, item by item
    /// (a name may hold `,`, `]` or ` OR `, so the query's display text is
    /// not a key: a query on tags `a` and `b` and one on the tag `a, b`
    /// print alike).
    pub fn encode_query(query: &Query) -> String {
        if query.is_all() {
            return "*".to_string();
        }
        let mut key = String::new();
        for item in query.items() {
            key.push('(');
            for event_type in item.types() {
                let name = event_type.as_str();
                key.push('t');
                key.push_str(&name.len().to_string());
                key.push(':');
                key.push_str(name);
            }
            for tag in item.tags() {
                let name = tag.as_str();
                key.push('g');
                key.push_str(&name.len().to_string());
                key.push(':');
                key.push_str(name);
            }
            key.push(')');
        }
        key
    }

    /// A fixed-size digest of the key's query (UUID v5 of its encoding), for
    /// stores that index it; a store compares the whole encoding on load.
    pub fn query_digest(&self) -> uuid::Uuid {
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, self.query.as_bytes())
    }
}

/// A decision state folded up to a position, serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Every event matching the query at or below it is folded in (a
    /// settled position).
    pub position: Position,
    /// How many events were folded.
    pub events: usize,
    /// The state, as the dispatcher serialized it.
    pub state: Vec<u8>,
}

/// When a [`Dispatcher`](crate::Dispatcher) writes snapshots
/// ([`Dispatcher::with_snapshots`](crate::Dispatcher::with_snapshots)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// The decider's name in the snapshots' key.
    pub decider: String,
    /// The state's version in the key: change it with the state or its fold.
    pub state_version: u32,
    /// A snapshot is written whenever a commit takes a context's folded
    /// events past a multiple of this (at least 1); `None`: only on demand
    /// ([`Dispatcher::save_snapshot`](crate::Dispatcher::save_snapshot)).
    pub every_events: Option<usize>,
}

impl SnapshotPolicy {
    /// Snapshots of `decider`'s state at `state_version`, every
    /// `every_events` folded events.
    pub fn every(decider: &str, state_version: u32, every_events: usize) -> Self {
        Self {
            decider: decider.to_string(),
            state_version,
            every_events: Some(every_events.max(1)),
        }
    }

    /// Snapshots written only on demand.
    pub fn on_demand(decider: &str, state_version: u32) -> Self {
        Self {
            decider: decider.to_string(),
            state_version,
            every_events: None,
        }
    }

    /// Whether a commit that took a context from `before` to `after` folded
    /// events calls for a snapshot.
    pub(crate) fn due(&self, before: usize, after: usize) -> bool {
        self.every_events
            .is_some_and(|every| after / every > before / every)
    }
}

/// What a dispatcher did with snapshots so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotStats {
    /// Cache misses that started from a loaded snapshot.
    pub loaded: u64,
    /// Snapshots found but ignored: their state failed to decode (or the
    /// store failed to load them).
    pub ignored: u64,
    /// Snapshots handed to the store to keep (PostgreSQL writes them in a
    /// task of its own, and only logs a write that fails there).
    pub saved: u64,
    /// Snapshots that could not be encoded or written.
    pub failed: u64,
}
