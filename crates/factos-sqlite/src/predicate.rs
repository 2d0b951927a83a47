//! A query as an SQL predicate over `factos_events e`, with its parameters
//! in order: each item's types as `e.type IN (...)`, each of its tags as a
//! lookup in the tag mirror.
//!
//! The lookups carry the read's lower bound: SQLite builds the list of an
//! `IN (SELECT …)` before it probes it, so without the bound a condition
//! check after position `p` would list every event of the tag (the whole
//! log, on a hot boundary) instead of those after `p` (a range of the
//! `(tag, position)` key).

use factos::Query;
use rusqlite::types::Value;

/// The predicate of the events matching `query` after position `after`
/// (exclusive; 0: from the start), and its parameters. The caller still
/// bounds `e.position` itself. A query on all events is `1`.
pub(crate) fn predicate(query: &Query, after: i64) -> (String, Vec<Value>) {
    if query.is_all() {
        return ("1".to_string(), Vec::new());
    }
    let mut params = Vec::new();
    let items: Vec<String> = query
        .items()
        .iter()
        .map(|item| {
            let mut parts = Vec::new();
            if !item.types().is_empty() {
                let marks = vec!["?"; item.types().len()].join(", ");
                parts.push(format!("e.type IN ({marks})"));
                params.extend(
                    item.types()
                        .iter()
                        .map(|t| Value::Text(t.as_str().to_string())),
                );
            }
            for tag in item.tags() {
                parts.push(
                    "e.position IN (SELECT position FROM factos_event_tags WHERE tag = ? AND position > ?)"
                        .to_string(),
                );
                params.push(Value::Text(tag.as_str().to_string()));
                params.push(Value::Integer(after));
            }
            format!("({})", parts.join(" AND "))
        })
        .collect();
    (format!("({})", items.join(" OR ")), params)
}
