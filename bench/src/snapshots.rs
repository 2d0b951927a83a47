//! Persistent snapshots: the first dispatch of a cold process on a boundary
//! of 100,000 events with and without a snapshot, against a warm cached
//! dispatch; and what writing snapshots costs the write path.

use std::time::{Duration, Instant};

use factos::snapshot::{SnapshotKey, SnapshotPolicy};
use factos::{AppendCondition, Dispatcher, EventStore, NewEvent, Query, StreamId, Tag};
use factos_postgres::throwaway::TempCluster;
use factos_postgres::{PostgresStore, SchemaName, StoreOptions};

use crate::{Booking, BoxError, TagCodec, booking_dispatcher as dispatcher, median};

/// Events on the big boundary.
const BOUNDARY_EVENTS: usize = 100_000;
/// Events per seeding append.
const BATCH: usize = 1000;
/// Warm dispatches timed for the baseline.
const WARM_DISPATCHES: usize = 50;
/// Snapshots on the write-path run: one every this many events.
const EVERY_EVENTS: usize = 100;

async fn seed(store: &PostgresStore, tag: &str, events: usize) -> Result<(), BoxError> {
    for batch in 0..events.div_ceil(BATCH) {
        let count = BATCH.min(events - batch * BATCH);
        let rows = (0..count)
            .map(|_| {
                Ok(
                    NewEvent::new(factos::EventType::new("Booked")?, tag.as_bytes().to_vec())
                        .with_tags(factos::Tags::parse([tag])?),
                )
            })
            .collect::<Result<Vec<_>, BoxError>>()?;
        store
            .append(
                &StreamId::new(format!("seed-{batch}"))?,
                rows,
                AppendCondition::None,
            )
            .await?;
    }
    Ok(())
}

async fn timed_ms(
    dispatcher: &Dispatcher<PostgresStore, Booking, TagCodec>,
    stream: &StreamId,
    query: &Query,
    tag: &String,
) -> Result<f64, BoxError> {
    let started = Instant::now();
    dispatcher
        .dispatch_with_query(stream, query, tag)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// Prints the snapshot table; returns its rows for the JSON file.
pub(crate) async fn measure(
    cluster: &TempCluster,
    repeats: usize,
    duration: Duration,
) -> Result<Vec<serde_json::Value>, BoxError> {
    let store = PostgresStore::from_config(
        cluster.config("postgres"),
        8,
        StoreOptions::default().schema(SchemaName::new("snapshots")?),
    )?;
    store.migrate().await?;
    let tag = "big:1".to_string();
    let query = Query::tagged_with_all([Tag::new(tag.as_str())?]);
    let stream = StreamId::new("big")?;
    seed(&store, &tag, BOUNDARY_EVENTS).await?;
    // As after any bulk load (the workloads' schemas are analyzed too).
    store
        .pool()
        .get()
        .await?
        .batch_execute("ANALYZE snapshots.factos_events; ANALYZE snapshots.factos_event_tags;")
        .await?;
    let policy = SnapshotPolicy::on_demand("booking", 1);
    let (mut cold, mut cold_snapshot, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeats {
        // A cold process without snapshots folds the whole boundary.
        let fresh = dispatcher(&store);
        cold.push(timed_ms(&fresh, &stream, &query, &tag).await?);
        for _ in 0..WARM_DISPATCHES {
            warm.push(timed_ms(&fresh, &stream, &query, &tag).await?);
        }
        // A warm process writes a snapshot; a cold one starts from it.
        let writer = dispatcher(&store).with_snapshots(policy.clone());
        timed_ms(&writer, &stream, &query, &tag).await?;
        writer.save_snapshot(&query).await?;
        let key = SnapshotKey::new("booking", 1, &query);
        let started = Instant::now();
        while store.load_snapshot(&key).await?.is_none()
            && started.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let reader = dispatcher(&store).with_snapshots(policy.clone());
        cold_snapshot.push(timed_ms(&reader, &stream, &query, &tag).await?);
        if reader.snapshot_stats().loaded != 1 {
            return Err("the cold dispatcher did not load the snapshot".into());
        }
    }
    let (cold, cold_snapshot, warm) = (median(cold), median(cold_snapshot), median(warm));
    // The write path: one client dispatching on a boundary of its own, with
    // a snapshot every EVERY_EVENTS events and without, interleaved.
    let (mut plain_rate, mut snapshot_rate) = (Vec::new(), Vec::new());
    for round in 0..repeats {
        for with_snapshots in [false, true] {
            let tag = format!("write:{round}{with_snapshots}");
            let query = Query::tagged_with_all([Tag::new(tag.as_str())?]);
            let d = if with_snapshots {
                dispatcher(&store).with_snapshots(SnapshotPolicy::every("write", 1, EVERY_EVENTS))
            } else {
                dispatcher(&store)
            };
            let started = Instant::now();
            let mut done = 0u32;
            while started.elapsed() < duration {
                d.dispatch_with_query(&stream, &query, &tag)
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                done += 1;
            }
            let rate = f64::from(done) / started.elapsed().as_secs_f64();
            if with_snapshots {
                snapshot_rate.push(rate);
            } else {
                plain_rate.push(rate);
            }
        }
    }
    let (plain_rate, snapshot_rate) = (median(plain_rate), median(snapshot_rate));
    println!(
        "\n| snapshots ({BOUNDARY_EVENTS} events on the boundary) | ms | ratio to a warm cached dispatch |"
    );
    println!("|---|---|---|");
    println!(
        "| warm cached dispatch (median of {WARM_DISPATCHES} per repeat) | {warm:.2} | 1.00 |"
    );
    println!(
        "| cold process, no snapshot | {cold:.1} | {:.1} |",
        cold / warm
    );
    println!(
        "| cold process, snapshot | {cold_snapshot:.2} | {:.1} |",
        cold_snapshot / warm
    );
    println!(
        "\n| write path, 1 client | dispatches/s | ratio |\n|---|---|---|\n| no snapshots | {plain_rate:.0} | 1.00 |\n| a snapshot every {EVERY_EVENTS} events | {snapshot_rate:.0} | {:.3} |",
        snapshot_rate / plain_rate
    );
    Ok(vec![serde_json::json!({
        "workload": "snapshots", "boundary_events": BOUNDARY_EVENTS,
        "warm_ms": warm, "cold_ms": cold, "cold_with_snapshot_ms": cold_snapshot,
        "write_path_plain_per_s": plain_rate, "write_path_snapshots_per_s": snapshot_rate,
    })])
}
