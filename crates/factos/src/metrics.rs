//! What factos records through the [`metrics`] facade: the names and labels
//! below are a stable interface. factos records; the application installs a
//! recorder (a Prometheus exporter, for instance) and chooses where values
//! go. Without one installed, recording costs next to nothing.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `factos_dispatch_seconds` | histogram | `store`, `strategy`, `kind`, `outcome` | a dispatch's time in the store, by how it ended (`committed`, `refused`, `invalid`, `condition_failed`, `store_error`; `error` for a kind added later) |
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
