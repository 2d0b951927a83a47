//! Versioned, idempotent migrations, safe when several processes run them at once.

use factos::{StoreError, StoreErrorKind};
use tracing::Instrument;

use crate::PostgresStore;
use crate::error::{Phase, db_error};
use crate::sql::{MIGRATIONS, SchemaName, Statements};

/// The schema version this crate's code needs: the last migration's.
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

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

/// Creates the store's schema unless it exists. `CREATE SCHEMA IF NOT
/// EXISTS` alone would check `CREATE` on the database even when the schema
/// exists, so its owner could not migrate it without that privilege.
async fn create_schema_if_missing(
    transaction: &deadpool_postgres::Transaction<'_>,
    sql: &Statements,
    schema: &SchemaName,
) -> Result<(), StoreError> {
    let fail = |what: &'static str| move |e| db_error(what, e, Phase::BeforeCommit);
    let exists: bool = transaction
        .query_one(&sql.schema_exists, &[&schema.as_str()])
        .await
        .map_err(fail("cannot look for the schema"))?
        .try_get(0)
        .map_err(fail("cannot look for the schema"))?;
    if !exists {
        transaction
            .batch_execute(&sql.create_schema)
            .await
            .map_err(fail("cannot create the schema"))?;
    }
    Ok(())
}

/// Checks that every applied migration's text is the one this crate holds,
/// as sqlx does: a migration edited after it was applied is an error that
/// names it (run a new migration instead). A migration recorded by a factos
/// from before checksums gets its checksum now (trusted on first use).
async fn verify_checksums(
    transaction: &tokio_postgres::Transaction<'_>,
    sql: &Statements,
    done: &[i32],
) -> Result<(), StoreError> {
    let fail = |what: &'static str| move |e| db_error(what, e, Phase::BeforeCommit);
    for (version, name, text) in MIGRATIONS.iter().filter(|(v, _, _)| done.contains(v)) {
        transaction
            .execute(&sql.migration_checksum_backfill, &[version, text])
            .await
            .map_err(fail("cannot record a migration's checksum"))?;
        let unchanged: bool = transaction
            .query_one(&sql.migration_checksum_unchanged, &[version, text])
            .await
            .map_err(fail("cannot read a migration's checksum"))?
            .try_get(0)
            .map_err(fail("cannot read a migration's checksum"))?;
        if !unchanged {
            return Err(StoreError::new(
                StoreErrorKind::Schema,
                format!(
                    "migration {version} ({name}) was applied with other SQL than this factos-postgres holds: a migration must not change once applied"
                ),
            ));
        }
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
        let sql = self.sql();
        transaction
            .execute(&sql.migration_lock, &[&migration_lock_key(schema.as_str())])
            .await
            .map_err(fail("cannot take the migration lock"))?;
        create_schema_if_missing(&transaction, sql, &schema).await?;
        transaction
            .batch_execute(&sql.migrations_table)
            .await
            .map_err(fail("cannot create the migrations table"))?;
        let rows = transaction
            .query(&sql.migrations_applied, &[])
            .await
            .map_err(fail("cannot read the schema version"))?;
        let done = rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<i32>, _>>()
            .map_err(fail("cannot read the schema version"))?;
        if let Some(newer) = done.iter().find(|v| **v > SCHEMA_VERSION) {
            return Err(StoreError::new(
                StoreErrorKind::Schema,
                format!(
                    "schema {schema} is at version {newer}, newer than this factos-postgres ({SCHEMA_VERSION})"
                ),
            ));
        }
        verify_checksums(&transaction, sql, &done).await?;
        let mut applied = Vec::new();
        for (version, name, text) in MIGRATIONS {
            if done.contains(version) {
                continue;
            }
            transaction
                .batch_execute(text)
                .await
                .map_err(fail("cannot apply a migration"))?;
            transaction
                .execute(&sql.migration_record, &[version, name, text])
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
        let fail = |e| db_error("cannot read the schema version", e, Phase::BeforeCommit);
        let migrated: bool = client
            .query_one(
                &self.sql().migrations_table_exists,
                &[&self.options().schema.as_str()],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(fail)?;
        if !migrated {
            return Ok(None);
        }
        client
            .query_one(&self.sql().schema_version, &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version is derived from the list, so the list must number its
    /// migrations 1, 2, ... in order.
    #[test]
    fn migrations_are_numbered_in_order() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|(v, _, _)| *v).collect();
        assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    }
}
