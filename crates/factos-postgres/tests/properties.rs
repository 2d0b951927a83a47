//! Random values at the PostgreSQL store: whatever the names and payloads
//! (unicode, SQL metacharacters, sizes around the limits), an append is
//! stored and read back verbatim, or refused with a typed error and nothing
//! written.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use factos::{
    AppendCondition, AppendError, EventStore, EventType, Metadata, NewEvent, Query, ReadOptions,
    StoreLimits, StreamId, Tags,
};
use factos_postgres::StoreOptions;
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('a'),
            Just('\''),
            Just('"'),
            Just(';'),
            Just('%'),
            Just('\\'),
            Just('é'),
            Just('名'),
            Just('🎟'),
            Just(' '),
            Just('$')
        ],
        1..40,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

#[derive(Debug, Clone)]
struct Batch {
    event_type: String,
    tags: Vec<String>,
    note: String,
    sizes: Vec<usize>,
}

fn batch() -> impl Strategy<Value = Batch> {
    (
        name(),
        prop::collection::vec(name(), 0..4),
        name(),
        prop::collection::vec(0usize..2048, 0..6),
    )
        .prop_map(|(event_type, tags, note, sizes)| Batch {
            event_type,
            tags,
            note,
            sizes,
        })
}

#[test]
fn random_appends_round_trip_or_write_nothing() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let database = runtime.block_on(common::database());
    let limits = StoreLimits::default()
        .with_max_payload_bytes(1500)
        .with_max_events_per_append(4);
    let store = runtime.block_on(common::store_in(
        &database,
        StoreOptions::default().limits(limits),
    ));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(48));
    runner
        .run(&batch(), |batch| {
            runtime.block_on(async {
                let before = store
                    .read(&Query::all(), ReadOptions::default())
                    .await
                    .unwrap()
                    .events
                    .len();
                let tags = Tags::parse(batch.tags.clone()).unwrap();
                let metadata = Metadata::new().with("note", batch.note.clone()).unwrap();
                let events: Vec<NewEvent> = batch
                    .sizes
                    .iter()
                    .map(|n| {
                        NewEvent::new(
                            EventType::new(batch.event_type.clone()).unwrap(),
                            (0..*n)
                                .map(|i| u8::try_from(i % 251).unwrap_or(0))
                                .collect(),
                        )
                        .with_tags(tags.clone())
                        .with_metadata(metadata.clone())
                    })
                    .collect();
                let valid = batch.sizes.len() <= 4 && batch.sizes.iter().all(|n| *n <= 1500);
                let stream = StreamId::new(format!("s {}", batch.note)).unwrap();
                let outcome = store
                    .append(&stream, events.clone(), AppendCondition::None)
                    .await;
                let after = store
                    .read(&Query::all(), ReadOptions::default())
                    .await
                    .unwrap()
                    .events;
                match outcome {
                    Ok(committed) => {
                        assert!(valid);
                        let stored = &after[before..];
                        assert_eq!(stored, &committed.events[..]);
                        for (stored, sent) in stored.iter().zip(&events) {
                            assert_eq!(
                                (
                                    &stored.event_type,
                                    &stored.tags,
                                    &stored.metadata,
                                    &stored.data,
                                    stored.id
                                ),
                                (
                                    &sent.event_type,
                                    &sent.tags,
                                    &sent.metadata,
                                    &sent.data,
                                    sent.id
                                )
                            );
                        }
                    }
                    Err(AppendError::Invalid(_)) => {
                        assert!(!valid);
                        assert_eq!(after.len(), before, "a refused append wrote something");
                    }
                    Err(e) => panic!("unexpected {e}"),
                }
            });
            Ok(())
        })
        .unwrap();
}
