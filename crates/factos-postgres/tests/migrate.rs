//! Migrations: idempotent, safe when run concurrently, per schema, backfilling
//! the tag mirror, and refusing a schema newer than the code.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use factos::{
    AppendCondition, EventStore, EventType, NewEvent, Query, ReadOptions, StoreErrorKind, StreamId,
    Tags,
};
use factos_postgres::{SCHEMA_VERSION, SchemaName, StoreOptions};

fn event(tag: &str) -> NewEvent {
    NewEvent::new(EventType::new("Happened").unwrap(), b"{}".to_vec())
        .with_tags(Tags::parse([tag]).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent() {
    let database = common::database().await;
    let store = database
        .store(StoreOptions::default().schema(SchemaName::new("once").unwrap()))
        .unwrap();
    assert_eq!(store.schema_version().await.unwrap(), None);
    let first = store.migrate().await.unwrap();
    assert_eq!(first.applied, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    let second = store.migrate().await.unwrap();
    assert!(
        second.applied.is_empty(),
        "second run applied {:?}",
        second.applied
    );
    assert_eq!(store.schema_version().await.unwrap(), Some(SCHEMA_VERSION));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_apply_each_version_once() {
    let database = common::database().await;
    let stores: Vec<_> = (0..8)
        .map(|_| {
            database
                .store(StoreOptions::default().schema(SchemaName::new("raced").unwrap()))
                .unwrap()
        })
        .collect();
    let runs: Vec<_> = stores
        .iter()
        .cloned()
        .map(|s| tokio::spawn(async move { s.migrate().await }))
        .collect();
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(run.await.unwrap().unwrap().applied);
    }
    assert_eq!(
        applied,
        (1..=SCHEMA_VERSION).collect::<Vec<_>>(),
        "every version applied exactly once across racers"
    );
    stores[0]
        .append(
            &StreamId::new("s").unwrap(),
            vec![event("t:1")],
            AppendCondition::None,
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_keep_stores_apart() {
    let database = common::database().await;
    let a = common::store_in(&database, StoreOptions::default()).await;
    let b = common::store_in(&database, StoreOptions::default()).await;
    a.append(
        &StreamId::new("s").unwrap(),
        vec![event("t:1")],
        AppendCondition::None,
    )
    .await
    .unwrap();
    let in_b = b.read(&Query::all(), ReadOptions::default()).await.unwrap();
    assert!(
        in_b.events.is_empty() && in_b.head.is_none(),
        "schema b sees schema a's events"
    );
    // The same stream label starts at revision 0 in each schema.
    let committed = b
        .append(
            &StreamId::new("s").unwrap(),
            vec![event("t:1")],
            AppendCondition::None,
        )
        .await
        .unwrap();
    assert_eq!(committed.events[0].revision, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_backfills_the_tag_mirror() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    store
        .append(
            &StreamId::new("s").unwrap(),
            vec![event("t:1"), event("t:2")],
            AppendCondition::None,
        )
        .await
        .unwrap();
    let schema = store.options().schema.quoted();
    let client = store.pool().get().await.unwrap();
    // A log written before the mirror existed: empty mirror, version unrecorded.
    client
        .batch_execute(&format!(
            "SET session_replication_role = replica; DELETE FROM {schema}.factos_event_tags; DELETE FROM {schema}.factos_schema_migrations; RESET session_replication_role;"
        ))
        .await
        .unwrap();
    let tagged = Query::tagged_with_all([factos::Tag::new("t:2").unwrap()]);
    assert!(
        store
            .read(&tagged, ReadOptions::default())
            .await
            .unwrap()
            .events
            .is_empty()
    );
    assert_eq!(
        store.migrate().await.unwrap().applied,
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
    assert_eq!(
        store
            .read(&tagged, ReadOptions::default())
            .await
            .unwrap()
            .events
            .len(),
        1
    );
    let mirrored: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {schema}.factos_event_tags"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(mirrored, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO {}.factos_schema_migrations (version, name) VALUES (999, 'from the future')",
            store.options().schema.quoted()
        ))
        .await
        .unwrap();
    let error = store.migrate().await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Schema);
    assert!(error.to_string().contains("999"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmigrated_schema_says_to_migrate() {
    let database = common::database().await;
    let store = database
        .store(StoreOptions::default().schema(SchemaName::new("never_migrated").unwrap()))
        .unwrap();
    let error = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Schema);
    assert!(error.to_string().contains("migrate"), "{error}");
}

#[test]
fn schema_names_are_validated() {
    for bad in [
        "",
        "Upper",
        "1starts_with_digit",
        "has space",
        "quote\"",
        &"x".repeat(64),
    ] {
        assert!(SchemaName::new(bad).is_err(), "{bad:?} was accepted");
    }
    assert!(SchemaName::new("x".repeat(63)).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_owner_migrates_without_create_on_the_database() {
    let database = common::database().await;
    let admin = database.store(StoreOptions::default()).unwrap();
    let role = format!("owner_{}", database.name());
    let name = database.name();
    // The role owns its schema and may connect, nothing more: no CREATE on
    // the database (PUBLIC has none either).
    admin
        .pool()
        .get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN;
             REVOKE CREATE ON DATABASE {name} FROM PUBLIC;
             GRANT CONNECT ON DATABASE {name} TO {role};
             CREATE SCHEMA owned AUTHORIZATION {role};"
        ))
        .await
        .unwrap();
    let mut config = database.config();
    config.user(&role);
    let owner = factos_postgres::PostgresStore::from_config(
        config,
        2,
        StoreOptions::default().schema(SchemaName::new("owned").unwrap()),
    )
    .unwrap();
    let first = owner.migrate().await.unwrap();
    assert_eq!(first.applied, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    assert!(owner.migrate().await.unwrap().applied.is_empty());
    owner
        .append(
            &StreamId::new("s").unwrap(),
            vec![event("t:1")],
            AppendCondition::None,
        )
        .await
        .unwrap();
    // Creating a schema still needs CREATE: a missing one is a clear error.
    let elsewhere = factos_postgres::PostgresStore::from_config(
        {
            let mut config = database.config();
            config.user(&role);
            config
        },
        2,
        StoreOptions::default().schema(SchemaName::new("not_yet").unwrap()),
    )
    .unwrap();
    let refused = elsewhere.migrate().await.unwrap_err();
    assert!(!refused.is_retry_safe(), "{refused}");
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );
}

/// A migration whose text changed after it was applied is refused with a
/// schema error naming it; one recorded without a checksum (by a factos from
/// before checksums) gets one and migrates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_changed_after_it_was_applied_is_refused() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let q = store.options().schema.quoted();
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!(
            "UPDATE {q}.factos_schema_migrations SET checksum = NULL WHERE version = 1"
        ))
        .await
        .unwrap();
    assert!(store.migrate().await.unwrap().applied.is_empty());
    let recorded: Option<String> = client
        .query_one(
            &format!("SELECT checksum FROM {q}.factos_schema_migrations WHERE version = 1"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded.map(|c| c.len()), Some(64), "a SHA-256 in hex");
    client
        .batch_execute(&format!(
            "UPDATE {q}.factos_schema_migrations SET checksum = repeat('0', 64) WHERE version = 2"
        ))
        .await
        .unwrap();
    let error = store.migrate().await.unwrap_err();
    assert_eq!(error.kind(), factos::StoreErrorKind::Schema, "{error}");
    assert!(
        error
            .to_string()
            .contains("migration 2 (scoped locking functions)"),
        "{error}"
    );
}
