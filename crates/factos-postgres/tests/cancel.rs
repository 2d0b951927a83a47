//! A dispatch whose future is dropped halfway (a timeout, a cancelled task)
//! never returns a connection to the pool in the middle of a transaction, and
//! never leaves a partial write. One test cuts dispatches off at random
//! points; another cuts one off while it provably waits inside its
//! transaction and checks the connection was discarded before anyone else
//! could use it.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use factos::json::JsonCodec;
use factos::{EventStore, Query, ReadOptions, StreamId};
use factos_examples::tickets::{BuyTicket, TicketDecider, TicketEvent, sale_query};
use factos_postgres::tokio_postgres::{Client, NoTls};
use factos_postgres::{LockingStrategy, PostgresStore, StoreOptions};

/// A connection of the test's own, outside every pool.
async fn observer(database: &factos_postgres::throwaway::TestDatabase) -> Client {
    let (client, connection) = database.config().connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Waits until no session of the database but `client`'s own is running a
/// statement or sits inside a transaction: whatever was sent before a cut
/// has been executed, and a discarded connection has closed (it may pass
/// through "idle in transaction" for the moment between its last answer and
/// its close). Nothing uses the pool meanwhile, so a connection left in it
/// mid-transaction stays that way and fails this after 10 s.
async fn wait_until_quiet(client: &Client) {
    let start = Instant::now();
    loop {
        let busy: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE (state = 'active' OR state LIKE 'idle in transaction%')
                   AND pid <> pg_backend_pid() AND datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if busy == 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{busy} sessions still busy or inside a transaction after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

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
        wait_until_quiet(&observer(&database).await).await;
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

/// `(state, inside a transaction begun by an earlier statement, waiting for
/// a lock on factos_events)` of backend `pid`; `None`: it is gone.
async fn backend(client: &Client, pid: i32, events: &str) -> Option<(String, bool, bool)> {
    client
        .query_opt(
            "SELECT coalesce(a.state, ''), coalesce(a.xact_start < a.query_start, false),
                    EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted
                            AND l.relation = $2::text::regclass)
             FROM pg_stat_activity a WHERE a.pid = $1",
            &[&pid, &events],
        )
        .await
        .unwrap()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
}

async fn cut_off_while_waiting_for_a_lock(locking: LockingStrategy) {
    let database = common::database().await;
    let schema = common::store_in(&database, StoreOptions::default())
        .await
        .options()
        .schema
        .clone();
    let events = format!("{}.factos_events", schema.quoted());
    // One connection: the dispatch can only use the one whose pid is known.
    let store = PostgresStore::from_config(
        database.config(),
        1,
        StoreOptions::default().schema(schema).locking(locking),
    )
    .unwrap();
    let buy = |buyer: &'static str| {
        let store = store.clone();
        async move {
            factos::dispatch_with_query(
                &store,
                &StreamId::new(format!("buyer-{buyer}")).unwrap(),
                &sale_query("e1").unwrap(),
                &TicketDecider { capacity: 10 },
                &JsonCodec::<TicketEvent>::new(),
                &BuyTicket {
                    concert: "e1".into(),
                    buyer: buyer.into(),
                },
            )
            .await
        }
    };
    // Prepares the statements on the connection, so the next dispatch waits
    // in its transaction, not while preparing one.
    buy("b0").await.unwrap();
    let pid: i32 = store
        .pool()
        .get()
        .await
        .unwrap()
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let watch = observer(&database).await;
    // Every strategy's dispatch transaction locks the event table (ROW
    // EXCLUSIVE or EXCLUSIVE): holding EXCLUSIVE makes it wait inside.
    let holder = observer(&database).await;
    holder
        .batch_execute(&format!("BEGIN; LOCK TABLE {events} IN EXCLUSIVE MODE"))
        .await
        .unwrap();
    let dispatch = tokio::spawn(buy("b1"));
    let start = Instant::now();
    loop {
        let seen = backend(&watch, pid, &events).await;
        if matches!(&seen, Some((state, true, true)) if state == "active") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10) && !dispatch.is_finished(),
            "{locking:?}: the dispatch never waited inside its transaction: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    dispatch.abort();
    assert!(dispatch.await.unwrap_err().is_cancelled());
    // Before anyone else can take it: the connection is out of the pool.
    assert_eq!(
        store.pool().status().size,
        0,
        "{locking:?}: the cut-off connection went back to the pool"
    );
    // The lock goes; the backend of the dropped connection answers what it
    // was sent, then its connection closes and the transaction ends with it
    // (nothing else uses the pool meanwhile: a connection kept mid-transaction
    // would stay idle in transaction here).
    holder.batch_execute("ROLLBACK").await.unwrap();
    let start = Instant::now();
    while let Some(seen) = backend(&watch, pid, &events).await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{locking:?}: the cut-off dispatch's session is still open after 10 s: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(idle_in_transaction(&database).await, 0, "{locking:?}");
    // Nothing was written, and the store works on a new connection.
    buy("b2").await.unwrap();
    let buyers: Vec<String> = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.stream.as_str().to_string())
        .collect();
    if locking == LockingStrategy::Optimistic {
        // The optimistic append waits for the table lock with its COMMIT
        // already sent in the same pipeline (store/append.rs): once the
        // lock goes, the server may run both before it notices the closed
        // connection. A caller that dropped the future cannot know which:
        // the decision is there whole or not at all.
        assert!(
            buyers == ["buyer-b0", "buyer-b2"] || buyers == ["buyer-b0", "buyer-b1", "buyer-b2"],
            "{locking:?}: {buyers:?}"
        );
    } else {
        // `Scoped` and `TableLock` wait for their locks before the append and its
        // COMMIT go out: nothing of the cut-off dispatch was written.
        assert_eq!(buyers, ["buyer-b0", "buyer-b2"], "{locking:?}");
    }
}

/// Under every strategy: a dispatch seen waiting for a lock inside its
/// transaction is dropped; its connection is out of the pool at once, its
/// session ends (and its transaction with it) once the lock goes, no session
/// is left inside a transaction, and the next dispatch works. Under `Scoped`
/// and `TableLock` nothing of it is written; under `Optimistic`, whose append
/// waits with its COMMIT already sent, it is written whole or not at all
/// (a CI run saw it committed once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatch_cut_off_inside_its_transaction_discards_its_connection() {
    for locking in [
        LockingStrategy::Scoped,
        LockingStrategy::TableLock,
        LockingStrategy::Optimistic,
    ] {
        cut_off_while_waiting_for_a_lock(locking).await;
    }
}
