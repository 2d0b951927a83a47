//! The throwaway cluster starts, serves, and leaves nothing behind.

#![allow(clippy::unwrap_used, clippy::panic)]

use factos_postgres::throwaway::{
    ClusterOptions, TempCluster, ThrowawayError, find_server_binaries,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_serves_and_is_removed_when_dropped() {
    let cluster = TempCluster::start_with(&ClusterOptions::default()).unwrap();
    let dir = cluster.socket_dir().to_path_buf();
    let (client, connection) = cluster
        .config("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let fsync: String = client.query_one("SHOW fsync", &[]).await.unwrap().get(0);
    assert_eq!(fsync, "off", "test clusters trade durability for speed");
    let listen: String = client
        .query_one("SHOW listen_addresses", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(listen, "", "no TCP port may be opened");
    drop(client);
    assert!(dir.exists());
    drop(cluster);
    assert!(!dir.exists(), "the cluster directory outlived the cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_cluster_keeps_fsync_on() {
    let cluster = TempCluster::start_with(&ClusterOptions {
        durable: true,
        ..ClusterOptions::default()
    })
    .unwrap();
    let (client, connection) = cluster
        .config("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let fsync: String = client.query_one("SHOW fsync", &[]).await.unwrap().get(0);
    assert_eq!(fsync, "on");
}

#[test]
fn the_server_binaries_are_found() {
    let dir = find_server_binaries().unwrap();
    assert!(dir.join("initdb").is_file());
}

#[test]
fn the_missing_binaries_error_says_what_to_install() {
    let message = ThrowawayError::NoServerBinaries {
        searched: vec!["PATH".into()],
    }
    .to_string();
    assert!(message.contains("apt-get install postgresql"), "{message}");
    assert!(message.contains("FACTOS_TEST_DATABASE_URL"), "{message}");
}
