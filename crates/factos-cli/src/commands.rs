//! The subcommands. Every failure becomes one readable sentence.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use factos::{
    EventStore, Position, Query, QueryItem, ReadOptions, StoreError, StoreErrorKind, StreamId,
};
use factos_postgres::tokio_postgres;
use factos_postgres::{PostgresStore, SchemaName, StoreOptions, VerifyOptions};

use crate::Command;
use crate::output::{Format, SubscriberRow, TopicRow, print_streamed_event, print_subscriptions};

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

/// What `factos outbox` does with a topic's parked messages.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum OutboxAction {
    /// List the ids of a topic's parked messages, oldest first.
    Parked {
        /// The topic.
        topic: String,
    },
    /// Put a parked message back in line, its attempts reset.
    Requeue {
        /// The topic.
        topic: String,
        /// The message's id (from `factos outbox parked`).
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
    },
}

/// A store's outbox as `factos outbox` manages it.
pub(crate) trait OutboxAdmin {
    /// The ids of a topic's parked messages, oldest first.
    async fn parked_messages(&self, topic: factos::Topic) -> Result<Vec<i64>, String>;
    /// Puts a parked message back in line; false if there is no such one.
    async fn requeue_message(&self, topic: factos::Topic, id: i64) -> Result<bool, String>;
}

impl OutboxAdmin for PostgresStore {
    async fn parked_messages(&self, topic: factos::Topic) -> Result<Vec<i64>, String> {
        factos_postgres::Outbox::new(self, topic)
            .parked()
            .await
            .map_err(|e| e.to_string())
    }
    async fn requeue_message(&self, topic: factos::Topic, id: i64) -> Result<bool, String> {
        factos_postgres::Outbox::new(self, topic)
            .requeue(id)
            .await
            .map_err(|e| e.to_string())
    }
}

/// `factos outbox parked|requeue` on any store.
pub(crate) async fn outbox<S: OutboxAdmin>(
    store: &S,
    action: OutboxAction,
) -> Result<ExitCode, String> {
    let topic_of =
        |name: &str| factos::Topic::new(name).map_err(|e| format!("topic {name:?}: {e}"));
    match action {
        OutboxAction::Parked { topic } => {
            let parked = store.parked_messages(topic_of(&topic)?).await?;
            if parked.is_empty() {
                println!("{topic}: no parked messages");
            }
            for id in parked {
                println!("{id}");
            }
            Ok(ExitCode::SUCCESS)
        }
        OutboxAction::Requeue { topic, id } => {
            let requeued = store.requeue_message(topic_of(&topic)?, id).await?;
            if !requeued {
                return Err(format!("{topic} has no parked message {id}"));
            }
            println!("message {id} of {topic} is back in line");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What `factos subscriptions` does with a subscriber's parked events.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ParkedAction {
    /// List a subscriber's parked events (position, event id, attempts, error).
    Parked {
        /// The subscriber.
        subscriber: String,
    },
    /// Ask a subscriber to hand a parked event over again (at its next step).
    Retry {
        /// The subscriber.
        subscriber: String,
        /// The parked event's position.
        #[arg(value_parser = clap::value_parser!(u64).range(1..=Position::MAX))]
        position: u64,
    },
    /// Move a stopped subscriber's checkpoint (default: to the start) and
    /// forget its query, so its next run, with any query, starts there.
    Reset {
        /// The subscriber.
        subscriber: String,
        /// The position to go on after (0: replay everything).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=Position::MAX))]
        to: u64,
    },
    /// Forget a stopped subscriber: its checkpoint, query and parked
    /// events (blue/green: the old projection, once readers use the new one).
    Remove {
        /// The subscriber.
        subscriber: String,
    },
    /// Forget a parked event: the subscriber never hands it over again.
    Drop {
        /// The subscriber.
        subscriber: String,
        /// The parked event's position.
        #[arg(value_parser = clap::value_parser!(u64).range(1..=Position::MAX))]
        position: u64,
    },
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
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    batch: u64,
}

pub(crate) async fn run(
    command: Command,
    url: Option<String>,
    schema: &str,
) -> Result<ExitCode, String> {
    if let Some(path) = url.as_deref().and_then(|u| u.strip_prefix("sqlite:")) {
        return crate::sqlite::run(command, path).await;
    }
    let schema = SchemaName::new(schema).map_err(|e| e.to_string())?;
    match command {
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
        Command::Events(args) => {
            let store = migrated(url.as_deref(), &schema).await?;
            events(&store, args, |e| explain(e, &schema)).await
        }
        Command::Tail(args) => {
            let store = migrated(url.as_deref(), &schema).await?;
            tail(&store, args, |e| explain(e, &schema)).await
        }
        Command::Subscriptions { action: None } => {
            subscriptions(&migrated(url.as_deref(), &schema).await?).await
        }
        Command::Subscriptions {
            action: Some(action),
        } => parked(&migrated(url.as_deref(), &schema).await?, action).await,
        Command::Outbox { action } => {
            outbox(&migrated(url.as_deref(), &schema).await?, action).await
        }
        Command::Verify(args) => verify(&migrated(url.as_deref(), &schema).await?, &args).await,
        Command::Ui(args) => {
            crate::ui::serve(migrated(url.as_deref(), &schema).await?, args).await?;
            Ok(ExitCode::SUCCESS)
        }
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
        "no database given: pass --database-url or set DATABASE_URL (or run `cargo run -p factos-examples --example tickets` to try factos on a throwaway PostgreSQL)",
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

pub(crate) fn human_bytes(bytes: u64) -> String {
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
    let status = store.status().await.map_err(|e| explain(&e, schema))?;
    println!(
        "schema:        {schema} (version {}, this factos needs {})",
        status.schema_version,
        factos_postgres::SCHEMA_VERSION
    );
    println!("events:        {}", status.events);
    println!(
        "head position: {}",
        status
            .head
            .map_or_else(|| "none".to_string(), |h| h.to_string())
    );
    println!("streams:       {}", status.streams);
    println!("distinct tags: {}", status.distinct_tags);
    println!("event table:   {}", human_bytes(status.event_table_bytes));
    println!("tag mirror:    {}", human_bytes(status.tag_mirror_bytes));
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
    let topics = store
        .outbox_topics()
        .await
        .map_err(|e| explain(&e, schema))?;
    print_subscriptions(
        subscribers
            .into_iter()
            .map(|s| {
                let checkpoint = s.checkpoint.map_or(0, Position::get);
                SubscriberRow {
                    name: s.name,
                    checkpoint,
                    behind_head: head.saturating_sub(checkpoint),
                    active: s.active,
                }
            })
            .collect(),
        topics
            .into_iter()
            .map(|t| TopicRow {
                topic: t.topic,
                waiting: t.waiting,
                leased: t.leased,
                parked: t.parked,
            })
            .collect(),
    );
    Ok(ExitCode::SUCCESS)
}

async fn parked(store: &PostgresStore, action: ParkedAction) -> Result<ExitCode, String> {
    let schema = &store.options().schema;
    let at = |position: u64| {
        Position::new(position)
            .ok_or_else(|| format!("position {position} is past the largest position"))
    };
    match action {
        ParkedAction::Parked { subscriber } => {
            let parked = store
                .parked_events(&subscriber)
                .await
                .map_err(|e| explain(&e, schema))?;
            if parked.is_empty() {
                println!("{subscriber}: no parked events");
            }
            for event in parked {
                println!(
                    "{:>12}  {}  {:>3} attempts{}  {}",
                    event.position,
                    event.event_id,
                    event.attempts,
                    if event.requeued { ", requeued" } else { "" },
                    event.error.replace('\n', " ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ParkedAction::Retry {
            subscriber,
            position,
        } => {
            let found = store
                .requeue_parked(&subscriber, at(position)?)
                .await
                .map_err(|e| explain(&e, schema))?;
            reported(
                found,
                || format!("{subscriber} has no parked event at position {position}"),
                || {
                    format!(
                        "{subscriber} hands the event at position {position} over again at its next step"
                    )
                },
            )
        }
        ParkedAction::Reset { subscriber, to } => {
            let position = if to == 0 { None } else { Some(at(to)?) };
            let found = store
                .reset_subscriber(&subscriber, position)
                .await
                .map_err(|e| e.to_string())?;
            reported(
                found,
                || format!("there is no subscriber {subscriber}"),
                || format!("{subscriber} goes on after position {to} at its next run"),
            )
        }
        ParkedAction::Remove { subscriber } => {
            let found = store
                .remove_subscriber(&subscriber)
                .await
                .map_err(|e| e.to_string())?;
            reported(
                found,
                || format!("there is no subscriber {subscriber}"),
                || format!("{subscriber} is forgotten: its checkpoint and parked events are gone"),
            )
        }
        ParkedAction::Drop {
            subscriber,
            position,
        } => {
            let found = store
                .drop_parked(&subscriber, at(position)?)
                .await
                .map_err(|e| explain(&e, schema))?;
            reported(
                found,
                || format!("{subscriber} has no parked event at position {position}"),
                || format!("{subscriber} dropped the parked event at position {position}"),
            )
        }
    }
}

/// An operation on one subscriber's row: `done` is printed when the row
/// was there, `missing` is the error when it was not.
fn reported(
    found: bool,
    missing: impl FnOnce() -> String,
    done: impl FnOnce() -> String,
) -> Result<ExitCode, String> {
    if !found {
        return Err(missing());
    }
    println!("{}", done());
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

/// `factos events` on any store; `explain` says a store error in one sentence.
pub(crate) async fn events<S: EventStore>(
    store: &S,
    args: EventsArgs,
    explain: impl Fn(&StoreError) -> String,
) -> Result<ExitCode, String> {
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
            .map_err(|e| explain(&e))?
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
            .map_err(|e| explain(&e))?
            .events
    };
    crate::output::print_events(format_of(&args.filter), &events);
    Ok(ExitCode::SUCCESS)
}

/// `factos tail` on any store; `explain` says a store error in one sentence.
pub(crate) async fn tail<S: EventStore>(
    store: &S,
    args: TailArgs,
    explain: impl Fn(&StoreError) -> String,
) -> Result<ExitCode, String> {
    let query = query_of(&args.filter)?;
    let format = format_of(&args.filter);
    let mut after = match args.after {
        Some(p) => p,
        None => store
            .read(&query, ReadOptions::default().limit(0))
            .await
            .map_err(|e| explain(&e))?
            .head
            .map_or(0, Position::get),
    };
    if format == Format::Table {
        eprintln!("following events after position {after} (Ctrl-C to stop)");
    }
    crate::output::print_streamed_header(format);
    let mut printed = 0usize;
    let interval = Duration::from_millis(args.interval_ms);
    loop {
        let from = Position::new(after.saturating_add(1)).ok_or("position overflow")?;
        let read = store
            .read(&query, ReadOptions::default().from(from).limit(1000))
            .await
            .map_err(|e| explain(&e))?;
        for event in &read.events {
            print_streamed_event(format, event);
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
    let schema = &store.options().schema;
    let batch = std::num::NonZeroU64::new(args.batch).ok_or("--batch must be at least 1")?;
    let progress = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "verifying {bar:40} {pos}/{len} positions ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = store
        .verify(&VerifyOptions::default().batch(batch), |step| {
            progress.set_length(step.head.get());
            progress.set_position(step.checked_up_to.get());
        })
        .await
        .map_err(|e| explain(&e, schema));
    progress.finish_and_clear();
    let report = report?;
    if report.is_ok() {
        println!(
            "ok: {} positions checked; revisions contiguous in every stream; the tag mirror matches the events",
            report.head.map_or(0, Position::get)
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} faults found:", report.faults.len());
        for fault in &report.faults {
            println!("  {fault}");
        }
        Ok(ExitCode::from(1))
    }
}
