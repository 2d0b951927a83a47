//! What the `factos ui` tests share: a store with known data, the UI
//! started as a process, and a small HTTP/1.1 client.

#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use factos::json::{JsonCodec, JsonEvent};
use factos::{
    AppendCondition, Decider, EventStore, EventType, NewEvent, OutboxMessage, Query, Recorded,
    StoredEvent, StreamId, Tag, Tags, Topic, dispatch_with_outbox, reactor_fn,
};
use factos_postgres::throwaway::{TestDatabase, TestServer};
use factos_postgres::{
    EventHandler, LeasedMessage, MessageHandler, Outbox, OutboxOptions, PoisonPolicy,
    PostgresStore, StoreOptions, Subscription, SubscriptionOptions,
};

/// A password in the connection string the UI gets (the test server trusts
/// every connection, so it is ignored there): no page may show it.
pub(crate) const SECRET: &str = "sekrit-9f3c";

/// Events the seed appends: 120 sales and refunds over three concerts.
pub(crate) const SALES: u64 = 120;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Mailed {
    to: String,
}

impl JsonEvent for Mailed {
    const EVENT_TYPES: &'static [&'static str] = &["Mailed"];
    fn event_type(&self) -> &'static str {
        "Mailed"
    }
    fn tags(&self) -> Vec<String> {
        vec![format!("mail:{}", self.to)]
    }
}

struct Mail;

impl Decider for Mail {
    type Command = String;
    type Event = Mailed;
    type State = ();
    type Error = String;
    fn initial(&self) {}
    fn decide(&self, (): &(), to: &String) -> Result<Vec<Mailed>, String> {
        Ok(vec![Mailed { to: to.clone() }])
    }
    fn evolve(&self, (): (), _: &Mailed) {}
}

struct Failing;

impl MessageHandler for Failing {
    type Error = String;
    async fn deliver(&mut self, _: &LeasedMessage) -> Result<(), String> {
        Err("mail server said 550 <no such user>".to_string())
    }
}

impl EventHandler for Failing {
    type Error = String;
    async fn handle(&mut self, events: &[StoredEvent]) -> Result<(), String> {
        if events.iter().any(|e| e.event_type.as_str() == "Refunded") {
            return Err("cannot project a refund".to_string());
        }
        Ok(())
    }
}

struct Count;

impl EventHandler for Count {
    type Error = std::convert::Infallible;
    async fn handle(&mut self, _: &[StoredEvent]) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The store's known data: [`SALES`] events (every 10th a `Refunded`, the
/// rest `Sold`; tag `concert:{i % 3}`; JSON payloads), one event whose
/// payload is not UTF-8, one `Mailed` event whose outbox message is parked
/// (its handler fails), a subscriber `sales` caught up, and a subscriber
/// `refunds` that parked each of the 12 refunds (its handler fails on them).
pub(crate) async fn seeded() -> (TestDatabase, PostgresStore) {
    let database = TestServer::shared()
        .unwrap()
        .create_database()
        .await
        .unwrap();
    let store = database.store(StoreOptions::default()).unwrap();
    store.migrate().await.unwrap();
    for i in 0..SALES {
        let kind = if i % 10 == 9 { "Refunded" } else { "Sold" };
        let event = NewEvent::new(
            EventType::new(kind).unwrap(),
            format!("{{\"seat\":{i},\"note\":\"<b>x</b>\"}}").into_bytes(),
        )
        .with_tags(Tags::parse([format!("concert:{}", i % 3)]).unwrap());
        let stream = StreamId::new(format!("concert-{}", i % 3)).unwrap();
        store
            .append(&stream, vec![event], AppendCondition::None)
            .await
            .unwrap();
    }
    let raw = NewEvent::new(
        EventType::new("Blob").unwrap(),
        vec![0xff, 0xfe, 0x00, 0x41],
    )
    .with_tags(Tags::parse(["blob:1"]).unwrap());
    store
        .append(
            &StreamId::new("blobs").unwrap(),
            vec![raw],
            AppendCondition::None,
        )
        .await
        .unwrap();
    let query = Query::tagged_with_all([Tag::new("mail:ann").unwrap()]);
    let reactor = reactor_fn(|_: &Recorded<Mailed>| {
        vec![OutboxMessage::new(
            Topic::new("mail").unwrap(),
            b"hello ann".to_vec(),
        )]
    });
    dispatch_with_outbox(
        &store,
        &StreamId::new("mails").unwrap(),
        &query,
        &Mail,
        &JsonCodec::<Mailed>::new(),
        &"ann".to_string(),
        &reactor,
    )
    .await
    .unwrap();
    let outbox = Outbox::new(&store, Topic::new("mail").unwrap())
        .with_options(
            OutboxOptions::default()
                .max_attempts(1)
                .poll_interval(Duration::from_millis(10)),
        )
        .unwrap();
    outbox
        .run(&mut Failing, tokio::time::sleep(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(
        outbox.parked().await.unwrap().len(),
        1,
        "the seed's message must be parked"
    );
    Subscription::new(&store, "sales", Query::all())
        .unwrap()
        .catch_up(&mut Count)
        .await
        .unwrap();
    let refunds = Subscription::new(&store, "refunds", Query::all())
        .unwrap()
        .with_options(
            SubscriptionOptions::default()
                .handler_attempts(1)
                .on_poison(PoisonPolicy::Park),
        )
        .unwrap();
    refunds.catch_up(&mut Failing).await.unwrap();
    (database, store)
}

/// A running `factos ui`; killed when dropped.
pub(crate) struct Running {
    child: Child,
    pub(crate) address: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The connection string with the secret password added.
pub(crate) fn url_with_secret(database: &TestDatabase) -> String {
    format!("{} password={SECRET}", database.connection_string())
}

/// Starts `factos ui` on `database` with `args` (after `ui`) and waits for
/// its address.
pub(crate) fn start(database: &TestDatabase, args: &[&str]) -> Running {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("factos"))
        .env("DATABASE_URL", url_with_secret(database))
        .arg("ui")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let Some(address) = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(str::to_string)
    else {
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        panic!("factos ui did not start: {line:?} {err}");
    };
    Running { child, address }
}

/// A response: status, headers (lower-case names), body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// How many rows the table `id` has (its body rows).
    pub(crate) fn rows(&self, id: &str) -> usize {
        let Some(start) = self.body.find(&format!("<table id=\"{id}\">")) else {
            return 0;
        };
        let table = &self.body[start..];
        let end = table.find("</table>").unwrap_or(table.len());
        table[..end].matches("<tr>").count().saturating_sub(1)
    }
}

/// Sends one request (`Connection: close`) with `extra` header lines.
pub(crate) fn request(
    address: &str,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        let _ = write!(head, "Host: {address}\r\n");
    }
    for (name, value) in extra {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if method == "POST" {
        if !extra
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

pub(crate) fn get(address: &str, path: &str) -> Reply {
    request(address, "GET", path, &[], "")
}

/// The CSRF token in a page's forms.
pub(crate) fn csrf(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a form with a CSRF token") + marker.len();
    page[start..].split('"').next().unwrap().to_string()
}
