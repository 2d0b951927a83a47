//! Persistent snapshots through a [`Dispatcher`]: a cold dispatcher starts
//! from the state the store keeps, trusted like a cached one.

use factos::snapshot::{Snapshot, SnapshotKey, SnapshotPolicy};
use factos::{Dispatcher, EventStore, Position, Query, ReadOptions};

use super::cached::box_query;
use super::{count, stream};
use crate::CaseResult;
use crate::model::{KitCodec, Shelf, ShelfCommand};

/// The count a fresh dispatcher with `policy` decides on.
async fn decided_on<S: EventStore + Clone>(
    store: &S,
    policy: SnapshotPolicy,
    query: &Query,
) -> Result<(Option<usize>, factos::snapshot::SnapshotStats), String> {
    let shelf = Shelf::default();
    let dispatcher =
        Dispatcher::new(store.clone(), shelf.clone(), KitCodec::default()).with_snapshots(policy);
    dispatcher
        .dispatch_with_query(&stream("shelf"), query, &ShelfCommand::Count)
        .await
        .map_err(|e| format!("counting: {e:?}"))?;
    Ok((shelf.decided_on(), dispatcher.snapshot_stats()))
}

/// Waits until `store` keeps a snapshot under `key` folded to at least
/// `position` (a store may write snapshots off the dispatch's path).
async fn kept<S: EventStore>(store: &S, key: &SnapshotKey, position: Position) -> CaseResult {
    for _ in 0..500 {
        let found = store.load_snapshot(key).await.map_err(|e| e.to_string())?;
        if found.is_some_and(|s| s.position >= position) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Err(format!(
        "no snapshot under {key:?} at {position} within 5 s"
    ))
}

/// A dispatcher writes a snapshot when its policy says so (every 3 folded
/// events here) and on demand; a cold dispatcher starts from the kept
/// state, trusted like a cached one (a planted snapshot claiming 100 items
/// is decided on as 100, and an item added after it makes 101: the
/// catch-up reads only the events after its position); a snapshot of
/// another state version is never loaded, and one whose state cannot be
/// decoded is ignored and counted.
pub(super) async fn snapshots_start_a_cold_dispatcher_from_the_kept_state<S: EventStore + Clone>(
    store: S,
) -> CaseResult {
    let query = box_query("snap")?;
    let shelf_stream = stream("shelf");
    let policy = SnapshotPolicy::every("shelf", 1, 3);
    let key = SnapshotKey::new("shelf", 1, &query);
    let warm = Dispatcher::new(store.clone(), Shelf::default(), KitCodec::default())
        .with_snapshots(policy.clone());
    for _ in 0..4 {
        warm.dispatch_with_query(&shelf_stream, &query, &ShelfCommand::Add("snap".into()))
            .await
            .map_err(|e| format!("adding an item: {e:?}"))?;
    }
    ensure_eq!(
        warm.snapshot_stats().saved,
        1,
        "snapshots written for four items"
    );
    let head = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .map_err(|e| e.to_string())?
        .head
        .ok_or("no head")?;
    ensure!(
        warm.save_snapshot(&query)
            .await
            .map_err(|e| e.to_string())?,
        "a snapshot on demand"
    );
    kept(&store, &key, head).await?;
    let (seen, stats) = decided_on(&store, policy.clone(), &query).await?;
    ensure_eq!(seen, Some(4), "items a cold dispatcher saw");
    ensure_eq!(stats.loaded, 1, "snapshots it loaded");
    // A planted snapshot is trusted: the cold dispatcher decides on it.
    let planted = Snapshot {
        position: head.next().ok_or("no next position")?,
        events: 4,
        state: b"100".to_vec(),
    };
    super::cached::add_items(&store, "other", 1).await?;
    store
        .save_snapshot(&key, planted.clone())
        .await
        .map_err(|e| e.to_string())?;
    kept(&store, &key, planted.position).await?;
    ensure_eq!(
        decided_on(&store, policy.clone(), &query).await?.0,
        Some(100),
        "items decided on from the planted snapshot"
    );
    super::cached::add_items(&store, "snap", 1).await?;
    ensure_eq!(
        decided_on(&store, policy, &query).await?.0,
        Some(101),
        "items after one more beyond the snapshot"
    );
    // Another state version: never loaded; an undecodable state: ignored.
    let (seen, stats) = decided_on(&store, SnapshotPolicy::on_demand("shelf", 2), &query).await?;
    ensure_eq!((seen, stats.loaded), (Some(5), 0), "under state version 2");
    let bad = SnapshotKey::new("shelf", 3, &query);
    store
        .save_snapshot(
            &bad,
            Snapshot {
                state: b"not json".to_vec(),
                ..planted
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    kept(&store, &bad, planted.position).await?;
    let (seen, stats) = decided_on(&store, SnapshotPolicy::on_demand("shelf", 3), &query).await?;
    ensure_eq!(
        (seen, stats.loaded, stats.ignored),
        (Some(5), 0, 1),
        "with an undecodable snapshot"
    );
    ensure_eq!(count(&store).await?, 6, "events stored");
    Ok(())
}
