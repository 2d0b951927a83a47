//! Where the PostgreSQL store records the metrics named in
//! [`factos::metrics`] (the `store` label is `postgres`, the `strategy`
//! label the locking strategy).

use std::time::Instant;

use factos::metrics as names;

use crate::options::LockingStrategy;

const STORE: &str = "postgres";

fn strategy(locking: LockingStrategy) -> &'static str {
    match locking {
        LockingStrategy::Optimistic => "optimistic",
        LockingStrategy::Scoped => "scoped",
        LockingStrategy::TableLock => "table_lock",
    }
}

/// A dispatch (or append) of `kind` that ended with `outcome` (see
/// [`factos::metrics::decision_outcome`]).
pub(crate) fn dispatched(
    locking: LockingStrategy,
    kind: &'static str,
    outcome: &'static str,
    started: Instant,
) {
    names::record_dispatch(STORE, strategy(locking), kind, outcome, started.elapsed());
}

pub(crate) fn retried(locking: LockingStrategy) {
    names::record_retry(STORE, strategy(locking));
}

pub(crate) fn hot_fallback() {
    metrics::counter!(names::HOT_FALLBACKS, "store" => STORE).increment(1);
}

pub(crate) fn pool_waited(started: Instant) {
    metrics::histogram!(names::POOL_WAIT_SECONDS, "store" => STORE)
        .record(started.elapsed().as_secs_f64());
}

pub(crate) use names::{
    record_handler_failure as handler_failed, record_outbox_attempt as outbox_attempt,
    record_outbox_messages as outbox_messages, record_subscriber_handled as subscriber_handled,
    record_subscriber_lag as subscriber_lag,
};
