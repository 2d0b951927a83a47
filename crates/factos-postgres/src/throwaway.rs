//! A throwaway PostgreSQL cluster for tests, examples and benchmarks
//! (behind the `testing` feature, off by default: a production build has
//! no code that runs `initdb`).
//!
//! [`TempCluster::start`] finds the server binaries (`PATH`, `pg_config
//! --bindir`, `/usr/lib/postgresql/*/bin`), runs `initdb` into a temporary
//! directory (as the `postgres` user when running as root, since PostgreSQL
//! refuses to run as root), and starts a server that listens only on a unix
//! socket in that directory: no TCP port to collide with. Dropping the cluster
//! stops it and removes the directory; a watchdog process does the same if the
//! owning process dies without dropping it (a panic that aborts, a kill).
//!
//! [`TestServer::shared`] is what tests use: one server per test process
//! (the throwaway cluster, or the server named by `FACTOS_TEST_DATABASE_URL`),
//! and a fresh database per test from [`TestServer::create_database`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use factos_postgres::throwaway::TestServer;
//! let server = TestServer::shared()?;
//! let database = server.create_database().await?;
//! let store = database.store(Default::default())?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{PostgresStore, StoreOptions};

/// The environment variable naming an existing server for tests to use
/// instead of a throwaway cluster. Tests create (and drop) their own databases on it.
pub const TEST_DATABASE_URL_VAR: &str = "FACTOS_TEST_DATABASE_URL";

/// Why a throwaway server could not be provided.
#[derive(Debug)]
pub enum ThrowawayError {
    /// No PostgreSQL server binaries were found.
    NoServerBinaries {
        /// Where they were looked for.
        searched: Vec<String>,
    },
    /// A server command failed.
    Command {
        /// The command.
        command: String,
        /// What it printed (the tail of its output or log).
        output: String,
    },
    /// A file-system operation failed.
    Io(std::io::Error),
    /// The server could not be used (connect, create database).
    Database(String),
}

impl fmt::Display for ThrowawayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThrowawayError::NoServerBinaries { searched } => write!(
                f,
                "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found in {}. \
                 Install them (Debian/Ubuntu: `apt-get install postgresql`), or set \
                 {TEST_DATABASE_URL_VAR} (tests) or DATABASE_URL (examples, CLI) to a server to use instead.",
                searched.join(", ")
            ),
            ThrowawayError::Command { command, output } => {
                write!(f, "`{command}` failed: {output}")
            }
            ThrowawayError::Io(e) => write!(f, "throwaway cluster: {e}"),
            ThrowawayError::Database(e) => write!(f, "throwaway server: {e}"),
        }
    }
}

impl std::error::Error for ThrowawayError {}

impl From<std::io::Error> for ThrowawayError {
    fn from(e: std::io::Error) -> Self {
        ThrowawayError::Io(e)
    }
}

/// Settings of a [`TempCluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Keep `fsync` and synchronous commit on (benchmarks that claim
    /// durability need it); off by default, which is fine for tests.
    pub durable: bool,
    /// `max_connections` of the server.
    pub max_connections: u32,
    /// Extra `postgresql.conf` settings, as (name, value) pairs.
    pub settings: Vec<(String, String)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            durable: false,
            max_connections: 300,
            settings: Vec::new(),
        }
    }
}

/// Finds the directory holding `initdb`, `pg_ctl` and `postgres` (following
/// symbolic links, so the directory also holds the server's other tools,
/// such as `pgbench` and `createdb`).
pub fn find_server_binaries() -> Result<PathBuf, ThrowawayError> {
    let found = find_server_binaries_unresolved()?;
    Ok(std::fs::canonicalize(found.join("initdb"))
        .ok()
        .and_then(|real| real.parent().map(Path::to_path_buf))
        .unwrap_or(found))
}

fn find_server_binaries_unresolved() -> Result<PathBuf, ThrowawayError> {
    let has_server = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    let mut searched = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_server(&dir) {
                return Ok(dir);
            }
        }
    }
    searched.push("PATH".to_string());
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    searched.push("`pg_config --bindir`".to_string());
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_string_lossy()
                .split('.')
                .next()?
                .parse()
                .ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    searched.push("/usr/lib/postgresql/*/bin".to_string());
    versions
        .pop()
        .map(|(_, dir)| dir)
        .ok_or(ThrowawayError::NoServerBinaries { searched })
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// A private PostgreSQL server in a temporary directory; see the [module docs](self).
#[derive(Debug)]
pub struct TempCluster {
    root: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    watchdog: Option<Child>,
    stopped: bool,
}

/// The port number in the socket file name; nothing listens on TCP.
const SOCKET_PORT: u16 = 5432;

impl TempCluster {
    /// Starts a cluster with default [`ClusterOptions`].
    pub fn start() -> Result<Self, ThrowawayError> {
        Self::start_with(&ClusterOptions::default())
    }

    /// Starts a cluster.
    pub fn start_with(options: &ClusterOptions) -> Result<Self, ThrowawayError> {
        let cluster = Self::empty()?;
        let mut initdb = cluster.server_command("initdb");
        initdb.arg("-D").arg(cluster.data_dir()).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        Self::run("initdb", &mut initdb)?;
        cluster.configure_and_start(options)?;
        Ok(cluster)
    }

    /// Starts a hot standby of this cluster: a base backup taken with
    /// `pg_basebackup -R` (it writes the connection to this cluster and the
    /// standby signal), streaming from this cluster over its unix socket,
    /// listening on a unix socket of its own. Reads run on it once it is
    /// consistent (when this returns). Its `max_connections` must be at
    /// least this cluster's (PostgreSQL refuses to start the standby else).
    pub fn start_standby(&self, options: &ClusterOptions) -> Result<Self, ThrowawayError> {
        let standby = Self::empty()?;
        let mut backup = standby.server_command("pg_basebackup");
        backup
            .arg("-D")
            .arg(standby.data_dir())
            .arg("-h")
            .arg(&self.root)
            .args([
                "-p",
                &SOCKET_PORT.to_string(),
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ]);
        Self::run("pg_basebackup", &mut backup)?;
        standby.configure_and_start(options)?;
        Ok(standby)
    }

    /// Promotes this standby to a primary and waits until it accepts writes.
    pub fn promote(&self) -> Result<(), ThrowawayError> {
        let mut promote = self.server_command("pg_ctl");
        promote
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-t", "60", "promote"]);
        Self::run("pg_ctl promote", &mut promote)
    }

    /// Stops the server at once, as a crash would, and keeps its directory
    /// (the cluster is dropped later); for failover tests.
    pub fn stop_immediate(&self) -> Result<(), ThrowawayError> {
        let mut stop = self.server_command("pg_ctl");
        stop.arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"]);
        Self::run("pg_ctl stop", &mut stop)
    }

    /// A fresh directory with its watchdog, no server yet.
    fn empty() -> Result<Self, ThrowawayError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let bin = find_server_binaries()?;
        let as_postgres = running_as_root();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let root = std::env::temp_dir().join(format!(
            "factos-pg-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&root)?;
        let mut cluster = Self {
            root,
            bin,
            as_postgres,
            watchdog: None,
            stopped: false,
        };
        if as_postgres {
            Self::run(
                "chown",
                Command::new("chown").arg("postgres:").arg(&cluster.root),
            )?;
        }
        cluster.start_watchdog()?;
        Ok(cluster)
    }

    /// Adds our settings to the data directory's `postgresql.conf` and starts the server.
    fn configure_and_start(&self, options: &ClusterOptions) -> Result<(), ThrowawayError> {
        let data = self.data_dir();
        let mut conf = format!(
            "\nlisten_addresses = ''\nunix_socket_directories = '{}'\nport = {SOCKET_PORT}\nmax_connections = {}\nshared_buffers = '256MB'\n",
            self.root.display(),
            options.max_connections
        );
        if !options.durable {
            conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        for (name, value) in &options.settings {
            let _ = writeln!(conf, "{name} = '{value}'");
        }
        let conf_path = data.join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path)?;
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing)?;
        let mut start = self.server_command("pg_ctl");
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(self.root.join("server.log"))
            .args(["-w", "-t", "60", "start"]);
        if let Err(e) = Self::run("pg_ctl start", &mut start) {
            let log = std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
            return Err(ThrowawayError::Command {
                command: "pg_ctl start".into(),
                output: format!("{e}\n{log}"),
            });
        }
        Ok(())
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The directory holding the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The directory of the server binaries used (also holds `pgbench`, `psql`).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    fn server_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn run(what: &str, command: &mut Command) -> Result<(), ThrowawayError> {
        let output =
            command
                .stdin(Stdio::null())
                .output()
                .map_err(|e| ThrowawayError::Command {
                    command: what.to_string(),
                    output: e.to_string(),
                })?;
        if output.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        let tail: String = text
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        Err(ThrowawayError::Command {
            command: what.to_string(),
            output: tail,
        })
    }

    /// A detached shell that stops the server and removes the directory once
    /// this process is gone, however it ended.
    fn start_watchdog(&mut self) -> Result<(), ThrowawayError> {
        let stop = {
            let pg_ctl = self.bin.join("pg_ctl");
            let prefix = if self.as_postgres {
                "runuser -u postgres -- "
            } else {
                ""
            };
            format!(
                "{prefix}'{}' -D '{}' -m immediate -w stop",
                pg_ctl.display(),
                self.data_dir().display()
            )
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{root}'",
            pid = std::process::id(),
            root = self.root.display()
        );
        let child = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.watchdog = Some(child);
        Ok(())
    }

    /// A libpq-style connection string for `database`, as user `postgres`.
    pub fn connection_string(&self, database: &str) -> String {
        connection_string(&self.config(database))
    }

    /// The driver configuration for `database`.
    pub fn config(&self, database: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.root)
            .port(SOCKET_PORT)
            .user("postgres")
            .dbname(database);
        config
    }

    /// Restarts the server in immediate mode, as a crash would: in-flight
    /// transactions are lost, committed ones are recovered from the WAL.
    pub fn restart_immediate(&self) -> Result<(), ThrowawayError> {
        let mut restart = self.server_command("pg_ctl");
        // `-l` also keeps the new server's output away from our pipes, which
        // would otherwise stay open as long as the server runs.
        restart
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.root.join("server.log"))
            .args(["-m", "immediate", "-w", "-t", "60", "restart"]);
        Self::run("pg_ctl restart", &mut restart)
    }

    /// Stops the server and removes its directory.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let mut stop = self.server_command("pg_ctl");
        stop.arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = stop
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A server tests can create databases on: an existing one named by
/// [`TEST_DATABASE_URL_VAR`], or a [`TempCluster`].
#[derive(Debug)]
pub enum TestServer {
    /// An existing server.
    External {
        /// Its configuration (the database in it is used for administration).
        config: Box<tokio_postgres::Config>,
        /// The connection string it was given.
        url: String,
    },
    /// A throwaway cluster.
    Throwaway(TempCluster),
}

impl TestServer {
    /// Uses the server named by `var` when set, else starts a throwaway cluster.
    pub fn from_env_or_start(var: &str, options: &ClusterOptions) -> Result<Self, ThrowawayError> {
        match std::env::var(var) {
            Ok(url) if !url.trim().is_empty() => {
                let config = crate::parse_connection_string(&url)
                    .map_err(|e| ThrowawayError::Database(format!("{var} is {e}")))?;
                Ok(TestServer::External {
                    config: Box::new(config),
                    url,
                })
            }
            _ => Ok(TestServer::Throwaway(TempCluster::start_with(options)?)),
        }
    }

    /// One server for the whole process, started on first use.
    pub fn shared() -> Result<&'static TestServer, ThrowawayError> {
        static SERVER: OnceLock<Result<TestServer, String>> = OnceLock::new();
        SERVER
            .get_or_init(|| {
                TestServer::from_env_or_start(TEST_DATABASE_URL_VAR, &ClusterOptions::default())
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| ThrowawayError::Database(e.clone()))
    }

    /// The driver configuration for `database` on this server.
    pub fn config(&self, database: &str) -> tokio_postgres::Config {
        match self {
            TestServer::External { config, .. } => {
                let mut config = tokio_postgres::Config::clone(config);
                config.dbname(database);
                config
            }
            TestServer::Throwaway(cluster) => cluster.config(database),
        }
    }

    fn admin_database(&self) -> String {
        match self {
            TestServer::External { config, .. } => {
                config.get_dbname().unwrap_or("postgres").to_string()
            }
            TestServer::Throwaway(_) => "postgres".to_string(),
        }
    }

    /// A connection string for `database` on this server (for tools that
    /// take one, such as the CLI).
    pub fn connection_string(&self, database: &str) -> String {
        match self {
            TestServer::Throwaway(cluster) => cluster.connection_string(database),
            TestServer::External { .. } => connection_string(&self.config(database)),
        }
    }

    /// Creates a fresh, empty database.
    pub async fn create_database(&self) -> Result<TestDatabase, ThrowawayError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "factos_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = self.config(&self.admin_database());
        let (client, connection) = admin
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| ThrowawayError::Database(format!("cannot connect: {e}")))?;
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| ThrowawayError::Database(format!("cannot create database {name}: {e}")))?;
        drop(client);
        let _ = driver.await;
        Ok(TestDatabase {
            name: name.clone(),
            url: self.connection_string(&name),
            config: self.config(&name),
            admin: matches!(self, TestServer::External { .. }).then_some(admin),
        })
    }
}

/// A database created for one test. On an external server it is dropped
/// with the handle; on a throwaway cluster it goes with the cluster.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    config: tokio_postgres::Config,
    admin: Option<tokio_postgres::Config>,
}

impl TestDatabase {
    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection string for this database.
    pub fn connection_string(&self) -> &str {
        &self.url
    }

    /// The driver configuration.
    pub fn config(&self) -> tokio_postgres::Config {
        self.config.clone()
    }

    /// A store on this database with a pool of 16 connections.
    pub fn store(&self, options: StoreOptions) -> Result<PostgresStore, factos::StoreError> {
        PostgresStore::from_config(self.config(), crate::DEFAULT_POOL_SIZE, options)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(admin) = self.admin.take() else {
            return;
        };
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee: use a private one on a thread.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok((client, connection)) = admin.connect(tokio_postgres::NoTls).await {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// `config` as a key=value connection string that parses back to the same
/// configuration: every value quoted (a password may hold spaces, quotes,
/// `/` or `@`), and only settings that differ from the driver's defaults.
fn connection_string(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let defaults = tokio_postgres::Config::new();
    let mut pairs: Vec<(&str, String)> = Vec::new();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let list = |values: Vec<String>| (!values.is_empty()).then(|| values.join(","));
    let text = |value: Option<&str>| value.map(str::to_string);
    let seconds =
        |value: Option<&std::time::Duration>| value.map(|d| d.as_secs().max(1).to_string());
    for (key, value) in [
        ("host", list(hosts)),
        (
            "hostaddr",
            list(
                config
                    .get_hostaddrs()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ),
        ),
        (
            "port",
            list(config.get_ports().iter().map(ToString::to_string).collect()),
        ),
        ("user", text(config.get_user())),
        (
            "password",
            config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        ),
        ("dbname", text(config.get_dbname())),
        ("options", text(config.get_options())),
        ("application_name", text(config.get_application_name())),
        ("connect_timeout", seconds(config.get_connect_timeout())),
        ("tcp_user_timeout", seconds(config.get_tcp_user_timeout())),
    ] {
        if let Some(value) = value {
            pairs.push((key, value));
        }
    }
    pairs.extend(modes(config, &defaults));
    pairs
        .iter()
        .map(|(key, value)| {
            format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The mode settings of `config` that differ from `defaults`, as the
/// driver's parser spells them.
fn modes(
    config: &tokio_postgres::Config,
    defaults: &tokio_postgres::Config,
) -> Vec<(&'static str, String)> {
    use tokio_postgres::config::{ChannelBinding, LoadBalanceHosts, SslMode, TargetSessionAttrs};
    let mut pairs = Vec::new();
    let mut push = |key, differs: bool, value: Option<&str>| {
        if let (true, Some(value)) = (differs, value) {
            pairs.push((key, value.to_string()));
        }
    };
    push(
        "sslmode",
        config.get_ssl_mode() != defaults.get_ssl_mode(),
        match config.get_ssl_mode() {
            SslMode::Disable => Some("disable"),
            SslMode::Prefer => Some("prefer"),
            SslMode::Require => Some("require"),
            _ => None,
        },
    );
    push(
        "target_session_attrs",
        config.get_target_session_attrs() != defaults.get_target_session_attrs(),
        match config.get_target_session_attrs() {
            TargetSessionAttrs::Any => Some("any"),
            TargetSessionAttrs::ReadWrite => Some("read-write"),
            TargetSessionAttrs::ReadOnly => Some("read-only"),
            _ => None,
        },
    );
    push(
        "channel_binding",
        config.get_channel_binding() != defaults.get_channel_binding(),
        match config.get_channel_binding() {
            ChannelBinding::Disable => Some("disable"),
            ChannelBinding::Prefer => Some("prefer"),
            ChannelBinding::Require => Some("require"),
            _ => None,
        },
    );
    push(
        "load_balance_hosts",
        config.get_load_balance_hosts() != defaults.get_load_balance_hosts(),
        match config.get_load_balance_hosts() {
            LoadBalanceHosts::Disable => Some("disable"),
            LoadBalanceHosts::Random => Some("random"),
            _ => None,
        },
    );
    pairs
}

#[cfg(test)]
mod tests {
    use super::connection_string;

    #[test]
    fn a_rendered_configuration_parses_back_to_itself() {
        let password = "a/b c'd\\e@f";
        let mut config: tokio_postgres::Config =
            "postgresql://u@h1:5,h2:6/app?sslmode=require&connect_timeout=7&options=-c%20jit%3Doff"
                .parse()
                .unwrap();
        config.password(password).dbname("t1");
        let again: tokio_postgres::Config = connection_string(&config).parse().unwrap();
        assert_eq!(again.get_password(), Some(password.as_bytes()));
        assert_eq!(again.get_dbname(), Some("t1"));
        assert_eq!(again.get_user(), Some("u"));
        assert_eq!(again.get_hosts(), config.get_hosts());
        assert_eq!(again.get_ports(), &[5, 6]);
        assert_eq!(again.get_ssl_mode(), config.get_ssl_mode());
        assert_eq!(again.get_connect_timeout(), config.get_connect_timeout());
        assert_eq!(again.get_options(), Some("-c jit=off"));
    }
}
