//! The tickets sale with durable after-effects: every purchase records its
//! confirmation email in the outbox in the same transaction; an outbox worker
//! sends them (retrying a flaky mail server); a durable subscription keeps
//! the `concert_sales` table exactly once.
//!
//! Run it with `cargo run -p factos-examples --example box_office`
//! (PostgreSQL: `DATABASE_URL`, or a throwaway cluster), or on a SQLite
//! file with `-- --sqlite PATH`. Not in memory: subscriptions and the
//! outbox live in the database.

use factos_examples::backend::{self, Backend};
use factos_examples::box_office::run_box_office;
use factos_examples::box_office_sqlite::run_box_office_on_sqlite;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let backend = backend::from_environment().await?;
    let started = std::time::Instant::now();
    let outcome = match &backend {
        Backend::Postgres { store, .. } => run_box_office(store, "concert-1", 100, 300, 64).await?,
        Backend::Sqlite(store) => {
            run_box_office_on_sqlite(store, "concert-1", 100, 300, 64).await?
        }
        Backend::Memory(_) => {
            return Err(
                "box_office needs a database for its outbox and projection (drop --memory)".into(),
            );
        }
    };
    println!("accepted: {}", outcome.accepted);
    println!("sold out: {}", outcome.sold_out);
    println!(
        "projection concert_sales: sold {}, last buyer {}",
        outcome.projected.sold, outcome.projected.last_buyer
    );
    println!(
        "emails sent: {} ({} failed attempts retried)",
        outcome.emails_sent, outcome.email_retries
    );
    println!("took: {} ms", started.elapsed().as_millis());
    drop(backend);
    Ok(())
}
