//! The SQL texts, read from the `.sql` files beside this crate and bound to a
//! schema once per store, so every statement is a fixed text prepared once per
//! connection.

use std::fmt;

/// The migrations, in order: (version, name, SQL). The SQL uses unqualified
/// names; apply it with `search_path` set to the target schema, then
/// `pg_temp` (the `SECURITY DEFINER` functions pin that path).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "events and tag mirror",
        include_str!("../sql/migrations/0001_events.sql"),
    ),
    (
        2,
        "scoped locking functions",
        include_str!("../sql/migrations/0002_locks.sql"),
    ),
    (
        3,
        "append-only triggers",
        include_str!("../sql/migrations/0003_append_only.sql"),
    ),
    (
        4,
        "unique event ids",
        include_str!("../sql/migrations/0004_event_ids.sql"),
    ),
    (
        5,
        "subscriptions and outbox",
        include_str!("../sql/migrations/0005_subscriptions_outbox.sql"),
    ),
    (
        6,
        "table locks through owner functions",
        include_str!("../sql/migrations/0006_lock_functions.sql"),
    ),
];

const MATCHING_POSITIONS: &str = include_str!("../sql/statements/matching_positions.sql");
const READ_QUERY: &str = include_str!("../sql/statements/read_query.sql");
const READ_ALL: &str = include_str!("../sql/statements/read_all.sql");
const READ_STREAM: &str = include_str!("../sql/statements/read_stream.sql");
const READ_STREAM_AFTER: &str = include_str!("../sql/statements/read_stream_after.sql");
const READ_BY_IDS: &str = include_str!("../sql/statements/read_by_ids.sql");
const APPEND: &str = include_str!("../sql/statements/append.sql");
const CHECKPOINT_ADVANCE: &str = include_str!("../sql/statements/checkpoint_advance.sql");
const OUTBOX_RECORD: &str = include_str!("../sql/statements/outbox_record.sql");
const OUTBOX_LEASE: &str = include_str!("../sql/statements/outbox_lease.sql");
const ADVISORY_KEYS_HELD: &str = include_str!("../sql/statements/advisory_keys_held.sql");
const OUTBOX_FAIL: &str = include_str!("../sql/statements/outbox_fail.sql");
const INSPECT_STATUS: &str = include_str!("../sql/statements/inspect_status.sql");
const INSPECT_MIRROR_MISSING: &str = include_str!("../sql/statements/inspect_mirror_missing.sql");
const INSPECT_MIRROR_EXTRA: &str = include_str!("../sql/statements/inspect_mirror_extra.sql");
const INSPECT_REVISIONS: &str = include_str!("../sql/statements/inspect_revisions.sql");
const INSPECT_OUTBOX_TOPICS: &str = include_str!("../sql/statements/inspect_outbox_topics.sql");

/// A schema name that is safe to interpolate: lowercase ASCII letters, digits
/// and `_`, not starting with a digit, at most 63 bytes (PostgreSQL's limit),
/// and not one of PostgreSQL's own schemas (`information_schema`, `pg_*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaName(String);

/// A schema name that does not follow [`SchemaName`]'s rules.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidSchemaName {
    /// Not 1 to 63 lowercase ASCII letters, digits or `_`, or starting with a digit.
    Malformed(String),
    /// `information_schema` or a name starting with `pg_`: PostgreSQL keeps
    /// those for itself (creating `pg_*` schemas is refused, and factos
    /// tables do not belong among the catalogs).
    Reserved(String),
}

impl fmt::Display for InvalidSchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(name) => write!(
                f,
                "invalid schema name {name:?}: use 1 to 63 lowercase ASCII letters, digits or '_', not starting with a digit"
            ),
            Self::Reserved(name) => write!(
                f,
                "invalid schema name {name:?}: information_schema and names starting with pg_ are reserved by PostgreSQL"
            ),
        }
    }
}

impl std::error::Error for InvalidSchemaName {}

impl SchemaName {
    /// Validates a schema name.
    ///
    /// ```
    /// use factos_postgres::SchemaName;
    /// assert!(SchemaName::new("factos").is_ok());
    /// assert!(SchemaName::new("tenant_42").is_ok());
    /// assert!(SchemaName::new("Robert'); DROP").is_err());
    /// assert!(SchemaName::new("pg_catalog").is_err());
    /// ```
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidSchemaName> {
        let name = name.into();
        let valid_chars = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let starts_ok = name.bytes().next().is_some_and(|b| !b.is_ascii_digit());
        if !(valid_chars && starts_ok && name.len() <= 63) {
            Err(InvalidSchemaName::Malformed(name))
        } else if name == "information_schema" || name.starts_with("pg_") {
            Err(InvalidSchemaName::Reserved(name))
        } else {
            Ok(Self(name))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name quoted as an SQL identifier.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

impl Default for SchemaName {
    fn default() -> Self {
        Self("public".to_string())
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every statement a store runs, bound to its schema.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) lock_table: String,
    pub(crate) lock_table_for_writing: String,
    pub(crate) lock_keys: String,
    pub(crate) settled_position: String,
    pub(crate) read_stream_after: String,
    pub(crate) read_by_ids: String,
    pub(crate) read_query_forwards: String,
    pub(crate) read_query_backwards: String,
    pub(crate) read_all_forwards: String,
    pub(crate) read_all_backwards: String,
    pub(crate) read_stream: String,
    /// Append with a condition on all events after `$9` (also used without a
    /// condition, with `$9` at the maximum position).
    pub(crate) append_if_all: String,
    /// Append with a condition on a query (`$13` types, `$14` tags) after `$9`.
    pub(crate) append_if_query: String,
    /// Creates a subscriber's checkpoint at 0 if it has none.
    pub(crate) checkpoint_create: String,
    /// A subscriber's checkpoint.
    pub(crate) checkpoint_read: String,
    /// Compare-and-set of a subscriber's checkpoint.
    pub(crate) checkpoint_advance: String,
    /// Effects recorded in a dispatch's transaction.
    pub(crate) outbox_record: String,
    pub(crate) outbox_lease: String,
    pub(crate) outbox_ack: String,
    pub(crate) outbox_fail: String,
    pub(crate) outbox_requeue: String,
    pub(crate) outbox_parked: String,
    /// The channel commits are announced on (`factos_` and the schema, cut
    /// to PostgreSQL's 63-byte identifier limit; a clash only wakes a
    /// subscriber for nothing).
    pub(crate) notify_channel: String,
    /// Announces commits on the channel.
    pub(crate) notify: String,
    /// Every subscriber's name and checkpoint.
    pub(crate) subscribers: String,
    /// The advisory keys sessions of this database hold (active subscribers).
    pub(crate) advisory_keys_held: String,
    /// Schema version, counts, head and sizes ([`crate::inspect`]).
    pub(crate) inspect_status: String,
    /// The highest position, 0 when there are no events.
    pub(crate) inspect_head: String,
    /// Event tags without a mirror row, for positions in `($1, $2]`.
    pub(crate) inspect_mirror_missing: String,
    /// Mirror rows the event at their position does not carry, in `($1, $2]`.
    pub(crate) inspect_mirror_extra: String,
    /// Streams whose revisions are not `0..n-1` in position order.
    pub(crate) inspect_revisions: String,
    /// Outbox messages per topic and state.
    pub(crate) inspect_outbox_topics: String,
}

/// The statement without its comment lines, so placeholders mentioned in
/// comments are never expanded into code.
fn code(sql: &str) -> String {
    sql.lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn matching(schema: &str, types: &str, tags: &str, bound: &str) -> String {
    code(MATCHING_POSITIONS)
        .replace("{schema}", schema)
        .replace("{types}", types)
        .replace("{tags}", tags)
        .replace("{bound}", bound)
}

/// Every statement text a store with this schema runs, by name, for
/// reviewing plans (`EXPLAIN`) and for tests. Not a stable interface.
#[doc(hidden)]
pub fn statement_texts(schema: &SchemaName) -> Vec<(&'static str, String)> {
    let s = Statements::new(schema);
    vec![
        ("lock_table", s.lock_table),
        ("lock_table_for_writing", s.lock_table_for_writing),
        ("lock_keys", s.lock_keys),
        ("settled_position", s.settled_position),
        ("read_stream_after", s.read_stream_after),
        ("read_by_ids", s.read_by_ids),
        ("read_query_forwards", s.read_query_forwards),
        ("read_query_backwards", s.read_query_backwards),
        ("read_all_forwards", s.read_all_forwards),
        ("read_all_backwards", s.read_all_backwards),
        ("read_stream", s.read_stream),
        ("append_if_all", s.append_if_all),
        ("append_if_query", s.append_if_query),
        ("checkpoint_create", s.checkpoint_create),
        ("checkpoint_read", s.checkpoint_read),
        ("checkpoint_advance", s.checkpoint_advance),
        ("outbox_record", s.outbox_record),
        ("outbox_lease", s.outbox_lease),
        ("outbox_ack", s.outbox_ack),
        ("outbox_fail", s.outbox_fail),
        ("outbox_requeue", s.outbox_requeue),
        ("outbox_parked", s.outbox_parked),
        ("notify", s.notify),
        ("subscribers", s.subscribers),
        ("advisory_keys_held", s.advisory_keys_held),
        ("inspect_status", s.inspect_status),
        ("inspect_head", s.inspect_head),
        ("inspect_mirror_missing", s.inspect_mirror_missing),
        ("inspect_mirror_extra", s.inspect_mirror_extra),
        ("inspect_revisions", s.inspect_revisions),
        ("inspect_outbox_topics", s.inspect_outbox_topics),
    ]
}

impl Statements {
    pub(crate) fn new(schema: &SchemaName) -> Self {
        let s = schema.quoted();
        // Forwards reads are bounded below (exclusive), backwards reads above (inclusive).
        let read_query = |direction: &str, bound: &str| {
            code(READ_QUERY)
                .replace("{matching}", &matching(&s, "$1", "$2", bound))
                .replace("{schema}", &s)
                .replace("{direction}", direction)
        };
        let read_all = |direction: &str, bound: &str| {
            code(READ_ALL)
                .replace("{schema}", &s)
                .replace("{direction}", direction)
                .replace("{bound}", bound)
        };
        let append = |conflict: &str| {
            code(APPEND)
                .replace("{conflict}", conflict)
                .replace("{schema}", &s)
        };
        let mut notify_channel = format!("factos_{}", schema.as_str());
        // Schema names are ASCII, so any byte is a character boundary.
        notify_channel.truncate(63);
        // Not `EXISTS (... WHERE position > $9)`: under a generic plan that
        // expects a third of the log to match and picks a sequential scan,
        // which reads the whole log when nothing matches (found profiling
        // bulk appends). The head is one probe at the end of the primary key.
        let conflict_all =
            format!("coalesce((SELECT max(position) FROM {s}.factos_events), 0) > $9");
        let conflict_query = format!("EXISTS ({})", matching(&s, "$13", "$14", "> $9"));
        Self {
            lock_table: format!("SELECT {s}.factos_lock_events_exclusive()"),
            lock_table_for_writing: format!("SELECT {s}.factos_lock_events_for_writing()"),
            lock_keys: format!("SELECT {s}.factos_lock_keys($1::bigint[], $2::boolean[])"),
            settled_position: format!("SELECT {s}.factos_settled_position($1::bigint)"),
            read_stream_after: code(READ_STREAM_AFTER).replace("{schema}", &s),
            read_by_ids: code(READ_BY_IDS).replace("{schema}", &s),
            read_query_forwards: read_query("ASC", "> $3"),
            read_query_backwards: read_query("DESC", "<= $3"),
            read_all_forwards: read_all("ASC", "> $1"),
            read_all_backwards: read_all("DESC", "<= $1"),
            read_stream: code(READ_STREAM).replace("{schema}", &s),
            append_if_all: append(&conflict_all),
            append_if_query: append(&conflict_query),
            checkpoint_create: format!(
                "INSERT INTO {s}.factos_subscriptions (name) VALUES ($1) ON CONFLICT (name) DO NOTHING"
            ),
            checkpoint_read: format!(
                "SELECT position FROM {s}.factos_subscriptions WHERE name = $1"
            ),
            checkpoint_advance: code(CHECKPOINT_ADVANCE).replace("{schema}", &s),
            outbox_record: code(OUTBOX_RECORD).replace("{schema}", &s),
            outbox_lease: code(OUTBOX_LEASE).replace("{schema}", &s),
            outbox_ack: format!("DELETE FROM {s}.factos_outbox WHERE id = $1 AND lease_token = $2"),
            outbox_fail: code(OUTBOX_FAIL).replace("{schema}", &s),
            outbox_requeue: format!(
                "UPDATE {s}.factos_outbox SET parked_at = NULL, attempts = 0, lease_token = NULL, \
                 available_at = now() WHERE id = $1 AND parked_at IS NOT NULL"
            ),
            outbox_parked: format!(
                "SELECT id FROM {s}.factos_outbox WHERE topic = $1 AND parked_at IS NOT NULL ORDER BY id"
            ),
            notify: format!("SELECT pg_notify('{notify_channel}', '')"),
            notify_channel,
            subscribers: format!(
                "SELECT name, position FROM {s}.factos_subscriptions ORDER BY name"
            ),
            advisory_keys_held: code(ADVISORY_KEYS_HELD),
            inspect_status: code(INSPECT_STATUS).replace("{schema}", &s),
            inspect_head: format!("SELECT coalesce(max(position), 0) FROM {s}.factos_events"),
            inspect_mirror_missing: code(INSPECT_MIRROR_MISSING).replace("{schema}", &s),
            inspect_mirror_extra: code(INSPECT_MIRROR_EXTRA).replace("{schema}", &s),
            inspect_revisions: code(INSPECT_REVISIONS).replace("{schema}", &s),
            inspect_outbox_topics: code(INSPECT_OUTBOX_TOPICS).replace("{schema}", &s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{InvalidSchemaName, SchemaName};

    #[test]
    fn schemas_postgresql_reserves_are_refused() {
        for name in [
            "information_schema",
            "pg_catalog",
            "pg_toast",
            "pg_temp_3",
            "pg_factos",
        ] {
            let refused = SchemaName::new(name);
            assert_eq!(refused, Err(InvalidSchemaName::Reserved(name.to_string())));
            assert!(refused.unwrap_err().to_string().contains("reserved"));
        }
        for name in ["pg", "pgx", "app_pg_data", "public", "informations"] {
            assert!(SchemaName::new(name).is_ok(), "{name}");
        }
        assert!(matches!(
            SchemaName::new("Pg_Catalog"),
            Err(InvalidSchemaName::Malformed(_))
        ));
    }
}
