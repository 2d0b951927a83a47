//! Versioned, idempotent migrations, safe when several processes run them at once.

use factos::{StoreError, StoreErrorKind};
use tracing::Instrument;

use crate::PostgresStore;
use crate::error::{Phase, db_error};
use crate::sql::{MIGRATIONS, SchemaName};

/// The schema version this crate's code needs.
pub const SCHEMA_VERSION: i32 = 6;

/// What [`PostgresStore::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The schema migrated.
    pub schema: String,
    /// Versions applied by this call, in order (empty when already current).
    pub applied: Vec<i32>,
    /// The schema version afterwards.
    pub version: i32,
}

/// A stable 64-bit key for the migration advisory lock of a schema (FNV-1a),
/// so every process computes the same key.
fn migration_lock_key(schema: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"factos-migrate:".iter().chain(schema.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Creates `schema` unless it exists. `CREATE SCHEMA IF NOT EXISTS` alone
/// would check `CREATE` on the database even when the schema exists, so its
/// owner could not migrate it without that privilege.
async fn create_schema_if_missing(
    transaction: &deadpool_postgres::Transaction<'_>,
    schema: &SchemaName,
) -> Result<(), StoreError> {
    let fail = |what: &'static str| move |e| db_error(what, e, Phase::BeforeCommit);
    let exists: bool = transaction
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)",
            &[&schema.as_str()],
        )
        .await
        .map_err(fail("cannot look for the schema"))?
        .try_get(0)
        .map_err(fail("cannot look for the schema"))?;
    if !exists {
        transaction
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", schema.quoted()))
            .await
            .map_err(fail("cannot create the schema"))?;
    }
    Ok(())
}

impl PostgresStore {
    /// Creates or upgrades the schema to [`SCHEMA_VERSION`]: the event table,
    /// the tag mirror and their indexes, backfilling the mirror. Creating
    /// the schema needs `CREATE` on the database; migrating one that exists
    /// needs only `CREATE` on the schema (its owner has it).
    ///
    /// Idempotent, and safe when several processes call it at once: they
    /// serialize on a transaction-scoped advisory lock per schema, and each
    /// version is applied in one transaction with its record in
    /// `factos_schema_migrations`.
    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let span = tracing::info_span!("factos.migrate", schema = %self.options().schema);
        self.migrate_now().instrument(span).await
    }

    async fn migrate_now(&self) -> Result<MigrationReport, StoreError> {
        let schema = self.options().schema.clone();
        let mut client = self.client().await?;
        let transaction = client
            .transaction()
            .await
            .map_err(|e| db_error("cannot begin the migration", e, Phase::BeforeCommit))?;
        let fail = |what: &'static str| move |e| db_error(what, e, Phase::BeforeCommit);
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&migration_lock_key(schema.as_str())],
            )
            .await
            .map_err(fail("cannot take the migration lock"))?;
        let quoted = schema.quoted();
        create_schema_if_missing(&transaction, &schema).await?;
        transaction
            .batch_execute(&format!(
                "SET LOCAL search_path TO {quoted}, pg_temp;
                 CREATE TABLE IF NOT EXISTS factos_schema_migrations (
                     version integer PRIMARY KEY,
                     name text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 );"
            ))
            .await
            .map_err(fail("cannot create the migrations table"))?;
        let rows = transaction
            .query(
                "SELECT version FROM factos_schema_migrations ORDER BY version",
                &[],
            )
            .await
            .map_err(fail("cannot read the schema version"))?;
        let done: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        if let Some(newer) = done.iter().find(|v| **v > SCHEMA_VERSION) {
            return Err(StoreError::new(
                StoreErrorKind::Schema,
                format!(
                    "schema {schema} is at version {newer}, newer than this factos-postgres ({SCHEMA_VERSION})"
                ),
            ));
        }
        let mut applied = Vec::new();
        for (version, name, sql) in MIGRATIONS {
            if done.contains(version) {
                continue;
            }
            transaction
                .batch_execute(sql)
                .await
                .map_err(fail("cannot apply a migration"))?;
            transaction
                .execute(
                    "INSERT INTO factos_schema_migrations (version, name) VALUES ($1, $2)",
                    &[version, name],
                )
                .await
                .map_err(fail("cannot record a migration"))?;
            applied.push(*version);
        }
        transaction
            .commit()
            .await
            .map_err(|e| db_error("cannot commit the migration", e, Phase::Commit))?;
        tracing::info!(applied = ?applied, "schema is current");
        Ok(MigrationReport {
            schema: schema.as_str().to_string(),
            applied,
            version: SCHEMA_VERSION,
        })
    }

    /// The schema version recorded in the database (`None`: not migrated).
    pub async fn schema_version(&self) -> Result<Option<i32>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT to_regclass(format('%I.factos_schema_migrations', $1::text)) IS NOT NULL",
                &[&self.options().schema.as_str()],
            )
            .await
            .map_err(|e| db_error("cannot read the schema version", e, Phase::BeforeCommit))?;
        if !row.get::<_, bool>(0) {
            return Ok(None);
        }
        let row = client
            .query_one(
                &format!(
                    "SELECT max(version) FROM {}.factos_schema_migrations",
                    self.options().schema.quoted()
                ),
                &[],
            )
            .await
            .map_err(|e| db_error("cannot read the schema version", e, Phase::BeforeCommit))?;
        Ok(row.get(0))
    }
}
