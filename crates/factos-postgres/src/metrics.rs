//! Where the PostgreSQL store records the metrics named in
//! [`factos::metrics`] (the `store` label is `postgres`).

use std::time::{Instant, SystemTime};

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

/// A dispatch (or append) of `kind` that ended with `outcome` (the tracing
/// span's words: "condition failed" is recorded as `condition_failed`).
pub(crate) fn dispatched(
    locking: LockingStrategy,
    kind: &'static str,
    outcome: &'static str,
    started: Instant,
) {
    let outcome = match outcome {
        "condition failed" => "condition_failed",
        "store error" => "store_error",
        other => other,
    };
    let strategy = strategy(locking);
    metrics::histogram!(names::DISPATCH_SECONDS, "store" => STORE, "strategy" => strategy, "kind" => kind, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    if outcome == "condition_failed" {
        metrics::counter!(names::CONDITION_FAILURES, "store" => STORE, "strategy" => strategy)
            .increment(1);
    }
}

pub(crate) fn retried(locking: LockingStrategy) {
    metrics::counter!(names::RETRIES, "store" => STORE, "strategy" => strategy(locking))
        .increment(1);
}

pub(crate) fn hot_fallback() {
    metrics::counter!(names::HOT_FALLBACKS, "store" => STORE).increment(1);
}

pub(crate) fn pool_waited(started: Instant) {
    metrics::histogram!(names::POOL_WAIT_SECONDS, "store" => STORE)
        .record(started.elapsed().as_secs_f64());
}

/// After a subscriber's read: `behind` positions left to the settled head,
/// and the last read event's time when behind.
pub(crate) fn subscriber_lag(subscriber: &str, behind: u64, last_recorded: Option<SystemTime>) {
    let name = subscriber.to_string();
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(names::SUBSCRIBER_LAG_EVENTS, "subscriber" => name.clone()).set(behind as f64);
    let age = match last_recorded {
        Some(at) if behind > 0 => SystemTime::now()
            .duration_since(at)
            .map_or(0.0, |d| d.as_secs_f64()),
        _ => 0.0,
    };
    metrics::gauge!(names::SUBSCRIBER_LAG_SECONDS, "subscriber" => name).set(age);
}

/// A subscriber's handler took `handled` events (its batch committed or
/// was acknowledged).
pub(crate) fn subscriber_handled(subscriber: &str, handled: usize) {
    metrics::counter!(names::SUBSCRIBER_EVENTS, "subscriber" => subscriber.to_string())
        .increment(u64::try_from(handled).unwrap_or(u64::MAX));
}

pub(crate) fn handler_failed(subscriber: &str) {
    metrics::counter!(names::SUBSCRIBER_HANDLER_FAILURES, "subscriber" => subscriber.to_string())
        .increment(1);
}

pub(crate) fn outbox_attempt(topic: &str, outcome: &'static str) {
    metrics::counter!(names::OUTBOX_ATTEMPTS, "topic" => topic.to_string(), "outcome" => outcome)
        .increment(1);
}

pub(crate) fn outbox_messages(topic: &str, waiting: u64, leased: u64, parked: u64) {
    for (state, count) in [("waiting", waiting), ("leased", leased), ("parked", parked)] {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!(names::OUTBOX_MESSAGES, "topic" => topic.to_string(), "state" => state)
            .set(count as f64);
    }
}
