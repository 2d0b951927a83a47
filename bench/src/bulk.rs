//! Bulk appends against a plain `COPY` of equivalent rows, and context-read
//! latency on a log of 10,000 events against one of 1,000,000 (the same
//! query shape matching 10 events in both).

use std::time::{Duration, Instant};

use factos::{AppendCondition, EventStore, NewEvent, Query, QueryItem, ReadOptions, StreamId};
use factos_postgres::throwaway::TempCluster;
use factos_postgres::{PostgresStore, SchemaName, StoreOptions};
use futures_util::SinkExt;

use crate::{BoxError, median, percentile};

/// Events per append (the store's default maximum).
const BATCH: usize = 1000;
/// Each tag holds this many events, whatever the log size.
const EVENTS_PER_TAG: usize = 10;

/// The `i`th event of a generated log with `size` events: type `Booked`,
/// tag `item:<i mod size/10>`, a 32-byte payload.
fn generated(i: usize, size: usize) -> Result<NewEvent, BoxError> {
    let tags = (size / EVENTS_PER_TAG).max(1);
    Ok(NewEvent::new(factos::EventType::new("Booked")?, payload(i))
        .with_tags(factos::Tags::parse([format!("item:{}", i % tags)])?))
}

fn payload(i: usize) -> Vec<u8> {
    format!("{{\"n\":{i:0>24}}}").into_bytes()
}

async fn fresh_store(cluster: &TempCluster, schema: &str) -> Result<PostgresStore, BoxError> {
    let store = PostgresStore::from_config(
        cluster.config("postgres"),
        4,
        StoreOptions::default().schema(SchemaName::new(schema)?),
    )?;
    store
        .pool()
        .get()
        .await?
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await?;
    store.migrate().await?;
    Ok(store)
}

/// Appends a generated log of `size` events in batches of [`BATCH`], one
/// stream per batch; returns the time it took.
async fn append_log(store: &PostgresStore, size: usize) -> Result<Duration, BoxError> {
    let started = Instant::now();
    for batch in 0..size.div_ceil(BATCH) {
        let events = (batch * BATCH..((batch + 1) * BATCH).min(size))
            .map(|i| generated(i, size))
            .collect::<Result<Vec<_>, _>>()?;
        store
            .append(
                &StreamId::new(format!("bulk-{batch}"))?,
                events,
                AppendCondition::None,
            )
            .await?;
    }
    Ok(started.elapsed())
}

/// The same rows with two `COPY`s (events, then the tag mirror), in one
/// transaction, into a freshly migrated schema.
async fn copy_log(store: &PostgresStore, size: usize) -> Result<Duration, BoxError> {
    let mut client = store.pool().get().await?;
    let schema = store.options().schema.quoted();
    let tags = (size / EVENTS_PER_TAG).max(1);
    let started = Instant::now();
    let tx = client.transaction().await?;
    let mut text = String::with_capacity(size * 120);
    for i in 0..size {
        use std::fmt::Write;
        writeln!(
            text,
            "{}\tbulk-{}\t{}\tBooked\t1\t{{item:{}}}\t{{}}\t\\\\x{}",
            uuid_text(i),
            i / BATCH,
            i % BATCH,
            i % tags,
            hex(&payload(i))
        )?;
    }
    let sink = tx
        .copy_in(&format!(
            "COPY {schema}.factos_events (id, stream, revision, type, version, tags, metadata, data) FROM STDIN"
        ))
        .await?;
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from(text)).await?;
    sink.close().await?;
    // Positions were assigned 1..=size in row order (one fresh identity, one session).
    let mut mirror = String::with_capacity(size * 24);
    for i in 0..size {
        use std::fmt::Write;
        writeln!(mirror, "item:{}\t{}", i % tags, i + 1)?;
    }
    let sink = tx
        .copy_in(&format!(
            "COPY {schema}.factos_event_tags (tag, position) FROM STDIN"
        ))
        .await?;
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from(mirror)).await?;
    sink.close().await?;
    tx.commit().await?;
    Ok(started.elapsed())
}

fn uuid_text(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

async fn analyze(store: &PostgresStore) -> Result<(), BoxError> {
    store
        .pool()
        .get()
        .await?
        .batch_execute(&format!(
            "ANALYZE {0}.factos_events; ANALYZE {0}.factos_event_tags;",
            store.options().schema.quoted()
        ))
        .await?;
    Ok(())
}

/// Bulk and read tables; returns JSON rows.
pub(crate) async fn measure(
    cluster: &TempCluster,
    size: usize,
    repeats: usize,
) -> Result<Vec<serde_json::Value>, BoxError> {
    let mut rows = Vec::new();
    let mut append_rates = Vec::new();
    let mut copy_rates = Vec::new();
    let mut large = None;
    for r in 0..repeats {
        let copied = fresh_store(cluster, "bulk_copy").await?;
        let took = copy_log(&copied, size).await?;
        #[allow(clippy::cast_precision_loss)]
        copy_rates.push(size as f64 / took.as_secs_f64());
        drop(copied);
        let appended = fresh_store(cluster, &format!("bulk_append_{r}")).await?;
        let took = append_log(&appended, size).await?;
        #[allow(clippy::cast_precision_loss)]
        append_rates.push(size as f64 / took.as_secs_f64());
        if let Some(previous) = large.replace(appended) {
            drop_schema(&previous).await?;
        }
    }
    let (append, copy) = (median(append_rates), median(copy_rates));
    println!("\n| bulk ({size} events, batches of {BATCH}) | events/s (median) | ratio to COPY |");
    println!("|---|---|---|");
    println!("| COPY (events + tag mirror, one transaction) | {copy:.0} | 1.00 |");
    println!(
        "| factos append (AppendCondition::None) | {append:.0} | {:.2} |",
        append / copy
    );
    rows.push(serde_json::json!({"workload": "bulk", "events": size, "copy_events_per_s": copy, "append_events_per_s": append, "ratio_to_copy": append / copy}));

    let Some(large) = large else {
        return Ok(rows);
    };
    let small = fresh_store(cluster, "read_10k").await?;
    append_log(&small, 10_000).await?;
    analyze(&small).await?;
    analyze(&large).await?;
    let mut small_us = Vec::new();
    let mut large_us = Vec::new();
    // Interleaved rounds of 200 reads each, on random tags.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..(repeats * 5) {
        for (store, log_size, out) in [
            (&small, 10_000usize, &mut small_us),
            (&large, size, &mut large_us),
        ] {
            for _ in 0..200 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let tags = u64::try_from(log_size / EVENTS_PER_TAG).unwrap_or(1);
                let tag = format!("item:{}", seed % tags);
                let query = Query::item(QueryItem::parse(["Booked"], [tag.as_str()])?);
                let started = Instant::now();
                let read = store.read(&query, ReadOptions::default()).await?;
                out.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
                if read.events.len() != EVENTS_PER_TAG {
                    return Err(format!(
                        "a read matched {} events instead of {EVENTS_PER_TAG}",
                        read.events.len()
                    )
                    .into());
                }
            }
        }
    }
    small_us.sort_unstable();
    large_us.sort_unstable();
    let (small_p50, large_p50) = (percentile(&small_us, 0.5), percentile(&large_us, 0.5));
    let (small_p99, large_p99) = (percentile(&small_us, 0.99), percentile(&large_us, 0.99));
    println!("\n| context read, 10 matching events | p50 ms | p99 ms | p50 ratio to 10k |");
    println!("|---|---|---|---|");
    println!("| log of 10,000 events | {small_p50:.3} | {small_p99:.3} | 1.00 |");
    println!(
        "| log of {size} events | {large_p50:.3} | {large_p99:.3} | {:.2} |",
        large_p50 / small_p50
    );
    rows.push(serde_json::json!({
        "workload": "read", "matching_events": EVENTS_PER_TAG, "reads_each": small_us.len(),
        "small_log_events": 10_000, "small_latency_ms_p50": small_p50, "small_latency_ms_p99": small_p99,
        "large_log_events": size, "large_latency_ms_p50": large_p50, "large_latency_ms_p99": large_p99,
        "ratio_p50": large_p50 / small_p50,
    }));
    drop_schema(&large).await?;
    drop_schema(&small).await?;
    Ok(rows)
}

async fn drop_schema(store: &PostgresStore) -> Result<(), BoxError> {
    store
        .pool()
        .get()
        .await?
        .batch_execute(&format!(
            "DROP SCHEMA {} CASCADE",
            store.options().schema.quoted()
        ))
        .await?;
    Ok(())
}
