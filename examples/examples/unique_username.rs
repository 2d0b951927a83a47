//! Unique usernames across users: the second claim of a name is refused.
//!
//! Run it with `cargo run -p factos-examples --example unique_username` (add `-- --memory`
//! for the in-memory store).

use factos_examples::usernames::{Register, register};
use factos_examples::{backend, with_backend};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let backend = backend::from_environment().await?;
    for (user_id, username) in [("u1", "renata"), ("u2", "marc"), ("u3", "renata")] {
        let command = Register {
            user_id: user_id.into(),
            username: username.into(),
        };
        match with_backend!(&backend, |store| register(store, &command).await) {
            Ok(()) => println!("{user_id} registered as {username}"),
            Err(e) => println!("{user_id} refused: {e}"),
        }
    }
    Ok(())
}
