//! Keys and versions that must not be confused: snapshot keys of different
//! queries, and an event whose stated version is out of step with its
//! upcasting chain.

#![allow(clippy::unwrap_used)]

use factos::json::{JsonCodec, JsonEvent};
use factos::snapshot::SnapshotKey;
use factos::{Codec, EncodeError, Query, Tag};

#[test]
fn snapshot_keys_of_different_queries_differ_even_when_their_text_is_alike() {
    let two_tags = Query::tagged_with_all([Tag::new("a").unwrap(), Tag::new("b").unwrap()]);
    let one_tag = Query::tagged_with_all([Tag::new("a, b").unwrap()]);
    assert_eq!(
        two_tags.to_string(),
        one_tag.to_string(),
        "the display text is alike"
    );
    let key = |q: &Query| SnapshotKey::new("d", 1, q);
    assert_ne!(key(&two_tags), key(&one_tag));
    assert_ne!(key(&two_tags).query_digest(), key(&one_tag).query_digest());
    assert_eq!(
        key(&two_tags),
        key(&two_tags.clone()),
        "a query's key is stable"
    );
    assert_ne!(key(&Query::all()), key(&two_tags));
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Deposited {
    cents: u64,
}

impl JsonEvent for Deposited {
    const EVENT_TYPES: &'static [&'static str] = &["Deposited"];
    fn event_type(&self) -> &'static str {
        "Deposited"
    }
    fn tags(&self) -> Vec<String> {
        Vec::new()
    }
    fn version(&self) -> u32 {
        3
    }
}

#[test]
fn an_event_whose_version_is_past_its_upcasting_chain_is_not_encoded() {
    // The code's events are at version 3, but only the step 1 -> 2 exists:
    // written as 2, they would be upcast again when read.
    let codec = JsonCodec::<Deposited>::new().upcasting("Deposited", 1, Ok);
    let refused = codec.encode(&Deposited { cents: 5 });
    assert!(
        matches!(refused, Err(EncodeError::Serialize(ref m)) if m.contains("version 3")),
        "{refused:?}"
    );
    let in_step = JsonCodec::<Deposited>::new()
        .upcasting("Deposited", 1, Ok)
        .upcasting("Deposited", 2, Ok);
    assert_eq!(in_step.encode(&Deposited { cents: 5 }).unwrap().version, 3);
}
