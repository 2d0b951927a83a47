//! The outbox page: messages waiting, leased and parked per topic; a
//! topic's parked messages with their errors, and (writes allowed) requeue.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use factos::Topic;
use factos_postgres::{MAX_BROWSE_PAGE, Outbox};

use super::html::{self, escape, link};
use super::{Ui, guard, refuse, store_failed};

/// `GET /outbox`.
pub(crate) async fn topics(State(ui): State<Arc<Ui>>) -> Response {
    let topics = match ui.store.outbox_topics().await {
        Ok(t) => t,
        Err(e) => return store_failed(&e, &ui),
    };
    let rows: Vec<Vec<String>> = topics
        .iter()
        .map(|t| {
            vec![
                format!(
                    "<a href=\"{}\">{}</a>",
                    link("/outbox/topic", &[("topic", t.topic.clone())]),
                    escape(&t.topic)
                ),
                t.waiting.to_string(),
                t.leased.to_string(),
                t.parked.to_string(),
            ]
        })
        .collect();
    let body = if rows.is_empty() {
        "<p id=\"empty\">The outbox is empty.</p>".to_string()
    } else {
        html::table("topics", &["Topic", "Waiting", "Leased", "Parked"], &rows)
    };
    Html(html::page("Outbox", &body, ui.mode(), None)).into_response()
}

fn topic(given: Option<&String>) -> Result<Topic, String> {
    let given = given
        .filter(|t| !t.is_empty())
        .ok_or("topic: which topic?")?;
    Topic::new(given.as_str()).map_err(|e| format!("topic: {e}"))
}

/// `GET /outbox/topic?topic=…`.
pub(crate) async fn parked(
    State(ui): State<Arc<Ui>>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let params = match super::query_params(params) {
        Ok(p) => p,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message, &ui),
    };
    let topic = match topic(params.get("topic")) {
        Ok(t) => t,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message, &ui),
    };
    let messages = match ui.store.parked_messages(&topic, MAX_BROWSE_PAGE).await {
        Ok(m) => m,
        Err(e) => return store_failed(&e, &ui),
    };
    let rows: Vec<Vec<String>> = messages
        .iter()
        .map(|m| {
            let mut row = vec![
                m.id.to_string(),
                format!("<a href=\"/events/{0}\">{0}</a>", m.event_position.get()),
                m.attempts.to_string(),
                escape(&html::time(m.parked_at)),
                escape(m.error.as_deref().unwrap_or("")),
                format!("{} B", m.payload.len()),
            ];
            if ui.allow_writes {
                row.push(html::action(
                    "/outbox/requeue",
                    &ui.csrf,
                    &[
                        ("topic", topic.as_str().to_string()),
                        ("id", m.id.to_string()),
                    ],
                    "Requeue",
                ));
            }
            row
        })
        .collect();
    let mut headers = vec!["Id", "Event", "Attempts", "Parked", "Error", "Payload"];
    if ui.allow_writes {
        headers.push("");
    }
    let body = if rows.is_empty() {
        "<p id=\"empty\">No parked messages.</p>".to_string()
    } else {
        html::table("parked", &headers, &rows)
    };
    Html(html::page(
        &format!("Parked messages of {}", topic.as_str()),
        &body,
        ui.mode(),
        None,
    ))
    .into_response()
}

/// `POST /outbox/requeue` (writes allowed, same origin, CSRF token).
pub(crate) async fn requeue(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let form = match guard::write_form(&ui, &headers, form) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let topic = match topic(form.get("topic")) {
        Ok(t) => t,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message, &ui),
    };
    let Some(id) = form.get("id").and_then(|id| id.parse::<i64>().ok()) else {
        return refuse(StatusCode::BAD_REQUEST, "id: not a message id", &ui);
    };
    match Outbox::new(&ui.store, topic.clone()).requeue(id).await {
        Ok(true) => Redirect::to(&format!(
            "/outbox/topic?topic={}",
            html::query_value(topic.as_str())
        ))
        .into_response(),
        Ok(false) => refuse(
            StatusCode::NOT_FOUND,
            &format!("No parked message {id} in {}.", topic.as_str()),
            &ui,
        ),
        Err(e) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("Not requeued: {e}"),
            &ui,
        ),
    }
}
