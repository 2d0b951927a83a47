//! `factos-bench`: dispatch throughput of each locking strategy as a ratio to
//! pgbench's simple-update script (`-N`) measured in the same run, on a
//! throwaway PostgreSQL cluster with `fsync` on; then context growth,
//! subscriptions (catch-up, live lag), bulk appends against `COPY`, and
//! context reads on a small and a large log.
//!
//! ```sh
//! cargo run --release -p factos-bench            # the full run (about 12 minutes)
//! FACTOS_BENCH_SECONDS=1 FACTOS_BENCH_CLIENTS=1,16 FACTOS_BENCH_BULK_EVENTS=100000 cargo run --release -p factos-bench
//! ```
//!
//! For each client count, the baseline and every subject run interleaved
//! (pgbench, strategies, pgbench, strategies, ...) `FACTOS_BENCH_REPEATS`
//! times; each figure is the median. Prints a table and writes
//! `target/factos-bench.json`.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use factos::{
    Decider, DispatchError, Dispatcher, EventStore, NewEvent, Query, QueryItem, StreamId,
    dispatch_with_query,
};
use factos_postgres::throwaway::{ClusterOptions, TempCluster};
use factos_postgres::{LockingStrategy, PostgresStore, SchemaName, StoreOptions};

mod bulk;
mod capacity;
mod courses;
mod outbox;
mod peer;
mod profile;
mod replicas;
mod snapshots;
mod sqlite;
mod subscriptions;
mod targets;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Counts the events of its context and always books one more: the
/// dispatch itself is what is measured, not the domain.
struct Booking;

impl Decider for Booking {
    type State = usize;
    type Command = String; // the boundary tag
    type Event = String;
    type Error = std::convert::Infallible;

    fn initial(&self) -> usize {
        0
    }

    fn decide(&self, _: &usize, tag: &String) -> Result<Vec<String>, Self::Error> {
        Ok(vec![tag.clone()])
    }

    fn evolve(&self, count: usize, _: &String) -> usize {
        count + 1
    }
}

/// Stores the boundary tag as the only tag and as the payload.
struct TagCodec {
    event_type: &'static str,
}

impl factos::Codec for TagCodec {
    type Event = String;

    fn encode(&self, tag: &String) -> Result<NewEvent, factos::EncodeError> {
        Ok(NewEvent::new(
            factos::EventType::new(self.event_type)?,
            tag.as_bytes().to_vec(),
        )
        .with_tags(factos::Tags::parse([tag.as_str()])?))
    }

    fn decode(&self, stored: &factos::StoredEvent) -> Result<String, factos::DecodeError> {
        String::from_utf8(stored.data.clone()).map_err(|e| factos::DecodeError::InvalidData {
            event_type: stored.event_type.clone(),
            version: stored.version,
            message: e.to_string(),
        })
    }
}

/// The booking decider over `store`, its events typed `Booked`.
fn booking_dispatcher(store: &PostgresStore) -> Dispatcher<PostgresStore, Booking, TagCodec> {
    Dispatcher::new(
        store.clone(),
        Booking,
        TagCodec {
            event_type: "Booked",
        },
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
enum Workload {
    /// Every client on its own boundaries (50 each), small contexts.
    Disjoint,
    /// Every client on one boundary of its own that grows through the run.
    Growing,
    /// Every client on one shared boundary.
    Hot,
    /// Random students subscribing to random courses: overlapping contexts
    /// of two query items (the plain strategies only: the decider is per
    /// command, so there is no `Dispatcher` to cache it).
    Courses,
}

/// Dispatches through the free function (reads the whole context every
/// time) or through a [`Dispatcher`] with its context cache.
enum Subject {
    Plain(PostgresStore),
    Cached(Dispatcher<PostgresStore, Booking, TagCodec>),
    /// Like `Cached`, each dispatch idempotent under a new key (a first
    /// attempt, as a service that takes an idempotency key sends it).
    Keyed(Dispatcher<PostgresStore, Booking, TagCodec>),
    /// The peer crate (disjoint and hot only; runs through `peer::run`).
    Peer(peer::Maker),
}

impl Subject {
    /// The batches a combining dispatcher decided so far (zero otherwise).
    fn combined_batches(&self) -> factos::CombinedBatches {
        match self {
            Subject::Cached(dispatcher) | Subject::Keyed(dispatcher) => {
                dispatcher.combined_batches()
            }
            Subject::Plain(_) | Subject::Peer(_) => factos::CombinedBatches::default(),
        }
    }

    async fn dispatch(
        &self,
        stream: &StreamId,
        query: &Query,
        tag: &String,
        event_type: &'static str,
    ) -> Result<(), DispatchError<std::convert::Infallible>> {
        match self {
            Subject::Plain(store) => dispatch_with_query(
                store,
                stream,
                query,
                &Booking,
                &TagCodec { event_type },
                tag,
            )
            .await
            .map(|_| ()),
            Subject::Cached(dispatcher) => dispatcher
                .dispatch_with_query(stream, query, tag)
                .await
                .map(|_| ()),
            Subject::Keyed(dispatcher) => dispatcher
                .dispatch_with_query_idempotent(stream, query, tag, uuid::Uuid::now_v7())
                .await
                .map(|_| ()),
            Subject::Peer(_) => Err(DispatchError::Store(factos::StoreError::new(
                factos::StoreErrorKind::Other,
                "the peer runs through peer::run",
            ))),
        }
    }
}

#[derive(Debug, Default, Clone, serde::Serialize)]
struct Sample {
    dispatches_per_s: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    failed_conditions: u64,
    /// SERIALIZABLE failures (the peer only).
    serialization_errors: u64,
    errors: u64,
    /// A combining dispatcher's batches of two or more commands in the run,
    /// and the commands they held.
    batches: u64,
    batched_commands: u64,
}

impl Sample {
    /// The rate and latency percentiles of a run of `duration`, from the
    /// latencies of its successful dispatches.
    fn with_latencies(mut self, mut latencies_us: Vec<u32>, duration: Duration) -> Self {
        latencies_us.sort_unstable();
        #[allow(clippy::cast_precision_loss)]
        {
            self.dispatches_per_s = latencies_us.len() as f64 / duration.as_secs_f64();
        }
        self.latency_ms_p50 = percentile(&latencies_us, 0.5);
        self.latency_ms_p99 = percentile(&latencies_us, 0.99);
        self
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

async fn run_workload(
    subject: &Arc<Subject>,
    subject_key: &str,
    workload: Workload,
    clients: usize,
    duration: Duration,
    round: usize,
) -> Sample {
    let deadline = Instant::now() + duration;
    let batches_before = subject.combined_batches();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let subject = subject.clone();
            let subject_key = subject_key.to_string();
            tokio::spawn(async move {
                let mut latencies_us: Vec<u32> = Vec::new();
                let (mut failed, mut errors) = (0u64, 0u64);
                let mut n: usize = client * 7919;
                // One event type for every workload: the cached subject's codec is fixed.
                let event_type = "Booked";
                while Instant::now() < deadline {
                    n = n.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let tag = match workload {
                        // The same boundaries in every round, so caches warm up
                        // as an application's would; contexts stay at tens of events.
                        Workload::Disjoint => {
                            format!("b:{subject_key}:{client}:{}", (n >> 16) % 50)
                        }
                        Workload::Growing => format!("g:{round}:{client}"),
                        Workload::Hot => format!("hot:{round}"),
                        // Runs through `courses::run` instead.
                        Workload::Courses => break,
                    };
                    let Ok(item) = QueryItem::parse([event_type], [tag.as_str()]) else {
                        break;
                    };
                    let query = Query::item(item);
                    let Ok(stream) = StreamId::new(format!("client-{client}")) else {
                        break;
                    };
                    let started = Instant::now();
                    match subject.dispatch(&stream, &query, &tag, event_type).await {
                        Ok(()) => latencies_us
                            .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)),
                        Err(DispatchError::AppendConditionFailed(_)) => failed += 1,
                        Err(e) => {
                            errors += 1;
                            if errors == 1 {
                                eprintln!("dispatch error: {e}");
                            }
                        }
                    }
                }
                (latencies_us, failed, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut sample = Sample::default();
    for task in tasks {
        if let Ok((latencies, failed, errors)) = task.await {
            all.extend(latencies);
            sample.failed_conditions += failed;
            sample.errors += errors;
        }
    }
    let batches_after = subject.combined_batches();
    sample.batches = batches_after.batches - batches_before.batches;
    sample.batched_commands = batches_after.commands - batches_before.commands;
    sample.with_latencies(all, duration)
}

/// The peer in a database of its own, with 100,000 background events
/// (on boundaries the workloads never touch), analyzed.
async fn peer_subject(cluster: &TempCluster) -> Result<peer::Maker, BoxError> {
    let status = Command::new(cluster.bin_dir().join("createdb"))
        .arg("-h")
        .arg(cluster.socket_dir())
        .args(["-U", "postgres", "disintegrate"])
        .status()?;
    if !status.success() {
        return Err("createdb disintegrate failed".into());
    }
    let maker = peer::connect(cluster.socket_dir(), "disintegrate").await?;
    let (client, connection) = cluster
        .config("disintegrate")
        .connect(factos_postgres::tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    client
        .batch_execute(
            "INSERT INTO event (event_type, payload, boundary)
             SELECT 'Booked', convert_to('{\"Booked\":{\"boundary\":\"bg:' || (i % 1000) || '\"}}', 'UTF8'),
                    'bg:' || (i % 1000)
             FROM generate_series(1, 100000) i;
             ANALYZE event;",
        )
        .await?;
    Ok(maker)
}

fn pgbench(cluster: &TempCluster, clients: usize, duration: Duration) -> Result<f64, BoxError> {
    let output = Command::new(cluster.bin_dir().join("pgbench"))
        .args(["-h"])
        .arg(cluster.socket_dir())
        .args(["-U", "postgres", "-N", "-n", "-j", "2"])
        .args([
            "-c",
            &clients.to_string(),
            "-T",
            &duration.as_secs().max(1).to_string(),
            "pgbench",
        ])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| {
            line.strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .ok_or_else(|| {
            format!(
                "pgbench printed no tps: {text} {}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into()
        })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

async fn seed_background(store: &PostgresStore) -> Result<(), BoxError> {
    // 100,000 events over 1,000 tags, so the indexes are not trivially small.
    let stream = StreamId::new("background")?;
    for batch in 0..100 {
        let events: Vec<NewEvent> = (0..1000)
            .map(|i| {
                let tag = format!("bg:{}", (batch * 1000 + i) % 1000);
                TagCodec {
                    event_type: "Background",
                }
                .encode_tag(&tag)
            })
            .collect::<Result<_, _>>()?;
        store
            .append(&stream, events, factos::AppendCondition::None)
            .await?;
    }
    Ok(())
}

impl TagCodec {
    fn encode_tag(&self, tag: &str) -> Result<NewEvent, factos::EncodeError> {
        factos::Codec::encode(self, &tag.to_string())
    }
}

/// One client dispatching on one boundary that already holds `size` events:
/// without the cache every dispatch reads them all; with it, only the first.
async fn context_sizes(
    stores: &[(String, Arc<Subject>)],
    duration: Duration,
    repeats: usize,
) -> Result<Vec<serde_json::Value>, BoxError> {
    let Some(store) = stores
        .iter()
        .find_map(|(name, subject)| match subject.as_ref() {
            Subject::Plain(store) if name == "Scoped" => Some(store.clone()),
            _ => None,
        })
    else {
        return Ok(Vec::new());
    };
    let subjects: Vec<&(String, Arc<Subject>)> = stores
        .iter()
        .filter(|(name, _)| name == "Scoped" || name == "Scoped+cache")
        .collect();
    let mut rows = Vec::new();
    println!("\n| context size (events) | subject | dispatches/s (1 client) | p50 ms |");
    println!("|---|---|---|---|");
    for size in [100usize, 10_000, 100_000] {
        let tag = format!("ctx:{size}");
        let stream = StreamId::new(format!("context-{size}"))?;
        let mut left = size;
        while left > 0 {
            let batch = left.min(1000);
            let events = (0..batch)
                .map(|_| {
                    TagCodec {
                        event_type: "Booked",
                    }
                    .encode_tag(&tag)
                })
                .collect::<Result<Vec<_>, _>>()?;
            store
                .append(&stream, events, factos::AppendCondition::None)
                .await?;
            left -= batch;
        }
        for (name, subject) in &subjects {
            let mut rates = Vec::new();
            let mut p50s = Vec::new();
            for _ in 0..repeats {
                let sample = run_fixed(subject, &tag, duration).await;
                rates.push(sample.dispatches_per_s);
                p50s.push(sample.latency_ms_p50);
            }
            let (rate, p50) = (median(rates), median(p50s));
            println!("| {size} | {name} | {rate:.0} | {p50:.2} |");
            rows.push(serde_json::json!({"workload": "context-size", "context_events": size, "subject": name, "dispatches_per_s_median": rate, "latency_ms_p50": p50}));
        }
    }
    Ok(rows)
}

/// One client dispatching on the boundary `tag` for `duration`.
async fn run_fixed(subject: &Arc<Subject>, tag: &str, duration: Duration) -> Sample {
    let deadline = Instant::now() + duration;
    let mut latencies_us = Vec::new();
    let mut sample = Sample::default();
    let (Ok(item), Ok(stream)) = (
        QueryItem::parse(["Booked"], [tag]),
        StreamId::new("context-client"),
    ) else {
        return sample;
    };
    let query = Query::item(item);
    let tag = tag.to_string();
    while Instant::now() < deadline {
        let started = Instant::now();
        match subject.dispatch(&stream, &query, &tag, "Booked").await {
            Ok(()) => {
                latencies_us.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            Err(DispatchError::AppendConditionFailed(_)) => sample.failed_conditions += 1,
            Err(_) => sample.errors += 1,
        }
    }
    sample.with_latencies(latencies_us, duration)
}

// The run reads top to bottom: set up, measure interleaved, report.
#[allow(clippy::too_many_lines)]
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // 2 s points keep the whole run under 15 minutes on 2 cores; every point
    // is still a median of interleaved repeats.
    let seconds = env_list("FACTOS_BENCH_SECONDS", &[2])[0];
    let duration = Duration::from_secs(u64::try_from(seconds).unwrap_or(5));
    let clients_list = env_list("FACTOS_BENCH_CLIENTS", &[1, 4, 16, 64]);
    let repeats = env_list("FACTOS_BENCH_REPEATS", &[3])[0];
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().next().map(str::to_string))
            .unwrap_or_default()
    );
    println!("machine: {machine}");
    // FACTOS_BENCH_SQLITE=1 runs only the SQLite measurements (sqlite.rs),
    // no server needed; the full run includes them.
    if std::env::var_os("FACTOS_BENCH_SQLITE").is_some() {
        sqlite::measure(repeats, duration).await?;
        return Ok(());
    }
    println!("starting a throwaway PostgreSQL cluster with fsync on...");
    // FACTOS_BENCH_PG_SETTINGS="name=value,name=value" adds server settings
    // (e.g. log_min_duration_statement=50 to see slow statements); the server
    // log is copied to target/factos-bench-server.log at the end.
    // shared_buffers as a server on this machine would be tuned (the
    // default 128 MB is far below the usual quarter of RAM); later settings
    // from the environment win.
    // FACTOS_BENCH_PROFILE=1 runs only the profile (see profile.rs); the
    // full run ends with it.
    let profiling = std::env::var_os("FACTOS_BENCH_PROFILE").is_some();
    // FACTOS_BENCH_SNAPSHOTS=1 runs only the snapshot measurements (see
    // snapshots.rs); the full run includes them.
    let snapshots_only = std::env::var_os("FACTOS_BENCH_SNAPSHOTS").is_some();
    // FACTOS_BENCH_OUTBOX=1 runs only the outbox measurements (see
    // outbox.rs); the full run includes them.
    let outbox_only = std::env::var_os("FACTOS_BENCH_OUTBOX").is_some();
    let settings: Vec<(String, String)> =
        std::iter::once(("shared_buffers".to_string(), "2GB".to_string()))
            .chain(profile::settings())
            .chain(
                std::env::var("FACTOS_BENCH_PG_SETTINGS")
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|kv| {
                        kv.split_once('=')
                            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    })
                    .collect::<Vec<_>>(),
            )
            .collect();
    let cluster = TempCluster::start_with(&ClusterOptions {
        durable: true,
        settings,
        // Three factos pools and the peer's, 80 connections each, plus pgbench.
        max_connections: 600,
    })?;
    if snapshots_only {
        snapshots::measure(&cluster, repeats, duration).await?;
        return Ok(());
    }
    if outbox_only {
        outbox::measure(&cluster, repeats, duration).await?;
        return Ok(());
    }
    // FACTOS_BENCH_REPLICAS=1 runs only the replica and partition figures
    // (see replicas.rs).
    if std::env::var_os("FACTOS_BENCH_REPLICAS").is_some() {
        replicas::measure(&cluster, repeats, duration).await?;
        return Ok(());
    }
    // FACTOS_BENCH_CAPACITY=1 runs only the single-primary capacity figures
    // (see capacity.rs).
    if std::env::var_os("FACTOS_BENCH_CAPACITY").is_some() {
        capacity::measure(&cluster, duration).await?;
        return Ok(());
    }
    let status = Command::new(cluster.bin_dir().join("createdb"))
        .arg("-h")
        .arg(cluster.socket_dir())
        .args(["-U", "postgres", "pgbench"])
        .status()?;
    if !status.success() {
        return Err("createdb failed".into());
    }
    let status = Command::new(cluster.bin_dir().join("pgbench"))
        .arg("-h")
        .arg(cluster.socket_dir())
        .args(["-U", "postgres", "-i", "-q", "-s", "10", "pgbench"])
        .output()?;
    if !status.status.success() {
        return Err(format!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&status.stderr)
        )
        .into());
    }
    let strategies = [
        LockingStrategy::TableLock,
        LockingStrategy::Scoped,
        LockingStrategy::Optimistic,
    ];
    let mut stores: Vec<(String, Arc<Subject>)> = Vec::new();
    for strategy in strategies {
        let schema = SchemaName::new(format!("{strategy:?}").to_lowercase())?;
        let store = PostgresStore::from_config(
            cluster.config("postgres"),
            80,
            StoreOptions::default().schema(schema).locking(strategy),
        )?;
        store.migrate().await?;
        seed_background(&store).await?;
        let client = store.pool().get().await?;
        client
            .batch_execute(&format!(
                "ANALYZE {0}.factos_events; ANALYZE {0}.factos_event_tags;",
                store.options().schema.quoted()
            ))
            .await?;
        if strategy == LockingStrategy::Scoped {
            let cached = booking_dispatcher(&store);
            stores.push((
                "Scoped+cache".to_string(),
                Arc::new(Subject::Cached(cached)),
            ));
            // Group commit: concurrent dispatches on one query share a
            // decision, an append and a commit.
            let combining =
                booking_dispatcher(&store).with_combining(factos::DEFAULT_BATCH_COMMANDS);
            stores.push((
                "Scoped+cache+combining".to_string(),
                Arc::new(Subject::Cached(combining)),
            ));
            // The same with idempotency keys: a batch looks its keyed
            // commands' earlier attempts up (one lookup by id).
            let keyed = booking_dispatcher(&store).with_combining(factos::DEFAULT_BATCH_COMMANDS);
            stores.push((
                "Scoped+cache+combining+keys".to_string(),
                Arc::new(Subject::Keyed(keyed)),
            ));
        }
        stores.push((format!("{strategy:?}"), Arc::new(Subject::Plain(store))));
    }
    stores.push((
        "disintegrate-postgres".to_string(),
        Arc::new(Subject::Peer(peer_subject(&cluster).await?)),
    ));
    println!(
        "seeded 100,000 background events per strategy and for the peer, analyzed; {repeats} repeats of {seconds} s per point\n"
    );

    if profiling {
        let profiles = profile::run(&cluster, &stores, &clients_list, duration).await?;
        targets::print(&[], &profiles);
        return Ok(());
    }
    let only: Option<(String, String)> = std::env::var("FACTOS_BENCH_ONLY").ok().and_then(|v| {
        v.split_once('/')
            .map(|(w, s)| (w.to_string(), s.to_string()))
    });
    let mut baseline: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut samples: BTreeMap<(Workload, String, usize), Vec<Sample>> = BTreeMap::new();
    let mut round = 0;
    for &clients in &clients_list {
        for _ in 0..repeats {
            baseline
                .entry(clients)
                .or_default()
                .push(pgbench(&cluster, clients, duration)?);
            for workload in [
                Workload::Disjoint,
                Workload::Growing,
                Workload::Hot,
                Workload::Courses,
            ] {
                // FACTOS_BENCH_ONLY=Disjoint/Scoped+cache narrows a run to one
                // workload and the subjects named (comma-separated).
                if only
                    .as_ref()
                    .is_some_and(|(w, _)| *w != format!("{workload:?}"))
                {
                    continue;
                }
                for (subject_name, subject) in &stores {
                    if only
                        .as_ref()
                        .is_some_and(|(_, s)| !s.split(',').any(|one| one == subject_name))
                    {
                        continue;
                    }
                    round += 1;
                    let sample = match (workload, subject.as_ref()) {
                        (Workload::Disjoint | Workload::Hot, Subject::Peer(maker)) => {
                            peer::run(maker, workload, clients, duration, round).await
                        }
                        (Workload::Courses, Subject::Plain(store)) => {
                            courses::run(store, clients, duration, round).await
                        }
                        (Workload::Growing | Workload::Courses, Subject::Peer(_))
                        | (Workload::Courses, Subject::Cached(_) | Subject::Keyed(_)) => continue,
                        _ => {
                            run_workload(subject, subject_name, workload, clients, duration, round)
                                .await
                        }
                    };
                    samples
                        .entry((workload, subject_name.clone(), clients))
                        .or_default()
                        .push(sample);
                }
            }
        }
        baseline
            .entry(clients)
            .or_default()
            .push(pgbench(&cluster, clients, duration)?);
    }

    let context_rows = if only.is_some() {
        Vec::new()
    } else {
        context_sizes(&stores, duration, repeats).await?
    };
    let subscription_rows = if only.is_some() {
        Vec::new()
    } else if let Some(store) = stores
        .iter()
        .find_map(|(name, subject)| match subject.as_ref() {
            Subject::Plain(store) if name == "Scoped" => Some(store.clone()),
            _ => None,
        })
    {
        // The subscriber gets its own pool: it is woken by NOTIFY like a
        // subscriber in another process.
        let subscriber_store =
            PostgresStore::from_config(cluster.config("postgres"), 4, store.options().clone())?;
        subscriptions::measure(&store, &subscriber_store, duration, repeats).await?
    } else {
        Vec::new()
    };
    let bulk_rows = if only.is_some() {
        Vec::new()
    } else {
        let size = env_list("FACTOS_BENCH_BULK_EVENTS", &[1_000_000])[0];
        bulk::measure(&cluster, size, repeats).await?
    };

    let snapshot_rows = if only.is_some() {
        Vec::new()
    } else {
        snapshots::measure(&cluster, repeats, duration).await?
    };
    let outbox_rows = if only.is_some() {
        Vec::new()
    } else {
        outbox::measure(&cluster, repeats, duration).await?
    };
    let sqlite_rows = if only.is_some() {
        Vec::new()
    } else {
        sqlite::measure(repeats, duration).await?
    };

    let mut json_rows = context_rows;
    json_rows.extend(subscription_rows);
    json_rows.extend(bulk_rows);
    json_rows.extend(snapshot_rows);
    json_rows.extend(outbox_rows);
    json_rows.extend(sqlite_rows);
    println!(
        "| workload | subject | clients | dispatches/s | ratio to pgbench -N | p50 ms | p99 ms | failed conditions | serialization errors | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &clients in &clients_list {
        let base = median(baseline.get(&clients).cloned().unwrap_or_default());
        println!("| pgbench -N | tps | {clients} | {base:.0} | 1.00 | | | | | |");
        json_rows.push(serde_json::json!({"workload": "pgbench-N", "clients": clients, "tps_median": base, "tps_all": baseline.get(&clients)}));
    }
    for ((workload, subject, clients), runs) in &samples {
        let base = median(baseline.get(clients).cloned().unwrap_or_default());
        let rate = median(runs.iter().map(|s| s.dispatches_per_s).collect());
        let p50 = median(runs.iter().map(|s| s.latency_ms_p50).collect());
        let p99 = median(runs.iter().map(|s| s.latency_ms_p99).collect());
        let failed: u64 = runs.iter().map(|s| s.failed_conditions).sum();
        let errors: u64 = runs.iter().map(|s| s.errors).sum();
        let serialization: u64 = runs.iter().map(|s| s.serialization_errors).sum();
        let ratio = if base > 0.0 { rate / base } else { 0.0 };
        println!(
            "| {workload:?} | {subject} | {clients} | {rate:.0} | {ratio:.2} | {p50:.2} | {p99:.2} | {failed} | {serialization} | {errors} |"
        );
        json_rows.push(serde_json::json!({
            "workload": format!("{workload:?}"), "subject": subject, "clients": clients,
            "dispatches_per_s_median": rate, "ratio_to_pgbench_n": ratio,
            "latency_ms_p50": p50, "latency_ms_p99": p99,
            "failed_conditions": failed, "serialization_errors": serialization, "errors": errors, "runs": runs,
        }));
    }
    print_batches(&samples, duration);
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/factos-bench.json");
    std::fs::write(
        &out,
        serde_json::to_string_pretty(
            &serde_json::json!({"machine": machine, "seconds": seconds, "repeats": repeats, "rows": json_rows}),
        )?,
    )?;
    // The profile runs last, on the schemas as the workloads left them.
    let profiles = if only.is_some() {
        Vec::new()
    } else {
        profile::run(&cluster, &stores, &[1, 16], duration).await?
    };
    targets::print(&json_rows, &profiles);
    println!("\nwrote {}", out.display());
    let _ = std::fs::copy(
        cluster.socket_dir().join("server.log"),
        out.with_file_name("factos-bench-server.log"),
    );
    drop(cluster);
    Ok(())
}

/// The combining subjects' batches per workload and client count: batches
/// of two or more commands per second, commands per batch, and the share of
/// dispatches that went in one (medians of the runs of `duration`).
fn print_batches(samples: &BTreeMap<(Workload, String, usize), Vec<Sample>>, duration: Duration) {
    println!(
        "\n| combined batches | subject | clients | dispatches/s | batches/s | commands per batch | share of dispatches batched |"
    );
    println!("|---|---|---|---|---|---|---|");
    let seconds = duration.as_secs_f64();
    for ((workload, subject, clients), runs) in samples {
        if !subject.starts_with("Scoped+cache+combining") {
            continue;
        }
        #[allow(clippy::cast_precision_loss)]
        let of = |pick: fn(&Sample) -> f64| median(runs.iter().map(pick).collect());
        let rate = of(|s| s.dispatches_per_s);
        #[allow(clippy::cast_precision_loss)]
        let batches = of(|s| s.batches as f64) / seconds;
        #[allow(clippy::cast_precision_loss)]
        let size = of(|s| s.batched_commands as f64 / s.batches.max(1) as f64);
        #[allow(clippy::cast_precision_loss)]
        let dispatched = |s: &Sample| s.dispatches_per_s * seconds;
        #[allow(clippy::cast_precision_loss)]
        let share = median(
            runs.iter()
                .map(|s| s.batched_commands as f64 / dispatched(s).max(1.0))
                .collect(),
        );
        println!(
            "| {workload:?} | {subject} | {clients} | {rate:.0} | {batches:.0} | {size:.1} | {share:.2} |"
        );
    }
}
