//! What factos records through the [`metrics`] facade: the names and labels
//! below are a stable interface. factos records; the application installs a
//! recorder (a Prometheus exporter, for instance) and chooses where values
//! go. Without one installed, recording costs next to nothing.
//!
//! The PostgreSQL store records every metric below (`store="postgres"`,
//! `strategy` its locking strategy); the SQLite store the dispatch,
//! condition, retry, subscriber and outbox-attempt ones (`store="sqlite"`,
//! `strategy="writer"`); the dispatcher records the cache and batch ones on
//! any store. The `record_*` functions are for store implementations, so
//! every store uses the same names and label values.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `factos_dispatch_seconds` | histogram | `store`, `strategy`, `kind`, `outcome` | a dispatch's time in the store, by how it ended (`committed`, `refused`, `invalid`, `condition_failed`, `store_error`) |
//! | `factos_condition_failures_total` | counter | `store`, `strategy` | decisions and appends whose condition failed (a conflicting event appeared) |
//! | `factos_retries_total` | counter | `store`, `strategy` | attempts the store began again on its own |
//! | `factos_hot_fallbacks_total` | counter | `store` | cached decisions sent straight to the pessimistic path because their query's fast path failed recently |
//! | `factos_cache_hits_total` | counter | | dispatches that found their context in a dispatcher's cache |
//! | `factos_cache_misses_total` | counter | | dispatches that did not |
//! | `factos_cache_evictions_total` | counter | | contexts dropped from a full cache |
//! | `factos_batch_decisions` | histogram | | commands a combining dispatcher decided together (1: one alone) |
//! | `factos_pool_wait_seconds` | histogram | `store` | waits for a pooled connection |
//! | `factos_subscriber_events_total` | counter | `subscriber` | events a subscriber's handler took (the batch committed, or was acknowledged; a parked event is not counted) |
//! | `factos_subscriber_lag_events` | gauge | `subscriber` | positions between the subscriber's checkpoint and the settled head after its last batch (0 when caught up) |
//! | `factos_subscriber_lag_seconds` | gauge | `subscriber` | age of the last event it handled while behind (0 when caught up) |
//! | `factos_subscriber_handler_failures_total` | counter | `subscriber` | failed handler attempts |
//! | `factos_outbox_attempts_total` | counter | `topic`, `outcome` | delivery attempts: `delivered`, `failed` (retried later), `parked` |
//! | `factos_outbox_messages` | gauge | `topic`, `state` | messages `waiting`, `leased`, `parked`, refreshed by a running worker once per poll interval |

/// `factos_dispatch_seconds`.
pub const DISPATCH_SECONDS: &str = "factos_dispatch_seconds";
/// `factos_condition_failures_total`.
pub const CONDITION_FAILURES: &str = "factos_condition_failures_total";
/// `factos_retries_total`.
pub const RETRIES: &str = "factos_retries_total";
/// `factos_hot_fallbacks_total`.
pub const HOT_FALLBACKS: &str = "factos_hot_fallbacks_total";
/// `factos_cache_hits_total`.
pub const CACHE_HITS: &str = "factos_cache_hits_total";
/// `factos_cache_misses_total`.
pub const CACHE_MISSES: &str = "factos_cache_misses_total";
/// `factos_cache_evictions_total`.
pub const CACHE_EVICTIONS: &str = "factos_cache_evictions_total";
/// `factos_batch_decisions`.
pub const BATCH_DECISIONS: &str = "factos_batch_decisions";
/// `factos_pool_wait_seconds`.
pub const POOL_WAIT_SECONDS: &str = "factos_pool_wait_seconds";
/// `factos_subscriber_events_total`.
pub const SUBSCRIBER_EVENTS: &str = "factos_subscriber_events_total";
/// `factos_subscriber_lag_events`.
pub const SUBSCRIBER_LAG_EVENTS: &str = "factos_subscriber_lag_events";
/// `factos_subscriber_lag_seconds`.
pub const SUBSCRIBER_LAG_SECONDS: &str = "factos_subscriber_lag_seconds";
/// `factos_subscriber_handler_failures_total`.
pub const SUBSCRIBER_HANDLER_FAILURES: &str = "factos_subscriber_handler_failures_total";
/// `factos_outbox_attempts_total`.
pub const OUTBOX_ATTEMPTS: &str = "factos_outbox_attempts_total";
/// `factos_outbox_messages`.
pub const OUTBOX_MESSAGES: &str = "factos_outbox_messages";

/// Every name above, for exporters that describe them up front.
pub const ALL: [&str; 15] = [
    DISPATCH_SECONDS,
    CONDITION_FAILURES,
    RETRIES,
    HOT_FALLBACKS,
    CACHE_HITS,
    CACHE_MISSES,
    CACHE_EVICTIONS,
    BATCH_DECISIONS,
    POOL_WAIT_SECONDS,
    SUBSCRIBER_EVENTS,
    SUBSCRIBER_LAG_EVENTS,
    SUBSCRIBER_LAG_SECONDS,
    SUBSCRIBER_HANDLER_FAILURES,
    OUTBOX_ATTEMPTS,
    OUTBOX_MESSAGES,
];

/// Describes every metric to the installed recorder (units and help text),
/// for exporters that print them. Optional: values are recorded either way.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        DISPATCH_SECONDS,
        Unit::Seconds,
        "A dispatch's time in the store, by strategy, kind and outcome."
    );
    describe_counter!(
        CONDITION_FAILURES,
        "Decisions and appends whose condition failed."
    );
    describe_counter!(RETRIES, "Attempts the store began again on its own.");
    describe_counter!(
        HOT_FALLBACKS,
        "Cached decisions sent to the pessimistic path because their query is hot."
    );
    describe_counter!(
        CACHE_HITS,
        "Dispatches that found their context in a dispatcher's cache."
    );
    describe_counter!(
        CACHE_MISSES,
        "Dispatches that did not find their context cached."
    );
    describe_counter!(
        CACHE_EVICTIONS,
        "Contexts dropped from a full dispatcher cache."
    );
    describe_histogram!(
        BATCH_DECISIONS,
        Unit::Count,
        "Commands decided together in one combined decision."
    );
    describe_histogram!(
        POOL_WAIT_SECONDS,
        Unit::Seconds,
        "Waits for a pooled connection."
    );
    describe_counter!(SUBSCRIBER_EVENTS, "Events a subscriber's handler took.");
    describe_gauge!(
        SUBSCRIBER_LAG_EVENTS,
        "Positions between a subscriber's checkpoint and the settled head."
    );
    describe_gauge!(
        SUBSCRIBER_LAG_SECONDS,
        Unit::Seconds,
        "Age of the last event a subscriber handled while behind."
    );
    describe_counter!(
        SUBSCRIBER_HANDLER_FAILURES,
        "Failed handler attempts of a subscriber."
    );
    describe_counter!(OUTBOX_ATTEMPTS, "Outbox delivery attempts by outcome.");
    describe_gauge!(
        OUTBOX_MESSAGES,
        "Outbox messages waiting, leased and parked, per topic."
    );
}

pub(crate) fn cache_hit() {
    metrics::counter!(CACHE_HITS).increment(1);
}

pub(crate) fn cache_miss() {
    metrics::counter!(CACHE_MISSES).increment(1);
}

pub(crate) fn cache_eviction() {
    metrics::counter!(CACHE_EVICTIONS).increment(1);
}

pub(crate) fn batch(commands: usize) {
    #[allow(clippy::cast_precision_loss)]
    metrics::histogram!(BATCH_DECISIONS).record(commands as f64);
}

/// How a decision ended, as the `outcome` label says it.
pub fn decision_outcome<T, E>(result: &Result<T, crate::store::DecisionError<E>>) -> &'static str {
    use crate::store::DecisionError;
    match result {
        Ok(_) => "committed",
        Err(DecisionError::Process(_)) => "refused",
        Err(DecisionError::Invalid(_)) => "invalid",
        Err(DecisionError::ConditionFailed(_)) => "condition_failed",
        Err(DecisionError::Store(_)) => "store_error",
    }
}

/// How an append ended, as the `outcome` label says it.
pub fn append_outcome<T>(result: &Result<T, crate::AppendError>) -> &'static str {
    use crate::AppendError;
    match result {
        Ok(_) => "committed",
        Err(AppendError::Invalid(_)) => "invalid",
        Err(AppendError::ConditionFailed(_)) => "condition_failed",
        Err(AppendError::Store(_)) => "store_error",
    }
}

/// For stores: a dispatch (or an append, `kind` `append`) that took
/// `elapsed` and ended with `outcome`; a failed condition is counted too.
pub fn record_dispatch(
    store: &'static str,
    strategy: &'static str,
    kind: &'static str,
    outcome: &'static str,
    elapsed: std::time::Duration,
) {
    metrics::histogram!(DISPATCH_SECONDS, "store" => store, "strategy" => strategy, "kind" => kind, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
    if outcome == "condition_failed" {
        metrics::counter!(CONDITION_FAILURES, "store" => store, "strategy" => strategy)
            .increment(1);
    }
}

/// For stores: an attempt the store began again on its own.
pub fn record_retry(store: &'static str, strategy: &'static str) {
    metrics::counter!(RETRIES, "store" => store, "strategy" => strategy).increment(1);
}

/// For stores: after a subscriber's read, `behind` positions to the settled
/// head and the last read event's time (its age is the lag in seconds while
/// behind; 0 when caught up).
pub fn record_subscriber_lag(
    subscriber: &str,
    behind: u64,
    last_recorded: Option<std::time::SystemTime>,
) {
    let name = subscriber.to_string();
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(SUBSCRIBER_LAG_EVENTS, "subscriber" => name.clone()).set(behind as f64);
    let age = match last_recorded {
        Some(at) if behind > 0 => std::time::SystemTime::now()
            .duration_since(at)
            .map_or(0.0, |d| d.as_secs_f64()),
        _ => 0.0,
    };
    metrics::gauge!(SUBSCRIBER_LAG_SECONDS, "subscriber" => name).set(age);
}

/// For stores: a subscriber's handler took `handled` events.
pub fn record_subscriber_handled(subscriber: &str, handled: usize) {
    metrics::counter!(SUBSCRIBER_EVENTS, "subscriber" => subscriber.to_string())
        .increment(u64::try_from(handled).unwrap_or(u64::MAX));
}

/// For stores: a subscriber's handler failed an attempt.
pub fn record_handler_failure(subscriber: &str) {
    metrics::counter!(SUBSCRIBER_HANDLER_FAILURES, "subscriber" => subscriber.to_string())
        .increment(1);
}

/// For stores: an outbox delivery attempt that ended `outcome`
/// (`delivered`, `failed`, `parked`).
pub fn record_outbox_attempt(topic: &str, outcome: &'static str) {
    metrics::counter!(OUTBOX_ATTEMPTS, "topic" => topic.to_string(), "outcome" => outcome)
        .increment(1);
}

/// For stores: a topic's messages by state.
pub fn record_outbox_messages(topic: &str, waiting: u64, leased: u64, parked: u64) {
    for (state, count) in [("waiting", waiting), ("leased", leased), ("parked", parked)] {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!(OUTBOX_MESSAGES, "topic" => topic.to_string(), "state" => state)
            .set(count as f64);
    }
}
