//! Store limits hold exactly at their bounds: a batch of exactly the most
//! events and a payload of exactly the most bytes are appended, one more is
//! refused with a typed error and writes nothing.

#![allow(clippy::unwrap_used, clippy::panic)]

use factos::{
    AppendCondition, AppendError, EventStore, EventType, InMemoryStore, NewEvent, StoreLimits,
    StreamId, ValidationError,
};

fn events(count: usize, len: usize) -> Vec<NewEvent> {
    (0..count)
        .map(|_| NewEvent::new(EventType::new("E").unwrap(), vec![0; len]))
        .collect()
}

#[tokio::test]
async fn limits_hold_exactly_at_their_bounds() {
    let limits = StoreLimits::default()
        .with_max_events_per_append(3)
        .with_max_payload_bytes(4);
    assert_eq!(
        (limits.max_events_per_append, limits.max_payload_bytes),
        (3, 4)
    );
    let store = InMemoryStore::with_limits(limits);
    let stream = StreamId::new("s").unwrap();
    store
        .append(&stream, events(3, 4), AppendCondition::None)
        .await
        .unwrap();
    let too_many = store
        .append(&stream, events(4, 1), AppendCondition::None)
        .await;
    assert!(
        matches!(
            too_many,
            Err(AppendError::Invalid(ValidationError::TooManyEvents {
                count: 4,
                max: 3
            }))
        ),
        "{too_many:?}"
    );
    let too_large = store
        .append(&stream, events(1, 5), AppendCondition::None)
        .await;
    assert!(
        matches!(
            too_large,
            Err(AppendError::Invalid(ValidationError::PayloadTooLarge {
                len_bytes: 5,
                max_bytes: 4
            }))
        ),
        "{too_large:?}"
    );
    assert_eq!(store.len(), 3);
    assert_eq!(store.all_events().len(), 3);
    assert!(!store.is_empty());
}
