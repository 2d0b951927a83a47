//! Shared helpers of the PostgreSQL tests: one server per test process, one
//! database per test, one schema per store.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use factos_postgres::throwaway::{TestDatabase, TestServer};
use factos_postgres::{PostgresStore, SchemaName, StoreOptions};

/// A fresh database on the shared server.
pub(crate) async fn database() -> TestDatabase {
    let server = TestServer::shared().unwrap_or_else(|e| panic!("{e}"));
    server
        .create_database()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A migrated store in a fresh schema of `database`.
pub(crate) async fn store_in(database: &TestDatabase, options: StoreOptions) -> PostgresStore {
    static SCHEMAS: AtomicU64 = AtomicU64::new(0);
    let schema = SchemaName::new(format!("s{}", SCHEMAS.fetch_add(1, Ordering::Relaxed))).unwrap();
    let store = database.store(options.schema(schema)).unwrap();
    store.migrate().await.unwrap();
    store
}

/// Another instance (its own pool, its own caches: another process) of
/// `first`'s store, on the same schema with the same options.
pub(crate) fn second_instance(database: &TestDatabase, first: &PostgresStore) -> PostgresStore {
    database.store(first.options().clone()).unwrap()
}

/// Opens a transaction that inserts an event of `event_type` with `tag` the
/// way factos writers do (its own key, the pair of the writer class and its
/// transaction id, then the insert) and keeps it open.
/// Returns the client, so the caller decides when it commits, and the
/// event's position.
pub(crate) async fn in_flight_writer(
    store: &PostgresStore,
    event_type: &str,
    tag: &str,
) -> (factos_postgres::deadpool_postgres::Object, i64) {
    let client = store.pool().get().await.unwrap();
    let schema = store.options().schema.quoted();
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute(
            "SELECT pg_advisory_xact_lock($1::integer,
                 (pg_current_xact_id()::text::bigint % 4294967296 - 2147483648)::integer)",
            &[&store.writer_class()],
        )
        .await
        .unwrap();
    let row = client
        .query_one(
            &format!(
                "INSERT INTO {schema}.factos_events (id, stream, revision, type, version, tags, data)
                 VALUES (gen_random_uuid(), 'slow', 0, $1, 1, ARRAY[$2], '\\x7b7d') RETURNING position"
            ),
            &[&event_type, &tag],
        )
        .await
        .unwrap();
    let position: i64 = row.get(0);
    client
        .execute(
            &format!("INSERT INTO {schema}.factos_event_tags (tag, position) VALUES ($1, $2)"),
            &[&tag, &position],
        )
        .await
        .unwrap();
    (client, position)
}

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use factos::StoredEvent;
use factos_postgres::EventHandler;

/// Collects the positions it is handed.
#[derive(Clone, Default)]
pub(crate) struct Collect(pub(crate) Arc<Mutex<Vec<u64>>>);

impl Collect {
    pub(crate) fn positions(&self) -> Vec<u64> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until `n` positions arrived (or fails after `limit`).
    pub(crate) async fn wait_for(&self, n: usize, limit: Duration) -> Vec<u64> {
        let start = Instant::now();
        loop {
            let seen = self.positions();
            if seen.len() >= n {
                return seen;
            }
            assert!(
                start.elapsed() < limit,
                "only {} of {n} events arrived within {limit:?}",
                seen.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl EventHandler for Collect {
    type Error = std::convert::Infallible;
    async fn handle(&mut self, events: &[StoredEvent]) -> Result<(), Self::Error> {
        self.0
            .lock()
            .unwrap()
            .extend(events.iter().map(|e| e.position.get()));
        Ok(())
    }
}

/// Events whose tags and the mirror's rows differ, both ways (0: the mirror
/// holds exactly one row per tag of every event).
pub(crate) async fn mirror_mismatches(store: &PostgresStore) -> i64 {
    let schema = store.options().schema.quoted();
    store
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM (SELECT unnest(tags), position FROM {schema}.factos_events
                         EXCEPT SELECT tag, position FROM {schema}.factos_event_tags) a)
                      + (SELECT count(*) FROM (SELECT tag, position FROM {schema}.factos_event_tags
                         EXCEPT SELECT unnest(tags), position FROM {schema}.factos_events) b)"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// (cause position, payload) of every effect `store`'s outbox holds, in the
/// order recorded.
pub(crate) async fn recorded_effects(
    store: &PostgresStore,
) -> Result<factos_testkit::RecordedEffects, String> {
    let client = store.pool().get().await.map_err(|e| e.to_string())?;
    let schema = store.options().schema.quoted();
    let rows = client
        .query(
            &format!("SELECT event_position, payload FROM {schema}.factos_outbox ORDER BY id"),
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    rows.iter()
        .map(|r| {
            let cause: i64 = r.get(0);
            Ok((u64::try_from(cause).map_err(|e| e.to_string())?, r.get(1)))
        })
        .collect()
}

/// The least-privilege grants of the crate docs (`src/lib.rs`, "Security"),
/// for `role` on the schema `q`: reads, appends without choosing positions,
/// and the subscription and outbox tables.
pub(crate) fn least_privilege_grants(role: &str, q: &str) -> String {
    format!(
        "CREATE ROLE {role} LOGIN;
         GRANT USAGE ON SCHEMA {q} TO {role};
         GRANT SELECT ON {q}.factos_events, {q}.factos_event_tags TO {role};
         GRANT INSERT (id, stream, revision, type, version, tags, metadata, data)
             ON {q}.factos_events TO {role};
         GRANT INSERT ON {q}.factos_event_tags TO {role};
         GRANT EXECUTE ON FUNCTION {q}.factos_lock_events_exclusive(),
             {q}.factos_lock_for_writing(bigint[], boolean[]) TO {role};
         GRANT SELECT ON {q}.factos_schema_migrations TO {role};
         GRANT USAGE, SELECT ON SEQUENCE {q}.factos_events_position_seq TO {role};
         GRANT SELECT, INSERT, UPDATE ON {q}.factos_subscriptions TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON {q}.factos_parked_events TO {role};
         GRANT SELECT, INSERT, UPDATE ON {q}.factos_snapshots TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON {q}.factos_outbox TO {role};"
    )
}
