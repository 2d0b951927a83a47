//! `factos`: look into a factos store on PostgreSQL without writing SQL.
//!
//! ```text
//! factos migrate                   # create or upgrade the schema
//! factos status                    # version, counts, head, sizes
//! factos events --tag event:e1     # list events (table, or --json lines)
//! factos tail --type TicketSold    # follow new events
//! factos verify                    # check positions, revisions and the tag mirror
//! factos ui                        # admin web pages on http://127.0.0.1:7474/
//! ```
//!
//! The connection comes from `--database-url` or `DATABASE_URL`. To try factos
//! without a database, run the tickets example on a throwaway PostgreSQL:
//! `cargo run -p factos-examples --example tickets`.

mod commands;
mod output;
mod sqlite;
mod ui;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Look into a factos event store on PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "factos", version, about)]
struct Cli {
    /// PostgreSQL connection string (`postgresql://user@host/db` or `host=... dbname=...`),
    /// or `sqlite:PATH` for a SQLite file.
    #[arg(
        long,
        visible_alias = "database",
        env = "DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// The schema holding the factos tables.
    #[arg(long, default_value = "public", global = true)]
    schema: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or upgrade the factos schema.
    Migrate,
    /// Show the schema version, event count, head position, streams, tags and table sizes.
    Status,
    /// List events.
    Events(commands::EventsArgs),
    /// Follow new events as they commit.
    Tail(commands::TailArgs),
    /// List durable subscribers (checkpoint, events behind, active instance)
    /// and outbox topics; list, retry or drop a subscriber's parked (poison)
    /// events; or reset a subscriber.
    Subscriptions {
        #[command(subcommand)]
        action: Option<commands::ParkedAction>,
    },
    /// List or requeue a topic's parked outbox messages.
    Outbox {
        #[command(subcommand)]
        action: commands::OutboxAction,
    },
    /// Check that positions increase, stream revisions are contiguous and the tag mirror matches.
    Verify(commands::VerifyArgs),
    /// Serve the admin web pages (events, subscriptions, outbox, store,
    /// chart) on loopback; read-only unless --allow-writes.
    Ui(ui::UiArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(commands::run(cli.command, cli.database_url, &cli.schema));
    match outcome {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
