//! The DCB course subscription: course capacity and a per-student course limit
//! in one decision, with students subscribing concurrently.
//!
//! Run it with `cargo run -p factos-examples --example courses` (add `-- --memory`
//! for the in-memory store).

use factos_examples::courses::{CourseCommand, handle};
use factos_examples::{ExampleStore, backend, with_backend};

async fn run<S: ExampleStore>(store: &S) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    for course in ["math", "physics", "art", "music"] {
        handle(
            store,
            &CourseCommand::Define {
                course: course.into(),
                capacity: 5,
            },
        )
        .await?;
    }
    let mut tasks = Vec::new();
    for student in 0..10 {
        for course in ["math", "physics", "art", "music"] {
            let store = store.clone();
            let command = CourseCommand::Subscribe {
                student: format!("s{student}"),
                course: course.into(),
            };
            tasks.push(tokio::spawn(async move { handle(&store, &command).await }));
        }
    }
    let (mut accepted, mut refused) = (0, std::collections::BTreeMap::<String, usize>::new());
    for task in tasks {
        match task.await? {
            Ok(()) => accepted += 1,
            Err(e) => *refused.entry(e.to_string()).or_default() += 1,
        }
    }
    println!("subscriptions accepted: {accepted}");
    for (why, count) in refused {
        println!("refused ({why}): {count}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let backend = backend::from_environment().await?;
    with_backend!(&backend, |store| run(store).await)
}
