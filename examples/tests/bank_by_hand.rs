//! The bank's domain written without the derive macro and composed states,
//! as a user wrote it before them: the events' type names and tags by hand,
//! the queries built by hand, a transfer's two balances folded into one
//! hand-made state. The test checks it is the same domain as
//! `factos_examples::bank` (same stored types, tags, versions and
//! payloads; the same decisions on the same log), so the two can be
//! compared line for line (the note of issue 18 gives the counts).

#![allow(clippy::unwrap_used, clippy::panic)]

use factos::json::{JsonCodec, JsonEvent};
use factos::states::over_states;
use factos::{
    Codec, Decider, DispatchError, InMemoryStore, Query, QueryItem, StreamId, Tag,
    dispatch_with_query,
};
use factos_examples::bank::{Account, BankEvent, Refusal, Transfer, TwoAccounts};
use serde::{Deserialize, Serialize};

// ---- the domain by hand (what the comparison counts starts here) ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum HandEvent {
    Opened {
        account: String,
        owner: String,
    },
    Deposited {
        account: String,
        cents: i64,
    },
    Withdrawn {
        account: String,
        cents: i64,
    },
    Transferred {
        from: String,
        to: String,
        cents: i64,
    },
}

const OPENED: &str = "Opened";
const DEPOSITED: &str = "Deposited";
const WITHDRAWN: &str = "Withdrawn";
const TRANSFERRED: &str = "Transferred";

impl JsonEvent for HandEvent {
    const EVENT_TYPES: &'static [&'static str] = &[OPENED, DEPOSITED, WITHDRAWN, TRANSFERRED];
    fn event_type(&self) -> &'static str {
        match self {
            Self::Opened { .. } => OPENED,
            Self::Deposited { .. } => DEPOSITED,
            Self::Withdrawn { .. } => WITHDRAWN,
            Self::Transferred { .. } => TRANSFERRED,
        }
    }
    fn tags(&self) -> Vec<String> {
        match self {
            Self::Opened { account, .. }
            | Self::Deposited { account, .. }
            | Self::Withdrawn { account, .. } => vec![format!("account:{account}")],
            Self::Transferred { from, to, .. } => {
                vec![format!("account:{from}"), format!("account:{to}")]
            }
        }
    }
}

fn account_query(account: &str) -> Query {
    Query::from_items([QueryItem::from_parts(
        HandEvent::EVENT_TYPES
            .iter()
            .map(|t| factos::EventType::new(*t).unwrap()),
        [Tag::new(format!("account:{account}")).unwrap()],
    )])
}

fn apply(mut account: Account, event: &HandEvent) -> Account {
    match event {
        HandEvent::Opened { owner, .. } => account.owner = Some(owner.clone()),
        HandEvent::Withdrawn { cents, .. } => account.cents -= cents,
        HandEvent::Transferred { from, cents, .. } if *from == account.id => {
            account.cents -= cents;
        }
        HandEvent::Deposited { cents, .. } | HandEvent::Transferred { cents, .. } => {
            account.cents += cents;
        }
    }
    account
}

fn concerns(account: &Account, event: &HandEvent) -> bool {
    match event {
        HandEvent::Opened { account: a, .. }
        | HandEvent::Deposited { account: a, .. }
        | HandEvent::Withdrawn { account: a, .. } => *a == account.id,
        HandEvent::Transferred { from, to, .. } => *from == account.id || *to == account.id,
    }
}

/// A transfer's two balances in one state, each event applied to the
/// accounts it names.
struct TransferByHand {
    from: String,
    to: String,
}

impl TransferByHand {
    fn query(&self) -> Query {
        Query::from_items(
            account_query(&self.from)
                .items()
                .iter()
                .chain(account_query(&self.to).items())
                .cloned(),
        )
    }
}

impl Decider for TransferByHand {
    type State = (Account, Account);
    type Command = Transfer;
    type Event = HandEvent;
    type Error = Refusal;

    fn initial(&self) -> (Account, Account) {
        (
            Account::named(&self.from).unwrap(),
            Account::named(&self.to).unwrap(),
        )
    }

    fn decide(
        &self,
        (from, to): &(Account, Account),
        transfer: &Transfer,
    ) -> Result<Vec<HandEvent>, Refusal> {
        if from.id == to.id {
            return Err(Refusal::SameAccount);
        }
        if transfer.cents <= 0 {
            return Err(Refusal::NotPositive);
        }
        for account in [from, to] {
            if account.owner.is_none() {
                return Err(Refusal::NoAccount(account.id.clone()));
            }
        }
        if transfer.cents > from.cents {
            return Err(Refusal::Insufficient {
                account: from.id.clone(),
                cents: from.cents,
            });
        }
        Ok(vec![HandEvent::Transferred {
            from: from.id.clone(),
            to: to.id.clone(),
            cents: transfer.cents,
        }])
    }

    fn evolve(&self, (from, to): (Account, Account), event: &HandEvent) -> (Account, Account) {
        let from = if concerns(&from, event) {
            apply(from, event)
        } else {
            from
        };
        let to = if concerns(&to, event) {
            apply(to, event)
        } else {
            to
        };
        (from, to)
    }
}

// ---- end of the domain by hand ----

fn same(derived: &BankEvent) -> HandEvent {
    serde_json::from_slice(&serde_json::to_vec(derived).unwrap()).unwrap()
}

fn history() -> Vec<BankEvent> {
    vec![
        BankEvent::Opened {
            account: "a".into(),
            owner: "ana".into(),
        },
        BankEvent::Opened {
            account: "b".into(),
            owner: "bo".into(),
        },
        BankEvent::Deposited {
            account: "a".into(),
            cents: 100,
        },
        BankEvent::Withdrawn {
            account: "a".into(),
            cents: 30,
        },
        BankEvent::Transferred {
            from: "a".into(),
            to: "b".into(),
            cents: 50,
        },
        BankEvent::Deposited {
            account: "c".into(),
            cents: 7,
        },
    ]
}

#[test]
fn the_domain_by_hand_stores_as_the_derived_one() {
    let log = history();
    let (derived_codec, hand_codec) =
        (JsonCodec::<BankEvent>::new(), JsonCodec::<HandEvent>::new());
    for event in &log {
        let (derived, hand) = (
            derived_codec.encode(event).unwrap(),
            hand_codec.encode(&same(event)).unwrap(),
        );
        assert_eq!(
            (
                &derived.event_type,
                &derived.tags,
                derived.version,
                &derived.data
            ),
            (&hand.event_type, &hand.tags, hand.version, &hand.data),
            "{event:?}"
        );
    }
    assert_eq!(BankEvent::account_query("a").unwrap(), account_query("a"));
}

#[tokio::test]
async fn the_domain_by_hand_decides_as_the_derived_one() {
    let log = history();
    let (derived_codec, hand_codec) =
        (JsonCodec::<BankEvent>::new(), JsonCodec::<HandEvent>::new());
    // The same transfers on the same log decide alike (each version on a
    // store of its own, seeded alike).
    let seeded = || async {
        let store = InMemoryStore::new();
        let encoded = log
            .iter()
            .map(|e| derived_codec.encode(e).unwrap())
            .collect();
        factos::EventStore::append(
            &store,
            &StreamId::new("seed").unwrap(),
            encoded,
            factos::AppendCondition::None,
        )
        .await
        .unwrap();
        store
    };
    let (derived_store, hand_store) = (seeded().await, seeded().await);
    for cents in [10, 15, 5, 100, 0] {
        let transfer = Transfer {
            from: "a".into(),
            to: "b".into(),
            cents,
        };
        let composed = over_states(
            TwoAccounts,
            (Account::named("a").unwrap(), Account::named("b").unwrap()),
        );
        let derived = dispatch_with_query(
            &derived_store,
            &StreamId::unique(),
            composed.query(),
            &composed,
            &derived_codec,
            &transfer,
        )
        .await
        .map(|d| d.events.len());
        let by_hand = TransferByHand {
            from: "a".into(),
            to: "b".into(),
        };
        let hand = dispatch_with_query(
            &hand_store,
            &StreamId::unique(),
            &by_hand.query(),
            &by_hand,
            &hand_codec,
            &transfer,
        )
        .await
        .map(|d| d.events.len());
        match (&derived, &hand) {
            (Ok(1), Ok(1)) => {}
            (Err(DispatchError::Domain(a)), Err(DispatchError::Domain(b))) if a == b => {}
            other => panic!("{cents} cents: {other:?}"),
        }
    }
}
