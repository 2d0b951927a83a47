//! TLS: a throwaway cluster with a certificate signed by a test CA, listening
//! on loopback; the store connects with `sslmode=require` and rustls, trusting
//! only that CA, and dispatches. A store that does not trust the CA fails to
//! connect. (Certificates are made with the `openssl` command.)

#![allow(clippy::unwrap_used, clippy::panic, clippy::too_many_lines)]

use std::path::Path;
use std::process::Command;

use factos::{
    AppendCondition, EventStore, EventType, NewEvent, Query, ReadOptions, StoreErrorKind, StreamId,
};
use factos_postgres::throwaway::{ClusterOptions, TempCluster};
use factos_postgres::{PostgresStore, StoreOptions};

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and a server certificate for 127.0.0.1, in `dir`.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=factos test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatches_over_tls_with_a_trusted_ca_only() {
    assert!(
        Command::new("openssl").arg("version").output().is_ok(),
        "the TLS test needs the openssl command (Debian: apt-get install openssl)"
    );
    let dir = std::env::temp_dir().join(format!("factos-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
    // PostgreSQL reads the key as the server's user, and wants it private.
    let running_as_root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if running_as_root {
        Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(&dir)
            .status()
            .unwrap();
    }
    Command::new("chmod")
        .arg("600")
        .arg(dir.join("server.key"))
        .status()
        .unwrap();
    let port = free_port();
    let settings = vec![
        ("listen_addresses".to_string(), "127.0.0.1".to_string()),
        ("port".to_string(), port.to_string()),
        ("ssl".to_string(), "on".to_string()),
        (
            "ssl_cert_file".to_string(),
            dir.join("server.pem").display().to_string(),
        ),
        (
            "ssl_key_file".to_string(),
            dir.join("server.key").display().to_string(),
        ),
    ];
    let cluster = TempCluster::start_with(&ClusterOptions {
        settings,
        ..ClusterOptions::default()
    })
    .unwrap();
    let url = format!(
        "host=127.0.0.1 port={port} user=postgres password=not-logged dbname=postgres sslmode=require"
    );
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();

    let store =
        PostgresStore::from_config_tls(url.parse().unwrap(), 4, StoreOptions::default(), &ca)
            .unwrap();
    store.migrate().await.unwrap();
    let stream = StreamId::new("over-tls").unwrap();
    store
        .append(
            &stream,
            vec![NewEvent::new(
                EventType::new("Sealed").unwrap(),
                b"{}".to_vec(),
            )],
            AppendCondition::None,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .read(&Query::all(), ReadOptions::default())
            .await
            .unwrap()
            .events
            .len(),
        1
    );
    let client = store.pool().get().await.unwrap();
    let encrypted: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "the connection is not encrypted");

    // A CA the server's certificate was not signed by is refused, and the
    // error does not carry the password.
    let other = tempfile_dir(&dir, "other");
    openssl(
        &other,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=someone else",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    let untrusted = PostgresStore::from_config_tls(
        url.parse().unwrap(),
        1,
        StoreOptions::default(),
        &std::fs::read(other.join("ca.pem")).unwrap(),
    )
    .unwrap();
    let error = untrusted
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("not-logged"), "{shown}");

    drop(client);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir(parent: &Path, name: &str) -> std::path::PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
