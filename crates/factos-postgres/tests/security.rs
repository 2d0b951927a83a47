//! The database itself keeps the log append-only, an application role with
//! the documented least privileges runs every strategy and query shape and
//! cannot choose positions, and lock waits have a bound.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use factos::json::JsonCodec;
use factos::{
    AppendCondition, Codec, Dispatcher, EventStore, Query, QueryItem, ReadOptions, StoreErrorKind,
    StreamId,
};
use factos_examples::tickets::{BuyTicket, TicketDecider, TicketEvent, sale_query};
use factos_postgres::LockingStrategy;
use factos_postgres::{PostgresStore, StoreOptions};
use factos_testkit::model::{Bounded, KitCodec, KitEvent};

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

/// A store for a least-privilege role on `owner`'s schema; revokes its
/// grants when dropped by the caller with [`revoke`].
async fn least_privilege_store(
    database: &factos_postgres::throwaway::TestDatabase,
    owner: &PostgresStore,
    role: &str,
    locking: LockingStrategy,
) -> PostgresStore {
    let q = owner.options().schema.quoted();
    let client = owner.pool().get().await.unwrap();
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
            &[&role],
        )
        .await
        .unwrap()
        .get(0);
    if !exists {
        client
            .batch_execute(&common::least_privilege_grants(role, &q))
            .await
            .unwrap();
    }
    let mut config = database.config();
    config.user(role);
    PostgresStore::from_config(
        config,
        4,
        StoreOptions::default()
            .schema(owner.options().schema.clone())
            .locking(locking),
    )
    .unwrap()
}

async fn revoke(owner: &PostgresStore, role: &str) {
    let q = owner.options().schema.quoted();
    let client = owner.pool().get().await.unwrap();
    client
        .batch_execute(&format!(
            "REVOKE ALL ON ALL TABLES IN SCHEMA {q} FROM {role};
             REVOKE ALL ON ALL SEQUENCES IN SCHEMA {q} FROM {role};
             REVOKE ALL ON SCHEMA {q} FROM {role}"
        ))
        .await
        .unwrap();
}

/// Every query shape a decision can have: typed and tagged, types only,
/// tags only, all events, and more items than the key limit (which takes
/// the table lock).
fn query_shapes() -> Vec<(&'static str, Query)> {
    let item = |types: &[&str], tags: &[&str]| {
        QueryItem::parse(types.iter().copied(), tags.iter().copied()).unwrap()
    };
    let many = (0..70).map(|i| item(&["Item"], &[&format!("box:{i}")]));
    vec![
        ("types and tags", Query::item(item(&["Item"], &["box:1"]))),
        ("types only", Query::item(item(&["Item"], &[]))),
        ("tags only", Query::item(item(&[], &["box:1"]))),
        ("all events", Query::all()),
        ("over the key limit", Query::from_items(many)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_privilege_role_runs_every_strategy_and_query_shape() {
    let database = common::database().await;
    let owner = common::store_in(&database, StoreOptions::default()).await;
    let role = format!("app_{}", database.name());
    let box_item = || vec![KitEvent::new("Item", &["box:1"])];
    for locking in [
        LockingStrategy::Scoped,
        LockingStrategy::TableLock,
        LockingStrategy::Optimistic,
    ] {
        let app = least_privilege_store(&database, &owner, &role, locking).await;
        let stream = StreamId::new("shelf").unwrap();
        let dispatcher = Dispatcher::new(
            app.clone(),
            Bounded { limit: usize::MAX },
            KitCodec::default(),
        );
        for (shape, query) in query_shapes() {
            let what = format!("{locking:?}, {shape}");
            factos::dispatch_with_query(
                &app,
                &stream,
                &query,
                &Bounded { limit: usize::MAX },
                &KitCodec::default(),
                &box_item(),
            )
            .await
            .unwrap_or_else(|e| panic!("{what}, dispatch: {e}"));
            // Twice through the cache: a read, then the one-round-trip path.
            for attempt in 0..2 {
                dispatcher
                    .dispatch_with_query(&stream, &query, &box_item())
                    .await
                    .unwrap_or_else(|e| panic!("{what}, cached dispatch {attempt}: {e}"));
            }
        }
        let head = app
            .read(&Query::all(), ReadOptions::default())
            .await
            .unwrap()
            .head;
        let on_all = AppendCondition::fail_if_events_match(Query::all(), head);
        let event = KitCodec::default()
            .encode(&KitEvent::new("Item", &["box:2"]))
            .unwrap();
        app.append(&stream, vec![event], on_all)
            .await
            .unwrap_or_else(|e| panic!("{locking:?}, append conditioned on all events: {e}"));
        // More keys than one append takes one by one: the coarse key.
        let wide: Vec<_> = (0..70)
            .map(|i| {
                KitCodec::default()
                    .encode(&KitEvent::new("Wide", &[&format!("wide:{i}")]))
                    .unwrap()
            })
            .collect();
        app.append(&stream, wide, AppendCondition::None)
            .await
            .unwrap_or_else(|e| panic!("{locking:?}, an append over the key limit: {e}"));
        factos::dispatch(
            &app,
            &StreamId::new(format!("account-{locking:?}")).unwrap(),
            &Bounded { limit: usize::MAX },
            &KitCodec::default(),
            &box_item(),
        )
        .await
        .unwrap_or_else(|e| panic!("{locking:?}, stream dispatch: {e}"));
    }
    let read = owner
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap();
    // Per strategy: 5 shapes x 3 dispatches, 1 conditioned append, 70 wide events, 1 stream dispatch.
    assert_eq!(read.events.len(), 3 * (5 * 3 + 1 + 70 + 1));
    revoke(&owner, &role).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_privilege_role_cannot_choose_positions() {
    let database = common::database().await;
    let owner = common::store_in(&database, StoreOptions::default()).await;
    let role = format!("app_{}", database.name());
    let app = least_privilege_store(&database, &owner, &role, LockingStrategy::Scoped).await;
    buy(&app, "a").await.unwrap();
    assert_eq!(
        app.schema_version().await.unwrap(),
        Some(factos_postgres::SCHEMA_VERSION)
    );
    let q = owner.options().schema.quoted();
    let client = app.pool().get().await.unwrap();
    for (what, sql) in [
        (
            "a position in a gap below the head",
            format!(
                "INSERT INTO {q}.factos_events (position, id, stream, revision, type, version, tags, data)
                 OVERRIDING SYSTEM VALUE
                 VALUES (0, gen_random_uuid(), 'x', 0, 'T', 1, '{{}}', '\\x00')"
            ),
        ),
        (
            "a position ahead of the sequence",
            format!(
                "INSERT INTO {q}.factos_events (position, id, stream, revision, type, version, tags, data)
                 OVERRIDING SYSTEM VALUE
                 VALUES (1000, gen_random_uuid(), 'x', 0, 'T', 1, '{{}}', '\\x00')"
            ),
        ),
        ("an update", format!("UPDATE {q}.factos_events SET revision = 5")),
    ] {
        let denied = client.batch_execute(&sql).await.expect_err(what);
        assert_eq!(
            denied.code(),
            Some(&factos_postgres::tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{what}: {denied}"
        );
    }
    drop(client);
    buy(&app, "b").await.unwrap();
    let read = owner
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap();
    let positions: Vec<u64> = read.events.iter().map(|e| e.position.get()).collect();
    assert_eq!(positions, [1, 2]);
    drop(app);
    revoke(&owner, &role).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_privilege_role_runs_a_subscription_and_an_outbox_worker() {
    let database = common::database().await;
    let owner = common::store_in(&database, StoreOptions::default()).await;
    let role = format!("app_{}", database.name());
    let app = least_privilege_store(&database, &owner, &role, LockingStrategy::Scoped).await;
    let topic = factos::Topic::new("notice").unwrap();
    let reactor = factos::reactor_fn(|r: &factos::Recorded<KitEvent>| {
        vec![factos::OutboxMessage::new(
            factos::Topic::new("notice").unwrap(),
            r.position.get().to_string().into_bytes(),
        )]
    });
    let query = Query::item(QueryItem::parse(["Item"], ["box:1"]).unwrap());
    for _ in 0..3 {
        factos::dispatch_with_outbox(
            &app,
            &StreamId::new("shelf").unwrap(),
            &query,
            &Bounded { limit: usize::MAX },
            &KitCodec::default(),
            &vec![KitEvent::new("Item", &["box:1"])],
            &reactor,
        )
        .await
        .unwrap();
    }
    let subscription = factos_postgres::Subscription::new(&app, "notices", Query::all()).unwrap();
    let mut seen = common::Collect::default();
    subscription.catch_up(&mut seen).await.unwrap();
    assert_eq!(seen.positions(), [1, 2, 3]);
    assert_eq!(
        subscription.checkpoint().await.unwrap(),
        factos::Position::new(3)
    );
    let worker = factos_postgres::Outbox::new(&app, topic);
    let leased = worker.lease().await.unwrap();
    let payloads: Vec<Vec<u8>> = leased.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(payloads, [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
    worker.fail(&leased[0], "try again").await.unwrap();
    for message in &leased[1..] {
        worker.ack(message).await.unwrap();
    }
    drop(app);
    let q = owner.options().schema.quoted();
    let left: i64 = owner
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(&format!("SELECT count(*) FROM {q}.factos_outbox"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        left, 1,
        "the failed message waits for its retry, the acked ones are gone"
    );
    revoke(&owner, &role).await;
}

/// Upgrading to schema version 7 needs no new grant: a role that could call
/// version 6's `factos_lock_events_for_writing()` (as the crate docs said)
/// may call `factos_lock_for_writing`, the one-call guard that replaced it,
/// because the migration carries the grant over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_to_the_one_call_guard_keeps_the_roles_grant() {
    let database = common::database().await;
    let owner = common::store_in(&database, StoreOptions::default()).await;
    let role = format!("v6_{}", database.name());
    let q = owner.options().schema.quoted();
    let client = owner.pool().get().await.unwrap();
    // The grants of a version 6 schema: the old function only.
    client
        .batch_execute(&format!(
            "CREATE ROLE {role};
             GRANT EXECUTE ON FUNCTION {q}.factos_lock_events_for_writing() TO {role};"
        ))
        .await
        .unwrap();
    let function = format!("{q}.factos_lock_for_writing(bigint[], boolean[])");
    let may_call = || async {
        client
            .query_one(
                "SELECT has_function_privilege($1, $2, 'EXECUTE')",
                &[&role, &function],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
    };
    assert!(!may_call().await, "not granted before the upgrade");
    let (_, _, seven) = factos_postgres::MIGRATIONS
        .iter()
        .find(|(version, _, _)| *version == 7)
        .unwrap();
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL search_path = {q}, pg_temp; {seven}; COMMIT"
        ))
        .await
        .unwrap();
    assert!(may_call().await, "granted by the upgrade");
    client
        .batch_execute(&format!(
            "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {q} FROM {role}; DROP ROLE {role}"
        ))
        .await
        .unwrap();
}
