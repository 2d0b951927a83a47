//! Reads from a streaming replica (a hot standby of the primary).
//!
//! A replica replays the primary's WAL some time after the primary wrote it,
//! and cannot tell which positions are settled (writers hold their keys on
//! the primary). So a replica read asks the primary for a **settled point**:
//! its settled mark and, taken after the mark, the primary's WAL insert
//! position. Every transaction that could commit at or below the mark had
//! finished when the mark was taken, so its commit record lies before that
//! WAL position; once the replica has replayed up to it, a snapshot taken on
//! the replica shows exactly the events at or below the mark. The replica
//! then reads at the newest point it has replayed (of those this store has
//! seen), so a replica never hands out a position below which an event can
//! still appear; when it lags, its reads are older, never incomplete
//! (`DESIGN.md`, "Replica reads"; `tests/replica.rs`).
//!
//! One round trip to each server per read, concurrently: the primary's
//! statement is the settled mark alone (no event is read there).

use std::sync::Mutex;

use deadpool_postgres::Pool;
use factos::{Position, Query, ReadOptions, ReadResult, StoreError, StoreErrorKind, StoredEvent};
use tokio_postgres::types::ToSql;

use crate::connect::pooled;
use crate::error::{Phase, db_error};
use crate::store::PostgresStore;
use crate::store::read::{ForwardRead, bound, read_rows, unexpected};

/// How many settled points a store keeps while its replica lags: more are
/// thinned (every other one dropped), so a lagging replica still finds one
/// close behind its replay position.
const MAX_SETTLED_POINTS: usize = 256;

/// How often a read waiting for the replica to replay asks how far it is.
const REPLAY_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// How a store reads from its replica.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReplicaOptions {
    /// Longest wait of a read for the replica to replay the primary's
    /// newest settled point (polled every 2 ms); after it, the read returns
    /// what the replica has replayed (older, never incomplete). Default 1 s;
    /// 0 never waits (a read then often lags by the time since the previous
    /// read of this store).
    pub replay_wait: std::time::Duration,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        Self {
            replay_wait: std::time::Duration::from_secs(1),
        }
    }
}

impl ReplicaOptions {
    /// Sets [`ReplicaOptions::replay_wait`].
    #[must_use]
    pub fn replay_wait(mut self, wait: std::time::Duration) -> Self {
        self.replay_wait = wait;
        self
    }
}

/// A position settled on the primary, the primary's WAL insert position
/// taken after it (bytes since `0/0`), and the primary's timeline then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SettledPoint {
    pub(crate) mark: i64,
    pub(crate) wal_bytes: i64,
    pub(crate) timeline: i64,
}

/// The replica connections of a store and the settled points it has seen.
pub(crate) struct Replica {
    pub(crate) pool: Pool,
    options: ReplicaOptions,
    /// The settings sent before each read (the pool was given, not opened by factos).
    session_settings: String,
    /// Points of the current timeline, ordered by WAL position, each with a
    /// higher mark than every point before it (a point that another with a
    /// lower or equal WAL position and a higher or equal mark dominates is
    /// of no use to any reader).
    points: Mutex<Vec<SettledPoint>>,
}

impl Replica {
    pub(crate) fn new(pool: Pool, options: ReplicaOptions, session_settings: String) -> Self {
        Self {
            pool,
            options,
            session_settings,
            points: Mutex::new(Vec::new()),
        }
    }

    /// Remembers `fresh` and returns the highest mark among the points the
    /// replica has replayed (`replayed`: its replay position), or 0 when it
    /// has replayed none of them yet (a read at 0 returns no events).
    ///
    /// A fresh point of another timeline (the primary was replaced: a
    /// promoted standby) drops every point of the old one: under
    /// asynchronous replication the old primary's settled events may be
    /// lost and their positions given again, and WAL positions of two
    /// timelines do not compare.
    pub(crate) fn readable_mark(&self, fresh: SettledPoint, replayed: i64) -> i64 {
        let mut points = self
            .points
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = points.first().map(|p| p.timeline);
        if current.is_some_and(|t| t < fresh.timeline) {
            points.clear();
        }
        // A point of an older timeline arriving late (its statement reached
        // the old primary before it went) is not kept.
        if current.is_none_or(|t| t <= fresh.timeline) {
            let at = points.partition_point(|p| p.wal_bytes <= fresh.wal_bytes);
            points.insert(at, fresh);
        }
        // Keep the staircase: marks rising with WAL positions.
        let mut highest = i64::MIN;
        points.retain(|p| {
            let keep = p.mark > highest;
            highest = highest.max(p.mark);
            keep
        });
        if points.len() > MAX_SETTLED_POINTS {
            // Thin out (keep the oldest, the newest and every other one),
            // so a replica far behind still finds a point close to its
            // replay position.
            let last = points.len();
            let mut index = 0;
            points.retain(|_| {
                index += 1;
                index == 1 || index == last || index % 2 == 0
            });
        }
        points
            .iter()
            .take_while(|p| p.wal_bytes <= replayed)
            .map(|p| p.mark)
            .last()
            .unwrap_or(0)
    }
}

impl PostgresStore {
    /// This store, reading from `replica` (connections to a hot standby of
    /// this store's primary): [`EventStore::read`](factos::EventStore::read)
    /// and subscriptions' batches read there; decisions, appends, stream
    /// reads, checkpoints and the outbox stay on the primary.
    ///
    /// A replica read is settled like a primary read (no event can later
    /// appear at or below the head it reports) but as of an earlier moment:
    /// it reads at the newest settled position the replica has replayed
    /// (waiting at most [`ReplicaOptions::replay_wait`] for the primary's
    /// current one), so it lags the primary by the replica's replay lag, and
    /// returns no event while the replica has replayed nothing since this
    /// store first asked.
    /// Each read also asks the primary for its settled mark (one short
    /// statement, concurrently with the replica's read). For read-your-writes
    /// read from the store without a replica.
    ///
    /// The replica must be in recovery (a standby): a read from a server that
    /// is not fails with [`StoreErrorKind::Other`] (after a failover, point
    /// the replica pool at a standby of the new primary).
    #[must_use]
    pub fn with_replica(&self, replica: Pool, options: ReplicaOptions) -> PostgresStore {
        let (_, session_settings) = crate::connect::settings(&self.inner.options, false);
        PostgresStore {
            inner: self.inner.clone(),
            replica: Some(std::sync::Arc::new(Replica::new(
                replica,
                options,
                session_settings,
            ))),
        }
    }

    /// A fresh settled point: on `primary` when the caller holds a
    /// connection to it, else on a pooled one given back at once (not held
    /// while the read waits for the replica).
    async fn fresh_point(
        &self,
        primary: Option<&deadpool_postgres::ClientWrapper>,
    ) -> Result<SettledPoint, StoreError> {
        if let Some(client) = primary {
            return self.settled_point(client).await;
        }
        let client = self.client().await?;
        self.settled_point(&client).await
    }

    /// The primary's settled point, on `primary` (a connection to it).
    async fn settled_point(
        &self,
        primary: &deadpool_postgres::ClientWrapper,
    ) -> Result<SettledPoint, StoreError> {
        let statement = primary
            .prepare_cached(&self.sql().settled_point)
            .await
            .map_err(|e| db_error("cannot prepare the settled point", e, Phase::BeforeCommit))?;
        let writers = self.keys().writers();
        let params: [&(dyn ToSql + Sync); 1] = [&writers];
        let (_, row) = futures_util::join!(
            self.session_settings(primary),
            primary.query_one(&statement, &params)
        );
        let row =
            row.map_err(|e| db_error("cannot read the settled point", e, Phase::BeforeCommit))?;
        let timeline: String = row
            .try_get("timeline")
            .map_err(unexpected("settled point"))?;
        Ok(SettledPoint {
            mark: row.try_get("mark").map_err(unexpected("settled point"))?,
            wal_bytes: row
                .try_get("wal_bytes")
                .map_err(unexpected("settled point"))?,
            timeline: i64::from_str_radix(&timeline, 16)
                .map_err(|_| crate::error::corrupt(format!("unexpected timeline {timeline:?}")))?,
        })
    }

    /// Reads `query` forwards after `after` on the replica, at the newest
    /// settled point it has replayed; `primary` asks for a fresh point.
    /// Returns (mark, events, head) like a settled read on the primary.
    ///
    /// The replica's replay position and the read go out together with the
    /// primary's point (one round trip each). If the replica has not replayed
    /// the fresh point yet, it waits for it (at most
    /// [`ReplicaOptions::replay_wait`]) and reads again.
    pub(crate) async fn replica_forward_read(
        &self,
        replica: &Replica,
        primary: Option<&deadpool_postgres::ClientWrapper>,
        read: &ForwardRead<'_>,
    ) -> Result<(i64, Vec<StoredEvent>, Option<Position>), StoreError> {
        let client = pooled(&replica.pool, self.inner.options.pool_wait_timeout).await?;
        let (text, params) = read.statement(self.sql());
        let read = client
            .prepare_cached(text)
            .await
            .map_err(|e| db_error("cannot prepare the replica read", e, Phase::BeforeCommit))?;
        let replayed = self.prepare_replayed(&client).await?;
        // Both prepared, so the replay position goes out first: the read's
        // snapshot is taken after it and shows everything replayed by then.
        let read_once = || async {
            let (_, replayed, rows) = futures_util::join!(
                replica_settings(&client, replica),
                client.query_one(&replayed, &[]),
                client.query(&read, &params)
            );
            let replayed = replay_position(replayed)?;
            let rows =
                rows.map_err(|e| db_error("cannot read from the replica", e, Phase::BeforeCommit))?;
            Ok::<_, StoreError>((replayed, rows))
        };
        let (point, first) = futures_util::join!(self.fresh_point(primary), read_once());
        let point = point?;
        let (mut replay_at, mut rows) = first?;
        if replay_at < point.wal_bytes
            && self
                .wait_for_replay(replica, &client, &replayed, point.wal_bytes)
                .await?
        {
            (replay_at, rows) = read_once().await?;
        }
        let mark = replica.readable_mark(point, replay_at);
        let (events, head) = read_rows(&rows, mark)?;
        Ok((mark, events, head))
    }

    /// Polls the replica's replay position until it reaches `wal_bytes`:
    /// true then, false after [`ReplicaOptions::replay_wait`].
    async fn wait_for_replay(
        &self,
        replica: &Replica,
        client: &deadpool_postgres::ClientWrapper,
        replayed: &tokio_postgres::Statement,
        wal_bytes: i64,
    ) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + replica.options.replay_wait;
        loop {
            if replay_position(client.query_one(replayed, &[]).await)? >= wal_bytes {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(REPLAY_POLL).await;
        }
    }

    /// [`EventStore::read`](factos::EventStore::read) on the replica.
    pub(crate) async fn read_replica(
        &self,
        replica: &Replica,
        query: &Query,
        options: ReadOptions,
    ) -> Result<ReadResult, StoreError> {
        let limit: Option<i64> = options.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        if !options.backwards {
            let read = ForwardRead::new(query, bound(options), limit);
            let (_, events, head) = self.replica_forward_read(replica, None, &read).await?;
            return Ok(ReadResult { events, head });
        }
        // Backwards, the mark bounds the read from above (so the limit counts
        // only readable events): the replay position and the point first,
        // then the read, on a snapshot taken after both.
        let client = pooled(&replica.pool, self.inner.options.pool_wait_timeout).await?;
        let replayed_statement = self.prepare_replayed(&client).await?;
        let (point, (_, replayed)) = futures_util::join!(
            self.fresh_point(None),
            futures_util::future::join(
                replica_settings(&client, replica),
                client.query_one(&replayed_statement, &[])
            )
        );
        let point = point?;
        let mut replay_at = replay_position(replayed)?;
        if replay_at < point.wal_bytes
            && self
                .wait_for_replay(replica, &client, &replayed_statement, point.wal_bytes)
                .await?
        {
            replay_at = point.wal_bytes;
        }
        let mark = replica.readable_mark(point, replay_at);
        let (events, head) = self
            .backward_read(&client, query, bound(options).min(mark), limit, mark)
            .await?;
        Ok(ReadResult { events, head })
    }

    async fn prepare_replayed(
        &self,
        client: &deadpool_postgres::ClientWrapper,
    ) -> Result<tokio_postgres::Statement, StoreError> {
        client
            .prepare_cached(&self.sql().replayed_position)
            .await
            .map_err(|e| db_error("cannot prepare the replay position", e, Phase::BeforeCommit))
    }

    /// A subscription's batch: from the replica when the store has one
    /// (`primary` then asks for the settled point), else a settled read on
    /// `primary`.
    pub(crate) async fn batch_read(
        &self,
        primary: &deadpool_postgres::ClientWrapper,
        read: &ForwardRead<'_>,
    ) -> Result<(i64, Vec<StoredEvent>, Option<Position>), StoreError> {
        match &self.replica {
            Some(replica) => {
                self.replica_forward_read(replica, Some(primary), read)
                    .await
            }
            None => self.settled_forward_read(primary, read).await,
        }
    }
}

async fn replica_settings(
    client: &deadpool_postgres::ClientWrapper,
    replica: &Replica,
) -> Result<(), tokio_postgres::Error> {
    if replica.session_settings.is_empty() {
        Ok(())
    } else {
        client.batch_execute(&replica.session_settings).await
    }
}

/// The replica's replay position from its row; NULL means the server is not
/// in recovery (not a standby).
fn replay_position(
    row: Result<tokio_postgres::Row, tokio_postgres::Error>,
) -> Result<i64, StoreError> {
    let row =
        row.map_err(|e| db_error("cannot read the replay position", e, Phase::BeforeCommit))?;
    let replayed: Option<i64> = row.try_get(0).map_err(unexpected("replay position"))?;
    replayed.ok_or_else(|| {
        StoreError::new(
            StoreErrorKind::Other,
            "the replica is not a standby (not in recovery): a store reads from a replica only \
             while it replays its primary's WAL; nothing was read",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica() -> Replica {
        let manager =
            deadpool_postgres::Manager::new(tokio_postgres::Config::new(), tokio_postgres::NoTls);
        Replica::new(
            Pool::builder(manager).build().unwrap(),
            ReplicaOptions::default(),
            String::new(),
        )
    }

    fn point(mark: i64, wal_bytes: i64) -> SettledPoint {
        SettledPoint {
            mark,
            wal_bytes,
            timeline: 1,
        }
    }

    #[test]
    fn a_replica_reads_at_the_newest_point_it_has_replayed() {
        let replica = replica();
        // Nothing replayed yet: no event may be read.
        assert_eq!(replica.readable_mark(point(5, 100), 50), 0);
        assert_eq!(replica.readable_mark(point(9, 200), 150), 5);
        assert_eq!(replica.readable_mark(point(12, 300), 250), 9);
        // The replica caught up past every point: the newest one.
        assert_eq!(replica.readable_mark(point(12, 310), 400), 12);
        // Replay never goes back, but a second replica behind a pool may
        // be behind the first: it gets what it has replayed, not more.
        assert_eq!(replica.readable_mark(point(20, 500), 320), 12);
    }

    #[test]
    fn a_reader_behind_another_still_finds_its_point() {
        let replica = replica();
        replica.readable_mark(point(5, 100), 50);
        // Reader A has replayed far; it must not drop the point reader B,
        // whose replay position is lower, can still use.
        assert_eq!(replica.readable_mark(point(9, 200), 250), 9);
        assert_eq!(replica.readable_mark(point(7, 150), 120), 5);
    }

    #[test]
    fn a_new_timeline_forgets_the_old_primary_s_points() {
        let replica = replica();
        assert_eq!(replica.readable_mark(point(50, 1000), 2000), 50);
        // The standby was promoted (timeline 2): its WAL positions passing
        // 1000 say nothing about the old primary's mark 50.
        let promoted = SettledPoint {
            mark: 30,
            wal_bytes: 5000,
            timeline: 2,
        };
        assert_eq!(replica.readable_mark(promoted, 3000), 0);
        assert_eq!(replica.readable_mark(promoted, 5000), 30);
        // A point of the old timeline arriving late changes nothing.
        let late = point(60, 1100);
        assert_eq!(replica.readable_mark(late, 5000), 30);
        assert_eq!(replica.readable_mark(late, 2000), 0);
    }

    #[test]
    fn a_lagging_replica_keeps_a_bounded_number_of_points() {
        let replica = replica();
        for i in 1..=10_000 {
            replica.readable_mark(point(i, i * 10), 5);
        }
        let kept = replica.points.lock().unwrap().len();
        assert!(kept <= MAX_SETTLED_POINTS + 1, "{kept} points kept");
        // The oldest point is kept, so the replica can use it as soon as it
        // replays that far.
        assert_eq!(replica.readable_mark(point(10_001, 100_010), 10), 1);
    }
}
