//! Snapshots of decision states (`factos::snapshot`): loaded on a
//! dispatcher's cache miss, written off the dispatch's critical path (in a
//! task of their own, after the dispatch's commit).

use factos::StoreError;
use factos::snapshot::{MAX_SNAPSHOT_BYTES, Snapshot, SnapshotKey};

use crate::error::{Phase, corrupt, db_error};
use crate::store::PostgresStore;

impl PostgresStore {
    /// The snapshot kept under `key`, if any.
    pub(crate) async fn load_snapshot_row(
        &self,
        key: &SnapshotKey,
    ) -> Result<Option<Snapshot>, StoreError> {
        let client = self.client().await?;
        let version = i64::from(key.state_version);
        let row = client
            .query_opt(
                &self.statements().snapshot_load,
                &[&key.decider, &version, &key.query_digest(), &key.query],
            )
            .await
            .map_err(|e| db_error("cannot load the snapshot", e, Phase::BeforeCommit))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let unexpected = |e| corrupt("unexpected snapshot row").with_source(e);
        let position: i64 = row.try_get("position").map_err(unexpected)?;
        let events: i64 = row.try_get("events").map_err(unexpected)?;
        Ok(Some(Snapshot {
            position: crate::rows::stored_position(position)
                .ok_or_else(|| corrupt("a snapshot at position 0"))?,
            events: usize::try_from(events)
                .map_err(|_| corrupt("a snapshot of negative events"))?,
            state: row.try_get("state").map_err(unexpected)?,
        }))
    }

    /// Checks `snapshot` and writes it in a task of its own: the caller
    /// (a dispatch that just committed) does not wait for the write. A
    /// failed write is logged; the next due snapshot tries again.
    pub(crate) fn save_snapshot_later(
        &self,
        key: &SnapshotKey,
        snapshot: Snapshot,
    ) -> Result<(), StoreError> {
        if snapshot.state.len() > MAX_SNAPSHOT_BYTES {
            return Err(factos::store::snapshot_too_large(snapshot.state.len()));
        }
        if key.decider.is_empty() || key.decider.len() > 128 {
            return Err(StoreError::new(
                factos::StoreErrorKind::Rejected,
                "a snapshot's decider name must be 1 to 128 bytes",
            ));
        }
        let store = self.clone();
        let key = key.clone();
        tokio::spawn(async move {
            if let Err(e) = store.write_snapshot(&key, &snapshot).await {
                tracing::warn!(decider = %key.decider, query = %key.query, error = %e, "cannot write a snapshot");
            }
        });
        Ok(())
    }

    async fn write_snapshot(
        &self,
        key: &SnapshotKey,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let version = i64::from(key.state_version);
        let position = i64::try_from(snapshot.position.get()).unwrap_or(i64::MAX);
        let events = i64::try_from(snapshot.events).unwrap_or(i64::MAX);
        client
            .execute(
                &self.statements().snapshot_save,
                &[
                    &key.decider,
                    &version,
                    &key.query_digest(),
                    &key.query,
                    &position,
                    &events,
                    &snapshot.state,
                ],
            )
            .await
            .map_err(|e| db_error("cannot write the snapshot", e, Phase::BeforeCommit))?;
        Ok(())
    }
}
