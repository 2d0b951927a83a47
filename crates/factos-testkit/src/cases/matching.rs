//! Cases of matching: which stored events a query selects, for every item
//! shape (types only, tags only, both, several items, the empty and the
//! unconstrained item), and the head a read reports when nothing matches.

use factos::{EventStore, Query, QueryItem};

use super::{expect_read, forwards, item, query};
use crate::CaseResult;

pub(super) async fn match_all_events<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, Query::all(), forwards(), &[0, 1, 2, 3, 4, 5, 6, 7]).await
}

pub(super) async fn match_type_only<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, query(&["A"], &[])?, forwards(), &[0, 2, 4]).await
}

pub(super) async fn match_tag_only<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, query(&[], &["x:1"])?, forwards(), &[0, 1, 4, 6]).await
}

pub(super) async fn match_type_and_tag<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, query(&["A"], &["x:1"])?, forwards(), &[0, 4]).await
}

pub(super) async fn match_types_are_ored<S: EventStore>(store: S) -> CaseResult {
    expect_read(
        &store,
        query(&["A", "C"], &[])?,
        forwards(),
        &[0, 2, 3, 4, 6],
    )
    .await
}

pub(super) async fn match_tags_are_anded<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, query(&[], &["x:1", "y:1"])?, forwards(), &[1, 4]).await
}

pub(super) async fn match_items_are_ored<S: EventStore>(store: S) -> CaseResult {
    let q = Query::from_items([item(&["A"], &["y:1"])?, item(&["B"], &[])?]);
    expect_read(&store, q, forwards(), &[1, 2, 4, 5, 7]).await
}

/// An event matching several items of a query is read once, in order
/// (events 0 and 4 match both items).
pub(super) async fn match_overlapping_items_read_once<S: EventStore>(store: S) -> CaseResult {
    let q = Query::from_items([item(&["A"], &[])?, item(&[], &["x:1"])?]);
    expect_read(&store, q, forwards(), &[0, 1, 2, 4, 6]).await
}

/// The same, read backwards.
pub(super) async fn match_overlapping_items_read_once_backwards<S: EventStore>(
    store: S,
) -> CaseResult {
    let q = Query::from_items([item(&["A"], &[])?, item(&[], &["x:1"])?]);
    expect_read(&store, q, forwards().backwards(), &[6, 4, 2, 1, 0]).await
}

pub(super) async fn match_empty_item_list_is_all<S: EventStore>(store: S) -> CaseResult {
    ensure!(
        Query::from_items([]).is_all(),
        "an empty item list must mean all events"
    );
    expect_read(
        &store,
        Query::from_items([]),
        forwards(),
        &[0, 1, 2, 3, 4, 5, 6, 7],
    )
    .await
}

pub(super) async fn match_unconstrained_item_is_all<S: EventStore>(store: S) -> CaseResult {
    let q = Query::from_items([item(&["A"], &["x:1"])?, QueryItem::new()]);
    expect_read(&store, q, forwards(), &[0, 1, 2, 3, 4, 5, 6, 7]).await
}

pub(super) async fn match_tags_exactly<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, query(&[], &["x:10"])?, forwards(), &[5]).await?;
    let none = store
        .read(&query(&[], &["x:"])?, forwards())
        .await
        .map_err(|e| e.to_string())?;
    ensure!(none.events.is_empty(), "a tag prefix must not match");
    Ok(())
}

pub(super) async fn match_nothing_still_reports_head<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, query(&["D"], &[])?, forwards(), &[]).await
}
