//! A dispatch whose future is dropped halfway (a timeout, a cancelled task)
//! never returns a connection to the pool in the middle of a transaction, and
//! never leaves a partial write.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use factos::json::JsonCodec;
use factos::{EventStore, Query, ReadOptions, StreamId};
use factos_examples::tickets::{BuyTicket, TicketDecider, TicketEvent, sale_query};
use factos_postgres::{LockingStrategy, StoreOptions};

/// Counts sessions left inside a transaction, on a connection of its own
/// (the pool's connections are exactly what is being checked).
async fn idle_in_transaction(database: &factos_postgres::throwaway::TestDatabase) -> i64 {
    let (client, connection) = database
        .config()
        .connect(factos_postgres::tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND datname = current_database()", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_dispatches_leave_no_open_transaction() {
    let database = common::database().await;
    for locking in [
        LockingStrategy::Scoped,
        LockingStrategy::TableLock,
        LockingStrategy::Optimistic,
    ] {
        let store = common::store_in(&database, StoreOptions::default().locking(locking)).await;
        let query = sale_query("e1").unwrap();
        let decider = TicketDecider {
            capacity: 1_000_000,
        };
        let codec = JsonCodec::<TicketEvent>::new();
        // Eight tasks at once, so several pooled connections are in play; each
        // dispatch is cut off at a different point.
        let tasks: Vec<_> = (0..8u64)
            .map(|task| {
                let (store, query, codec) = (store.clone(), query.clone(), codec.clone());
                tokio::spawn(async move {
                    let mut completed = 0;
                    for n in 0..40u64 {
                        let buyer = task * 100 + n;
                        let command = BuyTicket {
                            concert: "e1".into(),
                            buyer: format!("b{buyer}"),
                        };
                        let stream = StreamId::new(format!("buyer-{buyer}")).unwrap();
                        let budget = Duration::from_micros(100 + ((buyer * 37) % 40) * 75);
                        let dispatch = factos::dispatch_with_query(
                            &store, &stream, &query, &decider, &codec, &command,
                        );
                        if let Ok(result) = tokio::time::timeout(budget, dispatch).await {
                            result.unwrap();
                            completed += 1;
                        }
                    }
                    completed
                })
            })
            .collect();
        let mut completed = 0;
        for task in tasks {
            completed += task.await.unwrap();
        }
        // Let the server finish what was sent before the cut.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            idle_in_transaction(&database).await,
            0,
            "{locking:?}: a pooled connection was left inside a transaction"
        );
        // The store still works, and every stored ticket is whole: one event per buyer stream, revision 0.
        let command = BuyTicket {
            concert: "e1".into(),
            buyer: "after".into(),
        };
        factos::dispatch_with_query(
            &store,
            &StreamId::new("after").unwrap(),
            &query,
            &decider,
            &codec,
            &command,
        )
        .await
        .unwrap();
        let sold = store
            .read(&Query::all(), ReadOptions::default())
            .await
            .unwrap();
        assert!(
            sold.events.len() > completed,
            "{locking:?}: completed dispatches are missing"
        );
        assert!(
            sold.events.iter().all(|e| e.revision == 0),
            "{locking:?}: a buyer stream got two events"
        );
    }
}
