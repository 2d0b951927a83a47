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
