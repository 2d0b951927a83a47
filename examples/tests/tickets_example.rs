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

/// `--sqlite PATH` runs the example on a SQLite file: the built example
/// binary, run as a user would.
#[test]
fn the_tickets_example_runs_on_a_sqlite_file() {
    let exe = std::env::current_exe().unwrap();
    let examples = exe.parent().unwrap().parent().unwrap().join("examples");
    let binary = examples.join("tickets");
    assert!(binary.exists(), "{} was not built", binary.display());
    let dir = std::env::temp_dir().join(format!("factos-tickets-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tickets.db");
    let output = std::process::Command::new(&binary)
        .arg("--sqlite")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("store: SQLite file"), "{stdout}");
    assert!(stdout.contains("accepted: 100"), "{stdout}");
    assert!(stdout.contains("events stored: 100"), "{stdout}");
}
