//! Cases of [`Dispatcher`]: its cached contexts must decide exactly as a
//! fresh read of the log would, after every kind of outcome (a decision
//! that appends nothing, a refusal, a panic, another writer's event).

use factos::{AppendCondition, DispatchError, Dispatcher, EventStore, Query, StoreErrorKind};

use super::{count, raw, stream};
use crate::CaseResult;
use crate::model::{KitCodec, Shelf, ShelfCommand};

/// The query of one box's items on a [`Shelf`].
pub(super) fn box_query(name: &str) -> Result<Query, String> {
    super::query(&["Item"], &[&format!("box:{name}")])
}

pub(super) async fn add_items<S: EventStore>(store: &S, name: &str, items: usize) -> CaseResult {
    for _ in 0..items {
        store
            .append(
                &stream("shelf"),
                vec![raw("Item", &[&format!("box:{name}")])?],
                AppendCondition::None,
            )
            .await
            .map_err(|e| format!("adding an item: {e}"))?;
    }
    Ok(())
}

/// What `dispatcher` says the box holds: [`ShelfCommand::Count`] succeeds
/// without appending (so the dispatcher keeps its cached context) and the
/// shelf notes the count it decided on.
async fn counted<S: EventStore>(
    dispatcher: &Dispatcher<S, Shelf, KitCodec>,
    shelf: &Shelf,
    name: &str,
) -> Result<usize, String> {
    let query = box_query(name)?;
    let _ = shelf.decided_on();
    dispatcher
        .dispatch_with_query(&stream("shelf"), &query, &ShelfCommand::Count)
        .await
        .map_err(|e| format!("counting: {e:?}"))?;
    shelf
        .decided_on()
        .ok_or_else(|| "counting: the shelf decided nothing".to_string())
}

/// Seven items; a decision that appends nothing, then "close when 12": the
/// cached state must still count seven, so the close is refused.
pub(super) async fn cache_after_a_decision_that_appends_nothing<S: EventStore + Clone>(
    store: S,
) -> CaseResult {
    add_items(&store, "b1", 7).await?;
    let shelf = Shelf::default();
    let dispatcher = Dispatcher::new(store.clone(), shelf.clone(), KitCodec::default());
    let query = box_query("b1")?;
    let nothing = dispatcher
        .dispatch_with_query(&stream("shelf"), &query, &ShelfCommand::Nothing)
        .await
        .map_err(|e| format!("the empty decision: {e:?}"))?;
    ensure_eq!(nothing.events.len(), 0, "events of the empty decision");
    ensure_eq!(
        counted(&dispatcher, &shelf, "b1").await?,
        7,
        "items after an empty decision"
    );
    let close = dispatcher
        .dispatch_with_query(
            &stream("shelf"),
            &query,
            &ShelfCommand::CloseAt("b1".into(), 12),
        )
        .await;
    ensure!(
        matches!(close, Err(DispatchError::Domain(_))),
        "closing a box of 7 at 12 must be refused, got {close:?}"
    );
    ensure_eq!(count(&store).await?, 7, "events after the refused close");
    // Twice more empty, then another writer's item: the cache catches up on it once.
    for _ in 0..2 {
        dispatcher
            .dispatch_with_query(&stream("shelf"), &query, &ShelfCommand::Nothing)
            .await
            .map_err(|e| format!("another empty decision: {e:?}"))?;
    }
    add_items(&store, "b1", 1).await?;
    ensure_eq!(
        counted(&dispatcher, &shelf, "b1").await?,
        8,
        "items after another writer's item"
    );
    dispatcher
        .dispatch_with_query(&stream("shelf"), &query, &ShelfCommand::Add("b1".into()))
        .await
        .map_err(|e| format!("adding through the dispatcher: {e:?}"))?;
    ensure_eq!(
        counted(&dispatcher, &shelf, "b1").await?,
        9,
        "items after the dispatcher's own item"
    );
    Ok(())
}

/// An empty context, an empty decision, then items: the cache at "nothing
/// folded" must not skip what arrives later.
pub(super) async fn cache_after_an_empty_decision_on_an_empty_context<S: EventStore + Clone>(
    store: S,
) -> CaseResult {
    let shelf = Shelf::default();
    let dispatcher = Dispatcher::new(store.clone(), shelf.clone(), KitCodec::default());
    let query = box_query("b2")?;
    dispatcher
        .dispatch_with_query(&stream("shelf"), &query, &ShelfCommand::Nothing)
        .await
        .map_err(|e| format!("the empty decision: {e:?}"))?;
    add_items(&store, "b2", 3).await?;
    ensure_eq!(
        counted(&dispatcher, &shelf, "b2").await?,
        3,
        "items after the empty decision"
    );
    ensure_eq!(
        counted(&dispatcher, &shelf, "b2").await?,
        3,
        "items counted again from the cached context"
    );
    Ok(())
}

/// A refusal and a panic leave no wrong state behind.
pub(super) async fn cache_after_refusals_and_panics<S: EventStore + Clone>(store: S) -> CaseResult {
    add_items(&store, "b3", 4).await?;
    let shelf = Shelf::default();
    let dispatcher = Dispatcher::new(store.clone(), shelf.clone(), KitCodec::default());
    let query = box_query("b3")?;
    let refused = dispatcher
        .dispatch_with_query(
            &stream("shelf"),
            &query,
            &ShelfCommand::CloseAt("b3".into(), 5),
        )
        .await;
    ensure!(
        matches!(refused, Err(DispatchError::Domain(_))),
        "close at 5 with 4: {refused:?}"
    );
    let panicked = dispatcher
        .dispatch_with_query(&stream("shelf"), &query, &ShelfCommand::Panic)
        .await;
    ensure!(
        matches!(panicked, Err(DispatchError::Panicked { .. })),
        "a panic: {panicked:?}"
    );
    ensure_eq!(
        counted(&dispatcher, &shelf, "b3").await?,
        4,
        "items after a refusal and a panic"
    );
    dispatcher
        .dispatch_with_query(
            &stream("shelf"),
            &query,
            &ShelfCommand::CloseAt("b3".into(), 4),
        )
        .await
        .map_err(|e| format!("close at 4 with 4: {e:?}"))?;
    ensure_eq!(count(&store).await?, 5, "events after the close");
    Ok(())
}

/// The store's context limit holds through a [`Dispatcher`] exactly as
/// through [`dispatch_with_query`](factos::dispatch_with_query): `store`
/// must refuse contexts of more than `limit` events. Items are added one
/// dispatch at a time, so each cached dispatch feeds only its own event.
///
/// # Errors
///
/// Says where the two paths differ.
pub async fn context_limit_through_the_cache<S: EventStore + Clone>(
    store: S,
    limit: usize,
) -> CaseResult {
    let shelf = Shelf::default();
    let dispatcher = Dispatcher::new(store.clone(), shelf.clone(), KitCodec::default());
    let (cached, plain) = (box_query("limit-cached")?, box_query("limit-plain")?);
    let mut accepted = (0, 0);
    for _ in 0..limit * 3 {
        match dispatcher
            .dispatch_with_query(
                &stream("shelf"),
                &cached,
                &ShelfCommand::Add("limit-cached".into()),
            )
            .await
        {
            Ok(_) => accepted.0 += 1,
            Err(DispatchError::Store(e)) if e.kind() == StoreErrorKind::Rejected => {}
            Err(e) => return Err(format!("cached: {e:?}")),
        }
        match factos::dispatch_with_query(
            &store,
            &stream("shelf"),
            &plain,
            &Shelf::default(),
            &KitCodec::default(),
            &ShelfCommand::Add("limit-plain".into()),
        )
        .await
        {
            Ok(_) => accepted.1 += 1,
            Err(DispatchError::Store(e)) if e.kind() == StoreErrorKind::Rejected => {}
            Err(e) => return Err(format!("plain: {e:?}")),
        }
    }
    // A context of `limit` events still decides; one of `limit + 1` does not.
    ensure_eq!(
        accepted,
        (limit + 1, limit + 1),
        "dispatches accepted (cached, plain)"
    );
    Ok(())
}
