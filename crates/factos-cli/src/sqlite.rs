//! The commands on a SQLite file (`--database-url sqlite:PATH`): migrate,
//! status, events, tail, verify, subscriptions (list, reset, remove) and
//! the outbox (parked, requeue). Parked subscriber events are not on
//! SQLite yet (its subscriptions stop on a poison event).

use std::process::ExitCode;

use factos::{EventStore, Position, Query, ReadOptions, StoreError};
use factos_sqlite::{Outbox, SqliteOptions, SqliteStore};

use crate::Command;
use crate::commands::{OutboxAdmin, ParkedAction};
use crate::output::{SubscriberRow, TopicRow, print_subscriptions};

pub(crate) async fn run(command: Command, path: &str) -> Result<ExitCode, String> {
    if path.is_empty() {
        return Err("no file given: sqlite:PATH".to_string());
    }
    let missing = !std::path::Path::new(path).exists();
    if missing && !matches!(command, Command::Migrate) {
        return Err(format!(
            "there is no SQLite file {path}; run `factos migrate` to create one"
        ));
    }
    // Opening migrates: `migrate` creates the file, the others find it current.
    let store = SqliteStore::open(path, SqliteOptions::default())
        .await
        .map_err(|e| explain(&e))?;
    match command {
        Command::Migrate => {
            println!(
                "{path} is at schema version {}",
                factos_sqlite::MIGRATIONS.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => status(&store, path).await,
        Command::Events(args) => crate::commands::events(&store, args, explain).await,
        Command::Tail(args) => crate::commands::tail(&store, args, explain).await,
        Command::Verify(_) => verify(&store).await,
        Command::Subscriptions { action: None } => subscriptions(&store).await,
        Command::Subscriptions {
            action: Some(action),
        } => subscriber(&store, action).await,
        Command::Outbox { action } => crate::commands::outbox(&store, action).await,
        Command::Ui(_) => Err(
            "`factos ui` serves PostgreSQL stores only; for a SQLite file use `factos status`, `events`, `subscriptions` and `outbox`"
                .to_string(),
        ),
    }
}

async fn subscriptions(store: &SqliteStore) -> Result<ExitCode, String> {
    let subscribers = store.subscribers().await.map_err(|e| explain(&e))?;
    let topics = store.outbox_topics().await.map_err(|e| explain(&e))?;
    print_subscriptions(
        subscribers
            .into_iter()
            .map(|s| SubscriberRow {
                name: s.name,
                checkpoint: s.checkpoint.map_or(0, Position::get),
                behind_head: s.behind_head,
                active: s.active,
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

async fn subscriber(store: &SqliteStore, action: ParkedAction) -> Result<ExitCode, String> {
    match action {
        ParkedAction::Reset { subscriber, to } => {
            if !store
                .reset_subscriber(&subscriber, to)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("there is no subscriber {subscriber}"));
            }
            println!("subscriber {subscriber} goes on after position {to}");
            Ok(ExitCode::SUCCESS)
        }
        ParkedAction::Remove { subscriber } => {
            if !store
                .remove_subscriber(&subscriber)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("there is no subscriber {subscriber}"));
            }
            println!("subscriber {subscriber} removed");
            Ok(ExitCode::SUCCESS)
        }
        ParkedAction::Parked { .. } | ParkedAction::Retry { .. } | ParkedAction::Drop { .. } => {
            Err("parked subscriber events are not on SQLite yet (its subscriptions stop on a poison event)".to_string())
        }
    }
}

impl OutboxAdmin for SqliteStore {
    async fn parked_messages(&self, topic: factos::Topic) -> Result<Vec<i64>, String> {
        Outbox::new(self, topic)
            .parked()
            .await
            .map_err(|e| e.to_string())
    }
    async fn requeue_message(&self, topic: factos::Topic, id: i64) -> Result<bool, String> {
        Outbox::new(self, topic)
            .requeue(id)
            .await
            .map_err(|e| e.to_string())
    }
}

fn explain(error: &StoreError) -> String {
    error.to_string()
}

async fn status(store: &SqliteStore, path: &str) -> Result<ExitCode, String> {
    let all = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .map_err(|e| explain(&e))?;
    let streams: std::collections::BTreeSet<&str> =
        all.events.iter().map(|e| e.stream.as_str()).collect();
    let tags: std::collections::BTreeSet<&str> = all
        .events
        .iter()
        .flat_map(|e| e.tags.iter().map(factos::Tag::as_str))
        .collect();
    let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    println!(
        "file:          {path} (schema version {})",
        factos_sqlite::MIGRATIONS.len()
    );
    println!("events:        {}", all.events.len());
    println!(
        "head position: {}",
        all.head
            .map_or_else(|| "none".to_string(), |p: Position| p.to_string())
    );
    println!("streams:       {}", streams.len());
    println!("distinct tags: {}", tags.len());
    println!("file size:     {}", crate::commands::human_bytes(bytes));
    Ok(ExitCode::SUCCESS)
}

async fn verify(store: &SqliteStore) -> Result<ExitCode, String> {
    let faults = store.verify().await.map_err(|e| explain(&e))?;
    if faults.is_empty() {
        println!("ok: revisions contiguous in every stream; the tag mirror matches the events");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} faults found:", faults.len());
    for fault in faults {
        println!("  {fault}");
    }
    Ok(ExitCode::from(1))
}
