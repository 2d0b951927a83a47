//! Starting over inside the store: the backoff between attempts and the
//! error when other dispatches keep holding the keys.

use factos::{StoreError, StoreErrorKind};

use crate::locks::KeyLock;
use crate::store::PostgresStore;

/// A short pause before starting a decision over, growing with the attempt
/// and jittered so racing retries spread out.
pub(crate) async fn backoff(attempt: u32) {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) % 500);
    let micros = 200 * u64::from(attempt.min(20)) + jitter;
    tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
}

pub(crate) fn contention(attempts: u32) -> StoreError {
    StoreError::new(
        StoreErrorKind::Contention,
        format!(
            "gave up after {attempts} attempts: other dispatches kept holding keys these events need"
        ),
    )
}

/// The attempts of one dispatch or append inside the store, and the keys
/// the next attempt takes up front after busy keys sent the last one back.
pub(crate) struct Attempts {
    made: u32,
    max: u32,
    up_front: Vec<KeyLock>,
}

impl Attempts {
    /// At most `max` attempts (at least one).
    pub(crate) fn new(max: u32) -> Self {
        Self {
            made: 0,
            max: max.max(1),
            up_front: Vec::new(),
        }
    }

    /// The next attempt's number (from 1), or `None` when all are made.
    pub(crate) fn next(&mut self) -> Option<u32> {
        (self.made < self.max).then(|| {
            self.made += 1;
            self.made
        })
    }

    /// The keys to take with the guard: the events' keys of the last attempt
    /// that found them busy.
    pub(crate) fn up_front(&self) -> &[KeyLock] {
        &self.up_front
    }

    /// After an attempt found keys its events need busy (or raced an attempt
    /// with the same ids): the next attempt takes `event_keys` up front, so
    /// it waits for their holders instead of failing again; counted as an
    /// internal retry, after a backoff.
    pub(crate) async fn keys_busy(&mut self, store: &PostgresStore, event_keys: Vec<KeyLock>) {
        self.up_front = event_keys;
        store.retried();
        backoff(self.made).await;
    }
}
