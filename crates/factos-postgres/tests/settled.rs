//! Settled positions: a read never hands out a position (head, last matching
//! event) at or below which an event can still appear. A writer holds its
//! transaction open with a lower position while later writers commit; reads
//! taken meanwhile must not skip it.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use factos::{
    AppendCondition, AppendError, ConditionFailure, EventStore, EventType, NewEvent, Query,
    QueryItem, ReadOptions, StoreErrorKind, StreamId, Tags,
};
use factos_postgres::{LockingStrategy, StoreOptions};

fn event(event_type: &str, tag: &str) -> NewEvent {
    NewEvent::new(EventType::new(event_type).unwrap(), b"{}".to_vec())
        .with_tags(Tags::parse([tag]).unwrap())
}

async fn reads_wait_for_lower_positions(locking: LockingStrategy) {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default().locking(locking)).await;
    let seats = Query::item(QueryItem::parse(["Seat"], ["seat:1"]).unwrap());
    let (slow, slow_position) = common::in_flight_writer(&store, "Seat", "seat:1").await;
    // A later writer commits a higher position while the first is open. It
    // uses scoped locking (a process with another strategy on the same
    // schema): under the table lock alone no two writers overlap.
    let writer = database
        .store(
            StoreOptions::default()
                .schema(store.options().schema.clone())
                .locking(LockingStrategy::Scoped),
        )
        .unwrap();
    let fast = StreamId::new("fast").unwrap();
    let later = writer.append(&fast, vec![event("Other", "x:1")], AppendCondition::None);
    let later = tokio::time::timeout(Duration::from_secs(10), later)
        .await
        .expect("the later writer must not wait")
        .unwrap();
    assert!(later.position.unwrap().get() > u64::try_from(slow_position).unwrap());

    let reader = {
        let store = store.clone();
        let seats = seats.clone();
        tokio::spawn(async move { store.read(&seats, ReadOptions::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !reader.is_finished(),
        "{locking:?}: the read handed out a position while a lower one was in flight"
    );
    slow.batch_execute("COMMIT").await.unwrap();
    let read = reader.await.unwrap().unwrap();
    let head = read.head.unwrap().get();
    assert!(
        head >= later.position.unwrap().get(),
        "{locking:?}: head {head}"
    );
    let positions: Vec<i64> = read
        .events
        .iter()
        .map(|e| i64::try_from(e.position.get()).unwrap())
        .collect();
    assert_eq!(
        positions,
        vec![slow_position],
        "{locking:?}: the read skipped the event that committed late"
    );

    // A condition built from that read now holds; one built before it would not.
    let condition = AppendCondition::fail_if_events_match(seats.clone(), read.head);
    store
        .append(
            &StreamId::new("s").unwrap(),
            vec![event("Seat", "seat:1")],
            condition,
        )
        .await
        .unwrap();
    let stale = AppendCondition::fail_if_events_match(seats.clone(), None);
    let refused = store
        .append(
            &StreamId::new("s").unwrap(),
            vec![event("Seat", "seat:1")],
            stale,
        )
        .await;
    assert!(
        matches!(
            &refused,
            Err(AppendError::ConditionFailed(ConditionFailure::EventsMatched { query, after: None }))
                if *query == seats
        ),
        "{locking:?}: {refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn table_lock_reads_are_settled() {
    reads_wait_for_lower_positions(LockingStrategy::TableLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scoped_reads_are_settled() {
    reads_wait_for_lower_positions(LockingStrategy::Scoped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn optimistic_reads_are_settled() {
    reads_wait_for_lower_positions(LockingStrategy::Optimistic).await;
}

/// A settled read of `query` on its own task, given 300 ms to wait.
async fn waiting_read(
    store: &factos_postgres::PostgresStore,
    query: &Query,
) -> tokio::task::JoinHandle<Result<factos::ReadResult, factos::StoreError>> {
    let (store, query) = (store.clone(), query.clone());
    let reader = tokio::spawn(async move { store.read(&query, ReadOptions::default()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    reader
}

/// A settled read waits for an in-flight writer without holding anyone up:
/// an unrelated append that starts while the read waits commits at once
/// (up to schema version 7 it queued behind the read's exclusive request on
/// the one barrier key every writer shared).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_settled_read_holds_up_no_writer() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let seats = Query::item(QueryItem::parse(["Seat"], ["seat:1"]).unwrap());
    let (slow, slow_position) = common::in_flight_writer(&store, "Seat", "seat:1").await;
    let reader = waiting_read(&store, &seats).await;
    assert!(
        !reader.is_finished(),
        "the read did not wait for the in-flight writer"
    );

    let other = StreamId::new("other").unwrap();
    let append = store.append(&other, vec![event("Other", "x:1")], AppendCondition::None);
    let later = tokio::time::timeout(Duration::from_secs(10), append)
        .await
        .expect("an append queued behind a waiting settled read")
        .unwrap();
    assert!(later.position.unwrap().get() > u64::try_from(slow_position).unwrap());
    assert!(
        !reader.is_finished(),
        "the read stopped waiting before the writer committed"
    );

    slow.batch_execute("COMMIT").await.unwrap();
    let read = reader.await.unwrap().unwrap();
    let positions: Vec<i64> = read
        .events
        .iter()
        .map(|e| i64::try_from(e.position.get()).unwrap())
        .collect();
    assert_eq!(positions, vec![slow_position]);
}

/// A snapshot lists as in progress only ids below its `xmax` (one past the
/// newest finished id), so a writer holding the newest id is not in the
/// list: the read must still wait for it. Here nothing finishes after the
/// writer took its id (when this test runs alone: other tests of this
/// process may move `xmax` past it, then the list covers it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_settled_read_waits_for_the_newest_writer() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let seats = Query::item(QueryItem::parse(["Seat"], ["seat:1"]).unwrap());
    let (slow, slow_position) = common::in_flight_writer(&store, "Seat", "seat:1").await;
    let reader = waiting_read(&store, &seats).await;
    assert!(
        !reader.is_finished(),
        "the read handed out a position while a lower one was in flight"
    );
    slow.batch_execute("COMMIT").await.unwrap();
    let read = reader.await.unwrap().unwrap();
    assert_eq!(
        read.head.map(factos::Position::get),
        Some(u64::try_from(slow_position).unwrap())
    );
    assert_eq!(
        read.events.len(),
        1,
        "the read skipped the event that committed late"
    );
}

/// A settled read waits for factos writers of its own schema only: neither
/// a transaction that writes other tables nor a writer of another factos
/// schema in the same database holds it up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_settled_read_waits_for_no_other_transaction() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let neighbour = common::store_in(&database, StoreOptions::default()).await;
    store
        .append(
            &StreamId::new("s").unwrap(),
            vec![event("Seat", "seat:1")],
            AppendCondition::None,
        )
        .await
        .unwrap();
    let (_neighbour_writer, _) = common::in_flight_writer(&neighbour, "Seat", "seat:1").await;
    let unrelated = store.pool().get().await.unwrap();
    unrelated
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS public.settled_unrelated (x int);
             BEGIN; INSERT INTO public.settled_unrelated VALUES (1)",
        )
        .await
        .unwrap();
    let seats = Query::item(QueryItem::parse(["Seat"], ["seat:1"]).unwrap());
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        store.read(&seats, ReadOptions::default()),
    )
    .await
    .expect("the settled read waited for a transaction that is not one of its writers")
    .unwrap();
    assert_eq!(read.events.len(), 1);
    unrelated.batch_execute("ROLLBACK").await.unwrap();
}

/// The one race of the writers' own keys: a settled read holds a writer's
/// pair (shared, for an instant) between the writer's transaction id and its
/// key. The writer tries again for up to 10 ms, then starts over with a new
/// transaction. Here a transaction holds the pairs of the next 500 ids for
/// good, so every attempt fails, the append gives up with a retry-safe
/// contention error having written nothing, and succeeds once they are
/// released.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_whose_key_a_reader_holds_starts_over() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default().max_decision_attempts(3)).await;
    let reader = store.pool().get().await.unwrap();
    reader.batch_execute("BEGIN").await.unwrap();
    // The next id to be assigned, without assigning one: `age` counts from it.
    let held: i64 = reader
        .query_one(
            "SELECT count(pg_advisory_xact_lock_shared($1::integer,
                        (x % 4294967296 - 2147483648)::integer))
             FROM pg_current_snapshot() AS now(s),
                  LATERAL (SELECT pg_snapshot_xmax(now.s)::text::bigint
                                  + age(xid(pg_snapshot_xmax(now.s))) AS next) AS n,
                  generate_series(n.next, n.next + 499) AS x",
            &[&store.writer_class()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 500);
    let stream = StreamId::new("s").unwrap();
    let refused = store
        .append(
            &stream,
            vec![event("Seat", "seat:1")],
            AppendCondition::None,
        )
        .await;
    match refused {
        Err(AppendError::Store(e)) => {
            assert_eq!(e.kind(), StoreErrorKind::Contention, "{e}");
            assert!(e.is_retry_safe(), "{e}");
        }
        other => panic!("appended while a reader held the writer's key: {other:?}"),
    }
    reader.batch_execute("COMMIT").await.unwrap();
    let all = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap();
    assert!(all.events.is_empty(), "{:?}", all.events);
    store
        .append(
            &stream,
            vec![event("Seat", "seat:1")],
            AppendCondition::None,
        )
        .await
        .unwrap();
}
