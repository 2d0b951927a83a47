//! `#[derive(factos::Event)]` through a store: the derived codec writes the
//! declared types, versions and tags, reads them back, and the derived
//! queries select exactly the events of one tag value.

#![allow(clippy::unwrap_used)]

use factos::json::{JsonCodec, JsonEvent};
use factos::{AppendCondition, Codec, EventStore, InMemoryStore, ReadOptions, StreamId};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, factos::Event)]
enum Bank {
    #[event(name = "AccountOpened")]
    Opened {
        #[tag("account")]
        account: String,
        owner: String,
    },
    #[event(version = 2)]
    Deposited {
        #[tag("account")]
        account: String,
        cents: i64,
    },
    Moved {
        #[tag("account")]
        from: String,
        #[tag("account")]
        to: String,
        cents: i64,
    },
    Closed(#[tag("account")] String, #[tag("branch")] u32),
    Audited,
}

#[tokio::test]
async fn derived_events_are_stored_as_declared_and_queried_by_tag() {
    let store = InMemoryStore::new();
    let codec = JsonCodec::<Bank>::new();
    let events = vec![
        Bank::Opened {
            account: "a".into(),
            owner: "ana".into(),
        },
        Bank::Deposited {
            account: "a".into(),
            cents: 100,
        },
        Bank::Moved {
            from: "a".into(),
            to: "b".into(),
            cents: 30,
        },
        Bank::Closed("b".into(), 7),
        Bank::Audited,
    ];
    let encoded = events
        .iter()
        .map(|e| codec.encode(e).unwrap())
        .collect::<Vec<_>>();
    store
        .append(&StreamId::new("s").unwrap(), encoded, AppendCondition::None)
        .await
        .unwrap();
    let all = store
        .read(&factos::Query::all(), ReadOptions::default())
        .await
        .unwrap()
        .events;
    let stored: Vec<(&str, u32, Vec<&str>)> = all
        .iter()
        .map(|e| {
            (
                e.event_type.as_str(),
                e.version,
                e.tags.iter().map(factos::Tag::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        stored,
        vec![
            ("AccountOpened", 1, vec!["account:a"]),
            ("Deposited", 2, vec!["account:a"]),
            ("Moved", 1, vec!["account:a", "account:b"]),
            ("Closed", 1, vec!["account:b", "branch:7"]),
            ("Audited", 1, vec![]),
        ]
    );
    let decoded: Vec<Bank> = all.iter().map(|e| codec.decode(e).unwrap()).collect();
    assert_eq!(decoded, events);
    let of_b = store
        .read(&Bank::account_query("b").unwrap(), ReadOptions::default())
        .await
        .unwrap()
        .events;
    let types: Vec<&str> = of_b.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, [Bank::MOVED, Bank::CLOSED]);
    assert_eq!(Bank::branch_tag(7).unwrap().as_str(), "branch:7");
    assert_eq!(Bank::OPENED, "AccountOpened");
    assert_eq!(
        Bank::EVENT_TYPES,
        ["AccountOpened", "Deposited", "Moved", "Closed", "Audited"]
    );
}
