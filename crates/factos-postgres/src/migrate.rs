//! Versioned, idempotent migrations, safe when several processes run them at once.

use factos::{StoreError, StoreErrorKind};
use tracing::Instrument;

use crate::PostgresStore;
use crate::error::{Phase, db_error};
use crate::sql::{MIGRATIONS, SchemaName};

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

/// The SQL of a migration's checksum, computed by the server: SHA-256 of
/// the UTF-8 text bound to `parameter`, in hex.
fn checksum_of(parameter: &str) -> String {
    format!("encode(sha256(convert_to({parameter}::text, 'UTF8')), 'hex')")
}

/// Checks that every applied migration's text is the one this crate holds,
/// as sqlx does: a migration edited after it was applied is an error that
/// names it (run a new migration instead). A migration recorded by a factos
/// from before checksums gets its checksum now (trusted on first use).
async fn verify_checksums(
    transaction: &tokio_postgres::Transaction<'_>,
    done: &[i32],
) -> Result<(), StoreError> {
    let fail = |what: &'static str| move |e| db_error(what, e, Phase::BeforeCommit);
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| done.contains(v)) {
        transaction
            .execute(
                &format!(
                    "UPDATE factos_schema_migrations SET checksum = {}
                     WHERE version = $1 AND checksum IS NULL",
                    checksum_of("$2")
                ),
                &[version, sql],
            )
            .await
            .map_err(fail("cannot record a migration's checksum"))?;
        let unchanged: bool = transaction
            .query_one(
                &format!(
                    "SELECT checksum = {} FROM factos_schema_migrations WHERE version = $1",
                    checksum_of("$2")
                ),
                &[version, sql],
            )
            .await
            .map_err(fail("cannot read a migration's checksum"))?
            .get(0);
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
                 );
                 ALTER TABLE factos_schema_migrations ADD COLUMN IF NOT EXISTS checksum text;"
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
        verify_checksums(&transaction, &done).await?;
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
                    &format!(
                        "INSERT INTO factos_schema_migrations (version, name, checksum)
                         VALUES ($1, $2, {})",
                        checksum_of("$3")
                    ),
                    &[version, name, sql],
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
