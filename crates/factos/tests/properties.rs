//! Random values thrown at the public API: every value is either accepted or
//! refused with a typed error that matches the documented limits; nothing
//! panics; a refused append writes nothing.

#![allow(clippy::unwrap_used, clippy::panic)]

use factos::{
    AppendCondition, AppendError, EventStore, EventType, InMemoryStore, MAX_EVENT_TYPE_BYTES,
    MAX_TAGS_PER_EVENT, Metadata, NewEvent, Query, ReadOptions, StoreLimits, StreamId, Tag, Tags,
};
use proptest::prelude::*;

/// Strings mixing plain text, unicode, SQL metacharacters and control characters.
fn awkward_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('a'),
            Just('Z'),
            Just('7'),
            Just(':'),
            Just('\''),
            Just('"'),
            Just(';'),
            Just('%'),
            Just('_'),
            Just('\\'),
            Just('é'),
            Just('名'),
            Just('🎟'),
            Just(' '),
            Just('\0'),
            Just('\n'),
            Just('\u{1f}'),
            Just('\u{7f}'),
        ],
        0..200,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn valid_name(value: &str, max_bytes: usize) -> bool {
    !value.is_empty() && value.len() <= max_bytes && !value.chars().any(char::is_control)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn names_follow_the_documented_limits(value in awkward_string()) {
        prop_assert_eq!(EventType::new(value.clone()).is_ok(), valid_name(&value, MAX_EVENT_TYPE_BYTES));
        prop_assert_eq!(Tag::new(value.clone()).is_ok(), valid_name(&value, factos::MAX_TAG_BYTES));
        prop_assert_eq!(StreamId::new(value.clone()).is_ok(), valid_name(&value, factos::MAX_STREAM_BYTES));
        let metadata = Metadata::new().with("key", value.clone());
        prop_assert_eq!(metadata.is_ok(), value.len() <= factos::MAX_METADATA_VALUE_BYTES && !value.contains('\0'));
    }

    #[test]
    fn tag_sets_are_bounded(values in prop::collection::vec("[a-c]{1,3}", 0..60)) {
        let distinct: std::collections::BTreeSet<&String> = values.iter().collect();
        prop_assert_eq!(Tags::parse(values.iter().cloned()).is_ok(), distinct.len() <= MAX_TAGS_PER_EVENT);
    }

    #[test]
    fn appends_are_whole_or_nothing(
        sizes in prop::collection::vec(0usize..96, 0..12),
        max_payload in 1usize..80,
        max_events in 1usize..10,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let limits = StoreLimits::default().with_max_payload_bytes(max_payload).with_max_events_per_append(max_events);
            let store = InMemoryStore::with_limits(limits);
            let events: Vec<NewEvent> = sizes.iter().map(|n| NewEvent::new(EventType::new("E").unwrap(), vec![1; *n])).collect();
            let valid = sizes.len() <= max_events && sizes.iter().all(|n| *n <= max_payload);
            let outcome = store.append(&StreamId::new("s").unwrap(), events, AppendCondition::None).await;
            let stored = store.read(&Query::all(), ReadOptions::default()).await.unwrap().events;
            match outcome {
                Ok(committed) => {
                    assert!(valid);
                    assert_eq!(committed.events, stored);
                    assert_eq!(stored.iter().map(|e| e.data.len()).collect::<Vec<_>>(), sizes);
                }
                Err(AppendError::Invalid(_)) => {
                    assert!(!valid);
                    assert!(stored.is_empty(), "a refused append wrote something");
                }
                Err(e) => panic!("unexpected {e}"),
            }
        });
    }
}

/// A codec that panics while encoding is caught like a panicking decider:
/// a typed error, nothing written, the store still usable.
#[test]
fn a_panicking_codec_writes_nothing() {
    struct Exploding;
    impl factos::Codec for Exploding {
        type Event = u8;
        fn encode(&self, _: &u8) -> Result<NewEvent, factos::EncodeError> {
            panic!("the codec panicked on purpose")
        }
        fn decode(&self, _: &factos::StoredEvent) -> Result<u8, factos::DecodeError> {
            panic!("the codec panicked on purpose")
        }
    }
    struct Once;
    impl factos::Decider for Once {
        type State = ();
        type Command = ();
        type Event = u8;
        type Error = ();
        fn initial(&self) {}
        fn decide(&self, (): &(), (): &()) -> Result<Vec<u8>, ()> {
            Ok(vec![1])
        }
        fn evolve(&self, (): (), _: &u8) {}
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = InMemoryStore::new();
        let outcome = factos::dispatch_with_query(
            &store,
            &StreamId::new("s").unwrap(),
            &Query::all(),
            &Once,
            &Exploding,
            &(),
        )
        .await;
        assert!(
            matches!(
                outcome,
                Err(factos::DispatchError::Panicked {
                    during: "codec encode",
                    ..
                })
            ),
            "{outcome:?}"
        );
        assert!(store.is_empty());
        // Decoding panics are caught too, once there is a row to decode.
        store
            .append(
                &StreamId::new("s").unwrap(),
                vec![NewEvent::new(EventType::new("E").unwrap(), vec![])],
                AppendCondition::None,
            )
            .await
            .unwrap();
        let outcome = factos::dispatch_with_query(
            &store,
            &StreamId::new("s").unwrap(),
            &Query::all(),
            &Once,
            &Exploding,
            &(),
        )
        .await;
        assert!(
            matches!(
                outcome,
                Err(factos::DispatchError::Panicked {
                    during: "codec decode",
                    ..
                })
            ),
            "{outcome:?}"
        );
        assert_eq!(store.len(), 1);
    });
}
