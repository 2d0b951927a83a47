//! Decisions whose append condition is narrower than their read
//! (`dispatch_with_condition`): an event of the read but not of the
//! condition, committed while the decision decides, does not make it decide
//! again; an event of the condition does; under every strategy. The same
//! event under the full condition (`dispatch_with_query`) does.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use factos::{
    AppendCondition, Decider, EventStore, Query, QueryItem, StreamId, dispatch_with_condition,
    dispatch_with_query,
};
use factos_postgres::{LockingStrategy, PostgresStore, StoreOptions};
use factos_testkit::model::{KitCodec, KitEvent};

/// Withdraws once; its first decision waits while `meanwhile` commits.
struct Withdraw {
    store: PostgresStore,
    meanwhile: &'static str,
    decisions: AtomicUsize,
}

impl Decider for Withdraw {
    type State = usize;
    type Command = ();
    type Event = KitEvent;
    type Error = String;

    fn initial(&self) -> usize {
        0
    }

    fn decide(&self, _: &usize, (): &()) -> Result<Vec<KitEvent>, String> {
        if self.decisions.fetch_add(1, Ordering::SeqCst) == 0 {
            // Another writer commits between this decision's read and its
            // append (the optimistic path holds no lock while deciding).
            let event = KitEvent::new(self.meanwhile, &["account:a"]);
            let store = self.store.clone();
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    store
                        .append(
                            &StreamId::new("other").unwrap(),
                            vec![factos::Codec::encode(&KitCodec::default(), &event).unwrap()],
                            AppendCondition::None,
                        )
                        .await
                        .unwrap();
                });
            });
        }
        Ok(vec![KitEvent::new("Withdrawn", &["account:a"])])
    }

    fn evolve(&self, seen: usize, _: &KitEvent) -> usize {
        seen + 1
    }
}

fn account() -> Query {
    Query::tagged_with_all([factos::Tag::new("account:a").unwrap()])
}

fn withdrawals() -> Query {
    Query::from_items([QueryItem::parse(["Withdrawn"], ["account:a"]).unwrap()])
}

/// How many times the withdrawal decided.
async fn decisions(locking: LockingStrategy, meanwhile: &'static str, narrow: bool) -> usize {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default().locking(locking)).await;
    let withdraw = Withdraw {
        store: store.clone(),
        meanwhile,
        decisions: AtomicUsize::new(0),
    };
    let stream = StreamId::new("account-a").unwrap();
    let codec = KitCodec::default();
    let outcome = if narrow {
        dispatch_with_condition(
            &store,
            &stream,
            &account(),
            &withdrawals(),
            &withdraw,
            &codec,
            &(),
        )
        .await
    } else {
        dispatch_with_query(&store, &stream, &account(), &withdraw, &codec, &()).await
    };
    let dispatch = outcome.unwrap_or_else(|e| panic!("{locking:?}: {e:?}"));
    assert_eq!(dispatch.events.len(), 1, "{locking:?}");
    withdraw.decisions.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrower_condition_lets_other_events_of_the_read_pass() {
    for locking in [
        LockingStrategy::Scoped,
        LockingStrategy::TableLock,
        LockingStrategy::Optimistic,
    ] {
        assert_eq!(
            decisions(locking, "Deposited", true).await,
            1,
            "{locking:?}: a deposit meanwhile made the withdrawal decide again"
        );
        assert_eq!(
            decisions(locking, "Withdrawn", true).await,
            2,
            "{locking:?}: a withdrawal meanwhile did not make it decide again"
        );
    }
    // Under the full condition the deposit conflicts (the optimistic path
    // decides again; the pessimistic ones would make the deposit wait).
    assert_eq!(
        decisions(LockingStrategy::Optimistic, "Deposited", false).await,
        2
    );
}
