//! The bank as an HTTP service: `cargo run -p factos-examples --example bank`
//! (on the server in `DATABASE_URL`, or a throwaway cluster), listening on
//! 127.0.0.1:3000 (`BANK_ADDR` to change it) until Ctrl-C, then shutting
//! down gracefully. Try:
//!
//! ```sh
//! curl -X POST localhost:3000/accounts/a/open -H 'content-type: application/json' -d '{"owner":"ana"}'
//! curl -X POST localhost:3000/accounts/a/deposit -H 'content-type: application/json' -d '{"cents":100}'
//! curl -X POST localhost:3000/accounts/b/open -H 'content-type: application/json' -d '{"owner":"bo"}'
//! curl -X POST localhost:3000/transfers -H 'content-type: application/json' \
//!      -H 'idempotency-key: transfer-1' -d '{"from":"a","to":"b","cents":30}'
//! curl 'localhost:3000/accounts/b?after=4'
//! ```

use factos_examples::backend::{self, Backend};
use factos_examples::bank_service::BankService;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::var("DATABASE_URL").ok();
    let Backend::Postgres { store, cluster } =
        backend::postgres(url.as_deref().filter(|u| !u.trim().is_empty())).await?
    else {
        return Err("the bank runs on PostgreSQL".into());
    };
    let addr = std::env::var("BANK_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_string());
    let service = BankService::start(store, addr.parse()?).await?;
    println!(
        "the bank listens on http://{} (Ctrl-C stops it)",
        service.addr()
    );
    tokio::signal::ctrl_c().await?;
    println!("stopping: requests in flight finish, then the projection and the outbox worker");
    service.stop().await?;
    drop(cluster);
    Ok(())
}
