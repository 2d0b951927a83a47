//! `factos ui`: a small admin web page for a PostgreSQL store, rendered on
//! the server (no scripts, no build step): events, subscriptions, the
//! outbox, the store, and a chart of the append rate and subscriber lag.
//! Read-only unless started with `--allow-writes`; see [`guard`] for the
//! token, the host check and the CSRF protection. No page shows the
//! connection string.

mod chart;
mod events;
mod guard;
mod html;
mod outbox;
mod store_page;
mod subscriptions;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use factos_postgres::PostgresStore;

/// Arguments of `factos ui`.
#[derive(Debug, clap::Args)]
pub(crate) struct UiArgs {
    /// Address to listen on; beyond loopback a token is required.
    #[arg(long, default_value = "127.0.0.1:7474")]
    bind: SocketAddr,
    /// A secret (16 or more of A-Z a-z 0-9 - . _ ~) every request must
    /// carry; opening a page with `?token=...` once sets a cookie.
    #[arg(long, env = "FACTOS_UI_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Allow requeueing parked outbox messages and resetting subscribers.
    #[arg(long)]
    allow_writes: bool,
}

/// What every handler shares.
pub(crate) struct Ui {
    store: PostgresStore,
    token: Option<String>,
    csrf: String,
    allow_writes: bool,
    lag: chart::LagHistory,
}

impl Ui {
    fn mode(&self) -> &'static str {
        if self.allow_writes {
            "writes allowed"
        } else {
            "read-only"
        }
    }
}

/// A page with `status` saying `message` (plain text, escaped).
pub(crate) fn refuse(status: StatusCode, message: &str, ui: &Ui) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<p class=\"error\" id=\"message\">{}</p>",
        html::escape(message)
    );
    (status, Html(html::page(title, &body, ui.mode(), None))).into_response()
}

/// A query string's or a form's pairs.
pub(crate) type Params = HashMap<String, String>;

/// The query string's pairs, or why they cannot be read (invalid
/// percent-encoding or UTF-8), for a 400 page instead of axum's plain text.
pub(crate) fn query_params(
    given: Result<axum::extract::Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Params, String> {
    given
        .map(|axum::extract::Query(params)| params)
        .map_err(|e| format!("The query string is malformed: {}", e.body_text()))
}

/// The form's fields, or why they cannot be read (not a urlencoded form,
/// malformed), for a 400 page.
pub(crate) fn form_fields(
    given: Result<axum::extract::Form<Params>, axum::extract::rejection::FormRejection>,
) -> Result<Params, String> {
    given
        .map(|axum::extract::Form(fields)| fields)
        .map_err(|e| format!("The form is malformed: {}", e.body_text()))
}

/// A store error as a page (its message never holds the connection string).
pub(crate) fn store_failed(error: &factos::StoreError, ui: &Ui) -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("The store could not answer: {error}"),
        ui,
    )
}

/// Serves the pages until Ctrl-C.
pub(crate) async fn serve(store: PostgresStore, args: UiArgs) -> Result<(), String> {
    let loopback = args.bind.ip().is_loopback();
    if let Some(token) = &args.token {
        if token.chars().count() < 16 {
            return Err("the UI token must be 16 characters or more".to_string());
        }
        // It travels in a URL and a cookie as it is.
        if !token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
        {
            return Err("the UI token may hold ASCII letters, digits and - . _ ~ only".to_string());
        }
    }
    if !loopback && args.token.is_none() {
        return Err(format!(
            "the UI listens beyond loopback ({}) only with a token: pass --token or set FACTOS_UI_TOKEN",
            args.bind
        ));
    }
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let ui = Arc::new(Ui {
        store,
        token: args.token,
        csrf: uuid::Uuid::new_v4().simple().to_string(),
        allow_writes: args.allow_writes,
        lag: chart::LagHistory::default(),
    });
    let sampling = tokio::spawn(chart::sample_lag(ui.clone()));
    println!("factos ui: listening on http://{address}/ ({})", ui.mode());
    let app = router(ui.clone());
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| format!("the UI server stopped: {e}"));
    sampling.abort();
    served
}

fn router(ui: Arc<Ui>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/events") }))
        .route("/events", get(events::list))
        .route("/events/{position}", get(events::detail))
        .route("/subscriptions", get(subscriptions::list))
        .route("/subscription", get(subscriptions::detail))
        .route("/subscription/reset", post(subscriptions::reset))
        .route("/outbox", get(outbox::topics))
        .route("/outbox/topic", get(outbox::parked))
        .route("/outbox/requeue", post(outbox::requeue))
        .route("/store", get(store_page::show))
        .route("/chart", get(chart::show))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            ui.clone(),
            guard::admit,
        ))
        .with_state(ui)
}

async fn not_found(axum::extract::State(ui): axum::extract::State<Arc<Ui>>) -> Response {
    refuse(StatusCode::NOT_FOUND, "No such page.", &ui)
}
