//! The tickets example as `cargo run -p factos-examples --example tickets`
//! runs it without `DATABASE_URL` (what `factos demo` did before the demo
//! left the CLI): a throwaway PostgreSQL cluster, migrated, and the race
//! selling exactly the capacity.

#![allow(clippy::unwrap_used, clippy::panic)]

use factos_examples::backend::{self, Backend};
use factos_examples::tickets::run_sale;
use factos_examples::with_backend;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tickets_race_runs_on_a_throwaway_cluster() {
    let backend = backend::postgres(None).await.unwrap();
    assert!(
        matches!(
            &backend,
            Backend::Postgres {
                cluster: Some(_),
                ..
            }
        ),
        "no database given: a throwaway cluster"
    );
    let outcome = with_backend!(&backend, |store| run_sale(
        store,
        "concert-1",
        100,
        300,
        128
    )
    .await
    .unwrap());
    assert_eq!(
        (outcome.accepted, outcome.sold_out, outcome.events_stored),
        (100, 200, 100)
    );
}
