//! Example domains for factos, each a pure [`Decider`](factos::Decider) with its
//! query, plus the runners the example binaries call. Every runner is generic
//! over the [`factos::EventStore`], so the same code runs on the
//! in-memory store and on PostgreSQL.

pub mod backend;
pub mod bank;
pub mod bank_service;
pub mod box_office;
pub mod box_office_sqlite;
pub mod courses;
pub mod tickets;
pub mod usernames;

use factos::{DispatchError, EventStore};

/// How often a runner re-decides after its context moved before giving up.
pub const MAX_DECISION_ATTEMPTS: usize = 100;

/// Dispatches again while the context moved under the decision (a condition
/// failure or a retry-safe store error), at most [`MAX_DECISION_ATTEMPTS`] times.
pub async fn with_retries<T, E, F, Fut>(mut attempt: F) -> Result<T, DispatchError<E>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DispatchError<E>>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if e.is_retryable() && tries < MAX_DECISION_ATTEMPTS => tries += 1,
            outcome => return outcome,
        }
    }
}

/// Marker so runners name their store bound once.
pub trait ExampleStore: EventStore + Clone + 'static {}
impl<S: EventStore + Clone + 'static> ExampleStore for S {}
