//! A projection rebuilt side by side (blue/green): the new one, under a new
//! name and table, catches up while the old one runs and writers append;
//! at the head both tables agree; readers switch, the old subscriber is
//! stopped and removed (`PostgresStore::remove_subscriber`: refused while it
//! runs, its checkpoint then gone, the name free), and the new one goes on.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use factos::{
    AppendCondition, EventStore, EventType, NewEvent, Query, StoredEvent, StreamId, Tags,
};
use factos_postgres::tokio_postgres::Transaction;
use factos_postgres::{
    PostgresStore, ProjectionHandler, StoreOptions, Subscription, SubscriptionError,
};
use tokio::sync::watch;

/// Counts events per tag into its own table, exactly once.
struct Counts {
    table: &'static str,
}

impl ProjectionHandler for Counts {
    type Error = factos_postgres::tokio_postgres::Error;

    async fn apply(
        &mut self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), Self::Error> {
        for event in events {
            for tag in &event.tags {
                tx.execute(
                    &format!(
                        "INSERT INTO {} (tag, events) VALUES ($1, 1)
                         ON CONFLICT (tag) DO UPDATE SET events = {0}.events + 1",
                        self.table
                    ),
                    &[&tag.as_str()],
                )
                .await?;
            }
        }
        Ok(())
    }
}

async fn append(store: &PostgresStore, count: usize) {
    for i in 0..count {
        let event = NewEvent::new(EventType::new("Seen").unwrap(), b"{}".to_vec())
            .with_tags(Tags::parse([format!("k:{}", i % 3)]).unwrap());
        store
            .append(
                &StreamId::new("s").unwrap(),
                vec![event],
                AppendCondition::None,
            )
            .await
            .unwrap();
    }
}

async fn table(store: &PostgresStore, name: &str) -> Vec<(String, i64)> {
    let client = store.pool().get().await.unwrap();
    client
        .query(&format!("SELECT tag, events FROM {name} ORDER BY tag"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Runs `name` into `table` until the returned sender says stop.
fn run(
    store: &PostgresStore,
    name: &str,
    table: &'static str,
) -> (
    Arc<Subscription>,
    watch::Sender<bool>,
    tokio::task::JoinHandle<Result<(), SubscriptionError>>,
) {
    let subscription = Arc::new(Subscription::new(store, name, Query::all()).unwrap());
    let (stop, mut stopped) = watch::channel(false);
    let running = subscription.clone();
    let task = tokio::spawn(async move {
        running
            .run_projection(&mut Counts { table }, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    (subscription, stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_projection_rebuilt_side_by_side_takes_over() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let client = store.pool().get().await.unwrap();
    for name in ["counts_blue", "counts_green"] {
        client
            .batch_execute(&format!(
                "CREATE TABLE {name} (tag text PRIMARY KEY, events bigint NOT NULL)"
            ))
            .await
            .unwrap();
    }
    let (blue, stop_blue, blue_task) = run(&store, "counts-blue", "counts_blue");
    append(&store, 30).await;
    // Green starts from the beginning while blue runs and writers go on.
    let (green, stop_green, green_task) = run(&store, "counts-green", "counts_green");
    append(&store, 30).await;
    let head = store
        .read(&Query::all(), factos::ReadOptions::default().limit(0))
        .await
        .unwrap()
        .head
        .unwrap();
    for subscription in [&blue, &green] {
        assert!(
            subscription
                .wait_until_applied(head, Duration::from_secs(10))
                .await
                .unwrap()
        );
    }
    let blue_rows = table(&store, "counts_blue").await;
    assert_eq!(blue_rows, table(&store, "counts_green").await);
    assert_eq!(blue_rows.iter().map(|(_, n)| n).sum::<i64>(), 60);

    // Switch: blue cannot be removed while it runs; stopped, it can, once.
    assert!(matches!(
        store.remove_subscriber("counts-blue").await,
        Err(SubscriptionError::Busy)
    ));
    let _ = stop_blue.send(true);
    blue_task.await.unwrap().unwrap();
    assert!(store.remove_subscriber("counts-blue").await.unwrap());
    assert!(!store.remove_subscriber("counts-blue").await.unwrap());
    let names: Vec<String> = store
        .subscribers()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["counts-green"]);
    assert_eq!(
        blue.checkpoint().await.unwrap(),
        None,
        "blue's checkpoint is gone"
    );

    // Green goes on alone.
    append(&store, 6).await;
    let head = store
        .read(&Query::all(), factos::ReadOptions::default().limit(0))
        .await
        .unwrap()
        .head
        .unwrap();
    assert!(
        green
            .wait_until_applied(head, Duration::from_secs(10))
            .await
            .unwrap()
    );
    let green_rows = table(&store, "counts_green").await;
    assert_eq!(green_rows.iter().map(|(_, n)| n).sum::<i64>(), 66);
    assert_eq!(
        table(&store, "counts_blue").await,
        blue_rows,
        "blue stopped at the switch"
    );
    let _ = stop_green.send(true);
    green_task.await.unwrap().unwrap();
}
