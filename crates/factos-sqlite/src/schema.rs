//! Versioned, checksummed migrations, their SQL in `sql/migrations`.

use factos::{StoreError, StoreErrorKind};
use rusqlite::Connection;

use crate::error::sqlite_error;

/// The migrations, in order: (version, SQL).
pub const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../sql/migrations/0001_events.sql")),
    (2, include_str!("../sql/migrations/0002_snapshots.sql")),
    (
        3,
        include_str!("../sql/migrations/0003_subscriptions_outbox.sql"),
    ),
];

/// FNV-1a, 64 bits, of a migration's text: a migration edited after it was
/// applied is refused.
fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sql.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Applies the migrations the file lacks, all in one transaction under the
/// write lock, and checks the applied ones are unchanged.
pub(crate) fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let tx = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| sqlite_error("cannot begin the migration", &e))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS factos_schema_migrations (
            version INTEGER PRIMARY KEY,
            checksum TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        )",
    )
    .map_err(|e| sqlite_error("cannot create the migrations table", &e))?;
    let applied: Vec<(u32, String)> = {
        let mut statement = tx
            .prepare("SELECT version, checksum FROM factos_schema_migrations ORDER BY version")
            .map_err(|e| sqlite_error("cannot read the applied migrations", &e))?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| sqlite_error("cannot read the applied migrations", &e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| sqlite_error("cannot read the applied migrations", &e))?
    };
    if let Some((newest, _)) = applied.last()
        && *newest as usize > MIGRATIONS.len()
    {
        return Err(StoreError::new(
            StoreErrorKind::Schema,
            format!(
                "the file is at schema version {newest}, this factos knows {}: run a newer factos",
                MIGRATIONS.len()
            ),
        ));
    }
    for (version, sql) in MIGRATIONS {
        match applied.iter().find(|(v, _)| v == version) {
            Some((_, recorded)) if *recorded == checksum(sql) => {}
            Some(_) => {
                return Err(StoreError::new(
                    StoreErrorKind::Schema,
                    format!("migration {version} changed after it was applied"),
                ));
            }
            None => {
                tx.execute_batch(sql)
                    .map_err(|e| sqlite_error("cannot apply a migration", &e))?;
                let now = crate::rows::micros_now();
                tx.execute(
                    "INSERT INTO factos_schema_migrations (version, checksum, applied_at) VALUES (?1, ?2, ?3)",
                    rusqlite::params![version, checksum(sql), now],
                )
                .map_err(|e| sqlite_error("cannot record a migration", &e))?;
            }
        }
    }
    tx.commit()
        .map_err(|e| sqlite_error("cannot commit the migration", &e))
}
