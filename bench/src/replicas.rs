//! Past one primary (`FACTOS_BENCH_REPLICAS=1` runs only this):
//!
//! - writers (16 clients, disjoint boundaries, cached dispatchers) alone,
//!   with 4 readers on the primary, and with 4 readers on a hot standby
//!   (`pg_basebackup -R`, streaming over a unix socket on the same machine),
//!   interleaved over the repeats: writer throughput as ratios to writers
//!   alone; replica read latency and how far behind the primary's head each
//!   replica read was (events);
//! - catch-up of a subscriber with 1, 2 and 4 partitions (one process runs
//!   them all) over the same log, against an unpartitioned subscriber, with
//!   a handler that waits 2 ms per batch (a projection's round trip).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use factos::{
    AppendCondition, EventStore, EventType, NewEvent, Query, ReadOptions, StoredEvent, StreamId,
    Tags,
};
use factos_postgres::deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use factos_postgres::throwaway::{ClusterOptions, TempCluster};
use factos_postgres::{
    EventHandler, PartitionedSubscription, Partitioning, PostgresStore, ReplicaOptions, SchemaName,
    StoreOptions, Subscription, SubscriptionOptions,
};

use crate::capacity::dispatch_disjoint;
use crate::{BoxError, median};

const WRITERS: usize = 16;
const READERS: usize = 4;

/// Where the readers read, if anywhere.
#[derive(Clone, Copy, Debug)]
enum Readers {
    None,
    Primary,
    Replica,
}

/// Latencies (µs) and lags (events behind the primary's head) of reads.
#[derive(Default)]
struct Reads {
    latency_us: Vec<f64>,
    lag_events: Vec<f64>,
}

fn pool(cluster: &TempCluster, size: usize) -> Result<Pool, BoxError> {
    let manager = Manager::from_config(
        cluster.config("postgres"),
        factos_postgres::tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager).max_size(size).build()?)
}

/// Reads the newest 10 events (backwards) in a loop until `stop`, each
/// read's latency and how far its head is behind the primary's.
async fn read_loop(
    reader: PostgresStore,
    primary: PostgresStore,
    stop: Arc<AtomicBool>,
) -> Result<Reads, BoxError> {
    let mut reads = Reads::default();
    let newest = ReadOptions::default().backwards().limit(10);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let read = reader.read(&Query::all(), newest).await?;
        reads.latency_us.push(started.elapsed().as_secs_f64() * 1e6);
        let head = primary
            .read(&Query::all(), ReadOptions::default().backwards().limit(1))
            .await?;
        let behind = head
            .head
            .map_or(0, factos::Position::get)
            .saturating_sub(read.head.map_or(0, factos::Position::get));
        #[allow(clippy::cast_precision_loss)]
        reads.lag_events.push(behind as f64);
    }
    Ok(reads)
}

/// One writer run with `readers`; (events/s, the reads).
async fn one_run(
    store: &PostgresStore,
    replica: &PostgresStore,
    readers: Readers,
    duration: Duration,
    run: usize,
) -> Result<(f64, Reads), BoxError> {
    let stop = Arc::new(AtomicBool::new(false));
    let reading: Vec<_> = (0..READERS)
        .filter_map(|_| {
            let reader = match readers {
                Readers::None => return None,
                Readers::Primary => store.clone(),
                Readers::Replica => replica.clone(),
            };
            Some(tokio::spawn(read_loop(reader, store.clone(), stop.clone())))
        })
        .collect();
    let started = Instant::now();
    let events = dispatch_disjoint(store, WRITERS, duration, &format!("r{run}")).await?;
    #[allow(clippy::cast_precision_loss)]
    let rate = events as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut reads = Reads::default();
    for task in reading {
        let r = task.await??;
        reads.latency_us.extend(r.latency_us);
        reads.lag_events.extend(r.lag_events);
    }
    Ok((rate, reads))
}

async fn writers_and_readers(
    store: &PostgresStore,
    replica: &PostgresStore,
    repeats: usize,
    duration: Duration,
) -> Result<Vec<serde_json::Value>, BoxError> {
    let kinds = [Readers::None, Readers::Primary, Readers::Replica];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    let mut reads: Vec<Reads> = kinds.iter().map(|_| Reads::default()).collect();
    for repeat in 0..repeats {
        for (k, kind) in kinds.iter().enumerate() {
            let (rate, r) =
                one_run(store, replica, *kind, duration, repeat * kinds.len() + k).await?;
            rates[k].push(rate);
            reads[k].latency_us.extend(r.latency_us);
            reads[k].lag_events.extend(r.lag_events);
        }
    }
    let alone = median(rates[0].clone());
    println!(
        "\n| {WRITERS} writers (disjoint, Scoped + cache) | writes/s | ratio to alone | reads | read p50 µs | read p99 µs | lag p50 events | lag p99 events |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut json = Vec::new();
    for (k, kind) in kinds.iter().enumerate() {
        let rate = median(rates[k].clone());
        let r = &mut reads[k];
        let (p50, p99, lag50, lag99) = if r.latency_us.is_empty() {
            (0.0, 0.0, 0.0, 0.0)
        } else {
            (
                quantile(&mut r.latency_us, 50.0),
                quantile(&mut r.latency_us, 99.0),
                quantile(&mut r.lag_events, 50.0),
                quantile(&mut r.lag_events, 99.0),
            )
        };
        let label = match kind {
            Readers::None => "alone".to_string(),
            Readers::Primary => format!("+ {READERS} readers on the primary"),
            Readers::Replica => format!("+ {READERS} readers on the replica"),
        };
        println!(
            "| {label} | {rate:.0} | {:.2} | {} | {p50:.0} | {p99:.0} | {lag50:.0} | {lag99:.0} |",
            rate / alone,
            r.latency_us.len()
        );
        json.push(serde_json::json!({
            "workload": "replicas", "readers": format!("{kind:?}"), "writes_per_s": rate,
            "ratio_to_alone": rate / alone, "read_p50_us": p50, "read_p99_us": p99,
            "lag_p50_events": lag50, "lag_p99_events": lag99,
        }));
    }
    Ok(json)
}

/// The `p`-th percentile of `values` (nearest rank).
fn quantile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let at = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values.get(at).copied().unwrap_or(0.0)
}

/// Counts events and waits 2 ms per batch, like a projection's round trip.
struct SlowCount(Arc<AtomicUsize>);

impl EventHandler for SlowCount {
    type Error = std::convert::Infallible;
    async fn handle(&mut self, events: &[StoredEvent]) -> Result<(), Self::Error> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.0.fetch_add(events.len(), Ordering::Relaxed);
        Ok(())
    }
}

const CATCH_UP_EVENTS: usize = 20_000;
const ACCOUNTS: usize = 1_000;

async fn fill(store: &PostgresStore) -> Result<(), BoxError> {
    for chunk in 0..CATCH_UP_EVENTS / 500 {
        let events = (0..500)
            .map(|i| {
                let n = chunk * 500 + i;
                Ok(NewEvent::new(
                    EventType::new("Moved")?,
                    format!("{{\"n\":{n}}}").into_bytes(),
                )
                .with_tags(Tags::parse([format!("account:{}", n % ACCOUNTS)])?))
            })
            .collect::<Result<Vec<_>, BoxError>>()?;
        store
            .append(
                &StreamId::new(format!("fill-{chunk}"))?,
                events,
                AppendCondition::None,
            )
            .await?;
    }
    Ok(())
}

/// Seconds until a subscriber with `partitions` (0: unpartitioned) has
/// handled every event.
async fn catch_up_seconds(
    store: &PostgresStore,
    partitions: u32,
    run: usize,
) -> Result<f64, BoxError> {
    let options = SubscriptionOptions::default()
        .batch_size(100)
        .poll_interval(Duration::from_millis(20));
    let counted = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let name = format!("catch-up-{partitions}-{run}");
    let running = {
        let (store, counted) = (store.clone(), counted.clone());
        let options = options.clone();
        tokio::spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            if partitions == 0 {
                Subscription::new(&store, &name, Query::all())?
                    .with_options(options)?
                    .run(&mut SlowCount(counted), stopped)
                    .await?;
            } else {
                let split = Partitioning::by_tag_prefix("account:", partitions)?;
                PartitionedSubscription::new(&store, &name, &Query::all(), &split)?
                    .with_options(options)?
                    .run(|_| SlowCount(counted.clone()), stopped)
                    .await?;
            }
            Ok::<(), BoxError>(())
        })
    };
    while counted.load(Ordering::Relaxed) < CATCH_UP_EVENTS {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    running.await??;
    Ok(seconds)
}

async fn partitioned_catch_up(
    store: &PostgresStore,
    repeats: usize,
) -> Result<Vec<serde_json::Value>, BoxError> {
    fill(store).await?;
    let counts = [0u32, 1, 2, 4];
    let mut seconds: Vec<Vec<f64>> = vec![Vec::new(); counts.len()];
    for repeat in 0..repeats {
        for (k, partitions) in counts.iter().enumerate() {
            seconds[k].push(catch_up_seconds(store, *partitions, repeat).await?);
        }
    }
    let baseline = median(seconds[0].clone());
    println!(
        "\n| catch-up of {CATCH_UP_EVENTS} events, 2 ms per batch of 100 | seconds | events/s | ratio to unpartitioned |"
    );
    println!("|---|---|---|---|");
    let mut json = Vec::new();
    for (k, partitions) in counts.iter().enumerate() {
        let s = median(seconds[k].clone());
        #[allow(clippy::cast_precision_loss)]
        let rate = CATCH_UP_EVENTS as f64 / s;
        let label = if *partitions == 0 {
            "unpartitioned".to_string()
        } else {
            format!("{partitions} partitions")
        };
        println!("| {label} | {s:.2} | {rate:.0} | {:.2} |", baseline / s);
        json.push(serde_json::json!({
            "workload": "partitioned catch-up", "partitions": partitions, "seconds": s,
            "events_per_s": rate, "ratio_to_unpartitioned": baseline / s,
        }));
    }
    Ok(json)
}

pub(crate) async fn measure(
    cluster: &TempCluster,
    repeats: usize,
    duration: Duration,
) -> Result<Vec<serde_json::Value>, BoxError> {
    // A standby needs at least the primary's max_connections (main.rs: 600).
    let standby = cluster.start_standby(&ClusterOptions {
        durable: true,
        max_connections: 600,
        ..ClusterOptions::default()
    })?;
    let options = StoreOptions::default().schema(SchemaName::new("replicas")?);
    let store =
        PostgresStore::from_config(cluster.config("postgres"), WRITERS + READERS + 8, options)?;
    store.migrate().await?;
    // The standby has the schema once it has replayed the migration.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let replica = store.with_replica(pool(&standby, READERS + 2)?, ReplicaOptions::default());
    let mut json = writers_and_readers(&store, &replica, repeats, duration).await?;
    let catch_up = PostgresStore::from_config(
        cluster.config("postgres"),
        16,
        StoreOptions::default().schema(SchemaName::new("catch_up")?),
    )?;
    catch_up.migrate().await?;
    json.extend(partitioned_catch_up(&catch_up, repeats).await?);
    Ok(json)
}
