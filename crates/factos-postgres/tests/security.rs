//! The database itself keeps the log append-only, an application role with
//! only SELECT and INSERT can run factos, and lock waits have a bound.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use factos::json::JsonCodec;
use factos::{EventStore, Query, ReadOptions, StoreErrorKind, StreamId};
use factos_examples::tickets::{BuyTicket, TicketDecider, TicketEvent, sale_query};
use factos_postgres::{PostgresStore, StoreOptions};

async fn buy(
    store: &PostgresStore,
    buyer: &str,
) -> Result<(), factos::DispatchError<factos_examples::tickets::TicketError>> {
    let command = BuyTicket {
        concert: "e1".into(),
        buyer: buyer.into(),
    };
    factos::dispatch_with_query(
        store,
        &StreamId::new(format!("buyer-{buyer}")).unwrap(),
        &sale_query("e1").unwrap(),
        &TicketDecider { capacity: 10 },
        &JsonCodec::<TicketEvent>::new(),
        &command,
    )
    .await
    .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_deletes_and_truncates_are_rejected() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    buy(&store, "a").await.unwrap();
    let schema = store.options().schema.quoted();
    let client = store.pool().get().await.unwrap();
    for sql in [
        format!("UPDATE {schema}.factos_events SET data = '\\x00'"),
        format!("DELETE FROM {schema}.factos_events"),
        format!("TRUNCATE {schema}.factos_events"),
        format!("UPDATE {schema}.factos_event_tags SET tag = 'x'"),
        format!("DELETE FROM {schema}.factos_event_tags"),
        format!("TRUNCATE {schema}.factos_event_tags"),
    ] {
        let error = client.batch_execute(&sql).await.expect_err(&sql);
        let message = error
            .as_db_error()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(message.contains("append-only"), "{sql}: {message}");
    }
    let read = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(read.events.len(), 1, "nothing was changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_role_with_select_and_insert_runs_factos() {
    let database = common::database().await;
    let owner = common::store_in(&database, StoreOptions::default()).await;
    let schema = owner.options().schema.clone();
    let role = format!("app_{}", database.name());
    let q = schema.quoted();
    let client = owner.pool().get().await.unwrap();
    // The least-privilege setup documented in the crate docs.
    client
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN;
             GRANT USAGE ON SCHEMA {q} TO {role};
             GRANT SELECT, INSERT ON {q}.factos_events, {q}.factos_event_tags TO {role};
             GRANT SELECT ON {q}.factos_schema_migrations TO {role};
             GRANT USAGE, SELECT ON SEQUENCE {q}.factos_events_position_seq TO {role};"
        ))
        .await
        .unwrap();
    let mut config = database.config();
    config.user(&role);
    let app =
        PostgresStore::from_config(config, 4, StoreOptions::default().schema(schema)).unwrap();
    buy(&app, "b").await.unwrap();
    assert_eq!(
        app.schema_version().await.unwrap(),
        Some(factos_postgres::SCHEMA_VERSION)
    );
    let read = app
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(read.events.len(), 1);
    let app_client = app.pool().get().await.unwrap();
    let denied = app_client
        .batch_execute(&format!("UPDATE {q}.factos_events SET revision = 5"))
        .await
        .unwrap_err();
    assert_eq!(
        denied.code(),
        Some(&factos_postgres::tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    drop(app_client);
    drop(app);
    client.batch_execute(&format!("REVOKE ALL ON ALL TABLES IN SCHEMA {q} FROM {role}; REVOKE ALL ON ALL SEQUENCES IN SCHEMA {q} FROM {role}; REVOKE ALL ON SCHEMA {q} FROM {role}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_wait_beyond_the_timeout_fails_clearly() {
    let database = common::database().await;
    // Connections factos opens start with the settings (`-c` options).
    let store = common::store_in(
        &database,
        StoreOptions::default().lock_timeout(Duration::from_millis(200)),
    )
    .await;
    let jit: String = store
        .pool()
        .get()
        .await
        .unwrap()
        .query_one("SHOW jit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(jit, "off");
    times_out_then_works(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_pool_of_its_own_the_settings_are_set_per_transaction() {
    use factos_postgres::deadpool_postgres::{Manager, ManagerConfig, Pool};
    let database = common::database().await;
    let manager = Manager::from_config(
        database.config(),
        factos_postgres::tokio_postgres::NoTls,
        ManagerConfig::default(),
    );
    let pool = Pool::builder(manager).max_size(4).build().unwrap();
    let store = factos_postgres::PostgresStore::new(
        pool,
        StoreOptions::default()
            .schema(factos_postgres::SchemaName::new("own_pool").unwrap())
            .lock_timeout(Duration::from_millis(200)),
    );
    store.migrate().await.unwrap();
    times_out_then_works(&store).await;
}

/// A dispatch blocked by a table lock fails with a retry-safe timeout within
/// the store's lock timeout, and works once the lock is gone.
async fn times_out_then_works(store: &factos_postgres::PostgresStore) {
    let blocker = store.pool().get().await.unwrap();
    blocker
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {}.factos_events IN EXCLUSIVE MODE",
            store.options().schema.quoted()
        ))
        .await
        .unwrap();
    let started = Instant::now();
    let error = match buy(store, "c").await {
        Err(factos::DispatchError::Store(e)) => e,
        other => panic!("expected a store error, got {other:?}"),
    };
    assert_eq!(error.kind(), StoreErrorKind::Timeout, "{error}");
    assert!(error.is_retry_safe());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the dispatch waited {:?}",
        started.elapsed()
    );
    blocker.batch_execute("ROLLBACK").await.unwrap();
    buy(store, "c").await.unwrap();
}
