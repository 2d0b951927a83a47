//! A fresh file per store, in a directory removed at the end of the test.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use factos_sqlite::{SqliteOptions, SqliteStore};

/// A temporary directory, removed when dropped.
pub(crate) struct Dir(pub(crate) PathBuf);

impl Dir {
    pub(crate) fn new() -> Self {
        let path = std::env::temp_dir().join(format!("factos-sqlite-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// A new file's path in the directory.
    pub(crate) fn file(&self) -> PathBuf {
        static FILES: AtomicU64 = AtomicU64::new(0);
        self.0.join(format!(
            "events-{}.db",
            FILES.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// A store on a new file holding also the application's table made
    /// by `create` (a projection's), and the file's path.
    pub(crate) async fn store_with(&self, create: &str) -> (PathBuf, SqliteStore) {
        let file = self.file();
        let store = SqliteStore::open(&file, SqliteOptions::default())
            .await
            .unwrap();
        rusqlite::Connection::open(&file)
            .unwrap()
            .execute_batch(create)
            .unwrap();
        (file, store)
    }

    /// A store on a new file.
    pub(crate) async fn store(&self) -> SqliteStore {
        SqliteStore::open(self.file(), SqliteOptions::default())
            .await
            .unwrap()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The effects recorded in the file's outbox, as the model-based test
/// compares them: (cause, payload), in insertion order. Read on a blocking
/// thread through a connection of its own.
pub(crate) async fn recorded_effects(
    file: PathBuf,
) -> Result<factos_testkit::RecordedEffects, String> {
    tokio::task::spawn_blocking(move || {
        let c = rusqlite::Connection::open(file).map_err(|e| e.to_string())?;
        let mut statement = c
            .prepare("SELECT event_position, payload FROM factos_outbox ORDER BY id")
            .map_err(|e| e.to_string())?;
        let rows = statement
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(|e| e.to_string())?;
        rows.map(|row| {
            let (cause, payload) = row.map_err(|e| e.to_string())?;
            Ok((u64::try_from(cause).map_err(|e| e.to_string())?, payload))
        })
        .collect()
    })
    .await
    .map_err(|e| e.to_string())?
}
