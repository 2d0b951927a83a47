//! The `factos` binary, run as a user would, against a real server.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use factos::{AppendCondition, EventStore, EventType, NewEvent, StreamId, Tags};
use factos_postgres::throwaway::{TestDatabase, TestServer};
use factos_postgres::{PostgresStore, StoreOptions};

async fn database() -> TestDatabase {
    TestServer::shared()
        .unwrap()
        .create_database()
        .await
        .unwrap()
}

fn factos(url: &str, args: &[&str]) -> Output {
    Command::cargo_bin("factos")
        .unwrap()
        .env("DATABASE_URL", url)
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A failure is one `error:` sentence on stderr, a non-zero exit, no panic.
fn assert_human_error(output: &Output, expected: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one sentence expected: {err}"
    );
    assert!(err.contains(expected), "expected {expected:?} in {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

async fn seeded(database: &TestDatabase) -> PostgresStore {
    let store = database.store(StoreOptions::default()).unwrap();
    store.migrate().await.unwrap();
    let stream = StreamId::new("seats").unwrap();
    for i in 0..5 {
        let event = NewEvent::new(
            EventType::new(if i % 2 == 0 { "Booked" } else { "Cancelled" }).unwrap(),
            format!("{{\"seat\":{i}}}").into_bytes(),
        )
        .with_tags(Tags::parse([format!("seat:{i}"), "hall:a".to_string()]).unwrap());
        store
            .append(&stream, vec![event], AppendCondition::None)
            .await
            .unwrap();
    }
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_then_status() {
    let database = database().await;
    let url = database.connection_string().to_string();
    let migrated = factos(&url, &["migrate"]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    assert!(
        stdout(&migrated).contains("now at version"),
        "{}",
        stdout(&migrated)
    );
    let again = factos(&url, &["migrate"]);
    assert!(
        stdout(&again).contains("already at version"),
        "{}",
        stdout(&again)
    );
    let status = factos(&url, &["status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let text = stdout(&status);
    assert!(text.contains("events:        0"), "{text}");
    assert!(text.contains("head position: none"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_as_table_and_json_lines() {
    let database = database().await;
    let _store = seeded(&database).await;
    let url = database.connection_string();
    let table = factos(url, &["events", "--type", "Booked"]);
    assert!(table.status.success(), "{}", stderr(&table));
    assert!(stdout(&table).contains("(3 events)"), "{}", stdout(&table));
    let json = factos(
        url,
        &[
            "events",
            "--tag",
            "hall:a",
            "--backwards",
            "--limit",
            "2",
            "--json",
        ],
    );
    let lines: Vec<serde_json::Value> = stdout(&json)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["position"], 5);
    assert_eq!(lines[0]["data"]["seat"], 4);
    assert_eq!(lines[1]["position"], 4);
    let stream = factos(
        url,
        &["events", "--stream", "seats", "--from", "2", "--json"],
    );
    assert_eq!(stdout(&stream).lines().count(), 4, "{}", stdout(&stream));
}

/// Long stream names and tag lists do not push the columns after them out
/// of line (every row's type starts under the header's), and each row shows
/// when its event was recorded (RFC 3339, UTC; in the JSON lines too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_values_keep_the_table_aligned_and_recorded_times_show() {
    let database = database().await;
    let store = seeded(&database).await;
    let long = StreamId::new(format!("a-stream-name-much-longer-{}", "x".repeat(40))).unwrap();
    let event = NewEvent::new(EventType::new("Booked").unwrap(), b"{}".to_vec())
        .with_tags(Tags::parse((0..6).map(|i| format!("a-long-tag-number:{i}"))).unwrap());
    store
        .append(&long, vec![event], AppendCondition::None)
        .await
        .unwrap();
    let url = database.connection_string();
    let table = stdout(&factos(url, &["events", "--type", "Booked"]));
    let lines: Vec<&str> = table.lines().collect();
    let column = |line: &str, word: &str| line.find(word).map(|at| line[..at].chars().count());
    let header = column(lines[0], "type").unwrap();
    let rows = &lines[1..lines.len() - 1];
    assert_eq!(rows.len(), 4, "{table}");
    for row in rows {
        assert_eq!(column(row, "Booked"), Some(header), "{table}");
        let year = column(row, "T").map(|t| &row[t - 10..t]);
        assert!(
            year.is_some_and(|date| date.starts_with("20") && date.len() == 10),
            "{table}"
        );
    }
    let json = stdout(&factos(url, &["events", "--json", "--limit", "1"]));
    let line: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    let recorded = line["recorded_at"].as_str().unwrap();
    assert!(recorded.ends_with('Z') && recorded.contains('T'), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follows_new_events() {
    let database = database().await;
    let store = seeded(&database).await;
    let booked = |seat: &str| {
        NewEvent::new(EventType::new("Booked").unwrap(), b"{}".to_vec())
            .with_tags(Tags::parse([seat, "hall:b"]).unwrap())
    };
    // Matches, but is there before tail starts (position 6): not printed.
    store
        .append(
            &StreamId::new("early").unwrap(),
            vec![booked("seat:6")],
            AppendCondition::None,
        )
        .await
        .unwrap();
    // Named, so its session can be told apart from the test's own.
    let url = format!(
        "{} application_name='factos-tail'",
        database.connection_string()
    );
    let follower = tokio::task::spawn_blocking(move || {
        factos(
            &url,
            &[
                "tail",
                "--tag",
                "hall:b",
                "--json",
                "--max-events",
                "2",
                "--interval-ms",
                "50",
            ],
        )
    });
    // Once tail has finished a read of the events it has its starting head:
    // everything appended from now on is new to it. Its session shows the
    // read's text when idle after preparing it too (before any head was
    // taken), so wait for two distinct statements with that text: between
    // the prepare and the first execution comes the settled-position call,
    // so the second one seen is an execution.
    let client = store.pool().get().await.unwrap();
    let start = std::time::Instant::now();
    let mut reads_seen = std::collections::HashSet::new();
    while reads_seen.len() < 2 {
        let rows = client
            .query(
                "SELECT pid, query_start::text FROM pg_stat_activity
                 WHERE application_name = 'factos-tail'
                   AND state = 'idle' AND query LIKE '%factos_events%'",
                &[],
            )
            .await
            .unwrap();
        for row in rows {
            reads_seen.insert((row.get::<_, i32>(0), row.get::<_, String>(1)));
        }
        assert!(
            start.elapsed() < Duration::from_secs(30) && !follower.is_finished(),
            "tail did not read the events within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for seat in ["seat:7", "seat:8"] {
        store
            .append(
                &StreamId::new("late").unwrap(),
                vec![booked(seat)],
                AppendCondition::None,
            )
            .await
            .unwrap();
    }
    let output = follower.await.unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let positions: Vec<u64> = lines
        .iter()
        .map(|l| l["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, vec![7, 8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_a_broken_mirror() {
    let database = database().await;
    let store = seeded(&database).await;
    let url = database.connection_string();
    let ok = factos(url, &["verify"]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    assert!(
        stdout(&ok).starts_with("ok: 5 positions checked"),
        "{}",
        stdout(&ok)
    );
    let client = store.pool().get().await.unwrap();
    // Corrupt the store behind factos's back (the append-only triggers are
    // bypassed the way a superuser's repair session would).
    client
        .batch_execute("SET session_replication_role = replica")
        .await
        .unwrap();
    client
        .batch_execute("DELETE FROM factos_event_tags WHERE position = 3 AND tag = 'seat:2'")
        .await
        .unwrap();
    client
        .batch_execute("UPDATE factos_events SET revision = 9 WHERE position = 5; RESET session_replication_role")
        .await
        .unwrap();
    let broken = factos(url, &["verify"]);
    assert_eq!(broken.status.code(), Some(1), "{}", stdout(&broken));
    let report = stdout(&broken);
    assert!(
        report.contains("event 3 carries tag \"seat:2\" but the mirror has no row"),
        "{report}"
    );
    assert!(report.contains("stream \"seats\""), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_without_the_schema_says_to_migrate() {
    let database = database().await;
    assert_human_error(
        &factos(database.connection_string(), &["status"]),
        "run `factos migrate` first",
    );
}

#[test]
fn a_malformed_url_is_one_sentence() {
    assert_human_error(
        &factos("postgresql://u:secret@host:notaport/db", &["status"]),
        "not a valid PostgreSQL connection string",
    );
}

#[test]
fn no_part_of_a_malformed_connection_string_is_echoed() {
    for url in [
        "host=/tmp user=u password=sw0rdfish l3aked dbname=x",
        "host=/tmp password=sw0rdfish l3aked=1 dbname=x",
        "postgresql://u:pw@h/db?sw0rdfish l3aked=1",
    ] {
        let output = factos(url, &["status"]);
        assert_human_error(&output, "not a valid PostgreSQL connection string");
        let err = stderr(&output);
        assert!(
            !err.contains("sw0rdfish") && !err.contains("l3aked"),
            "{url}: {err}"
        );
    }
}

/// A command-line mistake: exit code 2 and clap's `error:` sentence first.
fn assert_usage_error(output: &Output, expected: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: "), "{err}");
    assert!(first.contains(expected), "expected {expected:?} in {err}");
}

#[test]
fn numbers_out_of_range_say_so() {
    // Refused before any connection is attempted.
    let url = "host=/nonexistent-factos-socket-dir dbname=x";
    let huge = "18446744073709551615";
    let from = factos(url, &["events", "--from", huge]);
    assert_usage_error(&from, "is not in 1..=9223372036854775807");
    assert!(!stderr(&from).contains("at least 1"), "{}", stderr(&from));
    assert_usage_error(
        &factos(url, &["tail", "--after", huge]),
        "is not in 0..=9223372036854775806",
    );
    for interval in ["0", "60001", huge] {
        assert_usage_error(
            &factos(url, &["tail", "--interval-ms", interval]),
            "is not in 1..=60000",
        );
    }
    assert_usage_error(
        &factos(url, &["verify", "--batch", "0"]),
        "is not in 1..=10000000",
    );
}

#[test]
fn a_server_that_is_down_is_one_sentence_without_the_password() {
    let output = factos(
        "host=/nonexistent-factos-socket-dir port=5432 user=someone password=hunter2 dbname=x",
        &["status"],
    );
    assert_human_error(&output, "cannot reach PostgreSQL");
    assert!(!stderr(&output).contains("hunter2"));
}

#[test]
fn no_database_says_how_to_give_one() {
    let output = Command::cargo_bin("factos")
        .unwrap()
        .env_remove("DATABASE_URL")
        .arg("status")
        .output()
        .unwrap();
    assert_human_error(&output, "pass --database-url or set DATABASE_URL");
}

/// Counts events; never fails.
struct Count;

impl factos_postgres::EventHandler for Count {
    type Error = std::convert::Infallible;
    async fn handle(&mut self, _: &[factos::StoredEvent]) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_lists_checkpoints_and_active_instances() {
    let database = database().await;
    let url = database.connection_string().to_string();
    let store = seeded(&database).await;
    let empty = factos(&url, &["subscriptions"]);
    assert!(empty.status.success(), "{}", stderr(&empty));
    assert!(
        stdout(&empty).contains("no subscribers"),
        "{}",
        stdout(&empty)
    );
    assert!(
        stdout(&empty).contains("outbox: empty"),
        "{}",
        stdout(&empty)
    );

    // One subscriber caught up on booked seats only, one running (holding its lease).
    let booked = factos::Query::types([EventType::new("Booked").unwrap()]);
    let caught_up = factos_postgres::Subscription::new(&store, "bookings", booked).unwrap();
    assert_eq!(caught_up.catch_up(&mut Count).await.unwrap(), 3);
    let running = factos_postgres::Subscription::new(&store, "audit", factos::Query::all())
        .unwrap()
        .with_options(
            factos_postgres::SubscriptionOptions::default().poll_interval(Duration::from_secs(60)),
        )
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        running
            .run(&mut Count, async {
                let _ = stopped.await;
            })
            .await
    });
    let start = std::time::Instant::now();
    let listed = loop {
        let listed = stdout(&factos(&url, &["subscriptions"]));
        if listed.contains("active") || start.elapsed() > Duration::from_secs(10) {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let audit = listed.lines().find(|l| l.starts_with("audit")).unwrap();
    assert!(audit.contains("active"), "{listed}");
    let bookings = listed.lines().find(|l| l.starts_with("bookings")).unwrap();
    let columns: Vec<&str> = bookings.split_whitespace().collect();
    // Checkpoint 5 (the settled head), nothing behind, stopped.
    assert_eq!(columns, vec!["bookings", "5", "0", "stopped"], "{listed}");
    drop(stop);
    task.await.unwrap().unwrap();
}

/// Fails on the event at position 2, whatever it is.
struct FailsOnTwo;

impl factos_postgres::EventHandler for FailsOnTwo {
    type Error = String;
    async fn handle(&mut self, events: &[factos::StoredEvent]) -> Result<(), Self::Error> {
        match events.iter().find(|e| e.position.get() == 2) {
            Some(_) => Err("the projection cannot take event 2".to_string()),
            None => Ok(()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_lists_retries_and_drops_parked_events() {
    let database = database().await;
    let url = database.connection_string().to_string();
    let store = seeded(&database).await;
    let subscription = factos_postgres::Subscription::new(&store, "mailer", factos::Query::all())
        .unwrap()
        .with_options(
            factos_postgres::SubscriptionOptions::default()
                .handler_attempts(1)
                .on_poison(factos_postgres::PoisonPolicy::Park),
        )
        .unwrap();
    assert_eq!(subscription.catch_up(&mut FailsOnTwo).await.unwrap(), 4);
    let listed = factos(&url, &["subscriptions", "parked", "mailer"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let line = stdout(&listed);
    assert!(
        line.trim_start().starts_with("2 ") && line.contains("the projection cannot take event 2"),
        "{line}"
    );
    let retried = factos(&url, &["subscriptions", "retry", "mailer", "2"]);
    assert!(retried.status.success(), "{}", stderr(&retried));
    assert!(
        stdout(&factos(&url, &["subscriptions", "parked", "mailer"])).contains("requeued"),
        "the retry is pending"
    );
    let dropped = factos(&url, &["subscriptions", "drop", "mailer", "2"]);
    assert!(dropped.status.success(), "{}", stderr(&dropped));
    assert!(
        stdout(&factos(&url, &["subscriptions", "parked", "mailer"])).contains("no parked events")
    );
    assert_human_error(
        &factos(&url, &["subscriptions", "drop", "mailer", "2"]),
        "no parked event at position 2",
    );
    // Reset to the start: the subscriber handles all five events again.
    let reset = factos(&url, &["subscriptions", "reset", "mailer"]);
    assert!(reset.status.success(), "{}", stderr(&reset));
    assert_eq!(subscription.checkpoint().await.unwrap(), None);
    assert_human_error(
        &factos(&url, &["subscriptions", "reset", "nobody", "--to", "3"]),
        "there is no subscriber nobody",
    );
    // Removed: no longer listed; a second removal finds nothing.
    let removed = factos(&url, &["subscriptions", "remove", "mailer"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(
        !stdout(&factos(&url, &["subscriptions"])).contains("mailer"),
        "a removed subscriber is still listed"
    );
    assert_human_error(
        &factos(&url, &["subscriptions", "remove", "mailer"]),
        "there is no subscriber mailer",
    );
}

/// Registers one name, with an email in the outbox.
struct Once;

impl factos::Decider for Once {
    type State = ();
    type Command = ();
    type Event = String;
    type Error = std::convert::Infallible;
    fn initial(&self) {}
    fn decide(&self, (): &(), (): &()) -> Result<Vec<String>, Self::Error> {
        Ok(vec!["hello".to_string()])
    }
    fn evolve(&self, (): (), _: &String) {}
}

/// Stores a string event as `Said` with its text as the payload.
struct Said;

impl factos::Codec for Said {
    type Event = String;
    fn encode(&self, text: &String) -> Result<NewEvent, factos::EncodeError> {
        Ok(NewEvent::new(
            EventType::new("Said")?,
            text.as_bytes().to_vec(),
        ))
    }
    fn decode(&self, stored: &factos::StoredEvent) -> Result<String, factos::DecodeError> {
        Ok(String::from_utf8_lossy(&stored.data).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_lists_and_requeues_parked_messages() {
    let database = database().await;
    let url = database.connection_string().to_string();
    let store = seeded(&database).await;
    let email = factos::Topic::new("email").unwrap();
    let reactor = {
        let email = email.clone();
        factos::reactor_fn(move |_: &factos::Recorded<String>| {
            vec![factos::OutboxMessage::new(email.clone(), b"hi".to_vec())]
        })
    };
    factos::dispatch_with_outbox(
        &store,
        &StreamId::new("said").unwrap(),
        &factos::Query::all(),
        &Once,
        &Said,
        &(),
        &reactor,
    )
    .await
    .unwrap();
    let outbox = factos_postgres::Outbox::new(&store, email)
        .with_options(factos_postgres::OutboxOptions::default().max_attempts(1))
        .unwrap();
    let leased = outbox.lease().await.unwrap();
    outbox.fail(&leased[0], "smtp down").await.unwrap();
    let id = outbox.parked().await.unwrap()[0];
    let listed = factos(&url, &["outbox", "parked", "email"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert_eq!(stdout(&listed).trim(), id.to_string());
    // Another topic has no such parked message.
    assert_human_error(
        &factos(&url, &["outbox", "requeue", "sms", &id.to_string()]),
        &format!("sms has no parked message {id}"),
    );
    let requeued = factos(&url, &["outbox", "requeue", "email", &id.to_string()]);
    assert!(requeued.status.success(), "{}", stderr(&requeued));
    assert!(outbox.parked().await.unwrap().is_empty());
    assert!(stdout(&factos(&url, &["outbox", "parked", "email"])).contains("no parked messages"));
}

/// `--database sqlite:PATH`: migrate creates the file; status, events,
/// verify read it; subscriptions are listed, reset and removed, parked
/// outbox messages listed and requeued (parked subscriber events say they
/// are not on SQLite yet); a missing file is one sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_works_on_a_sqlite_file() {
    let dir = std::env::temp_dir().join(format!("factos-cli-sqlite-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.db");
    let url = format!("sqlite:{}", file.display());
    let migrated = factos(&url, &["migrate"]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let store = factos_sqlite::SqliteStore::open(&file, factos_sqlite::SqliteOptions::default())
        .await
        .unwrap();
    let stream = StreamId::new("seats").unwrap();
    for i in 0..3 {
        let event = NewEvent::new(
            EventType::new("Booked").unwrap(),
            format!("{{\"seat\":{i}}}").into_bytes(),
        )
        .with_tags(Tags::parse([format!("seat:{i}")]).unwrap());
        store
            .append(&stream, vec![event], AppendCondition::None)
            .await
            .unwrap();
    }
    let status = stdout(&factos(&url, &["status"]));
    assert!(status.contains("events:        3"), "{status}");
    let json = stdout(&factos(&url, &["events", "--tag", "seat:1", "--json"]));
    let line: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(line["data"]["seat"], 1, "{json}");
    let verified = factos(&url, &["verify"]);
    assert!(verified.status.success(), "{}", stdout(&verified));
    assert!(
        stdout(&verified).starts_with("ok:"),
        "{}",
        stdout(&verified)
    );
    // A subscriber and a parked outbox message, listed and managed.
    let subscription =
        factos_sqlite::Subscription::new(&store, "counter", factos::Query::all()).unwrap();
    assert_eq!(subscription.catch_up(&mut Count).await.unwrap(), 3);
    let email = factos::Topic::new("email").unwrap();
    let reactor = {
        let email = email.clone();
        factos::reactor_fn(move |_: &factos::Recorded<String>| {
            vec![factos::OutboxMessage::new(email.clone(), b"hi".to_vec())]
        })
    };
    factos::dispatch_with_outbox(
        &store,
        &StreamId::new("said").unwrap(),
        &factos::Query::all(),
        &Once,
        &Said,
        &(),
        &reactor,
    )
    .await
    .unwrap();
    let outbox = factos_sqlite::Outbox::new(&store, email)
        .with_options(factos_sqlite::OutboxOptions::default().max_attempts(1))
        .unwrap();
    let leased = outbox.lease().await.unwrap();
    outbox.fail(&leased[0], "smtp down").await.unwrap();
    let id = outbox.parked().await.unwrap()[0];
    let listed = stdout(&factos(&url, &["subscriptions"]));
    let words: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    // Four events now: the checkpoint at 3 is one behind the head.
    assert!(
        words.contains(&vec!["counter", "3", "1", "stopped"]),
        "{listed}"
    );
    assert!(words.contains(&vec!["email", "0", "0", "1"]), "{listed}");
    let parked = factos(&url, &["outbox", "parked", "email"]);
    assert_eq!(
        stdout(&parked).trim(),
        id.to_string(),
        "{}",
        stderr(&parked)
    );
    let requeued = factos(&url, &["outbox", "requeue", "email", &id.to_string()]);
    assert!(requeued.status.success(), "{}", stderr(&requeued));
    assert!(outbox.parked().await.unwrap().is_empty());
    let reset = factos(&url, &["subscriptions", "reset", "counter", "--to", "1"]);
    assert!(reset.status.success(), "{}", stderr(&reset));
    assert_eq!(
        subscription.checkpoint().await.unwrap(),
        factos::Position::new(1)
    );
    assert_human_error(
        &factos(&url, &["subscriptions", "parked", "counter"]),
        "not on SQLite yet",
    );
    let removed = factos(&url, &["subscriptions", "remove", "counter"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(stdout(&factos(&url, &["subscriptions"])).contains("no subscribers"));
    assert_human_error(
        &factos(&url, &["subscriptions", "remove", "counter"]),
        "there is no subscriber counter",
    );
    let missing = format!("sqlite:{}", dir.join("nothing.db").display());
    assert_human_error(&factos(&missing, &["status"]), "there is no SQLite file");
    let _ = std::fs::remove_dir_all(&dir);
}
