//! # factos-postgres: the PostgreSQL backend of factos
//!
//! Facts live in an append-only table `factos_events` (opaque payload bytes
//! plus the store-visible type and tags); tags are mirrored into
//! `factos_event_tags`, a b-tree over `(tag, position)`, so context reads and
//! condition checks are indexed SQL predicates. Rows that do not match a
//! query never reach the codec.
//!
//! [`PostgresStore`] implements [`factos::EventStore`], so
//! [`factos::dispatch_with_query`], [`factos::dispatch()`],
//! [`factos::read_context`] and [`factos::load_stream`] work on it, and it
//! passes the `factos-testkit` conformance suite.
//!
//! ```no_run
//! use factos_postgres::{PostgresStore, StoreOptions};
//! # async fn demo() -> Result<(), factos::StoreError> {
//! let store = PostgresStore::connect("postgresql://app@localhost/app", StoreOptions::default())?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```
//!
//! # Security
//!
//! The log is append-only by the database: triggers reject `UPDATE`,
//! `DELETE` and `TRUNCATE` on `factos_events` and `factos_event_tags` for
//! every role. Run migrations with a role that owns the schema (it needs
//! `CREATE` on the database only if the schema does not exist yet), and the
//! application with a role that can only read and append:
//!
//! ```sql
//! CREATE ROLE factos_app LOGIN PASSWORD '...';
//! GRANT USAGE ON SCHEMA app_events TO factos_app;
//! GRANT SELECT ON app_events.factos_events, app_events.factos_event_tags TO factos_app;
//! -- Every column but `position`: positions come from the sequence only.
//! GRANT INSERT (id, stream, revision, type, version, tags, metadata, data)
//!     ON app_events.factos_events TO factos_app;
//! GRANT INSERT ON app_events.factos_event_tags TO factos_app;
//! -- The table locks of the locking protocol (owner's rights, see below):
//! GRANT EXECUTE ON FUNCTION app_events.factos_lock_events_exclusive(),
//!     app_events.factos_lock_for_writing(bigint[], boolean[]) TO factos_app;
//! GRANT SELECT ON app_events.factos_schema_migrations TO factos_app;
//! GRANT USAGE, SELECT ON SEQUENCE app_events.factos_events_position_seq TO factos_app;
//! -- Only if the application runs subscriptions or the outbox (these tables change):
//! GRANT SELECT, INSERT, UPDATE ON app_events.factos_subscriptions TO factos_app;
//! GRANT SELECT, INSERT, UPDATE, DELETE ON app_events.factos_parked_events TO factos_app;
//! GRANT SELECT, INSERT, UPDATE ON app_events.factos_snapshots TO factos_app;
//! GRANT SELECT, INSERT, UPDATE, DELETE ON app_events.factos_outbox TO factos_app;
//! -- Only for the operator who removes subscribers (`remove_subscriber`):
//! -- GRANT DELETE ON app_events.factos_subscriptions TO operator;
//! ```
//!
//! The table locks of the locking protocol are taken through functions the
//! migration creates with the rights of the role that ran it (`SECURITY
//! DEFINER`, schema version 6; `EXECUTE` is revoked from `PUBLIC`), so this
//! role runs every strategy and every query shape, including queries on all
//! events. A role granted table-level `INSERT` on
//! `factos_events` can insert `OVERRIDING SYSTEM VALUE` and choose positions
//! (an event below a subscriber's checkpoint would never be delivered).
//! Upgrading from schema version 5 and its table-level grant, in this order:
//! run `migrate` (version 6 adds the functions), deploy the new code (it
//! takes the table locks through them), grant `EXECUTE` and the column
//! `INSERT`, then `REVOKE INSERT ON app_events.factos_events FROM
//! factos_app` (code of version 5 still takes `LOCK TABLE` itself and needs
//! the table-level grant). Within those grants, factos writers keep every
//! invariant; raw SQL by the role can still insert rows that break stream
//! revisions or the tag mirror (`factos verify` reports them).
//! (`tests/security.rs` runs factos as exactly such a role, every strategy
//! times every query shape, and checks it cannot choose positions.) For TLS, build
//! the store with [`PostgresStore::from_config_tls`] (rustls, trusting the CA
//! certificates you pass) and `sslmode=require` in the configuration
//! (`tests/tls.rs`). Lock waits and
//! statements can be bounded with [`StoreOptions::lock_timeout`] and
//! [`StoreOptions::statement_timeout`], and the wait for a pooled connection
//! always is, by [`StoreOptions::pool_wait_timeout`] (30 s by default); an
//! operation that waits too long fails with `StoreErrorKind::Timeout`, which
//! is safe to retry. Errors never include any part of the connection string
//! ([`parse_connection_string`] names at most the option whose value is
//! invalid).
//!
//! # After the commit
//!
//! [`Subscription`] delivers every committed event matching a query, in
//! position order, from a checkpoint stored in PostgreSQL (at least once with
//! an [`EventHandler`], exactly once into the same database with a
//! [`ProjectionHandler`]); one instance of a subscriber is active at a time.
//! [`factos::dispatch_with_outbox`] records a reactor's effects in the
//! dispatch's transaction, and [`Outbox`] workers deliver them with leases,
//! retries and parking. See `DESIGN.md`.
//!
//! # Tracing
//!
//! The store opens these [`tracing`] spans (target `factos_postgres`);
//! fields marked *after* are recorded when the operation ends:
//!
//! | span | level | fields |
//! |---|---|---|
//! | `factos.migrate` | info | `schema` |
//! | `factos.read` | debug | `query`; after: `events` (read), `head` (the settled head, when there are events) |
//! | `factos.append` | info | `stream`; after: `outcome`, `events`, `position` |
//! | `factos.dispatch` | info | `kind` (`query`, `cached`, `condition` (a narrower append condition) or `stream`), `stream`, `query` (not for `stream`; the read's); after: `outcome`, `events`, `position` |
//!
//! `outcome` is `committed`, or why not: `refused` (a dispatch whose
//! decider said no), `invalid` (the events broke a limit), `condition
//! failed` (for a stream dispatch also a moved revision), `store error`. `events` and `position` are the committed events' count
//! and the last one's position (no `position` when nothing was appended).
//! A combined batch is not one span per command. Events (not spans) are
//! logged on migration (info), a subscriber becoming active (info), a
//! handler or outbox delivery failing, an event or message parked, a
//! snapshot write failing (warn). `tests/tracing.rs` checks this table
//! against the spans a workload opens.
//!
//! The SQL lives in `.sql` files in this crate (`sql/migrations` for the
//! schema, `sql/statements` for the statements), reviewable on their own;
//! users with their own migration tool can apply [`MIGRATIONS`] with
//! `search_path` set to their schema, then `pg_temp` (`SET LOCAL
//! search_path TO app_events, pg_temp`: the `SECURITY DEFINER` functions pin
//! the path they are created with, and `pg_temp` must come last in it).

// The guide's code samples (docs/src) compile, and the in-memory ones
// run, as doctests of this crate: it sees factos and factos-postgres both.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/src/model.md")]
mod guide_model {}
#[cfg(doctest)]
#[doc = include_str!("../../../docs/src/first-service.md")]
mod guide_first_service {}
#[cfg(doctest)]
#[doc = include_str!("../../../docs/src/testing.md")]
mod guide_testing {}
#[cfg(doctest)]
#[doc = include_str!("../../../docs/src/operations.md")]
mod guide_operations {}

mod browse;
mod connect;
mod connection;
mod error;
mod inspect;
mod locks;
mod metrics;
mod migrate;
mod options;
mod outbox;
mod rows;
mod sql;
mod store;
mod subscription;
#[cfg(feature = "testing")]
pub mod throwaway;
mod wakeup;

pub use browse::{EventFilter, MAX_BROWSE_PAGE, PageStart, ParkedMessage};
pub use connect::DEFAULT_POOL_SIZE;
pub use connection::{InvalidConnectionString, parse_connection_string};
pub use inspect::{
    Fault, OutboxTopic, StoreStatus, SubscriberStatus, VerifyOptions, VerifyProgress, VerifyReport,
};
pub use migrate::{MigrationReport, SCHEMA_VERSION};
pub use options::{
    DEFAULT_MAX_DECISION_ATTEMPTS, DEFAULT_NOTIFY_INTERVAL, DEFAULT_POOL_WAIT_TIMEOUT,
    LockingStrategy, StoreOptions,
};
pub use outbox::{
    FailOutcome, LeasedMessage, MAX_ERROR_BYTES, MAX_OUTBOX_BATCH, MAX_OUTBOX_DELAY,
    MessageHandler, Outbox, OutboxError, OutboxOptions,
};
pub use sql::{
    InvalidSchemaName, MIGRATIONS, SchemaName, StatementContract, statement_contracts,
    statement_texts,
};
pub use store::{PostgresStore, ReplicaOptions};
pub use subscription::{
    EventHandler, MAX_BATCH_SIZE, MAX_NAME_BYTES, MAX_PARKED_ERROR_BYTES, MAX_PARTITIONS,
    ParkedEvent, PartitionedSubscription, Partitioning, PoisonPolicy, ProjectionHandler,
    Subscription, SubscriptionError, SubscriptionOptions,
};

/// The driver crates, re-exported so users can build pools and configurations
/// with matching versions.
pub use deadpool_postgres;
pub use tokio_postgres;
