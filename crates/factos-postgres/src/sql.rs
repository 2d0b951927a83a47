//! The SQL texts, read from the `.sql` files beside this crate and bound to a
//! schema once per store, so every statement is a fixed text prepared once per
//! connection.

use std::fmt;

use tokio_postgres::types::Type;

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
    (
        7,
        "a scoped guard in one call",
        include_str!("../sql/migrations/0007_guard_function.sql"),
    ),
    (
        8,
        "settled positions from transaction ids",
        include_str!("../sql/migrations/0008_settled_by_transaction_ids.sql"),
    ),
    (
        9,
        "settled reads hold a writer's key for an instant",
        include_str!("../sql/migrations/0009_settled_reads_hold_for_an_instant.sql"),
    ),
    (
        10,
        "parked events of subscriptions",
        include_str!("../sql/migrations/0010_parked_events.sql"),
    ),
    (
        11,
        "snapshots of decision states",
        include_str!("../sql/migrations/0011_snapshots.sql"),
    ),
    (
        12,
        "subscription queries kept with their checkpoints",
        include_str!("../sql/migrations/0012_subscription_queries.sql"),
    ),
];

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

/// The text of a file of this crate's `sql/` folder.
macro_rules! sql_file {
    ($folder:literal, $name:literal) => {
        include_str!(concat!("../sql/", $folder, "/", $name, ".sql"))
    };
}

/// Declares every statement once, in one row: its name (the field of
/// [`Statements`]), the types of the parameters the code binds in
/// placeholder order (`$1`, `$2`, ...), and how its text is made from the
/// files in `sql/`. [`statement_contracts`] lists the same rows, so a test
/// can prepare each text on a server and compare what PostgreSQL infers
/// with what is declared (`tests/statements.rs`). Batches run through the
/// simple protocol and bind nothing.
macro_rules! statements {
    (
        $t:ident;
        prepared {
            $( $(#[doc = $doc:literal])* $name:ident ( $($param:ident),* ) = $text:expr; )*
        }
        batches {
            $( $(#[doc = $batch_doc:literal])* $batch:ident = $batch_text:expr; )*
        }
    ) => {
        /// Every statement a store runs, bound to its schema.
        #[derive(Debug)]
        pub(crate) struct Statements {
            $( $(#[doc = $doc])* pub(crate) $name: String, )*
            $( $(#[doc = $batch_doc])* pub(crate) $batch: String, )*
        }

        impl Statements {
            pub(crate) fn new(schema: &SchemaName) -> Self {
                let $t = Templates::new(schema);
                Self {
                    $( $name: $text, )*
                    $( $batch: $batch_text, )*
                }
            }
        }

        /// Every statement a store with this schema runs: its name, how it
        /// is sent, its parameter types and its text. For tests and for
        /// reviewing plans (`EXPLAIN`); not a stable interface.
        #[doc(hidden)]
        pub fn statement_contracts(schema: &SchemaName) -> Vec<StatementContract> {
            let s = Statements::new(schema);
            vec![
                $( StatementContract {
                    name: stringify!($name),
                    params: Some(&[$(Type::$param),*]),
                    text: s.$name,
                }, )*
                $( StatementContract {
                    name: stringify!($batch),
                    params: None,
                    text: s.$batch,
                }, )*
            ]
        }
    };
}

/// One statement's contract (see [`statement_contracts`]).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct StatementContract {
    /// The statement's name.
    pub name: &'static str,
    /// The parameter types, in placeholder order; `None` for a batch (sent
    /// with the simple protocol, binding nothing).
    pub params: Option<&'static [Type]>,
    /// The text, bound to the schema.
    pub text: String,
}

/// Every statement text a store with this schema runs, by name. Not a
/// stable interface.
#[doc(hidden)]
pub fn statement_texts(schema: &SchemaName) -> Vec<(&'static str, String)> {
    statement_contracts(schema)
        .into_iter()
        .map(|c| (c.name, c.text))
        .collect()
}

/// Fills the slots of the files in `sql/`: `{schema}` (quoted), `{channel}`
/// and, per statement, named pieces (`{direction}`, `{bound}`, ...).
struct Templates {
    schema: String,
    channel: String,
}

impl Templates {
    fn new(schema: &SchemaName) -> Self {
        Self {
            schema: schema.quoted(),
            channel: notify_channel(schema),
        }
    }

    /// `template` without comment lines, with `slots` and then the schema
    /// and channel filled (a slot's value may hold `{schema}`).
    fn fill(&self, template: &str, slots: &[(&str, &str)]) -> String {
        let mut text = code(template);
        for (slot, value) in slots {
            text = text.replace(&format!("{{{slot}}}"), &code(value));
        }
        text.replace("{schema}", &self.schema)
            .replace("{channel}", &self.channel)
    }

    /// `file` as it is.
    fn file(&self, file: &str) -> String {
        self.fill(file, &[])
    }

    /// The positions matching the items `$types`, `$tags` within `bound`,
    /// once per matching item (see `sql/fragments/matching_positions.sql`).
    fn matching(&self, types: &str, tags: &str, bound: &str) -> String {
        self.fill(
            sql_file!("fragments", "matching_positions"),
            &[("types", types), ("tags", tags), ("bound", bound)],
        )
    }

    /// Events matching `$1` types, `$2` tags within `bound` (`$3`), ordered by `direction`.
    fn read_query(&self, direction: &str, bound: &str) -> String {
        let matching = self.matching("$1", "$2", bound);
        self.fill(
            sql_file!("statements", "read_query"),
            &[("matching", &matching), ("direction", direction)],
        )
    }

    /// A partition's events matching `$1` types, `$2` tags after `$3`
    /// (limit `$4`; prefix, partition and partitions `$5`..`$7`).
    fn read_query_partition(&self) -> String {
        let matching = self.matching("$1", "$2", "> $3");
        let in_partition = self.in_partition("$5", "$6", "$7");
        self.fill(
            sql_file!("statements", "read_query_partition"),
            &[("matching", &matching), ("in_partition", &in_partition)],
        )
    }

    /// A partition's events after `$1` (limit `$2`; prefix, partition and
    /// partitions `$3`..`$5`).
    fn read_all_partition(&self) -> String {
        let in_partition = self.in_partition("$3", "$4", "$5");
        self.fill(
            sql_file!("statements", "read_all_partition"),
            &[("in_partition", &in_partition)],
        )
    }

    /// A page of events for admin tools, ordered by `direction`.
    fn browse_events(&self, direction: &str) -> String {
        let filter = self.file(sql_file!("fragments", "browse_filter"));
        self.fill(
            sql_file!("statements", "browse_events"),
            &[("filter", &filter), ("direction", direction)],
        )
    }

    fn in_partition(&self, prefix: &str, index: &str, count: &str) -> String {
        self.fill(
            sql_file!("fragments", "in_partition"),
            &[("prefix", prefix), ("index", index), ("count", count)],
        )
    }

    fn read_all(&self, direction: &str, bound: &str) -> String {
        self.fill(
            sql_file!("statements", "read_all"),
            &[("direction", direction), ("bound", bound)],
        )
    }

    fn append(&self, conflict: &str, shape: Shape) -> String {
        let slots: [(&str, &str); 6] = match shape {
            Shape::OneStream => [
                ("targets", sql_file!("fragments", "targets_one_stream")),
                ("route_column", ""),
                ("route_alias", ""),
                ("route_of_event", "1"),
                ("rank", "u.n"),
                ("stream_revisions", "NULL::bigint[]"),
            ],
            Shape::Routed => [
                ("targets", sql_file!("fragments", "targets_routed")),
                ("route_column", ", $13::bigint[]"),
                ("route_alias", ", route"),
                ("route_of_event", "u.route"),
                (
                    "rank",
                    "row_number() OVER (PARTITION BY u.route ORDER BY u.n)",
                ),
                (
                    "stream_revisions",
                    "ARRAY(SELECT revision FROM targets ORDER BY ord)",
                ),
            ],
        };
        let with_conflict = self.fill(sql_file!("statements", "append"), &[("conflict", conflict)]);
        self.fill(&with_conflict, &slots)
    }
}

/// The two shapes of the append statement: every event to one stream, or
/// each event to one of several (a combined batch, see `append.sql`).
#[derive(Clone, Copy)]
enum Shape {
    OneStream,
    Routed,
}

/// The channel commits are announced on: `factos_` and the schema, cut to
/// PostgreSQL's 63-byte identifier limit (a clash only wakes a subscriber
/// for nothing).
fn notify_channel(schema: &SchemaName) -> String {
    let mut channel = format!("factos_{}", schema.as_str());
    // Schema names are ASCII, so any byte is a character boundary.
    channel.truncate(63);
    channel
}

statements! {
    t;
    prepared {
        lock_table() = t.file(sql_file!("statements", "lock_table"));
        lock_for_writing(INT8_ARRAY, BOOL_ARRAY) = t.file(sql_file!("statements", "lock_for_writing"));
        settled_position(INT4) = t.file(sql_file!("statements", "settled_position"));
        /// The settled mark and the WAL insert position after it (replica reads).
        settled_point(INT4) = t.file(sql_file!("statements", "settled_point"));
        /// A standby's replay position (replica reads).
        replayed_position() = t.file(sql_file!("statements", "replayed_position"));
        read_stream_after(TEXT, INT8) = t.file(sql_file!("statements", "read_stream_after"));
        read_by_ids(UUID_ARRAY) = t.file(sql_file!("statements", "read_by_ids"));
        // Forwards reads are bounded below (exclusive), backwards reads above (inclusive).
        read_query_forwards(TEXT_ARRAY, TEXT_ARRAY, INT8, INT8) = t.read_query("ASC", "> $3");
        read_query_backwards(TEXT_ARRAY, TEXT_ARRAY, INT8, INT8) = t.read_query("DESC", "<= $3");
        read_all_forwards(INT8, INT8) = t.read_all("ASC", "> $1");
        read_all_backwards(INT8, INT8) = t.read_all("DESC", "<= $1");
        read_stream(TEXT) = t.file(sql_file!("statements", "read_stream"));
        /// A partition's events matching a query, forwards (partitioned subscribers).
        read_query_partition(TEXT_ARRAY, TEXT_ARRAY, INT8, INT8, TEXT, INT4, INT4) = t.read_query_partition();
        /// A partition's events, forwards (partitioned subscribers).
        read_all_partition(INT8, INT8, TEXT, INT4, INT4) = t.read_all_partition();
        /// Which member slots of a partitioned subscriber are held.
        members_live(INT8_ARRAY, INT8_ARRAY) = t.file(sql_file!("statements", "members_live"));
        /// Append with a condition on all events after `$9` (also used
        /// without a condition, with `$9` at the maximum position).
        append_if_all(
            TEXT, UUID_ARRAY, TEXT_ARRAY, INT4_ARRAY, TEXT_ARRAY, JSONB_ARRAY, BYTEA_ARRAY,
            INT8, INT8, INT8_ARRAY, BOOL_ARRAY, INT4
        ) = t.append(sql_file!("fragments", "conflict_after_head"), Shape::OneStream);
        /// Append with a condition on a query (`$13` types, `$14` tags) after `$9`.
        append_if_query(
            TEXT, UUID_ARRAY, TEXT_ARRAY, INT4_ARRAY, TEXT_ARRAY, JSONB_ARRAY, BYTEA_ARRAY,
            INT8, INT8, INT8_ARRAY, BOOL_ARRAY, INT4, TEXT_ARRAY, TEXT_ARRAY
        ) = t.append(&t.fill(
            sql_file!("fragments", "conflict_after_query"),
            &[("matching", &t.matching("$13", "$14", "> $9"))],
        ), Shape::OneStream);
        /// A routed append (each event to one of the streams `$1`, by the
        /// ordinals `$13`) with a condition on all events after `$9`.
        append_routed_if_all(
            TEXT_ARRAY, UUID_ARRAY, TEXT_ARRAY, INT4_ARRAY, TEXT_ARRAY, JSONB_ARRAY, BYTEA_ARRAY,
            INT8, INT8, INT8_ARRAY, BOOL_ARRAY, INT4, INT8_ARRAY
        ) = t.append(sql_file!("fragments", "conflict_after_head"), Shape::Routed);
        /// A routed append with a condition on a query (`$14` types, `$15` tags) after `$9`.
        append_routed_if_query(
            TEXT_ARRAY, UUID_ARRAY, TEXT_ARRAY, INT4_ARRAY, TEXT_ARRAY, JSONB_ARRAY, BYTEA_ARRAY,
            INT8, INT8, INT8_ARRAY, BOOL_ARRAY, INT4, INT8_ARRAY, TEXT_ARRAY, TEXT_ARRAY
        ) = t.append(&t.fill(
            sql_file!("fragments", "conflict_after_query"),
            &[("matching", &t.matching("$14", "$15", "> $9"))],
        ), Shape::Routed);
        /// Creates a subscriber's checkpoint at 0 if it has none.
        checkpoint_create(TEXT) = t.file(sql_file!("statements", "checkpoint_create"));
        /// A subscriber's checkpoint.
        checkpoint_read(TEXT) = t.file(sql_file!("statements", "checkpoint_read"));
        /// Compare-and-set of a subscriber's checkpoint.
        checkpoint_advance(TEXT, INT8, INT8) = t.file(sql_file!("statements", "checkpoint_advance"));
        /// Records a subscriber's query if none is; the one recorded.
        subscriber_query(TEXT, TEXT) = t.file(sql_file!("statements", "subscriber_query"));
        /// Moves a subscriber's checkpoint and forgets its query.
        subscriber_reset(TEXT, INT8) = t.file(sql_file!("statements", "subscriber_reset"));
        /// Forgets a subscriber (blue/green: the old projection once switched over).
        subscriber_remove(TEXT) = t.file(sql_file!("statements", "subscriber_remove"));
        /// Every subscriber's name and checkpoint.
        subscribers() = t.file(sql_file!("statements", "subscribers"));
        /// A decision state's snapshot.
        snapshot_load(TEXT, INT8, UUID, TEXT) = t.file(sql_file!("statements", "snapshot_load"));
        /// Keeps a snapshot unless a further folded one is kept.
        snapshot_save(TEXT, INT8, UUID, TEXT, INT8, INT8, BYTEA) = t.file(sql_file!("statements", "snapshot_save"));
        /// Parks an event of a subscriber (or parks it again).
        parked_record(TEXT, INT8, UUID, TEXT, INT4) = t.file(sql_file!("statements", "parked_record"));
        /// Parks a requeued event again after a failed retry (unless dropped).
        parked_repark(TEXT, INT8, TEXT, INT4) = t.file(sql_file!("statements", "parked_repark"));
        /// A subscriber's parked events.
        parked_list(TEXT) = t.file(sql_file!("statements", "parked_list"));
        /// Asks a subscriber to hand a parked event over again.
        parked_requeue(TEXT, INT8) = t.file(sql_file!("statements", "parked_requeue"));
        /// Forgets a parked event.
        parked_drop(TEXT, INT8) = t.file(sql_file!("statements", "parked_drop"));
        /// A subscriber's requeued parked events.
        parked_requeued(TEXT, INT8) = t.file(sql_file!("statements", "parked_requeued"));
        /// One subscriber instance at a time: a session advisory lock.
        subscriber_lock(INT8) = t.file(sql_file!("statements", "subscriber_lock"));
        subscriber_unlock(INT8) = t.file(sql_file!("statements", "subscriber_unlock"));
        /// The advisory keys sessions of this database hold (active subscribers).
        advisory_keys_held() = t.file(sql_file!("statements", "advisory_keys_held"));
        /// Effects recorded in a dispatch's transaction.
        outbox_record(INT8_ARRAY, TEXT_ARRAY, BYTEA_ARRAY) = t.file(sql_file!("statements", "outbox_record"));
        outbox_lease(TEXT, INT8, UUID, INT8, INT4) = t.file(sql_file!("statements", "outbox_lease"));
        outbox_ack(INT8, UUID) = t.file(sql_file!("statements", "outbox_ack"));
        outbox_fail(INT8, UUID, TEXT, INT8, INT4) = t.file(sql_file!("statements", "outbox_fail"));
        outbox_requeue(INT8, TEXT) = t.file(sql_file!("statements", "outbox_requeue"));
        outbox_parked(TEXT) = t.file(sql_file!("statements", "outbox_parked"));
        /// Schema version, counts, head and sizes ([`crate::inspect`]).
        inspect_status() = t.file(sql_file!("statements", "inspect_status"));
        /// A page of events, newest first (admin tools).
        browse_newest_first(TEXT, TEXT, TEXT, INT8, INT8, INT8) = t.browse_events("DESC");
        /// A page of events, oldest first (admin tools).
        browse_oldest_first(TEXT, TEXT, TEXT, INT8, INT8, INT8) = t.browse_events("ASC");
        /// A topic's parked outbox messages with their errors.
        browse_parked_messages(TEXT, INT8) = t.file(sql_file!("statements", "browse_parked_messages"));
        /// Events per time bucket (admin tools' chart).
        browse_append_rate(INT8, INT8) = t.file(sql_file!("statements", "browse_append_rate"));
        /// Connections to the database.
        browse_connections() = t.file(sql_file!("statements", "browse_connections"));
        /// The highest position, 0 when there are no events.
        inspect_head() = t.file(sql_file!("statements", "inspect_head"));
        /// Event tags without a mirror row, for positions in `($1, $2]`.
        inspect_mirror_missing(INT8, INT8) = t.file(sql_file!("statements", "inspect_mirror_missing"));
        /// Mirror rows the event at their position does not carry, in `($1, $2]`.
        inspect_mirror_extra(INT8, INT8) = t.file(sql_file!("statements", "inspect_mirror_extra"));
        /// Streams whose revisions are not `0..n-1` in position order.
        inspect_revisions() = t.file(sql_file!("statements", "inspect_revisions"));
        /// Outbox messages per topic and state.
        inspect_outbox_topics() = t.file(sql_file!("statements", "inspect_outbox_topics"));
        /// Serializes migrations of one schema.
        migration_lock(INT8) = t.file(sql_file!("statements", "migration_lock"));
        schema_exists(NAME) = t.file(sql_file!("statements", "schema_exists"));
        migrations_applied() = t.file(sql_file!("statements", "migrations_applied"));
        migration_checksum_backfill(INT4, TEXT) = t.file(sql_file!("statements", "migration_checksum_backfill"));
        migration_checksum_unchanged(INT4, TEXT) = t.file(sql_file!("statements", "migration_checksum_unchanged"));
        migration_record(INT4, TEXT, TEXT) = t.file(sql_file!("statements", "migration_record"));
        migrations_table_exists(TEXT) = t.file(sql_file!("statements", "migrations_table_exists"));
        schema_version() = t.file(sql_file!("statements", "schema_version"));
    }
    batches {
        /// Creates the schema.
        create_schema = t.file(sql_file!("batches", "create_schema"));
        /// The migrations' search path and bookkeeping table.
        migrations_table = t.file(sql_file!("batches", "migrations_table"));
        /// Announces commits on the schema's channel.
        notify = t.file(sql_file!("batches", "notify"));
        /// Listens on the schema's channel.
        listen = t.file(sql_file!("batches", "listen"));
    }
}

/// The statements that apply `settings` to the current transaction
/// (`SET LOCAL`) and to the session (`SET`). Names and values come from
/// [`crate::StoreOptions`], never from input.
pub(crate) fn setting_statements(settings: &[(&str, String)]) -> (Vec<String>, Vec<String>) {
    let with = |template: &str| {
        settings
            .iter()
            .map(|(name, value)| {
                code(template)
                    .replace("{name}", name)
                    .replace("{value}", value)
            })
            .collect::<Vec<_>>()
    };
    (
        with(sql_file!("fragments", "set_local")),
        with(sql_file!("fragments", "set_session")),
    )
}

/// The statement without its comment lines, so placeholders mentioned in
/// comments are never expanded into code.
fn code(sql: &str) -> String {
    sql.lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
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
