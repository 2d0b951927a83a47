//! `FACTOS_BENCH_PROFILE=1`: where the server's time goes, per dispatch, for
//! pgbench `-N` and the factos subjects on the disjoint workload, at each
//! client count: server and client CPU (from `/proc`), time per statement
//! (execution and planning, from `pg_stat_statements` with planning
//! tracked), WAL records, bytes and full-page images (from `pg_stat_wal`),
//! sampled wait events (from `pg_stat_activity`), and `EXPLAIN (ANALYZE,
//! BUFFERS)` of the append statement under a generic plan. Prints the
//! "Where the time goes" section of BENCHMARKS.md.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use factos_postgres::PostgresStore;
use factos_postgres::throwaway::TempCluster;
use factos_postgres::tokio_postgres::{Client, NoTls};

use crate::{BoxError, Subject, Workload, run_workload};

/// Server settings the profile needs, given to every bench cluster: the
/// module is loaded but tracks nothing until the profile switches it on, so
/// the throughput figures do not pay for it.
pub(crate) fn settings() -> Vec<(String, String)> {
    vec![
        (
            "shared_preload_libraries".to_string(),
            "pg_stat_statements".to_string(),
        ),
        ("pg_stat_statements.track".to_string(), "none".to_string()),
    ]
}

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// CPU seconds (user + system) of the server: the postmaster, its live
/// children and the children it has reaped (pgbench's backends exit before
/// the run ends).
fn server_cpu_s(cluster: &TempCluster) -> f64 {
    let lock = cluster.socket_dir().join(".s.PGSQL.5432.lock");
    let Some(postmaster) = std::fs::read_to_string(lock)
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
    else {
        return 0.0;
    };
    let mut ticks = stat_ticks(&format!("/proc/{postmaster}/stat"), true);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let path = entry.path().join("stat");
            if parent_of(&path) == Some(postmaster) {
                ticks += stat_ticks(&path.to_string_lossy(), false);
            }
        }
    }
    ticks / TICKS_PER_S
}

/// CPU seconds of the client backends of `database` (by pid, from
/// `pg_stat_activity`; a backend that exits during the run is not counted).
async fn backends_cpu_s(monitor: &Client, database: &str) -> Result<BTreeMap<i32, f64>, BoxError> {
    let rows = monitor
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'
               AND pid <> pg_backend_pid()",
            &[&database],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let pid: i32 = r.get(0);
            (
                pid,
                stat_ticks(&format!("/proc/{pid}/stat"), false) / TICKS_PER_S,
            )
        })
        .collect())
}

/// CPU seconds of this process and the children it waited for (pgbench).
fn client_cpu_s() -> f64 {
    stat_ticks("/proc/self/stat", true) / TICKS_PER_S
}

/// The fields of a `/proc/*/stat` line after the command name.
fn stat_fields(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().map(str::to_string).collect())
        })
        .unwrap_or_default()
}

fn parent_of(path: &Path) -> Option<u32> {
    stat_fields(&path.to_string_lossy())
        .get(1)
        .and_then(|p| p.parse().ok())
}

/// utime + stime (fields 14, 15), plus cutime + cstime (16, 17) when
/// `with_children`.
fn stat_ticks(path: &str, with_children: bool) -> f64 {
    let fields = stat_fields(path);
    // Fields after the command name start at field 3 of the man page.
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let own = field(14) + field(15);
    if with_children {
        own + field(16) + field(17)
    } else {
        own
    }
}

/// WAL written so far: (records, full-page images, bytes).
async fn wal(client: &Client) -> Result<(f64, f64, f64), BoxError> {
    let row = client
        .query_one(
            "SELECT wal_records::float8, wal_fpi::float8, wal_bytes::float8 FROM pg_stat_wal",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// Samples what the active backends of `database` wait on every 10 ms until
/// `stop`: `CPU` when active without a wait event.
async fn sample_waits(
    client: Arc<Client>,
    database: &'static str,
    stop: Arc<AtomicBool>,
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    // Prepared once: planning this query every 5 ms cost the server more
    // than a dispatch's statements (seen in the first profile).
    let Ok(sample) = client
        .prepare(
            "SELECT CASE WHEN state = 'active' THEN coalesce(wait_event_type || ':' || wait_event, 'CPU')
                         ELSE state || coalesce(' (' || wait_event || ')', '') END
             FROM pg_stat_activity
             WHERE datname = $1 AND backend_type = 'client backend' AND state <> 'idle'
               AND pid <> pg_backend_pid()",
        )
        .await
    else {
        return counts;
    };
    while !stop.load(Ordering::Relaxed) {
        if let Ok(rows) = client.query(&sample, &[&database]).await {
            for row in rows {
                *counts.entry(row.get::<_, String>(0)).or_insert(0) += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    counts
}

/// (calls per dispatch, mean exec µs, mean plan µs, WAL bytes, buffers hit
/// and dirtied per call, statement)
type StatementCost = (f64, f64, f64, f64, f64, f64, String);

/// One profiled run: what was measured, per dispatch (or transaction).
pub(crate) struct Profile {
    pub(crate) subject: String,
    pub(crate) clients: usize,
    per_s: f64,
    pub(crate) server_cpu_us: f64,
    /// The part of `server_cpu_us` spent in the subject's own backends.
    backends_cpu_us: Option<f64>,
    client_cpu_us: f64,
    pub(crate) wal_records: f64,
    pub(crate) wal_fpi: f64,
    pub(crate) wal_bytes: f64,
    statements: Vec<StatementCost>,
    waits: BTreeMap<String, u64>,
}

/// pgbench `-N` for `duration`: the transactions it processed.
fn pgbench_transactions(
    cluster: &TempCluster,
    clients: usize,
    duration: Duration,
) -> Result<f64, BoxError> {
    let output = Command::new(cluster.bin_dir().join("pgbench"))
        .arg("-h")
        .arg(cluster.socket_dir())
        .args(["-U", "postgres", "-N", "-n", "-j", "2", "-c"])
        .arg(clients.to_string())
        .arg("-T")
        .arg(duration.as_secs().max(1).to_string())
        .arg("pgbench")
        .output()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("number of transactions actually processed: ")
                .and_then(|v| v.split('/').next())
                .and_then(|v| v.trim().parse().ok())
        })
        .ok_or_else(|| "pgbench printed no transaction count".into())
}

async fn profile_one(
    cluster: &TempCluster,
    monitor: &Arc<Client>,
    subject: Option<(&str, &Arc<Subject>)>,
    clients: usize,
    duration: Duration,
) -> Result<Profile, BoxError> {
    let database = if subject.is_some() {
        "postgres"
    } else {
        "pgbench"
    };
    monitor
        .batch_execute("SELECT pg_stat_statements_reset()")
        .await?;
    let wal_before = wal(monitor).await?;
    let (server_before, client_before) = (server_cpu_s(cluster), client_cpu_s());
    let backends_before = backends_cpu_s(monitor, database).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_waits(monitor.clone(), database, stop.clone()));
    let dispatches = match subject {
        Some((name, subject)) => {
            let sample =
                run_workload(subject, name, Workload::Disjoint, clients, duration, 0).await;
            sample.dispatches_per_s * duration.as_secs_f64()
        }
        None => pgbench_transactions(cluster, clients, duration)?,
    };
    stop.store(true, Ordering::Relaxed);
    let waits = sampler.await.unwrap_or_default();
    let backends_after = backends_cpu_s(monitor, database).await?;
    let (server_after, client_after) = (server_cpu_s(cluster), client_cpu_s());
    // Backends that lived through the whole run (pgbench's exit before its end).
    let backends_s: f64 = backends_after
        .iter()
        .filter_map(|(pid, after)| backends_before.get(pid).map(|before| after - before))
        .sum();
    let wal_after = wal(monitor).await?;
    let n = dispatches.max(1.0);
    let rows = monitor
        .query(
            "SELECT s.calls::float8, s.mean_exec_time * 1000, s.mean_plan_time * 1000,
                    s.wal_bytes::float8 / greatest(s.calls, 1),
                    s.shared_blks_hit::float8 / greatest(s.calls, 1),
                    s.shared_blks_dirtied::float8 / greatest(s.calls, 1),
                    left(regexp_replace(s.query, '\\s+', ' ', 'g'), 70)
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
             WHERE d.datname = $1
             ORDER BY s.total_exec_time + s.total_plan_time DESC LIMIT 8",
            &[&database],
        )
        .await?;
    let statements = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, f64>(0) / n,
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get::<_, String>(6).replace('|', "/"),
            )
        })
        .collect();
    Ok(Profile {
        subject: subject.map_or("pgbench -N".to_string(), |(name, _)| name.to_string()),
        clients,
        per_s: dispatches / duration.as_secs_f64(),
        server_cpu_us: (server_after - server_before) * 1e6 / n,
        backends_cpu_us: (subject.is_some()).then(|| backends_s * 1e6 / n),
        client_cpu_us: (client_after - client_before) * 1e6 / n,
        wal_records: (wal_after.0 - wal_before.0) / n,
        wal_fpi: (wal_after.1 - wal_before.1) / n,
        wal_bytes: (wal_after.2 - wal_before.2) / n,
        statements,
        waits,
    })
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of one conditional append of one event
/// under a generic plan, rolled back.
async fn explain_append(monitor: &Client, store: &PostgresStore) -> Result<String, BoxError> {
    let schema = &store.options().schema;
    let contracts = factos_postgres::statement_contracts(schema);
    let Some(append) = contracts.iter().find(|c| c.name == "append_if_query") else {
        return Err("no append_if_query statement".into());
    };
    let head: i64 = monitor
        .query_one(
            &format!(
                "SELECT coalesce(max(position), 0) FROM {}.factos_events",
                schema.quoted()
            ),
            &[],
        )
        .await?
        .get(0);
    monitor
        .batch_execute(&format!(
            "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan;
             PREPARE factos_profile_append AS {}",
            append.text
        ))
        .await?;
    let explain = |n: usize| {
        format!(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE factos_profile_append(
            'profile', ARRAY[gen_random_uuid()], ARRAY['Booked'], ARRAY[1], ARRAY['b:profile:{n}'],
            ARRAY['{{}}'::jsonb], ARRAY['\\x00'::bytea], NULL, {head}, '{{}}', '{{}}', 1,
            ARRAY['Booked'], ARRAY['b:profile:{n}'])"
        )
    };
    // Six runs: the plan cache only considers a generic plan from the sixth
    // on, force_generic_plan uses it from the first; the last one is shown.
    let mut plan = Vec::new();
    // A tag of its own each time: the condition holds and the event is written.
    for n in 0..6 {
        plan = monitor.query(&explain(n), &[]).await?;
    }
    monitor
        .batch_execute("ROLLBACK; DEALLOCATE factos_profile_append")
        .await?;
    Ok(plan
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Runs the profile, prints it as markdown and returns it.
pub(crate) async fn run(
    cluster: &TempCluster,
    stores: &[(String, Arc<Subject>)],
    clients_list: &[usize],
    duration: Duration,
) -> Result<Vec<Profile>, BoxError> {
    let (client, connection) = cluster.config("postgres").connect(NoTls).await?;
    tokio::spawn(connection);
    // One command per call: ALTER SYSTEM refuses a multi-statement batch
    // (an implicit transaction block).
    for command in [
        "ALTER SYSTEM SET pg_stat_statements.track = 'top'",
        "ALTER SYSTEM SET pg_stat_statements.track_planning = on",
        "SELECT pg_reload_conf()",
    ] {
        client.batch_execute(command).await?;
    }
    // Backends take the new settings at their next command.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The sampler's view query plans slowly (over a millisecond): plan it once.
    client
        .batch_execute("SET plan_cache_mode = force_generic_plan")
        .await?;
    let monitor = Arc::new(client);
    monitor
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await?;
    // FACTOS_BENCH_ONLY=Disjoint/Scoped+cache profiles one subject (and pgbench).
    let only = std::env::var("FACTOS_BENCH_ONLY").ok();
    let wanted: Vec<&str> = match only.as_deref().and_then(|o| o.split_once('/')) {
        Some((_, subject)) => vec![subject],
        None => vec!["Scoped+cache", "Scoped", "TableLock"],
    };
    // Seeding leaves work for autovacuum; done now, it stays out of the figures.
    for database in ["postgres", "pgbench", "disintegrate"] {
        let (client, connection) = cluster.config(database).connect(NoTls).await?;
        tokio::spawn(connection);
        client.batch_execute("VACUUM (ANALYZE)").await?;
    }
    // The seeding's dirty buffers are written now, not during a profiled run.
    monitor.batch_execute("CHECKPOINT").await?;
    let subjects: Vec<_> = stores
        .iter()
        .filter(|(name, _)| wanted.contains(&name.as_str()))
        .collect();
    let mut profiles = Vec::new();
    for &clients in clients_list {
        // A warm-up pass fills every subject's cache and the plan caches.
        for (name, subject) in &subjects {
            run_workload(subject, name, Workload::Disjoint, clients, duration, 0).await;
        }
        profiles.push(profile_one(cluster, &monitor, None, clients, duration).await?);
        for (name, subject) in &subjects {
            profiles.push(
                profile_one(cluster, &monitor, Some((name, subject)), clients, duration).await?,
            );
        }
    }
    print(&profiles);
    if let Some(store) = stores.iter().find_map(|(name, s)| match s.as_ref() {
        Subject::Plain(store) if name == "Scoped" => Some(store),
        _ => None,
    }) {
        println!(
            "\n`EXPLAIN (ANALYZE, BUFFERS)` of a one-event conditional append (Scoped schema, generic plan, rolled back):\n\n```\n{}\n```",
            explain_append(&monitor, store).await?
        );
    }
    Ok(profiles)
}

fn print(profiles: &[Profile]) {
    println!(
        "\n| disjoint, per dispatch | clients | per s | server CPU µs | of which its backends | client CPU µs | WAL records | WAL bytes | WAL full-page images |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for p in profiles {
        println!(
            "| {} | {} | {:.0} | {:.0} | {} | {:.0} | {:.1} | {:.0} | {:.2} |",
            p.subject,
            p.clients,
            p.per_s,
            p.server_cpu_us,
            p.backends_cpu_us
                .map_or(String::new(), |v| format!("{v:.0}")),
            p.client_cpu_us,
            p.wal_records,
            p.wal_bytes,
            p.wal_fpi
        );
    }
    for p in profiles {
        println!(
            "\n{} at {} clients, statements by server time:\n",
            p.subject, p.clients
        );
        println!(
            "| calls per dispatch | mean exec µs | mean plan µs | WAL bytes per call | buffers hit per call | buffers dirtied per call | statement |"
        );
        println!("|---|---|---|---|---|---|---|");
        for (calls, exec, plan, wal, hit, dirtied, text) in &p.statements {
            println!(
                "| {calls:.2} | {exec:.1} | {plan:.1} | {wal:.0} | {hit:.1} | {dirtied:.2} | `{text}` |"
            );
        }
        let total: u64 = p.waits.values().sum();
        let mut waits: Vec<_> = p.waits.iter().collect();
        waits.sort_by(|a, b| b.1.cmp(a.1));
        #[allow(clippy::cast_precision_loss)]
        let shares: Vec<String> = waits
            .iter()
            .take(6)
            .map(|(w, n)| format!("{w} {:.0} %", **n as f64 * 100.0 / total.max(1) as f64))
            .collect();
        println!(
            "\nbackends not idle, sampled every 10 ms ({total} samples): {}",
            shares.join(", ")
        );
    }
}
