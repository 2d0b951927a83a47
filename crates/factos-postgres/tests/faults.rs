//! Faults under load: backends terminated and the server restarted in
//! immediate mode while writers dispatch, each command under an idempotency
//! key of its own and retried with that key after every retry-safe error and
//! every unknown commit outcome. Afterwards every command is in the log
//! exactly once, with the ids its key derives and the positions its caller
//! was given, nothing else is, the tag mirror holds exactly the events' tags,
//! the pool recovers by itself, and every failure was a store error that
//! says whether a retry is safe. Also: a real unknown commit outcome (the
//! answer to a COMMIT cut off) followed by a keyed retry, and the statement
//! timeout.

#![allow(clippy::unwrap_used, clippy::panic, clippy::too_many_lines)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use factos::{
    DispatchError, EventStore, Query, QueryItem, ReadOptions, StoreErrorKind, StreamId, Tag,
    dispatch_with_query, dispatch_with_query_idempotent, event_id,
};
use factos_postgres::throwaway::{ClusterOptions, TempCluster};
use factos_postgres::{PostgresStore, StoreOptions};
use factos_testkit::model::{Bounded, KitCodec, KitEvent};

/// A command a writer saw through: its key and the (id, position) of the
/// events the successful attempt returned.
struct Acknowledged {
    dispatch: String,
    key: uuid::Uuid,
    events: BTreeSet<(uuid::Uuid, u64)>,
}

/// Terminates every other backend of the database; returns how many.
async fn terminate_backends(cluster: &TempCluster) -> i64 {
    let (client, connection) = cluster
        .config("postgres")
        .connect(factos_postgres::tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to terminate backends: {e}"));
    tokio::spawn(connection);
    client
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE pid <> pg_backend_pid() AND datname = current_database()",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("cannot terminate backends: {e}"))
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_command_lands_exactly_once_under_backend_terminations_and_a_crash() {
    // fsync and synchronous commit on: with them off (the test default) a crash
    // may lose commits the server already acknowledged, by design.
    let cluster = Arc::new(
        TempCluster::start_with(&ClusterOptions {
            durable: true,
            ..ClusterOptions::default()
        })
        .unwrap(),
    );
    let store = PostgresStore::from_config(cluster.config("postgres"), 16, StoreOptions::default())
        .unwrap();
    store.migrate().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (0..12)
        .map(|writer| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let own = format!("w:{writer}");
                let query = Query::item(QueryItem::parse(["Part"], [own.as_str()]).unwrap());
                let stream = StreamId::new(format!("writer-{writer}")).unwrap();
                let (mut acknowledged, mut errors) = (Vec::new(), HashMap::<String, usize>::new());
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let dispatch = format!("d:{writer}-{n}");
                    let key = uuid::Uuid::now_v7();
                    let command = vec![
                        KitEvent::new("Part", &[&own, &dispatch]),
                        KitEvent::new("Part", &[&own, &dispatch]),
                    ];
                    // The same command under the same key until it succeeds,
                    // whatever the faults (even after `stop`).
                    let started = Instant::now();
                    loop {
                        assert!(
                            started.elapsed() < Duration::from_secs(60),
                            "writer {writer}: {dispatch} did not land within 60 s: {errors:?}"
                        );
                        let outcome = tokio::time::timeout(
                            Duration::from_secs(20),
                            dispatch_with_query_idempotent(
                                &store,
                                &stream,
                                &query,
                                &Bounded { limit: usize::MAX },
                                &KitCodec::default(),
                                &command,
                                key,
                            ),
                        )
                        .await;
                        let Ok(outcome) = outcome else {
                            panic!("writer {writer}: a dispatch hung for 20 s")
                        };
                        match outcome {
                            Ok(done) => {
                                acknowledged.push(Acknowledged {
                                    dispatch,
                                    key,
                                    events: done
                                        .events
                                        .iter()
                                        .map(|e| (e.id, e.position.get()))
                                        .collect(),
                                });
                                break;
                            }
                            Err(DispatchError::Store(e))
                                if e.is_retry_safe()
                                    || e.kind() == StoreErrorKind::CommitOutcomeUnknown =>
                            {
                                *errors
                                    .entry(format!(
                                        "{:?} (retry safe: {})",
                                        e.kind(),
                                        e.is_retry_safe()
                                    ))
                                    .or_default() += 1;
                                // Back off a little while the server is down.
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            Err(e) => panic!("writer {writer}: unexpected {e}"),
                        }
                    }
                }
                (acknowledged, errors)
            })
        })
        .collect();

    // Faults: terminate every other backend a few times, then crash-restart the server.
    let mut terminated = Vec::new();
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if round == 3 {
            let cluster = cluster.clone();
            tokio::task::spawn_blocking(move || cluster.restart_immediate())
                .await
                .unwrap()
                .unwrap();
            continue;
        }
        terminated.push(terminate_backends(&cluster).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut acknowledged = Vec::new();
    let mut errors: HashMap<String, usize> = HashMap::new();
    for writer in writers {
        let (acks, errs) = writer.await.unwrap();
        acknowledged.extend(acks);
        for (kind, count) in errs {
            *errors.entry(kind).or_default() += count;
        }
    }
    println!(
        "{} commands; backends terminated per round: {terminated:?}; errors: {errors:?}",
        acknowledged.len()
    );
    assert!(
        terminated.iter().all(|&n| n > 0),
        "a termination round found no backend: {terminated:?}"
    );
    assert!(
        !errors.is_empty(),
        "the faults never reached a writer: the test proves nothing"
    );

    // The pool recovers by itself.
    let after = Query::tagged_with_all([Tag::new("w:after").unwrap()]);
    dispatch_with_query(
        &store,
        &StreamId::new("after").unwrap(),
        &after,
        &Bounded { limit: 1 },
        &KitCodec::default(),
        &vec![KitEvent::new("Part", &["w:after"])],
    )
    .await
    .unwrap();

    let log = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap()
        .events;
    let mut per_dispatch: HashMap<String, BTreeSet<(uuid::Uuid, u64)>> = HashMap::new();
    for event in &log {
        let dispatch = event
            .tags
            .iter()
            .find(|t| t.as_str().starts_with("d:"))
            .map_or_else(|| "none".to_string(), |t| t.as_str().to_string());
        let fresh = per_dispatch
            .entry(dispatch.clone())
            .or_default()
            .insert((event.id, event.position.get()));
        assert!(fresh, "{dispatch}: an event is listed twice");
    }
    let tagless = per_dispatch.remove("none").unwrap_or_default();
    assert_eq!(
        tagless.len(),
        1,
        "only the event after the faults: {tagless:?}"
    );
    for command in &acknowledged {
        let keyed: BTreeSet<uuid::Uuid> = (0..2).map(|i| event_id(command.key, i)).collect();
        let returned: BTreeSet<uuid::Uuid> = command.events.iter().map(|e| e.0).collect();
        assert_eq!(
            returned, keyed,
            "{}: the ids returned are not its key's",
            command.dispatch
        );
        assert_eq!(
            per_dispatch.remove(&command.dispatch).as_ref(),
            Some(&command.events),
            "{}: the log does not hold exactly the events its caller was given",
            command.dispatch
        );
    }
    assert!(
        per_dispatch.is_empty(),
        "commands no caller saw through are in the log: {:?}",
        per_dispatch.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        common::mirror_mismatches(&store).await,
        0,
        "the tag mirror does not match the events"
    );
}

/// A proxy in front of the test server that, once armed, cuts the
/// connection when the server's answer to a `COMMIT` passes through, before
/// the client sees it: the server has committed, the client cannot know.
struct CommitCutter {
    port: u16,
    armed: Arc<AtomicBool>,
    cut: Arc<std::sync::atomic::AtomicUsize>,
}

/// The `CommandComplete` message of a `COMMIT`.
const COMMIT_COMPLETE: &[u8] = b"C\0\0\0\x0bCOMMIT\0";

/// A byte stream to the server.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

async fn upstream(config: &factos_postgres::tokio_postgres::Config) -> Box<dyn Io> {
    use factos_postgres::tokio_postgres::config::Host;
    let port = config.get_ports().first().copied().unwrap_or(5432);
    match config.get_hosts().first() {
        Some(Host::Unix(dir)) => Box::new(
            tokio::net::UnixStream::connect(dir.join(format!(".s.PGSQL.{port}")))
                .await
                .unwrap(),
        ),
        Some(Host::Tcp(host)) => Box::new(
            tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .unwrap(),
        ),
        None => panic!("the test server has no host"),
    }
}

impl CommitCutter {
    async fn start(config: factos_postgres::tokio_postgres::Config) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        {
            let (armed, cut) = (armed.clone(), cut.clone());
            tokio::spawn(async move {
                loop {
                    let (client, _) = listener.accept().await.unwrap();
                    let server = upstream(&config).await;
                    let (armed, cut) = (armed.clone(), cut.clone());
                    tokio::spawn(async move {
                        let (mut client_read, mut client_write) = client.into_split();
                        let (mut server_read, mut server_write) = tokio::io::split(server);
                        let to_server = tokio::spawn(async move {
                            let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                        });
                        let mut buffer = vec![0u8; 64 * 1024];
                        while let Ok(n) = server_read.read(&mut buffer).await {
                            if n == 0 {
                                break;
                            }
                            let chunk = &buffer[..n];
                            if chunk
                                .windows(COMMIT_COMPLETE.len())
                                .any(|w| w == COMMIT_COMPLETE)
                                && armed.swap(false, Ordering::SeqCst)
                            {
                                cut.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            if client_write.write_all(chunk).await.is_err() {
                                break;
                            }
                        }
                        // Both directions closed: the client sees the
                        // connection break with no answer.
                        to_server.abort();
                    });
                }
            });
        }
        Self { port, armed, cut }
    }

    fn config(
        &self,
        through: &factos_postgres::tokio_postgres::Config,
    ) -> factos_postgres::tokio_postgres::Config {
        let mut config = factos_postgres::tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(through.get_user().unwrap_or("postgres"))
            .dbname(through.get_dbname().unwrap_or("postgres"));
        if let Some(password) = through.get_password() {
            config.password(password);
        }
        config
    }
}

/// A dispatch whose COMMIT the server carried out but whose answer never
/// arrived fails with `CommitOutcomeUnknown`; the first attempt's events are
/// in the log, and a retry under the same key returns exactly them (ids and
/// positions) without appending anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_retry_after_an_unknown_commit_outcome_returns_the_committed_events() {
    let database = common::database().await;
    let direct = common::store_in(&database, StoreOptions::default()).await;
    let cutter = CommitCutter::start(database.config()).await;
    let store = PostgresStore::from_config(
        cutter.config(&database.config()),
        2,
        direct.options().clone(),
    )
    .unwrap();
    let query = Query::tagged_with_all([Tag::new("invoice:1").unwrap()]);
    let stream = StreamId::new("invoice-1").unwrap();
    let command = vec![
        KitEvent::new("Paid", &["invoice:1"]),
        KitEvent::new("Receipt", &["invoice:1"]),
    ];
    let key = uuid::Uuid::now_v7();
    let (decider, codec) = (Bounded { limit: 10 }, KitCodec::default());
    let dispatch =
        || dispatch_with_query_idempotent(&store, &stream, &query, &decider, &codec, &command, key);
    cutter.armed.store(true, Ordering::SeqCst);
    match dispatch().await {
        Err(DispatchError::Store(e)) if e.kind() == StoreErrorKind::CommitOutcomeUnknown => {}
        other => panic!("expected CommitOutcomeUnknown, got {other:?}"),
    }
    assert_eq!(
        cutter.cut.load(Ordering::SeqCst),
        1,
        "the COMMIT's answer was cut"
    );
    let stored: Vec<(uuid::Uuid, u64)> = direct
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| (e.id, e.position.get()))
        .collect();
    let ids: Vec<uuid::Uuid> = stored.iter().map(|e| e.0).collect();
    assert_eq!(
        ids,
        vec![event_id(key, 0), event_id(key, 1)],
        "the first attempt committed"
    );
    let retried = dispatch().await.unwrap();
    let returned: Vec<(uuid::Uuid, u64)> = retried
        .events
        .iter()
        .map(|e| (e.id, e.position.get()))
        .collect();
    assert_eq!(returned, stored, "the retry returns the committed events");
    let after: Vec<(uuid::Uuid, u64)> = direct
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| (e.id, e.position.get()))
        .collect();
    assert_eq!(after, stored, "the retry appended nothing");
}

/// A dispatch whose statement runs beyond `statement_timeout` (it waits for
/// a table lock held elsewhere) fails with a retry-safe `Timeout` naming the
/// statement timeout, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_beyond_the_statement_timeout_fails_with_timeout_and_writes_nothing() {
    let database = common::database().await;
    let store = common::store_in(
        &database,
        StoreOptions::default().statement_timeout(Duration::from_millis(300)),
    )
    .await;
    let (holder, connection) = database
        .config()
        .connect(factos_postgres::tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    holder
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {}.factos_events IN EXCLUSIVE MODE",
            store.options().schema.quoted()
        ))
        .await
        .unwrap();
    let query = Query::tagged_with_all([Tag::new("slow:1").unwrap()]);
    let stream = StreamId::new("slow").unwrap();
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        dispatch_with_query(
            &store,
            &stream,
            &query,
            &Bounded { limit: 10 },
            &KitCodec::default(),
            &vec![KitEvent::new("Part", &["slow:1"])],
        ),
    )
    .await
    .expect("the statement timeout never struck");
    match outcome {
        Err(DispatchError::Store(e)) if e.kind() == StoreErrorKind::Timeout => {
            assert!(e.is_retry_safe());
            assert!(e.to_string().contains("statement timeout"), "{e}");
        }
        other => panic!("expected a Timeout, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert!(
        store
            .read(&Query::all(), ReadOptions::default())
            .await
            .unwrap()
            .events
            .is_empty(),
        "nothing written"
    );
}
