//! The bank as an HTTP service (axum) on PostgreSQL.
//!
//! - `POST /accounts/{id}/open` `{"owner": ...}`, `POST /accounts/{id}/deposit`
//!   and `/withdraw` `{"cents": ...}`, `POST /transfers`
//!   `{"from", "to", "cents"}`: each a dispatch, answered with the position
//!   of its last event (`{"position": P, "events": n}`). An
//!   `Idempotency-Key` header (a UUID, or any text: it is hashed into one)
//!   makes it idempotent: a retry with the same key replays what the first
//!   attempt committed.
//! - `GET /accounts/{id}?after=P`: the balances projection's row, once the
//!   projection has applied position `P` (read your writes; 504 after 5 s).
//! - `GET /notices`: the notices the outbox worker delivered.
//!
//! Refusals are 404 (no such account), 409 (open already, too little
//! money) or 422 (an amount that is not positive, a transfer to itself);
//! a name the store refuses is 400; a store failure 503 with whether a retry
//! is safe. [`BankService::stop`] stops taking requests, lets those in
//! flight finish, then stops the projection and the outbox worker after
//! the batch in hand.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use factos::json::{JsonCodec, JsonEvent};
use factos::{Codec, DispatchError, Position, Query, QueryItem, StoredEvent, Topic};
use factos_postgres::tokio_postgres::Transaction;
use factos_postgres::{
    LeasedMessage, MessageHandler, Outbox, PostgresStore, ProjectionHandler, Subscription,
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bank::{
    AccountCommand, BankDispatch, BankEvent, NOTICES, Notice, Refusal, Transfer, handle_account,
    handle_transfer,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The projection's table (created if missing).
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS bank_balances (
    account text PRIMARY KEY,
    owner text NOT NULL,
    cents bigint NOT NULL
)";

/// The projection's subscriber name.
pub const PROJECTION: &str = "bank-balances";

/// How long a read waits for the projection to apply the caller's position.
const READ_WAIT: Duration = Duration::from_secs(5);

/// A running service: its address, and how to stop it.
pub struct BankService {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<(), String>>>,
}

#[derive(Clone)]
struct AppState {
    store: PostgresStore,
    projection: Arc<Subscription>,
    notices: Arc<Mutex<Vec<Notice>>>,
}

impl BankService {
    /// Starts the projection, the outbox worker and the HTTP server on
    /// `addr` (port 0: any free port; see [`Self::addr`]).
    ///
    /// # Errors
    ///
    /// The table, the subscription, the outbox or the listener cannot be set up.
    pub async fn start(store: PostgresStore, addr: SocketAddr) -> Result<Self, BoxError> {
        store
            .pool()
            .get()
            .await?
            .batch_execute(CREATE_TABLE)
            .await?;
        let all_bank_events = Query::from_items([QueryItem::parse(
            BankEvent::EVENT_TYPES.iter().copied(),
            [] as [&str; 0],
        )?]);
        let projection = Arc::new(Subscription::new(&store, PROJECTION, all_bank_events)?);
        let outbox = Outbox::new(&store, Topic::new(NOTICES)?);
        let state = AppState {
            store: store.clone(),
            projection: projection.clone(),
            notices: Arc::new(Mutex::new(Vec::new())),
        };
        let (stop, stopped) = watch::channel(false);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router(state.clone());
        let mut tasks = Vec::new();
        let until = stopped.clone();
        tasks.push(tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop_signal(until))
                .await
                .map_err(|e| format!("the HTTP server: {e}"))
        }));
        let until = stopped.clone();
        tasks.push(tokio::spawn(async move {
            projection
                .run_projection(&mut Balances::default(), stop_signal(until))
                .await
                .map_err(|e| format!("the projection: {e}"))
        }));
        let notices = state.notices.clone();
        tasks.push(tokio::spawn(async move {
            outbox
                .run(&mut Notifier { notices }, stop_signal(stopped))
                .await
                .map_err(|e| format!("the outbox worker: {e}"))
        }));
        Ok(Self { addr, stop, tasks })
    }

    /// Where the service listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server (requests in flight finish), then the projection
    /// and the outbox worker (after the batch in hand), and waits for all.
    ///
    /// # Errors
    ///
    /// One of them had failed, or panicked.
    pub async fn stop(self) -> Result<(), BoxError> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await??;
        }
        Ok(())
    }
}

async fn stop_signal(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/accounts/{id}/open", post(open))
        .route("/accounts/{id}/deposit", post(deposit))
        .route("/accounts/{id}/withdraw", post(withdraw))
        .route("/transfers", post(transfer))
        .route("/accounts/{id}", get(account))
        .route("/notices", get(notices))
        .with_state(state)
}

#[derive(Deserialize)]
struct Owner {
    owner: String,
}

#[derive(Deserialize)]
struct Amount {
    cents: i64,
}

async fn open(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Owner>,
) -> Response {
    let command = AccountCommand::Open { owner: body.owner };
    answer(handle_account(&state.store, &id, &command, key(&headers)).await)
}

async fn deposit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Amount>,
) -> Response {
    let command = AccountCommand::Deposit { cents: body.cents };
    answer(handle_account(&state.store, &id, &command, key(&headers)).await)
}

async fn withdraw(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Amount>,
) -> Response {
    let command = AccountCommand::Withdraw { cents: body.cents };
    answer(handle_account(&state.store, &id, &command, key(&headers)).await)
}

async fn transfer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<Transfer>,
) -> Response {
    answer(handle_transfer(&state.store, &body, key(&headers)).await)
}

#[derive(Deserialize)]
struct After {
    after: Option<u64>,
}

async fn account(
    State(state): State<AppState>,
    Path(id): Path<String>,
    UrlQuery(after): UrlQuery<After>,
) -> Response {
    if let Some(position) = after.after.and_then(Position::new) {
        match state
            .projection
            .wait_until_applied(position, READ_WAIT)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return error(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!("the balances have not reached position {position} yet"),
                );
            }
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        }
    }
    let row = match state.store.pool().get().await {
        Ok(client) => client
            .query_opt(
                "SELECT owner, cents FROM bank_balances WHERE account = $1",
                &[&id],
            )
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match row {
        Ok(Some(row)) => {
            let (owner, cents): (String, i64) = (row.get(0), row.get(1));
            Json(json!({"account": id, "owner": owner, "cents": cents})).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, &format!("there is no account {id}")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

async fn notices(State(state): State<AppState>) -> Response {
    let delivered = state
        .notices
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Json(delivered).into_response()
}

/// The request's idempotency key: the header's UUID, or its text hashed
/// into one.
fn key(headers: &HeaderMap) -> Option<uuid::Uuid> {
    let text = headers.get("idempotency-key")?.to_str().ok()?;
    Some(
        uuid::Uuid::parse_str(text)
            .unwrap_or_else(|_| uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, text.as_bytes())),
    )
}

fn answer(outcome: BankDispatch) -> Response {
    match outcome {
        Ok(dispatch) => {
            let position = dispatch.events.last().map(|e| e.position.get());
            Json(json!({"position": position, "events": dispatch.events.len()})).into_response()
        }
        Err(DispatchError::Domain(refusal)) => {
            let status = match refusal {
                Refusal::NoAccount(_) => StatusCode::NOT_FOUND,
                Refusal::AlreadyOpen(_) | Refusal::Insufficient { .. } => StatusCode::CONFLICT,
                Refusal::NotPositive | Refusal::SameAccount => StatusCode::UNPROCESSABLE_ENTITY,
            };
            error(status, &refusal.to_string())
        }
        Err(DispatchError::Encode(e)) => error(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(DispatchError::Store(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": e.to_string(), "retry_safe": e.is_retry_safe()})),
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// Keeps `bank_balances`, exactly once: each batch's updates commit with
/// the subscription's checkpoint.
#[derive(Default)]
struct Balances {
    codec: JsonCodec<BankEvent>,
}

impl ProjectionHandler for Balances {
    type Error = BoxError;

    async fn apply(
        &mut self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), BoxError> {
        const ADD: &str = "UPDATE bank_balances SET cents = cents + $2 WHERE account = $1";
        for stored in events {
            match self.codec.decode(stored)? {
                BankEvent::Opened { account, owner } => {
                    tx.execute(
                        "INSERT INTO bank_balances (account, owner, cents) VALUES ($1, $2, 0)
                         ON CONFLICT (account) DO NOTHING",
                        &[&account, &owner],
                    )
                    .await?;
                }
                BankEvent::Deposited { account, cents } => {
                    tx.execute(ADD, &[&account, &cents]).await?;
                }
                BankEvent::Withdrawn { account, cents } => {
                    tx.execute(ADD, &[&account, &-cents]).await?;
                }
                BankEvent::Transferred { from, to, cents } => {
                    tx.execute(ADD, &[&from, &-cents]).await?;
                    tx.execute(ADD, &[&to, &cents]).await?;
                }
            }
        }
        Ok(())
    }
}

/// "Sends" notices: keeps them for `GET /notices`.
struct Notifier {
    notices: Arc<Mutex<Vec<Notice>>>,
}

impl MessageHandler for Notifier {
    type Error = String;

    async fn deliver(&mut self, message: &LeasedMessage) -> Result<(), String> {
        let notice: Notice =
            serde_json::from_slice(&message.payload).map_err(|e| format!("not a notice: {e}"))?;
        let mut delivered = self.notices.lock().unwrap_or_else(PoisonError::into_inner);
        // At least once: a redelivered notice is kept once.
        if !delivered.iter().any(|n| n.position == notice.position) {
            delivered.push(notice);
        }
        Ok(())
    }
}
