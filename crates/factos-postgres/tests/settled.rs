//! Settled positions: a read never hands out a position (head, last matching
//! event) at or below which an event can still appear. A writer holds its
//! transaction open with a lower position while later writers commit; reads
//! taken meanwhile must not skip it.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use factos::{
    AppendCondition, AppendError, ConditionFailure, EventStore, EventType, NewEvent, Query,
    QueryItem, ReadOptions, StreamId, Tags,
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
