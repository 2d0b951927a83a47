//! The targets table of BENCHMARKS.md (issue 15), computed from the rows and
//! the profile of the same run: each target with its measured figure and
//! whether it is met.

use serde_json::Value;

use crate::profile::Profile;

/// The first row of `workload` whose `subject` and `clients` match (`None`
/// for rows without them).
fn row<'a>(
    rows: &'a [Value],
    workload: &str,
    subject: Option<&str>,
    clients: Option<u64>,
) -> Option<&'a Value> {
    rows.iter().find(|r| {
        r["workload"] == workload
            && subject.is_none_or(|s| r["subject"] == s)
            && clients.is_none_or(|c| r["clients"] == c)
    })
}

fn number(row: Option<&Value>, field: &str) -> Option<f64> {
    row.and_then(|r| r[field].as_f64())
}

fn profiled<'a>(profiles: &'a [Profile], subject: &str, clients: usize) -> Option<&'a Profile> {
    profiles
        .iter()
        .find(|p| p.subject == subject && p.clients == clients)
}

/// One line of the table: the target, the measured figure, met or missed.
fn line(target: &str, measured: Option<(f64, String)>, met: impl Fn(f64) -> bool) {
    match measured {
        Some((value, shown)) => {
            let verdict = if met(value) { "met" } else { "missed" };
            println!("| {target} | {shown} | {verdict} |");
        }
        None => println!("| {target} | not measured in this run | |"),
    }
}

/// Prints the targets table.
pub(crate) fn print(rows: &[Value], profiles: &[Profile]) {
    println!("\n| target (issue 15) | measured | |");
    println!("|---|---|---|");
    let cached = number(
        row(rows, "Disjoint", Some("Scoped+cache"), Some(16)),
        "ratio_to_pgbench_n",
    );
    line(
        "disjoint, 16 clients, Scoped+cache ≥ 0.7 × pgbench -N",
        cached.map(|r| (r, format!("{r:.2}"))),
        |r| r >= 0.7,
    );
    let rate = |subject| {
        number(
            row(rows, "Disjoint", Some(subject), Some(16)),
            "dispatches_per_s_median",
        )
    };
    let scoped_over_table = rate("Scoped").zip(rate("TableLock")).map(|(s, t)| s / t);
    line(
        "disjoint, 16 clients, Scoped (no cache) ≥ 3 × TableLock",
        scoped_over_table.map(|r| (r, format!("{r:.1}×"))),
        |r| r >= 3.0,
    );
    for clients in [1, 16] {
        let ratio = profiled(profiles, "Scoped+cache", clients)
            .zip(profiled(profiles, "pgbench -N", clients))
            .map(|(f, p)| (f.server_cpu_us / p.server_cpu_us, f, p));
        line(
            &format!(
                "server CPU per cached dispatch ≤ 2 × pgbench -N's transaction, {clients} client(s)"
            ),
            ratio.map(|(r, f, p)| {
                (
                    r,
                    format!(
                        "{r:.2} ({:.0} µs against {:.0} µs)",
                        f.server_cpu_us, p.server_cpu_us
                    ),
                )
            }),
            |r| r <= 2.0,
        );
    }
    let wal = profiled(profiles, "Scoped+cache", 16)
        .zip(profiled(profiles, "pgbench -N", 16))
        .map(|(f, p)| (f.wal_bytes / p.wal_bytes, f, p));
    line(
        "WAL per one-event dispatch ≤ 2 × pgbench -N's (16 clients)",
        wal.map(|(r, f, p)| {
            (
                r,
                format!(
                    "{r:.2} ({:.0} bytes, {:.1} records against {:.0} bytes, {:.1} records; pgbench's include {:.2} full-page images per transaction)",
                    f.wal_bytes, f.wal_records, p.wal_bytes, p.wal_records, p.wal_fpi
                ),
            )
        }),
        |r| r <= 2.0,
    );
    let bulk = number(row(rows, "bulk", None, None), "ratio_to_copy");
    line(
        "bulk appends ≥ 0.7 × COPY",
        bulk.map(|r| (r, format!("{r:.2}"))),
        |r| r >= 0.7,
    );
    let read = number(row(rows, "read", None, None), "ratio_p50");
    line(
        "reads on a 1M log ≤ 1.3 × a 10k log (p50)",
        read.map(|r| (r, format!("{r:.2}"))),
        |r| r <= 1.3,
    );
    let live = number(row(rows, "subscription-lag", None, None), "ratio");
    line(
        "a live subscriber costs writers ≤ 3 %",
        live.map(|r| (r, format!("writers at {r:.2} of their rate without it"))),
        |r| r >= 0.97,
    );
}
