//! The store page: schema version, head, counts, table sizes, connections.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};

use super::html::{self, escape};
use super::{Ui, store_failed};
use crate::commands::human_bytes;

/// `GET /store`.
pub(crate) async fn show(State(ui): State<Arc<Ui>>) -> Response {
    let (status, connections) = match tokio::try_join!(ui.store.status(), ui.store.connections()) {
        Ok(both) => both,
        Err(e) => return store_failed(&e, &ui),
    };
    let rows = vec![
        vec![
            "Schema".to_string(),
            escape(ui.store.options().schema.as_str()),
        ],
        vec![
            "Schema version".to_string(),
            status.schema_version.to_string(),
        ],
        vec![
            "Head".to_string(),
            status
                .head
                .map_or("none".to_string(), |h| h.get().to_string()),
        ],
        vec!["Events".to_string(), status.events.to_string()],
        vec!["Streams".to_string(), status.streams.to_string()],
        vec![
            "Distinct tags".to_string(),
            status.distinct_tags.to_string(),
        ],
        vec![
            "Event table".to_string(),
            human_bytes(status.event_table_bytes),
        ],
        vec![
            "Tag mirror".to_string(),
            human_bytes(status.tag_mirror_bytes),
        ],
        vec![
            "Connections to the database".to_string(),
            connections.to_string(),
        ],
    ];
    let body = html::table("store", &["", ""], &rows);
    Html(html::page("Store", &body, ui.mode(), None)).into_response()
}
