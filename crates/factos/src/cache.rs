//! The context cache of a [`Dispatcher`](crate::Dispatcher): a bounded
//! least-recently-used map from query to the folded decision state and the
//! settled position it is current at ([`Folded`]).
//!
//! A cached state is never trusted on its own: the store appends under the
//! condition `FailIfEventsMatch(query, cached_position)`, which proves it
//! current at commit. When it is not, the store feeds the decision only the
//! events after the cached position and decides again.

use std::collections::{BTreeMap, HashMap};

use crate::Query;
use crate::event_store::Folded;

/// Default number of contexts a [`Dispatcher`](crate::Dispatcher) caches.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;

struct Entry<S> {
    state: S,
    /// What `state` was folded from: its position is always set once an
    /// event was folded (a state at "no position" is the initial state).
    folded: Folded,
    used: u64,
}

/// A bounded least-recently-used map from query to (state, position).
pub(crate) struct ContextCache<S> {
    entries: HashMap<Query, Entry<S>>,
    by_use: BTreeMap<u64, Query>,
    tick: u64,
    capacity: usize,
}

impl<S: Clone> ContextCache<S> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
            capacity,
        }
    }

    pub(crate) fn get(&mut self, query: &Query) -> Option<(S, Folded)> {
        self.tick += 1;
        let Some(entry) = self.entries.get_mut(query) else {
            crate::metrics::cache_miss();
            return None;
        };
        crate::metrics::cache_hit();
        self.by_use.remove(&entry.used);
        entry.used = self.tick;
        self.by_use.insert(self.tick, query.clone());
        Some((entry.state.clone(), entry.folded))
    }

    pub(crate) fn put(&mut self, query: &Query, state: S, folded: Folded) {
        if self.capacity == 0 {
            return;
        }
        self.tick += 1;
        if let Some(entry) = self.entries.get_mut(query) {
            // Two dispatches on one query may finish out of order: keep the newer state.
            if entry.folded.position > folded.position {
                return;
            }
            self.by_use.remove(&entry.used);
            *entry = Entry {
                state,
                folded,
                used: self.tick,
            };
        } else {
            while self.entries.len() >= self.capacity {
                let Some((_, oldest)) = self.by_use.pop_first() else {
                    break;
                };
                self.entries.remove(&oldest);
                crate::metrics::cache_eviction();
            }
            self.entries.insert(
                query.clone(),
                Entry {
                    state,
                    folded,
                    used: self.tick,
                },
            );
        }
        self.by_use.insert(self.tick, query.clone());
    }

    pub(crate) fn remove(&mut self, query: &Query) {
        if let Some(entry) = self.entries.remove(query) {
            self.by_use.remove(&entry.used);
        }
    }
}
