//! The bank service answering real HTTP requests (over a TCP socket, parsed
//! by hand) on a throwaway cluster: accounts, deposits, withdrawals without
//! overdraft, transfers racing on one account conserving money, keyed
//! retries replayed, the read model waiting for the caller's position, the
//! notices delivered by the outbox worker, bad input refused, and a
//! graceful stop.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use factos::EventStore;
use factos_examples::bank_service::{BankService, PROJECTION};
use factos_postgres::StoreOptions;
use factos_postgres::throwaway::TestServer;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends one request (`Connection: close`) and returns the status and the
/// JSON body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let key = key
        .map(|k| format!("Idempotency-Key: {k}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: bank\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{key}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let (_, payload) = text.split_once("\r\n\r\n").unwrap();
    let value =
        serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.to_string()));
    (status, value)
}

async fn post(addr: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    request(addr, "POST", path, Some(body), None).await
}

/// The status of a POST (its body is not looked at).
async fn status(addr: SocketAddr, path: &str, body: Value) -> u16 {
    post(addr, path, body).await.0
}

async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    request(addr, "GET", path, None, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bank_serves_over_http_and_stops_gracefully() {
    let database = TestServer::shared()
        .unwrap()
        .create_database()
        .await
        .unwrap();
    let store = database.store(StoreOptions::default()).unwrap();
    store.migrate().await.unwrap();
    let service = BankService::start(store.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = service.addr();
    accounts_and_money(addr).await;
    transfers(addr).await;
    notices_and_bad_input(addr, &store).await;
    stop(service, &store).await;
}

/// Accounts; deposits; withdrawals without overdraft.
async fn accounts_and_money(addr: SocketAddr) {
    // Accounts; a keyed open retried is replayed, an unkeyed second open refused.
    let first = request(
        addr,
        "POST",
        "/accounts/a/open",
        Some(json!({"owner": "ana"})),
        Some("open-a"),
    )
    .await;
    let again = request(
        addr,
        "POST",
        "/accounts/a/open",
        Some(json!({"owner": "ana"})),
        Some("open-a"),
    )
    .await;
    assert_eq!((first.0, again.0), (200, 200), "{first:?} {again:?}");
    assert_eq!(
        first.1["position"], again.1["position"],
        "the retry replays the first attempt"
    );
    assert_eq!(
        status(addr, "/accounts/a/open", json!({"owner": "eve"})).await,
        409
    );
    assert_eq!(
        status(addr, "/accounts/b/open", json!({"owner": "bo"})).await,
        200
    );

    // Money in and out; no overdraft.
    assert_eq!(
        status(addr, "/accounts/a/deposit", json!({"cents": 100})).await,
        200
    );
    assert_eq!(
        status(addr, "/accounts/a/withdraw", json!({"cents": 30})).await,
        200
    );
    let overdraft = post(addr, "/accounts/a/withdraw", json!({"cents": 100})).await;
    assert_eq!(overdraft.0, 409, "{overdraft:?}");
    assert!(
        overdraft.1["error"].as_str().unwrap().contains("holds 70"),
        "{overdraft:?}"
    );
}

/// A transfer read back at its position; transfers racing; a keyed retry.
async fn transfers(addr: SocketAddr) {
    // A transfer; the read model waits for its position.
    let moved = post(
        addr,
        "/transfers",
        json!({"from": "a", "to": "b", "cents": 50}),
    )
    .await;
    assert_eq!(moved.0, 200, "{moved:?}");
    let at = moved.1["position"].as_u64().unwrap();
    let b = get(addr, &format!("/accounts/b?after={at}")).await;
    assert_eq!((b.0, &b.1["cents"]), (200, &json!(50)), "{b:?}");

    // Eight transfers race on a's last 20 cents: four go through, and no
    // cent is made or lost.
    let racers: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(post(
                addr,
                "/transfers",
                json!({"from": "a", "to": "b", "cents": 5}),
            ))
        })
        .collect();
    let mut positions = Vec::new();
    let mut refused = 0;
    for racer in racers {
        match racer.await.unwrap() {
            (200, body) => positions.push(body["position"].as_u64().unwrap()),
            (409, _) => refused += 1,
            other => panic!("a racing transfer: {other:?}"),
        }
    }
    assert_eq!((positions.len(), refused), (4, 4));
    let last = positions.iter().max().unwrap();
    let a = get(addr, &format!("/accounts/a?after={last}")).await;
    let b = get(addr, &format!("/accounts/b?after={last}")).await;
    assert_eq!(
        (&a.1["cents"], &b.1["cents"]),
        (&json!(0), &json!(70)),
        "{a:?} {b:?}"
    );

    // A keyed transfer retried moves money once.
    let keyed = || {
        request(
            addr,
            "POST",
            "/transfers",
            Some(json!({"from": "b", "to": "a", "cents": 10})),
            Some("t-1"),
        )
    };
    let (one, two) = (keyed().await, keyed().await);
    assert_eq!(one.1["position"], two.1["position"], "{one:?} {two:?}");
    let a = get(addr, &format!("/accounts/a?after={}", two.1["position"])).await;
    assert_eq!(a.1["cents"], json!(10), "{a:?}");
}

/// The notices; bad input refused, writing nothing.
async fn notices_and_bad_input(addr: SocketAddr, store: &factos_postgres::PostgresStore) {
    // One notice per transfer, delivered by the outbox worker.
    let started = Instant::now();
    let notices = loop {
        let (_, notices) = get(addr, "/notices").await;
        if notices.as_array().unwrap().len() >= 6 || started.elapsed() > Duration::from_secs(10) {
            break notices;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(notices.as_array().unwrap().len(), 6, "{notices}");

    // Bad input: refused with a reason, nothing written.
    let before = store
        .read(&factos::Query::all(), factos::ReadOptions::default())
        .await
        .unwrap()
        .events
        .len();
    assert_eq!(
        status(addr, "/accounts/a/deposit", json!({"cents": -5})).await,
        422
    );
    assert_eq!(
        status(addr, "/accounts/nobody/deposit", json!({"cents": 5})).await,
        404
    );
    assert_eq!(
        status(
            addr,
            "/transfers",
            json!({"from": "a", "to": "a", "cents": 1})
        )
        .await,
        422
    );
    let long = "x".repeat(300);
    assert_eq!(
        status(
            addr,
            &format!("/accounts/{long}/open"),
            json!({"owner": "o"})
        )
        .await,
        400
    );
    let garbled = request(addr, "POST", "/accounts/a/deposit", None, None).await;
    assert!(garbled.0 >= 400 && garbled.0 < 500, "{garbled:?}");
    assert_eq!(get(addr, "/accounts/nobody").await.0, 404);
    let after = store
        .read(&factos::Query::all(), factos::ReadOptions::default())
        .await
        .unwrap()
        .events
        .len();
    assert_eq!(before, after, "bad requests wrote nothing");
}

async fn stop(service: BankService, store: &factos_postgres::PostgresStore) {
    let addr = service.addr();
    // A graceful stop: every worker ends without error, the projection lets
    // its subscriber go, the port closes.
    tokio::time::timeout(Duration::from_secs(10), service.stop())
        .await
        .unwrap()
        .unwrap();
    let subscribers = store.subscribers().await.unwrap();
    let projection = subscribers.iter().find(|s| s.name == PROJECTION).unwrap();
    assert!(!projection.active, "{subscribers:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening after stop"
    );
}
