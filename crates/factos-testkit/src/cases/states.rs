//! Cases of decisions over several states: each part is fed only the
//! events its own query matches, an event several match feeds each, and
//! the decision's context is their union, through a free-function dispatch
//! and through a dispatcher's cache.

use factos::states::{StatePart, StatesDecider, over_states};
use factos::{Dispatcher, EventStore, Query, StreamId, dispatch_with_query};

use super::{item, query, seed};
use crate::CaseResult;
use crate::model::{KitCodec, KitEvent};

/// Counts the events of one tag.
#[derive(Debug, Clone)]
struct Count {
    tag: &'static str,
    seen: usize,
}

impl StatePart for Count {
    type Event = KitEvent;

    fn query(&self) -> Query {
        query(&[], &[self.tag]).unwrap_or_else(|e| unreachable!("the kit's tag: {e}"))
    }

    fn evolve(mut self, _: &KitEvent) -> Self {
        self.seen += 1;
        self
    }
}

/// Reports the counts it decided on, in an event tagged with the first part's tag.
struct Report;

impl StatesDecider for Report {
    type States = Vec<Count>;
    type Command = ();
    type Event = KitEvent;
    type Error = String;

    fn decide(&self, parts: &Vec<Count>, (): &()) -> Result<Vec<KitEvent>, String> {
        let first = parts.first().ok_or("no part")?;
        let counts: Vec<String> = parts.iter().map(|c| c.seen.to_string()).collect();
        Ok(vec![
            KitEvent::new("Report", &[first.tag]).with_body(counts.join(",")),
        ])
    }
}

fn count(tag: &'static str) -> Count {
    Count { tag, seen: 0 }
}

pub(super) async fn composed_states_fold_only_their_own_events<S: EventStore + Clone>(
    store: S,
) -> CaseResult {
    seed(
        &store,
        &[
            ("T", &["a:1"]),
            ("T", &["b:1"]),
            ("T", &["a:1", "b:1"]),
            ("T", &["c:1"]),
            ("T", &["b:1"]),
            ("T", &["d:1"]),
        ],
    )
    .await?;
    let decision = over_states(Report, vec![count("a:1"), count("b:1"), count("c:1")]);
    let union = Query::from_items([
        item(&[], &["a:1"])?,
        item(&[], &["b:1"])?,
        item(&[], &["c:1"])?,
    ]);
    ensure_eq!(
        decision.query(),
        &union,
        "the context is the union of the parts' queries"
    );
    let stream = StreamId::new("report").map_err(|e| e.to_string())?;
    let free = dispatch_with_query(
        &store,
        &stream,
        decision.query(),
        &decision,
        &KitCodec::default(),
        &(),
    )
    .await
    .map_err(|e| format!("free dispatch: {e:?}"))?;
    // a:1 two (one shared with b:1), b:1 three, c:1 one; d:1 is no part's.
    ensure_eq!(
        free.events[0].event.body,
        "2,3,1",
        "counts from the fresh fold"
    );
    // Through a cache: the first decision folds the log, the second also
    // its own report (tagged a:1, so the first part's only).
    let dispatcher = Dispatcher::new(store.clone(), decision, KitCodec::default());
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let dispatch = dispatcher
            .dispatch_with_query(&stream, &union, &())
            .await
            .map_err(|e| format!("cached dispatch: {e:?}"))?;
        bodies.push(dispatch.events[0].event.body.clone());
    }
    ensure_eq!(bodies, vec!["3,3,1", "4,3,1"], "counts through the cache");
    Ok(())
}
