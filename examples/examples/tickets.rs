//! The seed's tickets race: capacity 100, 300 purchase attempts, 128 at a time.
//!
//! Run it with `cargo run -p factos-examples --example tickets`.

use factos::InMemoryStore;
use factos_examples::tickets::run_sale;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let store = InMemoryStore::new();
    println!("store: in-memory");
    let outcome = run_sale(&store, "concert-1", 100, 300, 128).await?;
    println!("accepted: {}", outcome.accepted);
    println!("sold out: {}", outcome.sold_out);
    println!("events stored: {}", outcome.events_stored);
    Ok(())
}
