//! A query as an SQL predicate over `factos_events e`, with its parameters
//! in order: each item's types as `e.type IN (...)`, each of its tags as a
//! lookup in the tag mirror.

use factos::Query;

/// The predicate and its text parameters. A query on all events is `1`.
pub(crate) fn predicate(query: &Query) -> (String, Vec<String>) {
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
                params.extend(item.types().iter().map(|t| t.as_str().to_string()));
            }
            for tag in item.tags() {
                parts.push(
                    "e.position IN (SELECT position FROM factos_event_tags WHERE tag = ?)"
                        .to_string(),
                );
                params.push(tag.as_str().to_string());
            }
            format!("({})", parts.join(" AND "))
        })
        .collect();
    (format!("({})", items.join(" OR ")), params)
}
