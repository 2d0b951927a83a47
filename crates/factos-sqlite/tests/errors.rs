//! A file that is not a database, a file locked by another writer, a full
//! file (capped with `max_page_count`) and a read-only file give typed
//! errors, and lose nothing acknowledged.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use factos::{
    AppendCondition, AppendError, EventStore, EventType, NewEvent, Query, ReadOptions,
    StoreErrorKind, StreamId,
};
use factos_sqlite::{SqliteOptions, SqliteStore};

fn event(bytes: usize) -> NewEvent {
    NewEvent::new(EventType::new("Big").unwrap(), vec![7; bytes])
}

async fn count(store: &SqliteStore) -> usize {
    store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap()
        .events
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_database_is_corrupt() {
    let dir = common::Dir::new();
    let file = dir.file();
    std::fs::write(&file, vec![0x5a; 8192]).unwrap();
    let error = SqliteStore::open(&file, SqliteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    assert!(!error.is_retry_safe(), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_locked_by_another_writer_times_out_and_writes_nothing() {
    let dir = common::Dir::new();
    let file = dir.file();
    let mut options = SqliteOptions::default();
    options.busy_timeout = Duration::from_millis(200);
    let store = SqliteStore::open(&file, options).await.unwrap();
    let s = StreamId::new("s").unwrap();
    store
        .append(&s, vec![event(10)], AppendCondition::None)
        .await
        .unwrap();
    let other = rusqlite::Connection::open(&file).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let refused = store
        .append(&s, vec![event(10)], AppendCondition::None)
        .await;
    match refused {
        Err(AppendError::Store(e)) => {
            assert_eq!(e.kind(), StoreErrorKind::Timeout, "{e}");
            assert!(e.is_retry_safe(), "{e}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    other.execute_batch("ROLLBACK").unwrap();
    store
        .append(&s, vec![event(10)], AppendCondition::None)
        .await
        .unwrap();
    assert_eq!(count(&store).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_file_refuses_the_write_and_keeps_what_it_holds() {
    let dir = common::Dir::new();
    let file = dir.file();
    let store = SqliteStore::open(&file, SqliteOptions::default())
        .await
        .unwrap();
    let s = StreamId::new("s").unwrap();
    store
        .append(&s, vec![event(100)], AppendCondition::None)
        .await
        .unwrap();
    drop(store);
    let mut options = SqliteOptions::default();
    options.max_page_count = Some(40);
    let capped = SqliteStore::open(&file, options).await.unwrap();
    let mut acknowledged = 1;
    let refusal = loop {
        match capped
            .append(&s, vec![event(4000)], AppendCondition::None)
            .await
        {
            Ok(_) => acknowledged += 1,
            Err(e) => break e,
        }
        assert!(acknowledged < 100, "the cap never refused a write");
    };
    match refusal {
        AppendError::Store(e) => assert_eq!(e.kind(), StoreErrorKind::Rejected, "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(capped);
    let store = SqliteStore::open(&file, SqliteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        count(&store).await,
        acknowledged,
        "acknowledged events after the refusal"
    );
    assert!(store.verify().await.unwrap().is_empty());
}

/// Makes `file` read-only for this process: by its mode, or, for root
/// (whom modes do not stop), with the immutable attribute.
fn make_read_only(file: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o444)).unwrap();
    if std::fs::OpenOptions::new().append(true).open(file).is_ok() {
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(file)
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "cannot make the file read-only for this user (chattr +i failed)"
        );
    }
    assert!(std::fs::OpenOptions::new().append(true).open(file).is_err());
}

fn make_writable(file: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let _ = std::process::Command::new("chattr")
        .arg("-i")
        .arg(file)
        .status();
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_file_gives_a_typed_error_and_keeps_its_events() {
    let dir = common::Dir::new();
    let file = dir.file();
    let store = SqliteStore::open(&file, SqliteOptions::default())
        .await
        .unwrap();
    let s = StreamId::new("s").unwrap();
    store
        .append(&s, vec![event(10)], AppendCondition::None)
        .await
        .unwrap();
    drop(store);
    make_read_only(&file);
    let outcome: Result<(), factos::StoreError> =
        match SqliteStore::open(&file, SqliteOptions::default()).await {
            Err(e) => Err(e),
            Ok(store) => match store
                .append(&s, vec![event(10)], AppendCondition::None)
                .await
            {
                Err(AppendError::Store(e)) => Err(e),
                other => panic!("a read-only file took a write: {other:?}"),
            },
        };
    make_writable(&file);
    let error = outcome.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Rejected, "{error}");
    let store = SqliteStore::open(&file, SqliteOptions::default())
        .await
        .unwrap();
    assert_eq!(count(&store).await, 1);
}

/// `verify` finds what raw inserts (allowed by the triggers, which refuse
/// only changes) can break: a revision out of line, a missing mirror row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_gap_in_revisions_and_a_missing_mirror_row() {
    let dir = common::Dir::new();
    let file = dir.file();
    let store = SqliteStore::open(&file, SqliteOptions::default())
        .await
        .unwrap();
    store
        .append(
            &StreamId::new("s").unwrap(),
            vec![event(1)],
            AppendCondition::None,
        )
        .await
        .unwrap();
    assert!(store.verify().await.unwrap().is_empty());
    let raw = rusqlite::Connection::open(&file).unwrap();
    let insert = "INSERT INTO factos_events (id, stream, revision, type, version, tags, metadata, data, recorded_at)
                  VALUES (?1, ?2, ?3, 'Raw', 1, ?4, '{}', x'00', 0)";
    raw.execute(
        insert,
        rusqlite::params![uuid::Uuid::new_v4().as_bytes().as_slice(), "s", 5, "[]"],
    )
    .unwrap();
    raw.execute(
        insert,
        rusqlite::params![
            uuid::Uuid::new_v4().as_bytes().as_slice(),
            "t",
            0,
            "[\"lost:1\"]"
        ],
    )
    .unwrap();
    let faults = store.verify().await.unwrap();
    let shown: Vec<String> = faults.iter().map(ToString::to_string).collect();
    assert_eq!(faults.len(), 2, "{shown:?}");
    assert!(
        matches!(&faults[0], factos_sqlite::Fault::Revisions { stream } if stream == "s"),
        "{shown:?}"
    );
    assert!(
        matches!(faults[1], factos_sqlite::Fault::Mirror { position: 3 }),
        "{shown:?}"
    );
}

/// An in-memory database cannot be shared by the store's connections: refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_database_is_refused() {
    let error = SqliteStore::open(":memory:", SqliteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Rejected, "{error}");
}
