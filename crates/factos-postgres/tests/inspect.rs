//! The inspection API (`status`, `verify`, `outbox_topics`) on a real server:
//! what it reports on empty, filled and deliberately broken stores.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::num::NonZeroU64;

use factos::{
    AppendCondition, EventStore, EventType, NewEvent, Position, StoreErrorKind, StreamId, Tags,
};
use factos_postgres::{
    Fault, OutboxTopic, PostgresStore, SCHEMA_VERSION, SchemaName, StoreOptions, VerifyOptions,
};

fn position(value: u64) -> Position {
    Position::new(value).unwrap()
}

/// Appends one event with `tags` to `stream`.
async fn append(store: &PostgresStore, stream: &str, tags: &[&str]) {
    let event = NewEvent::new(EventType::new("Happened").unwrap(), b"{}".to_vec())
        .with_tags(Tags::parse(tags.iter().copied()).unwrap());
    store
        .append(
            &StreamId::new(stream).unwrap(),
            vec![event],
            AppendCondition::None,
        )
        .await
        .unwrap();
}

/// Five events: positions 1 to 5, streams `a` (1, 2, 3) and `b` (4, 5).
async fn filled(store: &PostgresStore) {
    append(store, "a", &["k:1", "g:x"]).await;
    append(store, "a", &["k:2", "g:x"]).await;
    append(store, "a", &["k:3"]).await;
    append(store, "b", &["k:4", "g:y"]).await;
    append(store, "b", &[]).await;
}

/// Runs `sql` (with `{schema}` replaced) the way a superuser's repair session
/// would: the append-only triggers do not fire.
async fn behind_factos_back(store: &PostgresStore, sql: &str) {
    let sql = sql.replace("{schema}", &store.options().schema.quoted());
    store
        .pool()
        .get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "SET session_replication_role = replica; {sql}; RESET session_replication_role"
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_an_empty_then_a_filled_store() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let empty = store.status().await.unwrap();
    assert_eq!(empty.schema_version, SCHEMA_VERSION);
    assert_eq!(
        (empty.events, empty.head, empty.streams, empty.distinct_tags),
        (0, None, 0, 0)
    );
    // An empty table with a primary key still has its index's first page.
    assert!(empty.event_table_bytes > 0 && empty.tag_mirror_bytes > 0);

    filled(&store).await;
    let status = store.status().await.unwrap();
    assert_eq!(status.schema_version, SCHEMA_VERSION);
    assert_eq!(
        (
            status.events,
            status.head,
            status.streams,
            status.distinct_tags
        ),
        (5, Some(position(5)), 2, 6)
    );
    assert!(status.event_table_bytes >= empty.event_table_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_schema_never_migrated_is_a_schema_error() {
    let database = common::database().await;
    let store = database
        .store(StoreOptions::default().schema(SchemaName::new("never_migrated").unwrap()))
        .unwrap();
    let error = store.status().await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Schema, "{error}");
    let error = store
        .verify(&VerifyOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Schema, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_a_consistent_store_batch_by_batch() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let empty = store
        .verify(&VerifyOptions::default(), |_| {})
        .await
        .unwrap();
    assert!(empty.is_ok(), "{:?}", empty.faults);
    assert_eq!((empty.head, empty.checked_up_to), (None, None));

    filled(&store).await;
    let mut steps = Vec::new();
    let options = VerifyOptions::default().batch(NonZeroU64::new(2).unwrap());
    let report = store
        .verify(&options, |step| {
            steps.push((step.head.get(), step.checked_up_to.get()));
        })
        .await
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.faults);
    assert_eq!(
        (report.head, report.checked_up_to),
        (Some(position(5)), Some(position(5)))
    );
    assert_eq!(steps, vec![(5, 2), (5, 4), (5, 5)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_broken_mirror_rows_and_revisions() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    filled(&store).await;
    assert_eq!(common::mirror_mismatches(&store).await, 0);
    behind_factos_back(
        &store,
        "DELETE FROM {schema}.factos_event_tags WHERE position = 2 AND tag = 'k:2';
         INSERT INTO {schema}.factos_event_tags (tag, position) VALUES ('ghost', 5), ('ghost', 99);
         UPDATE {schema}.factos_events SET revision = 7 WHERE position = 5;
         INSERT INTO {schema}.factos_events (id, stream, revision, type, version, data)
             VALUES (gen_random_uuid(), 'c', 1, 'Happened', 1, '\\x7b7d'),
                    (gen_random_uuid(), 'c', 0, 'Happened', 1, '\\x7b7d')",
    )
    .await;
    let report = store
        .verify(&VerifyOptions::default(), |_| {})
        .await
        .unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.head, Some(position(7)));
    assert_eq!(
        report.faults,
        vec![
            Fault::MissingMirrorRow {
                position: position(2),
                tag: "k:2".to_string()
            },
            // The row at 99 is above the head: not looked at.
            Fault::ExtraMirrorRow {
                position: position(5),
                tag: "ghost".to_string()
            },
            Fault::RevisionsNotContiguous {
                stream: "b".to_string(),
                events: 2,
                first: 0,
                last: 7
            },
            Fault::PositionsNotIncreasing {
                stream: "c".to_string()
            },
        ]
    );
    let sentences: Vec<String> = report.faults.iter().map(ToString::to_string).collect();
    assert_eq!(
        sentences,
        [
            "event 2 carries tag \"k:2\" but the mirror has no row for it",
            "the mirror has tag \"ghost\" for position 5, which the event does not carry",
            "stream \"b\": 2 events with revisions 0..=7, expected 0..=1",
            "stream \"c\": positions do not increase with revisions",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_starts_no_batch_after_enough_faults() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    filled(&store).await;
    behind_factos_back(
        &store,
        "DELETE FROM {schema}.factos_event_tags WHERE position IN (1, 4) AND tag LIKE 'k:%'",
    )
    .await;
    let options = VerifyOptions::default()
        .batch(NonZeroU64::new(2).unwrap())
        .stop_after_faults(1);
    let report = store.verify(&options, |_| {}).await.unwrap();
    assert_eq!(report.checked_up_to, Some(position(2)));
    assert_eq!(
        report.faults,
        vec![Fault::MissingMirrorRow {
            position: position(1),
            tag: "k:1".to_string()
        }]
    );
    let all = store
        .verify(&VerifyOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(all.checked_up_to, Some(position(5)));
    assert_eq!(all.faults.len(), 2, "{:?}", all.faults);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_topics_count_messages_by_state() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    assert_eq!(
        store.outbox_topics().await.unwrap(),
        Vec::<OutboxTopic>::new()
    );
    let schema = store.options().schema.quoted();
    store
        .pool()
        .get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "INSERT INTO {schema}.factos_outbox (event_position, topic, payload) VALUES
                 (1, 'mail', 'x'), (2, 'mail', 'x'), (3, 'sms', 'x');
             -- Waiting after a failure's backoff.
             INSERT INTO {schema}.factos_outbox (event_position, topic, payload, available_at) VALUES
                 (4, 'mail', 'x', now() + interval '1 hour');
             INSERT INTO {schema}.factos_outbox (event_position, topic, payload, lease_token, available_at) VALUES
                 (5, 'mail', 'x', gen_random_uuid(), now() + interval '1 hour'),
                 (6, 'sms', 'x', gen_random_uuid(), now() + interval '1 hour');
             INSERT INTO {schema}.factos_outbox (event_position, topic, payload, parked_at) VALUES
                 (7, 'hook', 'x', now()), (8, 'sms', 'x', now())"
        ))
        .await
        .unwrap();
    let topics: Vec<(String, u64, u64, u64)> = store
        .outbox_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.topic, t.waiting, t.leased, t.parked))
        .collect();
    assert_eq!(
        topics,
        vec![
            ("hook".to_string(), 0, 0, 1),
            ("mail".to_string(), 3, 1, 0),
            ("sms".to_string(), 1, 1, 1),
        ]
    );
}
