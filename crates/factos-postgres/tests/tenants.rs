//! Many tenants on one database: a schema per tenant, all used through one
//! pool. A hundred schemas are migrated and written concurrently; each
//! tenant reads exactly its own events; and, as the least-privilege role of
//! each tenant (granted on its own schema only), a tenant can use its store
//! and cannot read another tenant's schema, through factos or in SQL.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use factos::{
    AppendCondition, EventStore, EventType, NewEvent, Query, ReadOptions, StreamId, Tags,
};
use factos_postgres::{PostgresStore, SchemaName, StoreOptions};
use futures_util::StreamExt;

const TENANTS: usize = 100;

fn schema(tenant: usize) -> SchemaName {
    SchemaName::new(format!("tenant_{tenant}")).unwrap()
}

/// Events tenant `tenant` writes: 1 to 5.
fn events_of(tenant: usize) -> usize {
    tenant % 5 + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_tenants_share_one_pool_and_see_only_their_own_events() {
    let database = common::database().await;
    // The one pool, of an owner's store; every tenant's store is built on it.
    let owner = common::store_in(&database, StoreOptions::default()).await;
    let tenants: Vec<PostgresStore> = (0..TENANTS)
        .map(|t| {
            PostgresStore::new(
                owner.pool().clone(),
                StoreOptions::default().schema(schema(t)),
            )
        })
        .collect();
    // Migrated concurrently (as many at a time as the pool has connections).
    let migrated: Vec<_> = futures_util::stream::iter(tenants.iter().map(PostgresStore::migrate))
        .buffer_unordered(16)
        .collect()
        .await;
    for outcome in migrated {
        outcome.unwrap();
    }
    // Every tenant appends its events, all tenants at once, one event per
    // append, each tagged with its tenant.
    let writes = tenants.iter().enumerate().map(|(t, store)| async move {
        for n in 0..events_of(t) {
            let event = NewEvent::new(
                EventType::new("Happened").unwrap(),
                format!("{t}-{n}").into_bytes(),
            )
            .with_tags(Tags::parse([format!("tenant:{t}")]).unwrap());
            store
                .append(
                    &StreamId::new("s").unwrap(),
                    vec![event],
                    AppendCondition::None,
                )
                .await
                .unwrap();
        }
    });
    futures_util::stream::iter(writes)
        .buffer_unordered(TENANTS)
        .collect::<Vec<()>>()
        .await;
    for (t, store) in tenants.iter().enumerate() {
        let read = store
            .read(&Query::all(), ReadOptions::default())
            .await
            .unwrap();
        assert_eq!(read.events.len(), events_of(t), "tenant {t}");
        assert!(
            read.events.iter().all(|e| e
                .tags
                .iter()
                .any(|tag| tag.as_str() == format!("tenant:{t}"))),
            "tenant {t} read another tenant's event"
        );
    }

    // Each tenant's least-privilege role: its own schema works, the next
    // tenant's is refused.
    let prefix = database.name().to_string();
    let checks =
        (0..TENANTS).map(|t| role_of_tenant_sees_only_its_schema(&owner, &database, &prefix, t));
    futures_util::stream::iter(checks)
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    // Roles belong to the server, not the database: leave none behind.
    let client = owner.pool().get().await.unwrap();
    for t in 0..TENANTS {
        client
            .batch_execute(&format!(
                "DROP OWNED BY {prefix}_tenant_{t}; DROP ROLE {prefix}_tenant_{t}"
            ))
            .await
            .unwrap();
    }
}

/// Tenant `t`'s least-privilege role (granted on its own schema only, as
/// the crate docs' grants): its store reads its own events; a store on the
/// next tenant's schema and plain SQL on it are refused.
async fn role_of_tenant_sees_only_its_schema(
    owner: &PostgresStore,
    database: &factos_postgres::throwaway::TestDatabase,
    prefix: &str,
    t: usize,
) {
    let role = format!("{prefix}_tenant_{t}");
    let client = owner.pool().get().await.unwrap();
    client
        .batch_execute(&common::least_privilege_grants(&role, &schema(t).quoted()))
        .await
        .unwrap();
    drop(client);
    let mut config = database.config();
    config.user(&role);
    let own =
        PostgresStore::from_config(config.clone(), 1, StoreOptions::default().schema(schema(t)))
            .unwrap();
    let read = own
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(read.events.len(), events_of(t), "tenant {t} as its role");
    let other = (t + 1) % TENANTS;
    let theirs = PostgresStore::from_config(
        config.clone(),
        1,
        StoreOptions::default().schema(schema(other)),
    )
    .unwrap();
    let refused = theirs.read(&Query::all(), ReadOptions::default()).await;
    assert!(
        refused.is_err(),
        "tenant {t}'s role read tenant {other}'s events: {refused:?}"
    );
    let (raw, connection) = config
        .connect(factos_postgres::tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let sql = format!(
        "SELECT count(*) FROM {}.factos_events",
        schema(other).quoted()
    );
    let denied = raw.query_one(&sql, &[]).await;
    let message = denied
        .as_ref()
        .err()
        .and_then(|e| e.as_db_error().map(|d| d.message().to_string()))
        .unwrap_or_default();
    assert!(
        message.contains("permission denied"),
        "tenant {t}'s role in SQL: {denied:?}"
    );
    drop(raw);
    let _ = driver.await;
}
