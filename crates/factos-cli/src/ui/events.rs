//! The events page: a filter (type, tag, stream, position range), pages
//! both ways, and one event's detail with its payload pretty-printed when it
//! is JSON.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use factos::{EventType, Position, StoredEvent, StreamId, Tag};
use factos_postgres::{EventFilter, MAX_BROWSE_PAGE, PageStart};

use super::html::{self, escape, link};
use super::{Ui, refuse, store_failed};

/// Rows on a page unless `limit` says otherwise.
const DEFAULT_PAGE: usize = 50;
/// Bytes of a payload shown (the rest is cut, and says so).
const MAX_PAYLOAD_SHOWN: usize = 64 * 1024;

/// A request's page: its filter, where it starts, its size.
struct Wanted {
    filter: EventFilter,
    start: PageStart,
    limit: usize,
}

fn position(name: &str, value: &str) -> Result<Position, String> {
    let number: u64 = value
        .parse()
        .map_err(|_| format!("{name}: {value:?} is not a position (a whole number from 1)"))?;
    if number == 0 || number > i64::MAX as u64 {
        return Err(format!(
            "{name}: position {number} is out of range (1 to {})",
            i64::MAX
        ));
    }
    Position::new(number).ok_or_else(|| format!("{name}: position {number} is out of range"))
}

fn wanted(params: &HashMap<String, String>) -> Result<Wanted, String> {
    let given = |name: &str| params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut filter = EventFilter::default();
    if let Some(t) = given("type") {
        filter.event_type = Some(EventType::new(t).map_err(|e| format!("type: {e}"))?);
    }
    if let Some(t) = given("tag") {
        filter.tag = Some(Tag::new(t).map_err(|e| format!("tag: {e}"))?);
    }
    if let Some(s) = given("stream") {
        filter.stream = Some(StreamId::new(s).map_err(|e| format!("stream: {e}"))?);
    }
    filter.from = given("from").map(|v| position("from", v)).transpose()?;
    filter.to = given("to").map(|v| position("to", v)).transpose()?;
    let start = match (given("before"), given("after")) {
        (Some(_), Some(_)) => return Err("give before or after, not both".to_string()),
        (Some(b), None) => PageStart::Before(position("before", b)?),
        (None, Some(a)) => PageStart::After(position("after", a)?),
        (None, None) => PageStart::Newest,
    };
    let limit = match given("limit") {
        None => DEFAULT_PAGE,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_BROWSE_PAGE).contains(l))
            .ok_or_else(|| {
                format!("limit: a page holds 1 to {MAX_BROWSE_PAGE} events, not {l:?}")
            })?,
    };
    Ok(Wanted {
        filter,
        start,
        limit,
    })
}

/// The filter's query pairs, for links that keep it.
fn filter_pairs(filter: &EventFilter, limit: usize) -> Vec<(&'static str, String)> {
    vec![
        (
            "type",
            filter
                .event_type
                .as_ref()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
        ),
        (
            "tag",
            filter
                .tag
                .as_ref()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
        ),
        (
            "stream",
            filter
                .stream
                .as_ref()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
        ),
        (
            "from",
            filter.from.map(|p| p.get().to_string()).unwrap_or_default(),
        ),
        (
            "to",
            filter.to.map(|p| p.get().to_string()).unwrap_or_default(),
        ),
        (
            "limit",
            if limit == DEFAULT_PAGE {
                String::new()
            } else {
                limit.to_string()
            },
        ),
    ]
}

fn filter_form(filter: &EventFilter, limit: usize) -> String {
    let value = |v: Option<String>| escape(&v.unwrap_or_default());
    format!(
        "<form id=\"filter\" method=\"get\" action=\"/events\">\
         type <input name=\"type\" value=\"{}\"> tag <input name=\"tag\" value=\"{}\"> \
         stream <input name=\"stream\" value=\"{}\"> from <input name=\"from\" size=\"8\" value=\"{}\"> \
         to <input name=\"to\" size=\"8\" value=\"{}\"> rows <input name=\"limit\" size=\"4\" value=\"{limit}\"> \
         <button type=\"submit\">Filter</button></form>",
        value(filter.event_type.as_ref().map(|t| t.as_str().to_string())),
        value(filter.tag.as_ref().map(|t| t.as_str().to_string())),
        value(filter.stream.as_ref().map(|s| s.as_str().to_string())),
        value(filter.from.map(|p| p.get().to_string())),
        value(filter.to.map(|p| p.get().to_string())),
    )
}

fn row(event: &StoredEvent) -> Vec<String> {
    let tags: Vec<String> = event
        .tags
        .iter()
        .map(|t| {
            format!(
                "<a href=\"{}\">{}</a>",
                link("/events", &[("tag", t.as_str().to_string())]),
                escape(t.as_str())
            )
        })
        .collect();
    vec![
        format!("<a href=\"/events/{p}\">{p}</a>", p = event.position.get()),
        escape(&html::time(event.recorded_at)),
        format!(
            "<a href=\"{}\">{}</a>",
            link("/events", &[("stream", event.stream.as_str().to_string())]),
            escape(event.stream.as_str())
        ),
        event.revision.to_string(),
        format!(
            "<a href=\"{}\">{}</a>",
            link(
                "/events",
                &[("type", event.event_type.as_str().to_string())]
            ),
            escape(event.event_type.as_str())
        ),
        tags.join(" "),
        format!("{} B", event.data.len()),
    ]
}

/// `GET /events`.
pub(crate) async fn list(
    State(ui): State<Arc<Ui>>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let params = match super::query_params(params) {
        Ok(p) => p,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message, &ui),
    };
    let wanted = match wanted(&params) {
        Ok(w) => w,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message, &ui),
    };
    let events = match ui
        .store
        .browse_events(&wanted.filter, wanted.start, wanted.limit)
        .await
    {
        Ok(events) => events,
        Err(e) => return store_failed(&e, &ui),
    };
    let mut body = filter_form(&wanted.filter, wanted.limit);
    let rows: Vec<Vec<String>> = events.iter().map(row).collect();
    if rows.is_empty() {
        body.push_str("<p id=\"empty\">No events match.</p>");
    } else {
        body.push_str(&html::table(
            "events",
            &[
                "Position", "Recorded", "Stream", "Revision", "Type", "Tags", "Data",
            ],
            &rows,
        ));
    }
    let pairs = filter_pairs(&wanted.filter, wanted.limit);
    let mut pager = String::from("<p class=\"pager\">");
    if let (Some(newest), Some(oldest)) = (events.first(), events.last()) {
        let mut newer = pairs.clone();
        newer.push(("after", newest.position.get().to_string()));
        let mut older = pairs.clone();
        older.push(("before", oldest.position.get().to_string()));
        let _ = write!(
            pager,
            "<a id=\"newer\" href=\"{}\">← newer</a><a id=\"older\" href=\"{}\">older →</a>",
            link("/events", &newer),
            link("/events", &older)
        );
    }
    let _ = write!(
        pager,
        "<a id=\"newest\" href=\"{}\">newest</a></p>",
        link("/events", &pairs)
    );
    body.push_str(&pager);
    Html(html::page("Events", &body, ui.mode(), None)).into_response()
}

/// The payload as it is best read: pretty JSON, text, or hex.
pub(crate) fn payload(data: &[u8]) -> String {
    let shown = &data[..data.len().min(MAX_PAYLOAD_SHOWN)];
    let cut = if shown.len() < data.len() {
        format!(
            "<p class=\"muted\">first {} of {} bytes</p>",
            shown.len(),
            data.len()
        )
    } else {
        String::new()
    };
    if shown.len() == data.len()
        && let Ok(json) = serde_json::from_slice::<serde_json::Value>(data)
        && let Ok(pretty) = serde_json::to_string_pretty(&json)
    {
        return format!(
            "<p class=\"muted\" id=\"payload-kind\">JSON</p><pre id=\"payload\">{}</pre>",
            escape(&pretty)
        );
    }
    if let Ok(text) = std::str::from_utf8(shown) {
        return format!(
            "<p class=\"muted\" id=\"payload-kind\">text</p>{cut}<pre id=\"payload\">{}</pre>",
            escape(text)
        );
    }
    let mut hex = String::with_capacity(shown.len() * 3);
    for (i, byte) in shown.iter().enumerate() {
        let _ = write!(hex, "{byte:02x}{}", if i % 16 == 15 { '\n' } else { ' ' });
    }
    format!(
        "<p class=\"muted\" id=\"payload-kind\">bytes (not UTF-8), hex</p>{cut}<pre id=\"payload\">{hex}</pre>"
    )
}

/// `GET /events/{position}`.
pub(crate) async fn detail(State(ui): State<Arc<Ui>>, Path(raw): Path<String>) -> Response {
    let at = match position("position", &raw) {
        Ok(p) => p,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message, &ui),
    };
    let event = match ui.store.event_at(at).await {
        Ok(Some(event)) => event,
        Ok(None) => {
            return refuse(
                StatusCode::NOT_FOUND,
                &format!("No event at position {}.", at.get()),
                &ui,
            );
        }
        Err(e) => return store_failed(&e, &ui),
    };
    let metadata: Vec<Vec<String>> = event
        .metadata
        .iter()
        .map(|(k, v)| vec![escape(k), escape(v)])
        .collect();
    let tags: Vec<String> = event.tags.iter().map(|t| escape(t.as_str())).collect();
    let fields = vec![
        vec!["Position".to_string(), event.position.get().to_string()],
        vec!["Id".to_string(), event.id.to_string()],
        vec!["Stream".to_string(), escape(event.stream.as_str())],
        vec!["Revision".to_string(), event.revision.to_string()],
        vec!["Type".to_string(), escape(event.event_type.as_str())],
        vec!["Version".to_string(), event.version.to_string()],
        vec!["Tags".to_string(), tags.join(", ")],
        vec![
            "Recorded".to_string(),
            escape(&html::time(event.recorded_at)),
        ],
        vec!["Size".to_string(), format!("{} B", event.data.len())],
    ];
    let mut body = html::table("fields", &["Field", "Value"], &fields);
    if !metadata.is_empty() {
        body.push_str("<h2>Metadata</h2>");
        body.push_str(&html::table("metadata", &["Key", "Value"], &metadata));
    }
    body.push_str("<h2>Payload</h2>");
    body.push_str(&payload(&event.data));
    Html(html::page(
        &format!("Event {}", at.get()),
        &body,
        ui.mode(),
        None,
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        for (pairs, says) in [
            (vec![("from", "0")], "out of range"),
            (vec![("to", "9223372036854775808")], "out of range"),
            (vec![("before", "x")], "not a position"),
            (vec![("limit", "100000")], "1 to 500"),
            (vec![("limit", "0")], "1 to 500"),
            (vec![("before", "3"), ("after", "1")], "not both"),
            (vec![("tag", "a\nb")], "tag"),
        ] {
            let error = wanted(&params(&pairs)).err().unwrap_or_default();
            assert!(error.contains(says), "{pairs:?}: {error}");
        }
        let ok = wanted(&params(&[
            ("type", "Sold"),
            ("after", "5"),
            ("limit", "10"),
        ]))
        .unwrap();
        assert_eq!(
            (ok.start, ok.limit),
            (PageStart::After(Position::new(5).unwrap()), 10)
        );
    }

    #[test]
    fn payloads_show_as_json_text_or_hex() {
        assert!(payload(br#"{"a":1}"#).contains("JSON"));
        assert!(payload(b"plain <b>").contains("&lt;b&gt;"));
        let bytes = payload(&[0xff, 0x00, 0x41]);
        assert!(
            bytes.contains("not UTF-8") && bytes.contains("ff 00 41"),
            "{bytes}"
        );
    }
}
