//! The subcommands. Every failure becomes one readable sentence.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use factos::{
    EventStore, Position, Query, QueryItem, ReadOptions, StoreError, StoreErrorKind, StreamId,
};
use factos_postgres::throwaway::TempCluster;
use factos_postgres::tokio_postgres;
use factos_postgres::{PostgresStore, SchemaName, StoreOptions};

use crate::Command;
use crate::output::{Format, print_event};

/// Filters shared by `events` and `tail`.
#[derive(Debug, Args)]
pub(crate) struct Filter {
    /// Only events of this type (repeat for several: any of them).
    #[arg(long = "type", value_name = "TYPE")]
    types: Vec<String>,
    /// Only events carrying this tag (repeat for several: all of them).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

/// Arguments of `factos events`.
#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    #[command(flatten)]
    filter: Filter,
    /// Only events of this stream.
    #[arg(long)]
    stream: Option<String>,
    /// Start at this position (inclusive).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=Position::MAX))]
    from: Option<u64>,
    /// Print at most this many events.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Newest first.
    #[arg(long)]
    backwards: bool,
}

/// Arguments of `factos tail`.
#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    #[command(flatten)]
    filter: Filter,
    /// Start after this position (default: the current head, so only new events).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=Position::MAX - 1))]
    after: Option<u64>,
    /// How often to look for new events, in milliseconds (1 to 60000).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    interval_ms: u64,
    /// Stop after this many events (default: follow until interrupted).
    #[arg(long)]
    max_events: Option<usize>,
}

/// Arguments of `factos verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Positions checked per batch (1 to 10000000).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(i64).range(1..=10_000_000))]
    batch: i64,
}

pub(crate) async fn run(
    command: Command,
    url: Option<String>,
    schema: &str,
) -> Result<ExitCode, String> {
    let schema = SchemaName::new(schema).map_err(|e| e.to_string())?;
    match command {
        Command::Demo => demo(url, schema).await,
        Command::Migrate => {
            let store = connect(url.as_deref(), &schema)?;
            let report = store.migrate().await.map_err(|e| explain(&e, &schema))?;
            if report.applied.is_empty() {
                println!(
                    "schema {} is already at version {}",
                    report.schema, report.version
                );
            } else {
                println!(
                    "schema {}: applied versions {:?}, now at version {}",
                    report.schema, report.applied, report.version
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => status(&migrated(url.as_deref(), &schema).await?).await,
        Command::Events(args) => events(&migrated(url.as_deref(), &schema).await?, args).await,
        Command::Tail(args) => tail(&migrated(url.as_deref(), &schema).await?, args).await,
        Command::Subscriptions => subscriptions(&migrated(url.as_deref(), &schema).await?).await,
        Command::Verify(args) => verify(&migrated(url.as_deref(), &schema).await?, &args).await,
    }
}

/// Where the configuration points, without credentials.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config.get_hosts().first().map_or_else(
        || "localhost".to_string(),
        |h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        },
    );
    format!(
        "{host}/{}",
        config.get_dbname().unwrap_or("(default database)")
    )
}

fn connect(url: Option<&str>, schema: &SchemaName) -> Result<PostgresStore, String> {
    let url = url.filter(|u| !u.trim().is_empty()).ok_or(
        "no database given: pass --database-url or set DATABASE_URL (or run `factos demo` to try factos on a throwaway PostgreSQL)",
    )?;
    // The parse error never repeats the string: it may hold a password.
    let config = factos_postgres::parse_connection_string(url)
        .map_err(|e| format!("the database URL is {e}"))?;
    let target = describe(&config);
    PostgresStore::from_config(config, 4, StoreOptions::default().schema(schema.clone()))
        .map_err(|e| format!("cannot use the database at {target}: {}", e.message()))
}

/// A store whose schema exists (else the one sentence that says to migrate).
async fn migrated(url: Option<&str>, schema: &SchemaName) -> Result<PostgresStore, String> {
    let store = connect(url, schema)?;
    match store.schema_version().await {
        Ok(Some(_)) => Ok(store),
        Ok(None) => Err(format!(
            "the database has no factos schema \"{schema}\"; run `factos migrate` first"
        )),
        Err(e) => Err(explain(&e, schema)),
    }
}

/// One sentence for a store error.
fn explain(error: &StoreError, schema: &SchemaName) -> String {
    let cause = std::error::Error::source(error)
        .map(ToString::to_string)
        .unwrap_or_default();
    match error.kind() {
        StoreErrorKind::Unavailable => format!("cannot reach PostgreSQL: {cause}"),
        StoreErrorKind::Timeout => format!("PostgreSQL did not answer in time: {cause}"),
        StoreErrorKind::Schema => format!(
            "the database has no usable factos schema \"{schema}\"; run `factos migrate` first"
        ),
        _ => error.to_string(),
    }
}

async fn demo(url: Option<String>, schema: SchemaName) -> Result<ExitCode, String> {
    let (store, cluster) = if let Some(url) = url.filter(|u| !u.trim().is_empty()) {
        println!("using the database from --database-url / DATABASE_URL");
        (connect(Some(&url), &schema)?, None)
    } else {
        println!(
            "DATABASE_URL is not set: starting a throwaway PostgreSQL cluster (removed on exit)"
        );
        let cluster = TempCluster::start().map_err(|e| e.to_string())?;
        let store = PostgresStore::from_config(
            cluster.config("postgres"),
            32,
            StoreOptions::default().schema(schema.clone()),
        )
        .map_err(|e| e.to_string())?;
        (store, Some(cluster))
    };
    store.migrate().await.map_err(|e| explain(&e, &schema))?;
    println!("tickets: capacity 100, 300 buyers, 128 at a time");
    let outcome = factos_examples::tickets::run_sale(&store, "demo-concert", 100, 300, 128)
        .await
        .map_err(|e| e.to_string())?;
    println!("accepted: {}", outcome.accepted);
    println!("sold out: {}", outcome.sold_out);
    println!("events stored: {}", outcome.events_stored);
    drop(store);
    drop(cluster);
    Ok(ExitCode::SUCCESS)
}

fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

async fn status(store: &PostgresStore) -> Result<ExitCode, String> {
    let schema = &store.options().schema;
    let version = store
        .schema_version()
        .await
        .map_err(|e| explain(&e, schema))?
        .unwrap_or(0);
    let client = store
        .pool()
        .get()
        .await
        .map_err(|e| format!("cannot reach PostgreSQL: {e}"))?;
    let sql = include_str!("../sql/status.sql").replace("{schema}", &schema.quoted());
    let row = client
        .query_one(&sql, &[])
        .await
        .map_err(|e| format!("cannot read the status: {e}"))?;
    let head: Option<i64> = row.get("head");
    println!(
        "schema:        {schema} (version {version}, this factos needs {})",
        factos_postgres::SCHEMA_VERSION
    );
    println!("events:        {}", row.get::<_, i64>("events"));
    println!(
        "head position: {}",
        head.map_or_else(|| "none".to_string(), |h| h.to_string())
    );
    println!("streams:       {}", row.get::<_, i64>("streams"));
    println!("distinct tags: {}", row.get::<_, i64>("tags"));
    println!("event table:   {}", human_bytes(row.get("events_bytes")));
    println!("tag mirror:    {}", human_bytes(row.get("tags_bytes")));
    Ok(ExitCode::SUCCESS)
}

async fn subscriptions(store: &PostgresStore) -> Result<ExitCode, String> {
    let schema = &store.options().schema;
    let head = store
        .read(&Query::all(), ReadOptions::default().limit(0))
        .await
        .map_err(|e| explain(&e, schema))?
        .head
        .map_or(0, Position::get);
    let subscribers = store.subscribers().await.map_err(|e| explain(&e, schema))?;
    if subscribers.is_empty() {
        println!("no subscribers");
    } else {
        println!(
            "{:<32} {:>12} {:>12}  state",
            "subscriber", "checkpoint", "behind head"
        );
        for s in subscribers {
            println!(
                "{:<32} {:>12} {:>12}  {}",
                s.name,
                s.checkpoint,
                head.saturating_sub(s.checkpoint),
                if s.active { "active" } else { "stopped" }
            );
        }
    }
    let client = store
        .pool()
        .get()
        .await
        .map_err(|e| format!("cannot reach PostgreSQL: {e}"))?;
    let sql = include_str!("../sql/outbox_summary.sql").replace("{schema}", &schema.quoted());
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| format!("cannot read the outbox: {e}"))?;
    if rows.is_empty() {
        println!("outbox: empty");
    } else {
        println!(
            "{:<32} {:>9} {:>9} {:>9}",
            "outbox topic", "waiting", "leased", "parked"
        );
        for row in rows {
            println!(
                "{:<32} {:>9} {:>9} {:>9}",
                row.get::<_, String>("topic"),
                row.get::<_, i64>("waiting"),
                row.get::<_, i64>("leased"),
                row.get::<_, i64>("parked")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn query_of(filter: &Filter) -> Result<Query, String> {
    if filter.types.is_empty() && filter.tags.is_empty() {
        return Ok(Query::all());
    }
    QueryItem::parse(filter.types.iter().cloned(), filter.tags.iter().cloned())
        .map(Query::item)
        .map_err(|e| format!("invalid filter: {e}"))
}

fn format_of(filter: &Filter) -> Format {
    if filter.json {
        Format::JsonLines
    } else {
        Format::Table
    }
}

async fn events(store: &PostgresStore, args: EventsArgs) -> Result<ExitCode, String> {
    let schema = &store.options().schema;
    let query = query_of(&args.filter)?;
    let from = args
        .from
        .map(|p| Position::new(p).ok_or("--from is not a position"))
        .transpose()?;
    let events = if let Some(stream) = &args.stream {
        let stream = StreamId::new(stream.clone()).map_err(|e| format!("invalid --stream: {e}"))?;
        let mut events: Vec<_> = store
            .read_stream(&stream)
            .await
            .map_err(|e| explain(&e, schema))?
            .events
            .into_iter()
            .filter(|e| e.matches(&query))
            .filter(|e| {
                from.is_none_or(|f| {
                    if args.backwards {
                        e.position <= f
                    } else {
                        e.position >= f
                    }
                })
            })
            .collect();
        if args.backwards {
            events.reverse();
        }
        events.truncate(args.limit);
        events
    } else {
        let mut options = ReadOptions::default().limit(args.limit);
        options.from = from;
        options.backwards = args.backwards;
        store
            .read(&query, options)
            .await
            .map_err(|e| explain(&e, schema))?
            .events
    };
    let format = format_of(&args.filter);
    crate::output::print_header(format);
    for event in &events {
        print_event(format, event);
    }
    if format == Format::Table {
        println!("({} events)", events.len());
    }
    Ok(ExitCode::SUCCESS)
}

async fn tail(store: &PostgresStore, args: TailArgs) -> Result<ExitCode, String> {
    let schema = &store.options().schema;
    let query = query_of(&args.filter)?;
    let format = format_of(&args.filter);
    let mut after = match args.after {
        Some(p) => p,
        None => store
            .read(&query, ReadOptions::default().limit(0))
            .await
            .map_err(|e| explain(&e, schema))?
            .head
            .map_or(0, Position::get),
    };
    if format == Format::Table {
        eprintln!("following events after position {after} (Ctrl-C to stop)");
    }
    crate::output::print_header(format);
    let mut printed = 0usize;
    let interval = Duration::from_millis(args.interval_ms);
    loop {
        let from = Position::new(after.saturating_add(1)).ok_or("position overflow")?;
        let read = store
            .read(&query, ReadOptions::default().from(from).limit(1000))
            .await
            .map_err(|e| explain(&e, schema))?;
        for event in &read.events {
            print_event(format, event);
            printed += 1;
            if args.max_events.is_some_and(|max| printed >= max) {
                return Ok(ExitCode::SUCCESS);
            }
        }
        // Settled reads: nothing can appear at or below the head later.
        after = read.head.map_or(after, |h| h.get().max(after));
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

async fn verify(store: &PostgresStore, args: &VerifyArgs) -> Result<ExitCode, String> {
    let schema = store.options().schema.quoted();
    let client = store
        .pool()
        .get()
        .await
        .map_err(|e| format!("cannot reach PostgreSQL: {e}"))?;
    let head: i64 = client
        .query_one(
            &format!("SELECT coalesce(max(position), 0) FROM {schema}.factos_events"),
            &[],
        )
        .await
        .map_err(|e| format!("cannot read the head: {e}"))?
        .get(0);
    let missing_sql = include_str!("../sql/verify_mirror_missing.sql").replace("{schema}", &schema);
    let extra_sql = include_str!("../sql/verify_mirror_extra.sql").replace("{schema}", &schema);
    let progress = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(u64::try_from(head).unwrap_or(0))
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "verifying {bar:40} {pos}/{len} positions ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut faults: Vec<String> = Vec::new();
    let batch = args.batch;
    let mut lower = 0i64;
    while lower < head && faults.len() < 50 {
        let upper = lower.saturating_add(batch).min(head);
        for row in client
            .query(&missing_sql, &[&lower, &upper])
            .await
            .map_err(|e| format!("cannot check the tag mirror: {e}"))?
        {
            faults.push(format!(
                "event {} carries tag {:?} but the mirror has no row for it",
                row.get::<_, i64>(0),
                row.get::<_, String>(1)
            ));
        }
        for row in client
            .query(&extra_sql, &[&lower, &upper])
            .await
            .map_err(|e| format!("cannot check the tag mirror: {e}"))?
        {
            faults.push(format!(
                "the mirror has tag {:?} for position {}, which the event does not carry",
                row.get::<_, String>(1),
                row.get::<_, i64>(0)
            ));
        }
        progress.set_position(u64::try_from(upper).unwrap_or(0));
        lower = upper;
    }
    progress.finish_and_clear();
    let revisions_sql = include_str!("../sql/verify_revisions.sql").replace("{schema}", &schema);
    for row in client
        .query(&revisions_sql, &[])
        .await
        .map_err(|e| format!("cannot check the revisions: {e}"))?
    {
        let (stream, count, first, last, increasing): (String, i64, i64, i64, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        if increasing {
            faults.push(format!("stream {stream:?}: {count} events with revisions {first}..={last}, expected 0..={}", count - 1));
        } else {
            faults.push(format!(
                "stream {stream:?}: positions do not increase with revisions"
            ));
        }
    }
    if faults.is_empty() {
        println!(
            "ok: {head} positions checked; revisions contiguous in every stream; the tag mirror matches the events"
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} faults found:", faults.len());
        for fault in &faults {
            println!("  {fault}");
        }
        Ok(ExitCode::from(1))
    }
}
