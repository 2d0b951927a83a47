//! The subscriptions page: each subscriber's checkpoint, how far behind the
//! head it is, whether an instance runs it, its parked events; one
//! subscriber's parked events with their errors, and (writes allowed) a
//! reset.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::html::{self, escape, link};
use super::{Ui, guard, refuse, store_failed};

/// `GET /subscriptions`.
pub(crate) async fn list(State(ui): State<Arc<Ui>>) -> Response {
    let (subscribers, status) = match tokio::try_join!(ui.store.subscribers(), ui.store.status()) {
        Ok(both) => both,
        Err(e) => return store_failed(&e, &ui),
    };
    let head = status.head.map_or(0, factos::Position::get);
    let mut rows = Vec::with_capacity(subscribers.len());
    for s in &subscribers {
        let parked = match ui.store.parked_events(&s.name).await {
            Ok(parked) => parked.len(),
            Err(e) => return store_failed(&e, &ui),
        };
        let checkpoint = s.checkpoint.map_or(0, factos::Position::get);
        rows.push(vec![
            format!(
                "<a href=\"{}\">{}</a>",
                link("/subscription", &[("name", s.name.clone())]),
                escape(&s.name)
            ),
            checkpoint.to_string(),
            head.saturating_sub(checkpoint).to_string(),
            if s.active { "running" } else { "none" }.to_string(),
            parked.to_string(),
        ]);
    }
    let body = if rows.is_empty() {
        "<p id=\"empty\">No subscriber has a checkpoint yet.</p>".to_string()
    } else {
        html::table(
            "subscriptions",
            &[
                "Subscriber",
                "Checkpoint",
                "Behind the head",
                "Instance",
                "Parked events",
            ],
            &rows,
        )
    };
    Html(html::page("Subscriptions", &body, ui.mode(), None)).into_response()
}

/// `GET /subscription?name=…`.
pub(crate) async fn detail(
    State(ui): State<Arc<Ui>>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let params = match super::query_params(params) {
        Ok(p) => p,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message, &ui),
    };
    let Some(name) = params.get("name").filter(|n| !n.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "name: which subscriber?", &ui);
    };
    let subscribers = match ui.store.subscribers().await {
        Ok(s) => s,
        Err(e) => return store_failed(&e, &ui),
    };
    let Some(subscriber) = subscribers.iter().find(|s| &s.name == name) else {
        return refuse(
            StatusCode::NOT_FOUND,
            &format!("No subscriber {name:?}."),
            &ui,
        );
    };
    let parked = match ui.store.parked_events(name).await {
        Ok(p) => p,
        Err(e) => return store_failed(&e, &ui),
    };
    let rows: Vec<Vec<String>> = parked
        .iter()
        .map(|p| {
            vec![
                format!("<a href=\"/events/{0}\">{0}</a>", p.position.get()),
                p.attempts.to_string(),
                escape(&html::time(p.parked_at)),
                if p.requeued { "requeued" } else { "parked" }.to_string(),
                escape(&p.error),
            ]
        })
        .collect();
    let mut body = format!(
        "<p>Checkpoint <strong id=\"checkpoint\">{}</strong>; instance: {}.</p>",
        subscriber.checkpoint.map_or(0, factos::Position::get),
        if subscriber.active { "running" } else { "none" }
    );
    body.push_str("<h2>Parked events</h2>");
    if rows.is_empty() {
        body.push_str("<p id=\"no-parked\">None.</p>");
    } else {
        body.push_str(&html::table(
            "parked",
            &["Position", "Attempts", "Parked", "State", "Error"],
            &rows,
        ));
    }
    if ui.allow_writes {
        body.push_str("<h2>Reset</h2><p>Moves the checkpoint to 0 (replays every event) and forgets the recorded query; refused while an instance runs it.</p>");
        body.push_str(&html::action(
            "/subscription/reset",
            &ui.csrf,
            &[("name", name.clone())],
            "Reset to 0",
        ));
    }
    Html(html::page(
        &format!("Subscriber {name}"),
        &body,
        ui.mode(),
        None,
    ))
    .into_response()
}

/// `POST /subscription/reset` (writes allowed, same origin, CSRF token).
pub(crate) async fn reset(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let form = match guard::write_form(&ui, &headers, form) {
        Ok(f) => f,
        Err(refused) => return *refused,
    };
    let Some(name) = form.get("name").filter(|n| !n.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "name: which subscriber?", &ui);
    };
    match ui.store.reset_subscriber(name, None).await {
        Ok(true) => {
            Redirect::to(&format!("/subscription?name={}", html::query_value(name))).into_response()
        }
        Ok(false) => refuse(
            StatusCode::NOT_FOUND,
            &format!("No subscriber {name:?}."),
            &ui,
        ),
        Err(e) => refuse(StatusCode::CONFLICT, &format!("Not reset: {e}"), &ui),
    }
}
