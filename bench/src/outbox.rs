//! The outbox on the fast path: one client dispatching on a boundary of its
//! own through a warm cache (and, under the optimistic strategy, through the
//! free function, which reads first), plain, with an outbox reactor that
//! reacts to none of the events, and with one that records a message per
//! event. Interleaved per repeat, each repeat led by another subject, so
//! drift hits every subject alike.

use std::time::{Duration, Instant};

use factos::{
    Dispatcher, OutboxMessage, Query, Recorded, StreamId, Tag, Topic, dispatch_with_outbox,
    dispatch_with_query, reactor_fn,
};
use factos_postgres::throwaway::TempCluster;
use factos_postgres::{LockingStrategy, PostgresStore, SchemaName, StoreOptions};

use crate::{Booking, BoxError, TagCodec, booking_dispatcher, median};

/// How a subject dispatches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reacting {
    /// A plain dispatch.
    Plain,
    /// With an outbox reactor that reacts to no event.
    ToNone,
    /// With an outbox reactor that records one message per event.
    ToEvery,
}

const SUBJECTS: [(Reacting, &str); 3] = [
    (Reacting::Plain, "plain dispatch"),
    (Reacting::ToNone, "outbox, reactor reacts to none"),
    (Reacting::ToEvery, "outbox, one message per event"),
];

/// How the dispatches go to the store.
#[derive(Clone, Copy)]
enum Through {
    /// A dispatcher whose cache is warm (the cached path).
    WarmCache,
    /// The free function (a fresh read every dispatch).
    FreeFunction,
}

pub(crate) async fn measure(
    cluster: &TempCluster,
    repeats: usize,
    duration: Duration,
) -> Result<Vec<serde_json::Value>, BoxError> {
    let mut rows = Vec::new();
    println!("\n| outbox, 1 client | path | dispatches/s | ratio to plain |");
    println!("|---|---|---|---|");
    for (locking, through, path) in [
        (
            LockingStrategy::Scoped,
            Through::WarmCache,
            "Scoped, warm cache",
        ),
        (
            LockingStrategy::Optimistic,
            Through::FreeFunction,
            "Optimistic, free function",
        ),
        (
            LockingStrategy::Scoped,
            Through::FreeFunction,
            "Scoped, free function",
        ),
    ] {
        let store = PostgresStore::from_config(
            cluster.config("postgres"),
            4,
            StoreOptions::default()
                .locking(locking)
                .schema(SchemaName::new(
                    format!("outbox_{locking:?}").to_lowercase(),
                )?),
        )?;
        store.migrate().await?;
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); SUBJECTS.len()];
        for round in 0..repeats {
            // Each round starts with another subject, so no subject is
            // always the one timed after another.
            for step in 0..SUBJECTS.len() {
                let index = (round + step) % SUBJECTS.len();
                let reacting = SUBJECTS[index].0;
                let tag = format!("outbox:{round}:{index}:{path}");
                rates[index].push(rate(&store, through, reacting, &tag, duration).await?);
            }
        }
        let plain = median(rates[0].clone());
        for ((reacting, name), runs) in SUBJECTS.iter().zip(rates) {
            let rate = median(runs);
            println!("| {name} | {path} | {rate:.0} | {:.2} |", rate / plain);
            rows.push(serde_json::json!({
                "workload": "outbox", "path": path, "subject": name,
                "reacting": *reacting as u8, "per_s": rate, "ratio_to_plain": rate / plain,
            }));
        }
    }
    Ok(rows)
}

/// Dispatches per second of one client on a boundary of its own.
async fn rate(
    store: &PostgresStore,
    through: Through,
    reacting: Reacting,
    tag: &str,
    duration: Duration,
) -> Result<f64, BoxError> {
    let query = Query::tagged_with_all([Tag::new(tag)?]);
    let stream = StreamId::new(tag.replace(':', "-"))?;
    let topic = Topic::new("bench")?;
    let mail = reactor_fn(move |r: &Recorded<String>| {
        vec![OutboxMessage::new(
            topic.clone(),
            r.event.clone().into_bytes(),
        )]
    })
    .when(move |_: &String| reacting == Reacting::ToEvery);
    let dispatcher = booking_dispatcher(store);
    let command = tag.to_string();
    // Warm the cache (and the statements) before timing.
    dispatch_one(
        &dispatcher,
        through,
        reacting,
        &stream,
        &query,
        &command,
        &mail,
    )
    .await?;
    let started = Instant::now();
    let mut done = 0u32;
    while started.elapsed() < duration {
        dispatch_one(
            &dispatcher,
            through,
            reacting,
            &stream,
            &query,
            &command,
            &mail,
        )
        .await?;
        done += 1;
    }
    Ok(f64::from(done) / started.elapsed().as_secs_f64())
}

async fn dispatch_one<R>(
    dispatcher: &Dispatcher<PostgresStore, Booking, TagCodec>,
    through: Through,
    reacting: Reacting,
    stream: &StreamId,
    query: &Query,
    command: &String,
    mail: &R,
) -> Result<(), BoxError>
where
    R: factos::Reactor<Event = String, Effect = OutboxMessage> + Clone + Send + Sync + 'static,
{
    let store = dispatcher.store();
    let outcome = match (through, reacting) {
        (Through::WarmCache, Reacting::Plain) => {
            dispatcher.dispatch_with_query(stream, query, command).await
        }
        (Through::WarmCache, _) => {
            dispatcher
                .dispatch_with_outbox(stream, query, command, mail)
                .await
        }
        (Through::FreeFunction, Reacting::Plain) => {
            dispatch_with_query(store, stream, query, &Booking, &codec(), command).await
        }
        (Through::FreeFunction, _) => {
            dispatch_with_outbox(store, stream, query, &Booking, &codec(), command, mail).await
        }
    };
    outcome.map(|_| ()).map_err(|e| format!("{e:?}").into())
}

fn codec() -> TagCodec {
    TagCodec {
        event_type: "Booked",
    }
}
