//! Hot queries: queries whose cached fast path failed recently take the
//! pessimistic path until they cool down, so contention never becomes a retry storm.

use factos::Query;

/// Queries whose cached fast path failed recently: they take the
/// pessimistic path (lock before read) until they cool down.
#[derive(Default)]
pub(crate) struct HotQueries {
    until: std::sync::Mutex<std::collections::HashMap<u64, std::time::Instant>>,
}

/// How long a query stays hot after its fast path failed.
pub(crate) const HOT_FOR: std::time::Duration = std::time::Duration::from_millis(500);
/// Most queries remembered as hot (the map is cleared beyond it).
pub(crate) const MAX_HOT_QUERIES: usize = 10_000;

impl HotQueries {
    pub(crate) fn key(query: &Query) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        query.hash(&mut hasher);
        hasher.finish()
    }

    pub(crate) fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, std::time::Instant>> {
        self.until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn is_hot(&self, query: &Query) -> bool {
        self.lock()
            .get(&Self::key(query))
            .is_some_and(|until| *until > std::time::Instant::now())
    }

    pub(crate) fn heat(&self, query: &Query) {
        let mut hot = self.lock();
        if hot.len() >= MAX_HOT_QUERIES {
            hot.clear();
        }
        hot.insert(Self::key(query), std::time::Instant::now() + HOT_FOR);
    }

    pub(crate) fn cool(&self, query: &Query) {
        self.lock().remove(&Self::key(query));
    }
}
