//! Cases of the behaviours the original library's tests pin down: the
//! stream dispatch of a user registration, an undecodable event of another
//! type, 25 streams, and the tickets race.

use std::sync::Arc;

use factos::{
    AppendCondition, DispatchError, EventStore, Revision, Tags, dispatch, dispatch_with_query,
    react_all, reactor_fn,
};

use super::{count, forwards, query, raw, stream};
use crate::CaseResult;
use crate::model::{Bounded, KitCodec, KitEvent};

pub(super) async fn original_register_user_stream_dispatch<S: EventStore>(store: S) -> CaseResult {
    let register = vec![KitEvent::new("UserRegistered", &["username:renata"])];
    let result = dispatch(
        &store,
        &stream("user-renata"),
        &Bounded { limit: 1 },
        &KitCodec::default(),
        &register,
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    ensure_eq!(result.events.len(), 1, "recorded events");
    let recorded = &result.events[0];
    ensure_eq!(recorded.revision, 0, "revision");
    ensure_eq!(recorded.event_type.as_str(), "UserRegistered", "type");
    ensure_eq!(recorded.version, 1, "version");
    ensure_eq!(
        recorded.tags,
        Tags::parse(["username:renata"]).map_err(|e| e.to_string())?,
        "tags"
    );
    ensure_eq!(
        result.append.current_revision,
        Revision::Current(0),
        "current revision"
    );
    let effects = react_all(
        &reactor_fn(|r: &factos::Recorded<KitEvent>| vec![r.event.clone()]),
        &result.events,
    );
    ensure_eq!(
        effects,
        vec![recorded.event.clone()],
        "reacting yields the event"
    );
    Ok(())
}

pub(super) async fn original_undecodable_event_of_another_type<S: EventStore>(
    store: S,
) -> CaseResult {
    store
        .append(
            &stream("foreign"),
            vec![raw(KitCodec::UNDECODABLE, &["other:1"])?],
            AppendCondition::None,
        )
        .await
        .map_err(|e| e.to_string())?;
    let result = dispatch_with_query(
        &store,
        &stream("s"),
        &query(&["A"], &["x:1"])?,
        &Bounded { limit: 10 },
        &KitCodec::strict(),
        &vec![KitEvent::new("A", &["x:1"])],
    )
    .await
    .map_err(|e| format!("an undecodable row outside the query broke the dispatch: {e:?}"))?;
    ensure_eq!(result.events.len(), 1, "recorded events");
    Ok(())
}

pub(super) async fn original_twenty_five_streams<S: EventStore>(store: S) -> CaseResult {
    let q = query(&["Joined"], &["club:1"])?;
    for i in 0..25usize {
        let result = dispatch_with_query(
            &store,
            &stream(&format!("member-{i}")),
            &q,
            &Bounded { limit: 100 },
            &KitCodec::default(),
            &vec![KitEvent::new("Joined", &["club:1"])],
        )
        .await
        .map_err(|e| format!("dispatch {i}: {e:?}"))?;
        ensure_eq!(
            result.events[0].revision,
            0,
            format!("revision of stream {i}")
        );
        ensure_eq!(
            result.events[0].event.body,
            i.to_string(),
            format!("events seen by dispatch {i}")
        );
    }
    ensure_eq!(count(&store).await?, 25, "events");
    Ok(())
}

/// Runs `attempts` concurrent dispatches (at most `parallel` at a time) on one
/// boundary with a capacity; returns (accepted, refused by the domain).
async fn ticket_race<S: EventStore + Clone + 'static>(
    store: &S,
    concert: &str,
    capacity: usize,
    attempts: usize,
    parallel: usize,
) -> Result<(usize, usize), String> {
    let q = query(&["TicketSold"], &[&format!("event:{concert}")])?;
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(attempts);
    for buyer in 0..attempts {
        let (store, q, permits) = (store.clone(), q.clone(), permits.clone());
        let tag = format!("event:{concert}");
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
            let command = vec![KitEvent::new(
                "TicketSold",
                &[&tag, &format!("buyer:{buyer}")],
            )];
            let buyer_stream = stream(&format!("buyer-{buyer}"));
            // A condition failure means the context moved: decide again, as an application would.
            for _ in 0..1000 {
                match dispatch_with_query(
                    &store,
                    &buyer_stream,
                    &q,
                    &Bounded { limit: capacity },
                    &KitCodec::default(),
                    &command,
                )
                .await
                {
                    Ok(_) => return Ok(true),
                    Err(DispatchError::Domain(_)) => return Ok(false),
                    Err(e) if e.is_retryable() => {}
                    Err(e) => return Err(format!("buyer {buyer}: {e:?}")),
                }
            }
            Err(format!("buyer {buyer}: too many retries"))
        }));
    }
    let (mut accepted, mut refused) = (0, 0);
    for task in tasks {
        match task.await.map_err(|e| e.to_string())? {
            Ok(true) => accepted += 1,
            Ok(false) => refused += 1,
            Err(e) => return Err(e),
        }
    }
    Ok((accepted, refused))
}

pub(super) async fn original_tickets<S: EventStore + Clone + 'static>(store: S) -> CaseResult {
    let (accepted, refused) = ticket_race(&store, "e1", 100, 300, 128).await?;
    ensure_eq!(accepted, 100, "tickets accepted");
    ensure_eq!(refused, 200, "sold out");
    let sold = store
        .read(&query(&["TicketSold"], &["event:e1"])?, forwards())
        .await
        .map_err(|e| e.to_string())?;
    ensure_eq!(sold.events.len(), 100, "events stored");
    Ok(())
}
