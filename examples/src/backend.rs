//! Which store an example runs on: PostgreSQL by default (the server in
//! `DATABASE_URL`, or a throwaway cluster started for the run), the
//! in-memory store with `--memory`, or a SQLite file with `--sqlite PATH`.

use factos::InMemoryStore;
use factos_postgres::throwaway::TempCluster;
use factos_postgres::{PostgresStore, StoreOptions};
use factos_sqlite::{SqliteOptions, SqliteStore};

/// The store an example runs on. A throwaway cluster is stopped and removed
/// when this is dropped.
pub enum Backend {
    /// The in-memory store.
    Memory(InMemoryStore),
    /// A SQLite file.
    Sqlite(SqliteStore),
    /// A migrated PostgreSQL store.
    Postgres {
        /// The store.
        store: PostgresStore,
        /// The throwaway cluster, when one was started.
        cluster: Option<TempCluster>,
    },
}

/// Picks the backend from the command line (`--memory`) and `DATABASE_URL`,
/// says which one it picked, and migrates PostgreSQL.
pub async fn from_environment() -> Result<Backend, Box<dyn std::error::Error + Send + Sync>> {
    if std::env::args().any(|a| a == "--memory") {
        println!("store: in-memory (--memory)");
        return Ok(Backend::Memory(InMemoryStore::new()));
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--sqlite") {
        let path = args.get(at + 1).ok_or("--sqlite needs a file's path")?;
        println!("store: SQLite file {path} (--sqlite)");
        return Ok(Backend::Sqlite(
            SqliteStore::open(path, SqliteOptions::default()).await?,
        ));
    }
    let url = std::env::var("DATABASE_URL").ok();
    postgres(url.as_deref().filter(|url| !url.trim().is_empty())).await
}

/// A migrated PostgreSQL store: on the server at `url`, or, without one, on
/// a throwaway cluster started for the run. Says which.
pub async fn postgres(
    url: Option<&str>,
) -> Result<Backend, Box<dyn std::error::Error + Send + Sync>> {
    let (store, cluster) = if let Some(url) = url {
        println!("store: PostgreSQL from DATABASE_URL");
        (PostgresStore::connect(url, StoreOptions::default())?, None)
    } else {
        println!("store: throwaway PostgreSQL cluster (DATABASE_URL is not set), starting it...");
        let cluster = TempCluster::start()?;
        let store =
            PostgresStore::from_config(cluster.config("postgres"), 32, StoreOptions::default())?;
        (store, Some(cluster))
    };
    store.migrate().await?;
    Ok(Backend::Postgres { store, cluster })
}

/// Runs `$body` with `$store` bound to the chosen store, whichever type it has.
#[macro_export]
macro_rules! with_backend {
    ($backend:expr, |$store:ident| $body:expr) => {
        match $backend {
            $crate::backend::Backend::Memory($store) => $body,
            $crate::backend::Backend::Sqlite($store) => $body,
            $crate::backend::Backend::Postgres { store: $store, .. } => $body,
        }
    };
}
