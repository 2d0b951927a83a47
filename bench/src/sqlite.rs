//! The SQLite backend against plain `rusqlite` single-row insert
//! transactions (`BEGIN IMMEDIATE; INSERT; COMMIT`) at the same durability
//! (WAL, `synchronous = FULL`), in the same run: disjoint boundaries and one
//! hot boundary (with combining) through a cached dispatcher at 1/4/16 clients, and bulk
//! appends of 1,000 events. `FACTOS_BENCH_SQLITE=1` runs only this.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use factos::{AppendCondition, Dispatcher, EventStore, NewEvent, Query, StreamId, Tag};
use factos_sqlite::{SqliteOptions, SqliteStore};

use crate::{Booking, BoxError, TagCodec, median};

/// Events per bulk append.
const BULK: usize = 1000;

/// `count` over the time since `started`.
fn per_second(count: u64, started: Instant) -> f64 {
    f64::from(u32::try_from(count).unwrap_or(u32::MAX)) / started.elapsed().as_secs_f64()
}

fn file(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}-{}.db", uuid::Uuid::new_v4()))
}

/// Single-row insert transactions per second by `clients` connections.
fn plain_rate(path: &std::path::Path, clients: usize, duration: Duration) -> Result<f64, BoxError> {
    let setup = rusqlite::Connection::open(path)?;
    setup.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS plain (id INTEGER PRIMARY KEY, tag TEXT NOT NULL, data BLOB NOT NULL);",
    )?;
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let (path, done) = (path.to_path_buf(), done.clone());
            std::thread::spawn(move || -> Result<(), rusqlite::Error> {
                let connection = rusqlite::Connection::open(&path)?;
                connection.busy_timeout(Duration::from_secs(10))?;
                connection.execute_batch("PRAGMA synchronous = FULL;")?;
                let tag = format!("c:{client}");
                while started.elapsed() < duration {
                    connection.execute_batch("BEGIN IMMEDIATE")?;
                    connection.execute(
                        "INSERT INTO plain (tag, data) VALUES (?1, ?2)",
                        rusqlite::params![tag, tag.as_bytes()],
                    )?;
                    connection.execute_batch("COMMIT")?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| "a plain writer panicked")??;
    }
    Ok(per_second(done.load(Ordering::Relaxed), started))
}

/// Dispatches per second through cached dispatchers: every client on its
/// own 50 boundaries (`hot`: all on one).
async fn factos_rate(
    store: &SqliteStore,
    clients: usize,
    hot: bool,
    duration: Duration,
) -> Result<f64, BoxError> {
    let dispatcher = Dispatcher::new(
        store.clone(),
        Booking,
        TagCodec {
            event_type: "Booked",
        },
    );
    // The hot boundary with group commit, as a service would run it.
    let dispatcher = Arc::new(if hot {
        dispatcher.with_combining(factos::DEFAULT_BATCH_COMMANDS)
    } else {
        dispatcher
    });
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (dispatcher, done) = (dispatcher.clone(), done.clone());
            tokio::spawn(async move {
                let mut n = 0usize;
                while started.elapsed() < duration {
                    let tag = if hot {
                        "hot:1".to_string()
                    } else {
                        format!("d:{client}:{}", n % 50)
                    };
                    let query = Query::tagged_with_all([Tag::new(tag.as_str())?]);
                    let stream = StreamId::new(tag.replace(':', "-"))?;
                    match dispatcher.dispatch_with_query(&stream, &query, &tag).await {
                        Ok(_) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if e.is_retryable() => {}
                        Err(e) => return Err::<(), BoxError>(format!("{e:?}").into()),
                    }
                    n += 1;
                }
                Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let rate = per_second(done.load(Ordering::Relaxed), started);
    let groups = store.group_commits();
    eprintln!(
        "  sqlite {} {clients} clients: {} writes in {} writer transactions",
        if hot { "hot" } else { "disjoint" },
        groups.writes,
        groups.transactions
    );
    Ok(rate)
}

/// Events per second appended in batches of [`BULK`] by one client.
async fn bulk_rate(store: &SqliteStore, duration: Duration) -> Result<f64, BoxError> {
    let stream = StreamId::new("bulk")?;
    let started = Instant::now();
    let mut events = 0usize;
    while started.elapsed() < duration {
        let batch = (0..BULK)
            .map(|i| {
                Ok(
                    NewEvent::new(factos::EventType::new("Bulk")?, i.to_le_bytes().to_vec())
                        .with_tags(factos::Tags::parse([format!("b:{}", i % 16)])?),
                )
            })
            .collect::<Result<Vec<_>, factos::ValidationError>>()?;
        store.append(&stream, batch, AppendCondition::None).await?;
        events += BULK;
    }
    Ok(per_second(
        u64::try_from(events).unwrap_or(u64::MAX),
        started,
    ))
}

pub(crate) async fn measure(
    repeats: usize,
    duration: Duration,
) -> Result<Vec<serde_json::Value>, BoxError> {
    let dir = std::env::temp_dir().join(format!("factos-bench-sqlite-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let mut rows = Vec::new();
    println!(
        "\n| SQLite (WAL, synchronous FULL) | clients | per s | ratio to plain rusqlite inserts |"
    );
    println!("|---|---|---|---|");
    for clients in [1usize, 4, 16] {
        let (mut plain, mut disjoint, mut hot) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..repeats {
            let path = file(&dir, "plain");
            plain.push(
                tokio::task::spawn_blocking(move || plain_rate(&path, clients, duration)).await??,
            );
            let store = SqliteStore::open(file(&dir, "disjoint"), SqliteOptions::default()).await?;
            disjoint.push(factos_rate(&store, clients, false, duration).await?);
            let store = SqliteStore::open(file(&dir, "hot"), SqliteOptions::default()).await?;
            hot.push(factos_rate(&store, clients, true, duration).await?);
        }
        let (plain, disjoint, hot) = (median(plain), median(disjoint), median(hot));
        println!("| plain rusqlite insert transactions | {clients} | {plain:.0} | 1.00 |");
        println!(
            "| factos disjoint (cached dispatcher) | {clients} | {disjoint:.0} | {:.2} |",
            disjoint / plain
        );
        println!(
            "| factos hot (one boundary, combining) | {clients} | {hot:.0} | {:.2} |",
            hot / plain
        );
        rows.push(serde_json::json!({
            "workload": "sqlite", "clients": clients, "plain_per_s": plain,
            "disjoint_per_s": disjoint, "hot_per_s": hot,
        }));
    }
    let mut bulk = Vec::new();
    let mut single = Vec::new();
    for _ in 0..repeats {
        let store = SqliteStore::open(file(&dir, "bulk"), SqliteOptions::default()).await?;
        bulk.push(bulk_rate(&store, duration).await?);
        let path = file(&dir, "plain1");
        single.push(tokio::task::spawn_blocking(move || plain_rate(&path, 1, duration)).await??);
    }
    let (bulk, single) = (median(bulk), median(single));
    println!(
        "| factos bulk appends of {BULK} (events/s) | 1 | {bulk:.0} | {:.1} |",
        bulk / single
    );
    rows.push(
        serde_json::json!({"workload": "sqlite-bulk", "events_per_s": bulk, "plain_per_s": single}),
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rows)
}
