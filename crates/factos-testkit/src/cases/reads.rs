//! Cases of reads: `from` (inclusive), `backwards`, `limit` and their
//! combinations, the head of an empty store and beyond it, positions that
//! strictly increase, stream reads in revision order, and every stored
//! field coming back as it was appended.

use factos::{
    AppendCondition, EventStore, EventType, Metadata, NewEvent, Position, Query, Revision,
    StreamId, Tags,
};

use super::{LOG, expect_read, forwards, query, raw, seed, stream};
use crate::CaseResult;

pub(super) async fn read_empty_store_has_no_head<S: EventStore>(store: S) -> CaseResult {
    let read = store
        .read(&Query::all(), forwards())
        .await
        .map_err(|e| e.to_string())?;
    ensure!(read.events.is_empty(), "an empty store returned events");
    ensure_eq!(read.head, None, "head of an empty store");
    Ok(())
}

pub(super) async fn read_from_is_inclusive<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    let read = store
        .read(&Query::all(), forwards().from(positions[2]))
        .await
        .map_err(|e| e.to_string())?;
    let got: Vec<Position> = read.events.iter().map(|e| e.position).collect();
    ensure_eq!(got, positions[2..].to_vec(), "read from the third position");
    // From a matching event, under every shape of query (a store that
    // bounds its tag lookups must bound them inclusively too): the fifth
    // event (A with x:1 and y:1) is the first of each read.
    let shapes = [
        query(&[], &["x:1"])?,
        query(&["A"], &["y:1"])?,
        query(&["A"], &[])?,
        query(&[], &["x:1", "y:1"])?,
        query(&["C"], &[])?
            .or(factos::QueryItem::new()
                .with_tag(factos::Tag::new("y:1").map_err(|e| e.to_string())?)),
    ];
    for shape in shapes {
        let read = store
            .read(&shape, forwards().from(positions[4]))
            .await
            .map_err(|e| e.to_string())?;
        ensure_eq!(
            read.events.first().map(|e| e.position),
            Some(positions[4]),
            "read from the fifth position under every query shape"
        );
    }
    Ok(())
}

pub(super) async fn read_backwards<S: EventStore>(store: S) -> CaseResult {
    expect_read(
        &store,
        Query::all(),
        forwards().backwards(),
        &[7, 6, 5, 4, 3, 2, 1, 0],
    )
    .await
}

pub(super) async fn read_backwards_from<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    let read = store
        .read(
            &query(&["A"], &[])?,
            forwards().backwards().from(positions[3]),
        )
        .await
        .map_err(|e| e.to_string())?;
    let got: Vec<Position> = read.events.iter().map(|e| e.position).collect();
    ensure_eq!(
        got,
        vec![positions[2], positions[0]],
        "type A backwards from the fourth event"
    );
    Ok(())
}

pub(super) async fn read_limit<S: EventStore>(store: S) -> CaseResult {
    expect_read(&store, Query::all(), forwards().limit(3), &[0, 1, 2]).await
}

pub(super) async fn read_limit_backwards<S: EventStore>(store: S) -> CaseResult {
    expect_read(
        &store,
        query(&["B"], &[])?,
        forwards().backwards().limit(2),
        &[7, 5],
    )
    .await
}

pub(super) async fn read_query_from_and_limit<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    let read = store
        .read(&query(&["A"], &[])?, forwards().from(positions[1]).limit(1))
        .await
        .map_err(|e| e.to_string())?;
    let got: Vec<Position> = read.events.iter().map(|e| e.position).collect();
    ensure_eq!(got, vec![positions[2]], "first A from the second event");
    let zero = store
        .read(&Query::all(), forwards().limit(0))
        .await
        .map_err(|e| e.to_string())?;
    ensure!(zero.events.is_empty(), "limit 0 returned events");
    Ok(())
}

pub(super) async fn read_from_beyond_head<S: EventStore>(store: S) -> CaseResult {
    let positions = seed(&store, LOG).await?;
    let beyond = Position::new(positions[7].get() + 1000).ok_or("position overflow")?;
    let read = store
        .read(&Query::all(), forwards().from(beyond))
        .await
        .map_err(|e| e.to_string())?;
    ensure!(
        read.events.is_empty(),
        "read beyond the head returned events"
    );
    ensure_eq!(read.head, Some(positions[7]), "head");
    Ok(())
}

pub(super) async fn read_positions_strictly_increase<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    store
        .append(
            &stream("batch"),
            vec![raw("A", &[])?, raw("B", &[])?, raw("C", &[])?],
            AppendCondition::None,
        )
        .await
        .map_err(|e| e.to_string())?;
    let read = store
        .read(&Query::all(), forwards())
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(read.events.len(), 11, "events stored");
    ensure!(
        read.events
            .windows(2)
            .all(|w| w[0].position < w[1].position),
        "positions are not strictly increasing"
    );
    ensure_eq!(read.head, read.events.last().map(|e| e.position), "head");
    Ok(())
}

pub(super) async fn read_stream_in_revision_order<S: EventStore>(store: S) -> CaseResult {
    let s = stream("order");
    for i in 0..5 {
        store
            .append(&s, vec![raw(&format!("T{i}"), &[])?], AppendCondition::None)
            .await
            .map_err(|e| e.to_string())?;
        store
            .append(
                &stream("other"),
                vec![raw("X", &[])?],
                AppendCondition::None,
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    let read = store.read_stream(&s).await.map_err(|e| e.to_string())?;
    let revisions: Vec<u64> = read.events.iter().map(|e| e.revision).collect();
    ensure_eq!(revisions, vec![0, 1, 2, 3, 4], "revisions");
    let types: Vec<&str> = read.events.iter().map(|e| e.event_type.as_str()).collect();
    ensure_eq!(types, vec!["T0", "T1", "T2", "T3", "T4"], "types");
    ensure_eq!(read.revision, Revision::Current(4), "stream revision");
    ensure!(
        read.events.iter().all(|e| e.stream == s),
        "an event of another stream was returned"
    );
    Ok(())
}

pub(super) async fn read_unknown_stream<S: EventStore>(store: S) -> CaseResult {
    seed(&store, LOG).await?;
    let read = store
        .read_stream(&stream("nobody"))
        .await
        .map_err(|e| e.to_string())?;
    ensure!(read.events.is_empty(), "unknown stream returned events");
    ensure_eq!(
        read.revision,
        Revision::NoEvents,
        "revision of an unknown stream"
    );
    Ok(())
}

pub(super) async fn stored_fields_round_trip<S: EventStore>(store: S) -> CaseResult {
    let awkward = "it's \"quoted\"; DROP TABLE factos_events; -- \\ % _ $1 名前 🎟️";
    let s = StreamId::new(format!("stream {awkward}")).map_err(|e| e.to_string())?;
    let tags =
        Tags::parse([format!("tag:{awkward}"), "plain".to_string()]).map_err(|e| e.to_string())?;
    let metadata = Metadata::from_pairs([
        ("who", awkward),
        ("multi", "line one\nline two"),
        ("empty", ""),
    ])
    .map_err(|e| e.to_string())?;
    let data: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    let event = NewEvent::new(
        EventType::new(format!("Type {awkward}")).map_err(|e| e.to_string())?,
        data.clone(),
    )
    .with_tags(tags.clone())
    .with_metadata(metadata.clone())
    .with_version(7);
    let id = event.id;
    store
        .append(&s, vec![event], AppendCondition::None)
        .await
        .map_err(|e| e.to_string())?;
    let q = Query::tagged_with_all([
        factos::Tag::new(format!("tag:{awkward}")).map_err(|e| e.to_string())?
    ]);
    let read = store
        .read(&q, forwards())
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(read.events.len(), 1, "events read back by the awkward tag");
    let stored = &read.events[0];
    ensure_eq!(stored.id, id, "id");
    ensure_eq!(stored.stream, s, "stream");
    ensure_eq!(
        stored.event_type.as_str(),
        format!("Type {awkward}"),
        "type"
    );
    ensure_eq!(stored.version, 7, "version");
    ensure_eq!(stored.tags, tags, "tags");
    ensure_eq!(stored.metadata, metadata, "metadata");
    ensure_eq!(stored.data, data, "payload bytes");
    ensure_eq!(stored.revision, 0, "revision");
    Ok(())
}

/// Every event of an append carries one recorded time, within the append's
/// wall-clock window (a second of slack for the server's clock and its
/// microseconds), the same in the committed events and in every read; a
/// later append is recorded later.
pub(super) async fn recorded_at_is_the_time_of_the_append<S: EventStore>(store: S) -> CaseResult {
    use std::time::{Duration, SystemTime};
    let slack = Duration::from_secs(1);
    let s = stream("recorded");
    let before = SystemTime::now() - slack;
    let committed = store
        .append(
            &s,
            vec![raw("Recorded", &[])?, raw("Recorded", &[])?],
            AppendCondition::None,
        )
        .await
        .map_err(|e| e.to_string())?;
    let after = SystemTime::now() + slack;
    let first = committed.events[0].recorded_at;
    ensure!(
        committed.events.iter().all(|e| e.recorded_at == first),
        "the events of one append carry different times"
    );
    ensure!(
        before <= first && first <= after,
        "recorded at {first:?}, outside the append's window {before:?}..{after:?}"
    );
    let ids: Vec<_> = committed.events.iter().map(|e| e.id).collect();
    let by_id = store.read_by_ids(&ids).await.map_err(|e| e.to_string())?;
    let by_stream = store.read_stream(&s).await.map_err(|e| e.to_string())?;
    let by_query = store
        .read(&Query::all(), forwards())
        .await
        .map_err(|e| e.to_string())?;
    for (how, events) in [
        ("by id", &by_id),
        ("by stream", &by_stream.events),
        ("by query", &by_query.events),
    ] {
        let times: Vec<SystemTime> = events.iter().map(|e| e.recorded_at).collect();
        ensure!(
            times == [first, first],
            "recorded times read {how}: {times:?}, committed {first:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let later = store
        .append(&s, vec![raw("Recorded", &[])?], AppendCondition::None)
        .await
        .map_err(|e| e.to_string())?;
    ensure!(
        later.events[0].recorded_at > first,
        "a later append was recorded at {:?}, not after {first:?}",
        later.events[0].recorded_at
    );
    Ok(())
}
