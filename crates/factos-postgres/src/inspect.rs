//! Inspection: read-only reports on a store for operators and tools (the
//! `factos` command uses nothing else), so no caller needs to know the table
//! layout or write SQL against it.
//!
//! This module owns [`PostgresStore::status`] (schema version, counts, head,
//! table sizes), [`PostgresStore::verify`] (the tag mirror against the
//! events, and stream revisions), [`PostgresStore::subscribers`] and
//! [`PostgresStore::outbox_topics`], and their result types. The SQL is in
//! `sql/statements/inspect_*.sql` (plus `subscribers` and
//! `advisory_keys_held` in `sql.rs`). Every report is read outside a
//! transaction, statement by statement: on a store that is being written to,
//! its parts may describe slightly different moments.

use std::fmt;
use std::num::NonZeroU64;

use factos::{Position, StoreError, StoreErrorKind};
use tokio_postgres::Row;

use crate::error::{Phase, corrupt, db_error};
use crate::store::PostgresStore;

/// What [`PostgresStore::status`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStatus {
    /// The schema version recorded in the database (the highest applied
    /// migration; compare with [`crate::SCHEMA_VERSION`]).
    pub schema_version: i32,
    /// Events in the log.
    pub events: u64,
    /// The highest position in the log (`None`: no events). Not necessarily
    /// settled: a transaction holding a lower position may still commit.
    pub head: Option<Position>,
    /// Streams with at least one event.
    pub streams: u64,
    /// Distinct tags in the tag mirror.
    pub distinct_tags: u64,
    /// Bytes on disk of the event table, with its indexes and TOAST.
    pub event_table_bytes: u64,
    /// Bytes on disk of the tag mirror, with its index.
    pub tag_mirror_bytes: u64,
}

/// How [`PostgresStore::verify`] walks the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Positions whose tags are checked per pair of statements (default 100,000).
    pub batch: NonZeroU64,
    /// Start no further batch once this many faults are found (default 50).
    /// Each batch reports at most 20 missing and 20 extra mirror rows, and
    /// the revision check at most 20 streams, so a report can hold more.
    pub stop_after_faults: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            batch: NonZeroU64::new(100_000).unwrap_or(NonZeroU64::MIN),
            stop_after_faults: 50,
        }
    }
}

impl VerifyOptions {
    /// Sets the positions checked per batch.
    #[must_use]
    pub fn batch(mut self, positions: NonZeroU64) -> Self {
        self.batch = positions;
        self
    }

    /// Sets the number of faults after which no further batch starts.
    #[must_use]
    pub fn stop_after_faults(mut self, faults: usize) -> Self {
        self.stop_after_faults = faults;
        self
    }
}

/// How far [`PostgresStore::verify`] got, passed to its callback after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyProgress {
    /// The highest position when the check began.
    pub head: Position,
    /// Every position up to this one has been checked.
    pub checked_up_to: Position,
}

/// An inconsistency [`PostgresStore::verify`] found. Streams and tags are
/// the stored text, not [`factos::StreamId`] or [`factos::Tag`]: rows written
/// by raw SQL need not be valid names, and the report must still show them.
/// Displays as one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The event at `position` carries `tag`, but the tag mirror has no row
    /// for it (reads and conditions on the tag miss the event).
    MissingMirrorRow {
        /// The event's position.
        position: Position,
        /// The tag without its mirror row.
        tag: String,
    },
    /// The tag mirror has a row for `tag` at `position`, but there is no event
    /// there or the event does not carry the tag (reads on the tag see an
    /// event that does not match).
    ExtraMirrorRow {
        /// The mirror row's position.
        position: Position,
        /// The mirror row's tag.
        tag: String,
    },
    /// The stream's revisions are not exactly `0..=events - 1`.
    RevisionsNotContiguous {
        /// The stream.
        stream: String,
        /// Its number of events.
        events: u64,
        /// Its lowest revision.
        first: u64,
        /// Its highest revision.
        last: u64,
    },
    /// In the stream, a higher revision has a lower position.
    PositionsNotIncreasing {
        /// The stream.
        stream: String,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingMirrorRow { position, tag } => write!(
                f,
                "event {position} carries tag {tag:?} but the mirror has no row for it"
            ),
            Self::ExtraMirrorRow { position, tag } => write!(
                f,
                "the mirror has tag {tag:?} for position {position}, which the event does not carry"
            ),
            Self::RevisionsNotContiguous {
                stream,
                events,
                first,
                last,
            } => write!(
                f,
                "stream {stream:?}: {events} events with revisions {first}..={last}, expected 0..={}",
                events.saturating_sub(1)
            ),
            Self::PositionsNotIncreasing { stream } => {
                write!(
                    f,
                    "stream {stream:?}: positions do not increase with revisions"
                )
            }
        }
    }
}

/// What [`PostgresStore::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The highest position when the check began (`None`: no events).
    pub head: Option<Position>,
    /// The tag mirror was checked up to this position: the head, unless the
    /// check stopped early after [`VerifyOptions::stop_after_faults`].
    pub checked_up_to: Option<Position>,
    /// The faults, in the order found: mirror faults batch by batch (missing
    /// rows, then extra rows), then streams by name.
    pub faults: Vec<Fault>,
}

impl VerifyReport {
    /// Whether no fault was found.
    pub fn is_ok(&self) -> bool {
        self.faults.is_empty()
    }
}

/// A subscriber's state as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberStatus {
    /// The subscriber's name.
    pub name: String,
    /// Every matching event at or below it has been handled (`None`: no
    /// batch has been handled yet).
    pub checkpoint: Option<Position>,
    /// Whether an instance holds the subscriber now.
    pub active: bool,
}

/// The outbox messages of one topic, by state, as
/// [`PostgresStore::outbox_topics`] reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxTopic {
    /// The topic.
    pub topic: String,
    /// Messages without a lease: due now, or after a failure's backoff.
    pub waiting: u64,
    /// Messages under a lease that has not run out. A message whose lease ran
    /// out (its worker died) counts in none of the three until a worker
    /// leases it again.
    pub leased: u64,
    /// Messages parked after too many failed attempts.
    pub parked: u64,
}

/// A column of an inspection row, by name.
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    name: &str,
) -> Result<T, StoreError> {
    row.try_get(name)
        .map_err(|e| corrupt(format!("unexpected value in column {name}")).with_source(e))
}

/// A count or a size: a `bigint` column that is never negative.
fn count(row: &Row, name: &str) -> Result<u64, StoreError> {
    let value: i64 = column(row, name)?;
    u64::try_from(value).map_err(|_| corrupt(format!("negative value {value} in column {name}")))
}

/// A position the statements only return when it is above 0.
fn position(row: &Row, name: &str) -> Result<Position, StoreError> {
    crate::rows::position(column(row, name)?)
}

/// A revision (the column is checked `>= 0`).
fn revision(row: &Row, name: &str) -> Result<u64, StoreError> {
    crate::rows::revision(column(row, name)?)
}

fn fail(context: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| db_error(context, e, Phase::BeforeCommit)
}

impl PostgresStore {
    /// The schema version, the number of events, streams and distinct tags,
    /// the head and the sizes of the event table and the tag mirror, in one
    /// statement. A schema that is not migrated fails with
    /// [`StoreErrorKind::Schema`].
    pub async fn status(&self) -> Result<StoreStatus, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(&self.statements().inspect_status, &[])
            .await
            .map_err(fail("cannot read the status"))?;
        let schema_version: Option<i32> = column(&row, "version")?;
        let schema_version = schema_version.ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::Schema,
                format!("schema {} has no applied migration", self.options().schema),
            )
        })?;
        let head: Option<i64> = column(&row, "head")?;
        Ok(StoreStatus {
            schema_version,
            events: count(&row, "events")?,
            head: head.map(crate::rows::position).transpose()?,
            streams: count(&row, "streams")?,
            distinct_tags: count(&row, "tags")?,
            event_table_bytes: count(&row, "events_bytes")?,
            tag_mirror_bytes: count(&row, "tags_bytes")?,
        })
    }

    /// Checks the store's invariants that raw SQL can break: every tag of
    /// every event has its mirror row and the mirror has no other rows
    /// (walking the log up to the head found at the start, `options.batch`
    /// positions at a time, calling `progress` after each batch), and every
    /// stream's revisions are `0..n-1` with positions increasing in revision
    /// order. Faults are reported, not errors: an error means the check could
    /// not run.
    pub async fn verify(
        &self,
        options: &VerifyOptions,
        mut progress: impl FnMut(VerifyProgress),
    ) -> Result<VerifyReport, StoreError> {
        let client = self.client().await?;
        let sql = self.statements();
        let last: i64 = client
            .query_one(&sql.inspect_head, &[])
            .await
            .map_err(fail("cannot read the head"))?
            .try_get(0)
            .map_err(|e| corrupt("unexpected head").with_source(e))?;
        let head = u64::try_from(last).ok().and_then(Position::new);
        let batch = i64::try_from(options.batch.get()).unwrap_or(i64::MAX);
        let mut faults = Vec::new();
        // Positions in (0, lower] are checked.
        let mut lower = 0i64;
        if let Some(head) = head {
            while lower < last && faults.len() < options.stop_after_faults {
                let upper = lower.saturating_add(batch).min(last);
                let range: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&lower, &upper];
                let (missing, extra) = futures_util::join!(
                    client.query(&sql.inspect_mirror_missing, &range),
                    client.query(&sql.inspect_mirror_extra, &range),
                );
                for row in missing.map_err(fail("cannot check the tag mirror"))? {
                    faults.push(Fault::MissingMirrorRow {
                        position: position(&row, "position")?,
                        tag: column(&row, "tag")?,
                    });
                }
                for row in extra.map_err(fail("cannot check the tag mirror"))? {
                    faults.push(Fault::ExtraMirrorRow {
                        position: position(&row, "position")?,
                        tag: column(&row, "tag")?,
                    });
                }
                lower = upper;
                progress(VerifyProgress {
                    head,
                    checked_up_to: crate::rows::position(upper)?,
                });
            }
        }
        let checked_up_to = u64::try_from(lower).ok().and_then(Position::new);
        for row in client
            .query(&sql.inspect_revisions, &[])
            .await
            .map_err(fail("cannot check the revisions"))?
        {
            let stream: String = column(&row, "stream")?;
            faults.push(if column(&row, "positions_increase")? {
                Fault::RevisionsNotContiguous {
                    stream,
                    events: count(&row, "events")?,
                    first: revision(&row, "first")?,
                    last: revision(&row, "last")?,
                }
            } else {
                Fault::PositionsNotIncreasing { stream }
            });
        }
        Ok(VerifyReport {
            head,
            checked_up_to,
            faults,
        })
    }

    /// Every subscriber with a stored checkpoint, by name, and whether an
    /// instance holds it now.
    pub async fn subscribers(&self) -> Result<Vec<SubscriberStatus>, StoreError> {
        let client = self.client().await?;
        let unexpected = |e| corrupt("unexpected subscriber row").with_source(e);
        let (rows, held) = futures_util::join!(
            client.query(&self.statements().subscribers, &[]),
            client.query(&self.statements().advisory_keys_held, &[]),
        );
        let rows = rows.map_err(fail("cannot list subscribers"))?;
        let held = held
            .map_err(fail("cannot read the subscribers' locks"))?
            .iter()
            .map(|row| row.try_get::<_, i64>(0))
            .collect::<Result<std::collections::HashSet<i64>, _>>()
            .map_err(unexpected)?;
        let mut subscribers = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.try_get("name").map_err(unexpected)?;
            let checkpoint: i64 = row.try_get("position").map_err(unexpected)?;
            let active = held.contains(&self.keys().subscriber(&name));
            subscribers.push(SubscriberStatus {
                name,
                checkpoint: crate::rows::stored_position(checkpoint),
                active,
            });
        }
        Ok(subscribers)
    }

    /// The outbox messages per topic (topics with at least one message, by
    /// name): waiting, leased and parked.
    pub async fn outbox_topics(&self) -> Result<Vec<OutboxTopic>, StoreError> {
        let client = self.client().await?;
        client
            .query(&self.statements().inspect_outbox_topics, &[])
            .await
            .map_err(fail("cannot read the outbox"))?
            .iter()
            .map(|row| {
                Ok(OutboxTopic {
                    topic: column(row, "topic")?,
                    waiting: count(row, "waiting")?,
                    leased: count(row, "leased")?,
                    parked: count(row, "parked")?,
                })
            })
            .collect()
    }
}
