//! The seed's tickets race: capacity 100, 300 purchase attempts, 128 at a time,
//! every buyer on their own stream, all deciding on one context.
//!
//! Run it with `cargo run -p factos-examples --example tickets` (PostgreSQL:
//! `DATABASE_URL`, or a throwaway cluster), or add `-- --memory`, or
//! `-- --sqlite PATH` (a SQLite file, created if missing).

use factos_examples::tickets::run_sale;
use factos_examples::{backend, with_backend};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let backend = backend::from_environment().await?;
    let started = std::time::Instant::now();
    let outcome = with_backend!(&backend, |store| run_sale(
        store,
        "concert-1",
        100,
        300,
        128
    )
    .await?);
    println!("accepted: {}", outcome.accepted);
    println!("sold out: {}", outcome.sold_out);
    println!("events stored: {}", outcome.events_stored);
    println!("took: {} ms", started.elapsed().as_millis());
    drop(backend);
    Ok(())
}
