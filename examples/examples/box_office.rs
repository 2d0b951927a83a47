//! The tickets sale with durable after-effects: every purchase records its
//! confirmation email in the outbox in the same transaction; an outbox worker
//! sends them (retrying a flaky mail server); a durable subscription keeps
//! the `concert_sales` table exactly once.
//!
//! Run it with `cargo run -p factos-examples --example box_office`
//! (PostgreSQL: `DATABASE_URL`, or a throwaway cluster). PostgreSQL only:
//! subscriptions and the outbox live in the database.

use factos_examples::backend::{self, Backend};
use factos_examples::box_office::run_box_office;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let backend = backend::from_environment().await?;
    let Backend::Postgres { store, .. } = &backend else {
        return Err("box_office runs on PostgreSQL only (drop --memory and --sqlite)".into());
    };
    let started = std::time::Instant::now();
    let outcome = run_box_office(store, "concert-1", 100, 300, 64).await?;
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
