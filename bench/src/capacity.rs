//! What one PostgreSQL primary spends per event, for DESIGN.md "Past one
//! machine": 16 clients dispatch on disjoint boundaries through cached
//! dispatchers (the Scoped strategy, fsync on) for the run's duration; the
//! WAL written (`pg_current_wal_lsn` before and after), the event table's
//! and the tag mirror's size with their indexes, and the rate are measured,
//! then extrapolated to 10× and 100× the rate. `FACTOS_BENCH_CAPACITY=1`
//! runs only this.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use factos::{Query, StreamId, Tag};
use factos_postgres::throwaway::TempCluster;
use factos_postgres::{PostgresStore, SchemaName, StoreOptions};

use crate::{BoxError, booking_dispatcher};

const CLIENTS: usize = 16;

/// Bytes of WAL written so far.
async fn wal_lsn(store: &PostgresStore) -> Result<i64, BoxError> {
    let client = store.pool().get().await?;
    let row = client
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Bytes on disk of the log and the tag mirror, with their indexes.
async fn log_bytes(store: &PostgresStore) -> Result<(i64, i64), BoxError> {
    let q = store.options().schema.quoted();
    let client = store.pool().get().await?;
    let row = client
        .query_one(
            &format!(
                "SELECT pg_total_relation_size('{q}.factos_events')::bigint,
                        pg_total_relation_size('{q}.factos_event_tags')::bigint"
            ),
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// `clients` tasks dispatch one event each on disjoint boundaries (a tag
/// `{prefix}:{client}:{n mod 50}`) through one cached dispatcher for
/// `duration`; how many events they committed.
pub(crate) async fn dispatch_disjoint(
    store: &PostgresStore,
    clients: usize,
    duration: Duration,
    prefix: &str,
) -> Result<u64, BoxError> {
    let dispatcher = Arc::new(booking_dispatcher(store));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (dispatcher, done) = (dispatcher.clone(), done.clone());
            let prefix = prefix.to_string();
            tokio::spawn(async move {
                let mut n = 0usize;
                while started.elapsed() < duration {
                    let tag = format!("{prefix}:{client}:{}", n % 50);
                    let query = Query::tagged_with_all([Tag::new(tag.as_str())?]);
                    let stream = StreamId::new(tag.replace(':', "-"))?;
                    dispatcher
                        .dispatch_with_query(&stream, &query, &tag)
                        .await
                        .map_err(|e| format!("{e:?}"))?;
                    done.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                Ok::<(), BoxError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(done.load(Ordering::Relaxed))
}

pub(crate) async fn measure(
    cluster: &TempCluster,
    duration: Duration,
) -> Result<Vec<serde_json::Value>, BoxError> {
    let store = PostgresStore::from_config(
        cluster.config("postgres"),
        CLIENTS + 4,
        StoreOptions::default().schema(SchemaName::new("capacity")?),
    )?;
    store.migrate().await?;
    let wal_before = wal_lsn(&store).await?;
    let (events_before, mirror_before) = log_bytes(&store).await?;
    let started = Instant::now();
    let events = dispatch_disjoint(&store, CLIENTS, duration, "cap").await?;
    let seconds = started.elapsed().as_secs_f64();
    let wal = wal_lsn(&store).await? - wal_before;
    let (events_after, mirror_after) = log_bytes(&store).await?;
    #[allow(clippy::cast_precision_loss)]
    let (events_f, wal_f) = (events as f64, wal as f64);
    let rate = events_f / seconds;
    let wal_per_event = wal_f / events_f;
    #[allow(clippy::cast_precision_loss)]
    let stored_per_event =
        ((events_after - events_before) + (mirror_after - mirror_before)) as f64 / events_f;
    println!(
        "\n| one primary, {CLIENTS} clients, disjoint, Scoped + cache | measured | 10x | 100x |"
    );
    println!("|---|---|---|---|");
    println!(
        "| events/s | {rate:.0} | {:.0} | {:.0} |",
        rate * 10.0,
        rate * 100.0
    );
    println!(
        "| WAL bytes per event | {wal_per_event:.0} | {wal_per_event:.0} | {wal_per_event:.0} |"
    );
    let wal_mb_s = rate * wal_per_event / 1e6;
    println!(
        "| WAL MB/s | {wal_mb_s:.1} | {:.1} | {:.1} |",
        wal_mb_s * 10.0,
        wal_mb_s * 100.0
    );
    println!(
        "| log + tag mirror bytes per event (with indexes) | {stored_per_event:.0} | {stored_per_event:.0} | {stored_per_event:.0} |"
    );
    let gb_day = rate * stored_per_event * 86_400.0 / 1e9;
    println!(
        "| log growth GB/day | {gb_day:.1} | {:.0} | {:.0} |",
        gb_day * 10.0,
        gb_day * 100.0
    );
    // Positions are bigint: 2^63 - 1 of them.
    let years = 9.22e18 / rate / 86_400.0 / 365.0;
    println!(
        "| years until positions run out | {years:.1e} | {:.1e} | {:.1e} |",
        years / 10.0,
        years / 100.0
    );
    println!("({events} events in {seconds:.1} s)");
    Ok(vec![serde_json::json!({
        "workload": "capacity", "events_per_s": rate, "wal_bytes_per_event": wal_per_event,
        "stored_bytes_per_event": stored_per_event,
    })])
}
