//! Building a [`PostgresStore`]: on a given pool, from a driver configuration
//! (plain or TLS), or from a connection string; the connection settings every
//! factos statement runs with; and taking a pooled connection with a bounded wait.

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use factos::{StoreError, StoreErrorKind};

use crate::error::pool_error;
use crate::locks::LockKeys;
use crate::options::StoreOptions;
use crate::sql::Statements;
use crate::store::hot::HotQueries;
use crate::store::{Inner, PostgresStore};

/// Default number of pooled connections of [`PostgresStore::connect`].
pub const DEFAULT_POOL_SIZE: usize = 16;

/// A connection from `pool`, waiting at most `wait` for one (on any pool,
/// whether or not it was built with a runtime for its own timeouts).
pub(crate) async fn pooled(
    pool: &Pool,
    wait: std::time::Duration,
) -> Result<deadpool_postgres::Object, StoreError> {
    let started = std::time::Instant::now();
    let got = tokio::time::timeout(wait, pool.get()).await;
    crate::metrics::pool_waited(started);
    match got {
        Ok(client) => client.map_err(pool_error),
        Err(_) => Err(StoreError::new(
            StoreErrorKind::Timeout,
            format!(
                "no pooled PostgreSQL connection within {} ms (StoreOptions::pool_wait_timeout); \
                 nothing was written",
                wait.as_millis()
            ),
        )),
    }
}

/// How every factos transaction begins: READ COMMITTED whatever the
/// server's or the role's default. The locking protocol needs each
/// statement's snapshot taken after the locks before it were granted; under
/// REPEATABLE READ a decision's snapshot dates from before it waited for its
/// keys, and 16 racers on one boundary all committed
/// (`every_strategy_holds_when_the_database_defaults_to_repeatable_read`).
pub(crate) const BEGIN: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// The settings every factos statement runs with. JIT is off: generic plans
/// of these statements carry large cost estimates on big logs, which made
/// PostgreSQL spend hundreds of milliseconds compiling queries that run in
/// microseconds. Statements outside a transaction (settled reads) run under
/// READ COMMITTED too (see [`BEGIN`]; `factos_settled_mark` refuses any
/// other level). Timeouts come from the options.
pub(crate) fn chosen_settings(options: &StoreOptions) -> Vec<(&'static str, String)> {
    let mut chosen = vec![
        ("jit", "off".to_string()),
        (
            "default_transaction_isolation",
            "read committed".to_string(),
        ),
    ];
    for (name, value) in [
        ("lock_timeout", options.lock_timeout),
        ("statement_timeout", options.statement_timeout),
    ] {
        if let Some(value) = value {
            chosen.push((name, format!("{}ms", value.as_millis().max(1))));
        }
    }
    chosen
}

/// How the settings reach the server, as (`BEGIN` batch for transactions,
/// batch for statements outside one). On connections factos opens itself
/// they are startup parameters (see [`with_settings`]): `BEGIN` alone and
/// nothing before reads. On a pool given to [`PostgresStore::new`] every
/// transaction sets them locally and reads set them on their session.
pub(crate) fn settings(options: &StoreOptions, on_connection: bool) -> (String, String) {
    if on_connection {
        return (BEGIN.to_string(), String::new());
    }
    let (local, session) = crate::sql::setting_statements(&chosen_settings(options));
    let begin = std::iter::once(BEGIN.to_string())
        .chain(local)
        .collect::<Vec<_>>()
        .join("; ");
    (begin, session.join("; "))
}

/// `config` with the store's settings added to its startup options, so every
/// connection has them from the start (one statement less per transaction).
pub(crate) fn with_settings(
    mut config: tokio_postgres::Config,
    options: &StoreOptions,
) -> tokio_postgres::Config {
    let ours = chosen_settings(options)
        .iter()
        // Startup options split on spaces; a backslash keeps one in a value.
        .map(|(k, v)| format!("-c {k}={}", v.replace('\\', "\\\\").replace(' ', "\\ ")))
        .collect::<Vec<_>>()
        .join(" ");
    let combined = match config.get_options() {
        Some(existing) if !existing.trim().is_empty() => format!("{existing} {ours}"),
        _ => ours,
    };
    config.options(&combined);
    config
}

impl PostgresStore {
    /// A store on an existing pool.
    ///
    /// Subscribers of such a store are woken by commits of this process and
    /// by polling, not by `NOTIFY` (the store cannot open a listening
    /// connection of its own).
    pub fn new(pool: Pool, options: StoreOptions) -> Self {
        Self::build(pool, options, None)
    }

    /// A store on `pool`; with `listener`, the pool's connections were
    /// opened by factos with the settings as startup parameters.
    fn build(pool: Pool, options: StoreOptions, listener: Option<crate::wakeup::Connect>) -> Self {
        let sql = Statements::new(&options.schema);
        let keys = LockKeys::new(&options.schema);
        let (begin, session_settings) = settings(&options, listener.is_some());
        Self {
            inner: Arc::new(Inner {
                pool,
                begin,
                session_settings,
                sql,
                keys,
                options,
                hot: HotQueries::default(),
                retries: std::sync::atomic::AtomicU64::new(0),
                commits: tokio::sync::watch::Sender::new(0),
                notifier: Arc::new(crate::wakeup::Notifier::default()),
                listener,
            }),
            replica: None,
        }
    }

    /// A store with its own pool of at most `pool_size` connections, from a
    /// driver configuration (no TLS).
    pub fn from_config(
        config: tokio_postgres::Config,
        pool_size: usize,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let config = with_settings(config, &options);
        let listener = crate::wakeup::connector(config.clone(), tokio_postgres::NoTls);
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Self::with_manager(manager, pool_size, options, listener)
    }

    /// A store with its own pool over `manager` (plain or TLS connections).
    fn with_manager(
        manager: Manager,
        pool_size: usize,
        options: StoreOptions,
        listener: crate::wakeup::Connect,
    ) -> Result<Self, StoreError> {
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| {
                StoreError::new(StoreErrorKind::Other, "cannot build the connection pool")
                    .with_source(e)
            })?;
        Ok(Self::build(pool, options, Some(listener)))
    }

    /// A store whose connections use TLS (rustls), trusting the certificate
    /// authorities in `root_certificates_pem` (PEM, one or more). Combine with
    /// `sslmode=require` in the configuration to refuse plain connections.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), factos::StoreError> {
    /// use factos_postgres::{PostgresStore, StoreOptions};
    /// let config = "host=db.example.com user=app dbname=app sslmode=require".parse().unwrap();
    /// let ca = std::fs::read("ca.pem").unwrap();
    /// let store = PostgresStore::from_config_tls(config, 16, StoreOptions::default(), &ca)?;
    /// # Ok(()) }
    /// ```
    pub fn from_config_tls(
        config: tokio_postgres::Config,
        pool_size: usize,
        options: StoreOptions,
        root_certificates_pem: &[u8],
    ) -> Result<Self, StoreError> {
        let tls_error = |message: String| StoreError::new(StoreErrorKind::Other, message);
        let mut roots = rustls::RootCertStore::empty();
        for certificate in rustls_pemfile::certs(&mut &root_certificates_pem[..]) {
            let certificate = certificate
                .map_err(|e| tls_error(format!("cannot read a root certificate: {e}")))?;
            roots
                .add(certificate)
                .map_err(|e| tls_error(format!("cannot use a root certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(tls_error(
                "no root certificate in the PEM given for TLS".to_string(),
            ));
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(format!("cannot configure TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connect = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
        let config = with_settings(config, &options);
        let listener = crate::wakeup::connector(config.clone(), connect.clone());
        let manager = Manager::from_config(
            config,
            connect,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Self::with_manager(manager, pool_size, options, listener)
    }

    /// A store with a pool of [`DEFAULT_POOL_SIZE`] connections to `url`
    /// (`postgresql://user:password@host/db` or `host=... dbname=...`).
    /// Connections are opened lazily: this does not reach the server. A
    /// malformed `url` is a [`StoreErrorKind::Other`] error that repeats
    /// no part of it (see [`crate::parse_connection_string`]); its source
    /// is the [`InvalidConnectionString`](crate::InvalidConnectionString),
    /// which names the option whose value is invalid.
    pub fn connect(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let config = crate::parse_connection_string(url)
            .map_err(|e| StoreError::new(StoreErrorKind::Other, e.to_string()).with_source(e))?;
        Self::from_config(config, DEFAULT_POOL_SIZE, options)
    }
}
