//! # factos-testkit: the conformance suite every factos backend must pass
//!
//! A backend runs the whole suite against itself with one call, handing in a
//! function that creates a fresh, empty store for each case:
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! factos_testkit::assert_conformance(|| async { factos::InMemoryStore::new() }).await;
//! # });
//! ```
//!
//! The cases cover matching for every item shape, reads with
//! `from`/`backwards`/`limit` and the head, append conditions with and without
//! `after` (and `after` beyond the head, and with no events), stream revisions,
//! the behaviours the original library's tests pin down (the stream dispatch,
//! an undecodable row of another type, 25 streams, the tickets race), racing
//! dispatches on one boundary (exactly one winner) and disjoint boundaries
//! (never a conflict). [`case_names`] lists them.
//!
//! Set `FACTOS_CONFORMANCE_FILTER` to a substring to run only matching cases.

mod cases;

pub use cases::{
    RecordedEffects, combined_outbox_dispatches_record_each_commands_effects,
    context_limit_through_the_cache,
};

/// Most commands in one batch of the model-based test's combining dispatchers.
pub(crate) const MACHINE_BATCH: usize = 8;
pub mod gated;
pub mod model;
pub mod oracle;
pub mod state_machine;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use factos::EventStore;

/// The outcome of a case: `Err` holds a readable explanation.
pub type CaseResult = Result<(), String>;

type CaseFuture = Pin<Box<dyn Future<Output = CaseResult> + Send>>;

/// One named conformance case.
pub struct Case<S> {
    /// Its name, as reported.
    pub name: &'static str,
    /// Runs it against a fresh store.
    pub run: fn(S) -> CaseFuture,
}

/// Longest a single case may take before it counts as failed (it would
/// otherwise hide a deadlock).
pub const CASE_TIMEOUT: Duration = Duration::from_secs(180);

/// Every case, in the order they run.
pub fn cases<S>() -> Vec<Case<S>>
where
    S: EventStore + Clone + 'static,
{
    cases::all()
}

/// The names of every case.
pub fn case_names() -> Vec<&'static str> {
    cases::<factos::InMemoryStore>()
        .into_iter()
        .map(|c| c.name)
        .collect()
}

/// What a conformance run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Cases that passed.
    pub passed: Vec<&'static str>,
    /// Cases that failed, with why.
    pub failed: Vec<(&'static str, String)>,
}

impl Report {
    /// Whether every case passed and at least one ran.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty() && !self.passed.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} passed, {} failed",
            self.passed.len(),
            self.failed.len()
        )?;
        for (name, why) in &self.failed {
            writeln!(f, "  FAILED {name}: {why}")?;
        }
        Ok(())
    }
}

/// Runs every case (or those matching `FACTOS_CONFORMANCE_FILTER`), each on a
/// fresh store from `new_store`, and reports.
pub async fn run_conformance<S, F, Fut>(new_store: F) -> Report
where
    S: EventStore + Clone + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let filter = std::env::var("FACTOS_CONFORMANCE_FILTER").ok();
    let mut report = Report::default();
    for case in cases::<S>() {
        if filter.as_deref().is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        let store = new_store().await;
        let outcome = tokio::time::timeout(CASE_TIMEOUT, (case.run)(store)).await;
        match outcome {
            Ok(Ok(())) => report.passed.push(case.name),
            Ok(Err(why)) => report.failed.push((case.name, why)),
            Err(_) => report
                .failed
                .push((case.name, format!("did not finish within {CASE_TIMEOUT:?}"))),
        }
    }
    report
}

/// Runs [`run_conformance`] and panics with the report unless every case passed.
///
/// # Panics
///
/// When a case fails or no case ran.
pub async fn assert_conformance<S, F, Fut>(new_store: F)
where
    S: EventStore + Clone + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let report = run_conformance(new_store).await;
    println!("factos conformance: {report}");
    assert!(report.is_success(), "factos conformance failed:\n{report}");
}
