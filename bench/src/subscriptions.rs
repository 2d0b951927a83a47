//! Durable subscriptions: how fast a subscriber catches up on the log, and
//! how long a committed event takes to reach a live subscriber in another
//! "process" (its own pool, woken by `NOTIFY`) while 16 clients dispatch.
//! Writers run with and without the live subscriber, interleaved, so its
//! cost to them shows as a ratio.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use factos::{EventType, Query, StoredEvent, StreamId, dispatch_with_query};
use factos_postgres::tokio_postgres::Transaction;
use factos_postgres::{
    EventHandler, PostgresStore, ProjectionHandler, Subscription, SubscriptionOptions,
};

use crate::{Booking, BoxError, TagCodec, median, percentile};

/// Counts what it is handed.
struct Count(usize);

impl EventHandler for Count {
    type Error = std::convert::Infallible;
    async fn handle(&mut self, events: &[StoredEvent]) -> Result<(), Self::Error> {
        self.0 += events.len();
        Ok(())
    }
}

/// Writes one row per batch in the checkpoint's transaction: the
/// exactly-once machinery's own cost, with the smallest possible projection.
struct OneRowPerBatch;

impl ProjectionHandler for OneRowPerBatch {
    type Error = factos_postgres::tokio_postgres::Error;
    async fn apply(
        &mut self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), Self::Error> {
        let last = i64::try_from(events.last().map_or(0, |e| e.position.get())).unwrap_or(0);
        let count = i64::try_from(events.len()).unwrap_or(0);
        tx.execute(
            "INSERT INTO bench_projection (last_position, events) VALUES ($1, $2)",
            &[&last, &count],
        )
        .await?;
        Ok(())
    }
}

/// Records when each position arrived.
struct Arrivals(Arc<Mutex<HashMap<u64, Instant>>>);

impl EventHandler for Arrivals {
    type Error = std::convert::Infallible;
    async fn handle(&mut self, events: &[StoredEvent]) -> Result<(), Self::Error> {
        let now = Instant::now();
        let mut arrived = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for event in events {
            arrived.insert(event.position.get(), now);
        }
        Ok(())
    }
}

/// Catch-up rates and live lag; prints tables, returns JSON rows.
pub(crate) async fn measure(
    store: &PostgresStore,
    subscriber_store: &PostgresStore,
    duration: Duration,
    repeats: usize,
) -> Result<Vec<serde_json::Value>, BoxError> {
    let mut rows = Vec::new();
    let client = store.pool().get().await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS bench_projection (last_position bigint, events bigint)",
        )
        .await?;
    drop(client);
    rows.extend(catch_up_rates(store, repeats).await?);
    rows.push(live_lag(store, subscriber_store, duration, repeats).await?);
    Ok(rows)
}

/// Catch-up over the whole log, at least once and exactly once.
async fn catch_up_rates(
    store: &PostgresStore,
    repeats: usize,
) -> Result<Vec<serde_json::Value>, BoxError> {
    let mut rows = Vec::new();
    println!(
        "\n| subscription catch-up (whole log, batches of 1000) | events | events/s (median) |"
    );
    println!("|---|---|---|");
    for exactly_once in [false, true] {
        let mut rates = Vec::new();
        let mut events = 0;
        for r in 0..repeats {
            let kind = if exactly_once {
                "projection"
            } else {
                "handler"
            };
            let subscription =
                Subscription::new(store, &format!("catch-up-{kind}-{r}"), Query::all())?
                    .with_options(SubscriptionOptions::default().batch_size(1000))?;
            let started = Instant::now();
            events = if exactly_once {
                subscription
                    .catch_up_projection(&mut OneRowPerBatch)
                    .await?
            } else {
                subscription.catch_up(&mut Count(0)).await?
            };
            #[allow(clippy::cast_precision_loss)]
            rates.push(events as f64 / started.elapsed().as_secs_f64());
        }
        let rate = median(rates);
        let name = if exactly_once {
            "exactly once (transaction + checkpoint per batch)"
        } else {
            "at least once (EventHandler)"
        };
        println!("| {name} | {events} | {rate:.0} |");
        rows.push(serde_json::json!({"workload": "subscription-catch-up", "mode": name, "events": events, "events_per_s_median": rate}));
    }
    Ok(rows)
}

/// Writes with and without a live subscriber, and the subscriber's lag.
async fn live_lag(
    store: &PostgresStore,
    subscriber_store: &PostgresStore,
    duration: Duration,
    repeats: usize,
) -> Result<serde_json::Value, BoxError> {
    println!(
        "\n| live subscriber, 16 writers | writes/s | ratio to no subscriber | lag p50 ms | lag p99 ms | delivered |"
    );
    println!("|---|---|---|---|---|---|");
    let mut plain_rates = Vec::new();
    let mut live_rates = Vec::new();
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    let mut delivered_total = 0;
    for r in 0..repeats {
        let (rate, _) = write_load(store, duration, &format!("Unwatched{r}")).await?;
        plain_rates.push(rate);
        let event_type: &'static str = Box::leak(format!("Watched{r}").into_boxed_str());
        let arrivals = Arc::new(Mutex::new(HashMap::new()));
        let subscription = Subscription::new(
            subscriber_store,
            &format!("live-{r}"),
            Query::types([EventType::new(event_type)?]),
        )?
        .with_options(SubscriptionOptions::default().batch_size(1000))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let live = {
            let mut handler = Arrivals(arrivals.clone());
            tokio::spawn(async move {
                subscription
                    .run(&mut handler, async {
                        let _ = stopped.await;
                    })
                    .await
            })
        };
        // Let the subscriber take its lease and start listening.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (rate, acknowledged) = write_load(store, duration, event_type).await?;
        live_rates.push(rate);
        let deadline = Instant::now() + Duration::from_secs(30);
        while arrivals.lock().map_or(0, |a| a.len()) < acknowledged.len()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop.send(());
        live.await??;
        let arrived = arrivals.lock().map(|a| a.clone()).unwrap_or_default();
        let mut lags_us: Vec<u32> = acknowledged
            .iter()
            .filter_map(|(position, acked)| {
                arrived.get(position).map(|at| {
                    u32::try_from(at.saturating_duration_since(*acked).as_micros())
                        .unwrap_or(u32::MAX)
                })
            })
            .collect();
        delivered_total += lags_us.len();
        if lags_us.len() != acknowledged.len() {
            return Err(format!(
                "the live subscriber received {} of {} acknowledged events",
                lags_us.len(),
                acknowledged.len()
            )
            .into());
        }
        lags_us.sort_unstable();
        p50s.push(percentile(&lags_us, 0.5));
        p99s.push(percentile(&lags_us, 0.99));
    }
    let (plain, live) = (median(plain_rates), median(live_rates));
    let ratio = if plain > 0.0 { live / plain } else { 0.0 };
    let (p50, p99) = (median(p50s), median(p99s));
    println!("| without subscriber | {plain:.0} | 1.00 | | | |");
    println!(
        "| with live subscriber | {live:.0} | {ratio:.2} | {p50:.2} | {p99:.2} | {delivered_total} |"
    );
    Ok(serde_json::json!({
        "workload": "subscription-lag", "writers": 16,
        "writes_per_s_without_subscriber": plain, "writes_per_s_with_subscriber": live,
        "ratio": ratio, "lag_ms_p50": p50, "lag_ms_p99": p99, "delivered": delivered_total,
    }))
}

/// 16 clients dispatching one event of `event_type` at a time on disjoint
/// boundaries for `duration`; returns dispatches/s and when each position
/// was acknowledged.
async fn write_load(
    store: &PostgresStore,
    duration: Duration,
    event_type: &str,
) -> Result<(f64, Vec<(u64, Instant)>), BoxError> {
    let event_type: &'static str = Box::leak(event_type.to_string().into_boxed_str());
    let deadline = Instant::now() + duration;
    let mut clients = Vec::new();
    for client in 0..16 {
        let store = store.clone();
        clients.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let stream = StreamId::new(format!("lag-{client}"))?;
            let mut i = 0usize;
            while Instant::now() < deadline {
                let tag = format!("lag:{client}:{}", i % 50);
                i += 1;
                let query = Query::item(factos::QueryItem::parse([event_type], [tag.as_str()])?);
                let dispatched = dispatch_with_query(
                    &store,
                    &stream,
                    &query,
                    &Booking,
                    &TagCodec { event_type },
                    &tag,
                )
                .await;
                let now = Instant::now();
                if let Ok(dispatched) = dispatched {
                    acknowledged.extend(dispatched.events.iter().map(|e| (e.position.get(), now)));
                }
            }
            Ok::<_, BoxError>(acknowledged)
        }));
    }
    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await??);
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = acknowledged.len() as f64 / duration.as_secs_f64();
    Ok((rate, acknowledged))
}
