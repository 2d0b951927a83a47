//! Connections: no part of a connection string appears in an error,
//! connection strings are rewritten through the driver's configuration, and
//! waiting for a pooled connection has a bound.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::error::Error;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use factos::{
    AppendCondition, AppendError, EventStore, EventType, NewEvent, Query, ReadOptions,
    StoreErrorKind, StreamId,
};
use factos_postgres::throwaway::TestServer;
use factos_postgres::tokio_postgres::{self, Config};
use factos_postgres::{PostgresStore, StoreOptions};

/// Everything an error can show: its text, its debug form and its sources'.
fn everything_shown(error: &dyn Error) -> String {
    let mut shown = format!("{error} {error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        write!(shown, " {cause} {cause:?}").unwrap();
        source = cause.source();
    }
    shown
}

#[test]
fn no_part_of_a_malformed_connection_string_appears_in_its_error() {
    for url in [
        // An unquoted password with a space: the rest reads as an option.
        "host=h user=u password=sw0rdfish l3aked dbname=x",
        "host=h password=sw0rdfish l3aked=1 dbname=x",
        "host=h password='sw0rdfish l3aked dbname=x",
        "postgresql://u:pw@h/db?sw0rdfish l3aked=1",
        "postgresql://u:sw0rdfish l3aked@h:notaport/db",
    ] {
        let error = PostgresStore::connect(url, StoreOptions::default()).unwrap_err();
        let shown = everything_shown(&error);
        assert!(
            !shown.contains("sw0rdfish") && !shown.contains("l3aked"),
            "{url}: {shown}"
        );
        assert!(error.to_string().contains("connection string"), "{error}");
        assert_eq!(error.kind(), StoreErrorKind::Other);
        assert!(!error.is_retry_safe());
    }
    // What may be said is said: which option has an invalid value.
    let port = PostgresStore::connect("postgresql://u:pw@h:notaport/db", StoreOptions::default())
        .unwrap_err();
    assert!(everything_shown(&port).contains("`port`"), "{port}");
    // And a program can ask which (the typed error is the source).
    let typed = std::error::Error::source(&port)
        .and_then(|e| e.downcast_ref::<factos_postgres::InvalidConnectionString>())
        .map(factos_postgres::InvalidConnectionString::invalid_option);
    assert_eq!(typed, Some(Some("port")), "{port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_string_is_rewritten_through_the_driver_configuration() {
    let TestServer::Throwaway(cluster) = TestServer::shared().unwrap() else {
        eprintln!("skipped: needs the throwaway cluster (its socket path builds the URL)");
        return;
    };
    let direct = cluster.config("postgres");
    let tokio_postgres::config::Host::Unix(socket) = &direct.get_hosts()[0] else {
        panic!("the throwaway cluster listens on a socket");
    };
    let password = "a/b c'd\\e@f";
    let url = format!(
        "postgresql://postgres:{}@{}:{}/postgres?application_name=rewritten",
        password.replace('@', "%40"),
        socket.display().to_string().replace('/', "%2F"),
        direct.get_ports()[0]
    );
    let given: Config = url.parse().unwrap();
    assert_eq!(given.get_password(), Some(password.as_bytes()));
    let server = TestServer::External {
        config: Box::new(given),
        url,
    };
    let database = server.create_database().await.unwrap();
    let rewritten: Config = database.connection_string().parse().unwrap();
    assert_eq!(rewritten.get_password(), Some(password.as_bytes()));
    assert_eq!(rewritten.get_dbname(), Some(database.name()));
    assert_eq!(rewritten.get_user(), Some("postgres"));
    assert_eq!(rewritten.get_application_name(), Some("rewritten"));
    assert_eq!(rewritten.get_hosts(), direct.get_hosts());
    assert_eq!(rewritten.get_ports(), direct.get_ports());
    let (client, connection) = rewritten.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let current: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(current, database.name());
    // The throwaway cluster's own connection string parses to its configuration.
    let own: Config = cluster.connection_string("postgres").parse().unwrap();
    assert_eq!(own.get_hosts(), direct.get_hosts());
    assert_eq!(own.get_ports(), direct.get_ports());
    assert_eq!(own.get_dbname(), Some("postgres"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_pooled_connection_ends_in_a_retry_safe_timeout() {
    assert_eq!(
        StoreOptions::default().pool_wait_timeout,
        Duration::from_secs(30)
    );
    let database = common::database().await;
    let wait = Duration::from_millis(300);
    let store = PostgresStore::from_config(
        database.config(),
        1,
        StoreOptions::default().pool_wait_timeout(wait),
    )
    .unwrap();
    store.migrate().await.unwrap();
    let held = store.pool().get().await.unwrap();
    let started = Instant::now();
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        store.read(&Query::all(), ReadOptions::default()),
    )
    .await
    .expect("the read waited for a connection for ever");
    let error = read.unwrap_err();
    assert!(started.elapsed() >= wait, "{:?}", started.elapsed());
    assert_eq!(error.kind(), StoreErrorKind::Timeout, "{error}");
    assert!(error.is_retry_safe());
    assert!(error.to_string().contains("pool_wait_timeout"), "{error}");
    let event = NewEvent::new(EventType::new("Happened").unwrap(), b"{}".to_vec());
    let append = tokio::time::timeout(
        Duration::from_secs(10),
        store.append(
            &StreamId::new("s").unwrap(),
            vec![event.clone()],
            AppendCondition::None,
        ),
    )
    .await
    .expect("the append waited for a connection for ever");
    assert!(
        matches!(&append, Err(AppendError::Store(e)) if e.kind() == StoreErrorKind::Timeout),
        "{append:?}"
    );
    // Once a connection is free again, everything works.
    drop(held);
    store
        .append(
            &StreamId::new("s").unwrap(),
            vec![event],
            AppendCondition::None,
        )
        .await
        .unwrap();
}
