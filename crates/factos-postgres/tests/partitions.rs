//! Partitioned subscribers: each event reaches exactly the partitions of its
//! prefixed tags (partition 0 without one), in position order per
//! partition; members that come and go share the partitions; exactly-once
//! projections run by child processes killed mid-run apply every event once.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use factos::{
    AppendCondition, EventStore, EventType, NewEvent, Query, StoredEvent, StreamId, Tags,
};
use factos_postgres::tokio_postgres::Transaction;
use factos_postgres::{
    EventHandler, PartitionedSubscription, Partitioning, PostgresStore, ProjectionHandler,
    StoreOptions, SubscriptionOptions,
};

const PARTITIONS: u32 = 4;

fn options() -> SubscriptionOptions {
    SubscriptionOptions::default()
        .batch_size(10)
        .poll_interval(Duration::from_millis(50))
}

/// Appends `n` events from `first`: event i is tagged `account:{i % 13}`,
/// every 7th also `account:{(i + 5) % 13}`, every 11th has no account.
async fn append_events(store: &PostgresStore, first: u32, n: u32) {
    for i in first..first + n {
        let tags: Vec<String> = if i % 11 == 0 {
            vec![format!("other:{i}")]
        } else if i % 7 == 0 {
            vec![
                format!("account:{}", i % 13),
                format!("account:{}", (i + 5) % 13),
            ]
        } else {
            vec![format!("account:{}", i % 13)]
        };
        let event = NewEvent::new(
            EventType::new("Moved").unwrap(),
            format!("{{\"i\":{i}}}").into_bytes(),
        )
        .with_tags(Tags::parse(tags).unwrap());
        store
            .append(
                &StreamId::new(format!("e-{i}")).unwrap(),
                vec![event],
                AppendCondition::None,
            )
            .await
            .unwrap();
    }
}

/// The partitions each event belongs to, computed by the server from the
/// documented rule (first 32 bits of the tag's MD5 modulo the count).
async fn expected_partitions(store: &PostgresStore) -> BTreeMap<u64, BTreeSet<u32>> {
    let client = store.pool().get().await.unwrap();
    let schema = store.options().schema.quoted();
    let rows = client
        .query(
            &format!(
                "SELECT e.position, coalesce(
                     (SELECT array_agg(DISTINCT (('x' || left(md5(t), 8))::bit(32)::bigint % $1)::int)
                      FROM unnest(e.tags) t WHERE t LIKE 'account:%'),
                     ARRAY[0])
                 FROM {schema}.factos_events e ORDER BY e.position"
            ),
            &[&i64::from(PARTITIONS)],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            let position: i64 = row.get(0);
            let partitions: Vec<i32> = row.get(1);
            (
                u64::try_from(position).unwrap(),
                partitions
                    .into_iter()
                    .map(|p| u32::try_from(p).unwrap())
                    .collect(),
            )
        })
        .collect()
}

/// Records (member, partition, position) of every event handed over.
#[derive(Clone)]
struct Record {
    member: u32,
    partition: u32,
    seen: Arc<Mutex<Vec<(u32, u32, u64)>>>,
}

impl EventHandler for Record {
    type Error = std::convert::Infallible;
    async fn handle(&mut self, events: &[StoredEvent]) -> Result<(), Self::Error> {
        let mut seen = self.seen.lock().unwrap();
        seen.extend(
            events
                .iter()
                .map(|e| (self.member, self.partition, e.position.get())),
        );
        Ok(())
    }
}

/// Runs a member until its stop fires.
fn member(
    subscription: PartitionedSubscription,
    member: u32,
    seen: Arc<Mutex<Vec<(u32, u32, u64)>>>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        subscription
            .run(
                |partition| Record {
                    member,
                    partition,
                    seen: seen.clone(),
                },
                async {
                    let _ = stopped.await;
                },
            )
            .await
            .unwrap();
    });
    (stop, running)
}

/// Waits until every event of `expected` reached each of its partitions.
async fn delivered(seen: &Mutex<Vec<(u32, u32, u64)>>, expected: &BTreeMap<u64, BTreeSet<u32>>) {
    let wanted: usize = expected.values().map(BTreeSet::len).sum();
    let start = Instant::now();
    loop {
        let distinct: BTreeSet<(u32, u64)> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, p, e)| (*p, *e))
            .collect();
        if distinct.len() >= wanted {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} of {wanted} deliveries",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each partition's deliveries, in order, are exactly its events in
/// position order (repeats allowed: at least once).
fn check_partitions(seen: &[(u32, u32, u64)], expected: &BTreeMap<u64, BTreeSet<u32>>) {
    for partition in 0..PARTITIONS {
        let mut got: Vec<u64> = seen
            .iter()
            .filter(|(_, p, _)| *p == partition)
            .map(|(_, _, e)| *e)
            .collect();
        got.dedup();
        let want: Vec<u64> = expected
            .iter()
            .filter(|(_, ps)| ps.contains(&partition))
            .map(|(e, _)| *e)
            .collect();
        assert_eq!(got, want, "partition {partition}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_the_partitions_and_each_event_reaches_its_partitions_in_order() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    append_events(&store, 0, 200).await;
    let split = Partitioning::by_tag_prefix("account:", PARTITIONS).unwrap();
    let subscription = |store: &PostgresStore| {
        PartitionedSubscription::new(store, "ledger", &Query::all(), &split)
            .unwrap()
            .with_options(options())
            .unwrap()
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    // Two members, each its own store instance (another process).
    let (stop_a, a) = member(subscription(&store), 0, seen.clone());
    let (stop_b, b) = member(
        subscription(&common::second_instance(&database, &store)),
        1,
        seen.clone(),
    );
    let expected = expected_partitions(&store).await;
    delivered(&seen, &expected).await;
    // Let a rebalance settle, then write more: both members work.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = seen.lock().unwrap().len();
    append_events(&store, 200, 200).await;
    let expected = expected_partitions(&store).await;
    delivered(&seen, &expected).await;
    let shared: BTreeMap<u32, BTreeSet<u32>> =
        seen.lock().unwrap()[before..]
            .iter()
            .fold(BTreeMap::new(), |mut by_member, (m, p, _)| {
                by_member.entry(*m).or_default().insert(*p);
                by_member
            });
    assert_eq!(
        shared.len(),
        2,
        "with two members both should run partitions: {shared:?}"
    );
    assert!(
        shared[&0].is_disjoint(&shared[&1]),
        "two members ran one partition at once: {shared:?}"
    );
    // One member leaves: the other takes its partitions.
    stop_b.send(()).unwrap();
    b.await.unwrap();
    let before = seen.lock().unwrap().len();
    append_events(&store, 400, 100).await;
    let expected = expected_partitions(&store).await;
    delivered(&seen, &expected).await;
    let after: BTreeSet<u32> = seen.lock().unwrap()[before..]
        .iter()
        .map(|(m, _, _)| *m)
        .collect();
    assert_eq!(after, BTreeSet::from([0]));
    stop_a.send(()).unwrap();
    a.await.unwrap();
    check_partitions(&seen.lock().unwrap(), &expected);
    // Each partition is a subscriber of its own with its checkpoint.
    for partition in subscription(&store).partitions() {
        assert!(
            partition.checkpoint().await.unwrap().is_some(),
            "{}",
            partition.name()
        );
    }
}

#[test]
fn partitioning_is_checked() {
    assert!(Partitioning::by_tag_prefix("", 4).is_err());
    assert!(Partitioning::by_tag_prefix("account:", 0).is_err());
    assert!(Partitioning::by_tag_prefix("account:", factos_postgres::MAX_PARTITIONS + 1).is_err());
    assert!(Partitioning::by_tag_prefix(&"a".repeat(129), 4).is_err());
    assert!(Partitioning::by_tag_prefix("account:\0", 4).is_err());
    let split = Partitioning::by_tag_prefix("account:", 8).unwrap();
    assert_eq!((split.tag_prefix(), split.partitions()), ("account:", 8));
}

// Processes killed mid-batch.

const CHILD_URL: &str = "FACTOS_PARTITION_CHILD_URL";
const CHILD_SCHEMA: &str = "FACTOS_PARTITION_CHILD_SCHEMA";
/// The child's `application_name`, so the parent can see its transactions.
const CHILD_NAME: &str = "FACTOS_PARTITION_CHILD_NAME";

/// Projects each event into `projected` (with the partition and the
/// process) inside the checkpoint's transaction, pausing in it so kills
/// land mid-batch.
struct Project {
    partition: u32,
    /// `projected`, qualified by the test's schema.
    table: String,
}

impl ProjectionHandler for Project {
    type Error = factos_postgres::tokio_postgres::Error;
    async fn apply(
        &mut self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), Self::Error> {
        let partition = i32::try_from(self.partition).unwrap();
        let process = i64::from(std::process::id());
        for event in events {
            let position = i64::try_from(event.position.get()).unwrap();
            tx.execute(
                &format!(
                    "INSERT INTO {} (position, partition, process) VALUES ($1, $2, $3)",
                    self.table
                ),
                &[&position, &partition, &process],
            )
            .await?;
        }
        tx.batch_execute("SELECT pg_sleep(0.02)").await?;
        Ok(())
    }
}

fn child_subscription(store: &PostgresStore) -> PartitionedSubscription {
    PartitionedSubscription::new(
        store,
        "projection",
        &Query::all(),
        &Partitioning::by_tag_prefix("account:", PARTITIONS).unwrap(),
    )
    .unwrap()
    .with_options(options())
    .unwrap()
}

/// The child: runs its share of the partitioned projection until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_child() {
    let (Ok(url), Ok(schema), Ok(name)) = (
        std::env::var(CHILD_URL),
        std::env::var(CHILD_SCHEMA),
        std::env::var(CHILD_NAME),
    ) else {
        return;
    };
    let options = StoreOptions::default().schema(factos_postgres::SchemaName::new(schema).unwrap());
    let mut config = factos_postgres::parse_connection_string(&url).unwrap();
    config.application_name(&name);
    let store = PostgresStore::from_config(config, 16, options).unwrap();
    let table = format!("{}.projected", store.options().schema.quoted());
    child_subscription(&store)
        .run_projection(
            |partition| Project {
                partition,
                table: table.clone(),
            },
            std::future::pending(),
        )
        .await
        .unwrap();
}

fn spawn_child(
    database: &factos_postgres::throwaway::TestDatabase,
    store: &PostgresStore,
    name: &str,
) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "partition_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_URL, database.connection_string())
        .env(CHILD_SCHEMA, store.options().schema.as_str())
        .env(CHILD_NAME, name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until `wanted` rows are projected; (process, partition, position)
/// of each row in commit order.
async fn projected_when_complete(
    client: &factos_postgres::deadpool_postgres::Object,
    schema: &str,
    wanted: usize,
) -> Vec<(u32, u32, u64)> {
    let start = Instant::now();
    loop {
        let rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM {schema}.projected"), &[])
            .await
            .unwrap()
            .get(0);
        if usize::try_from(rows).unwrap() >= wanted {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{rows} of {wanted} projected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = client
        .query(
            &format!("SELECT partition, position, process FROM {schema}.projected ORDER BY seq"),
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            let (partition, position, process): (i32, i64, i64) =
                (row.get(0), row.get(1), row.get(2));
            (
                u32::try_from(process).unwrap(),
                u32::try_from(partition).unwrap(),
                u64::try_from(position).unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_projections_killed_mid_batch_apply_every_event_once_per_partition() {
    if std::env::var(CHILD_URL).is_ok() {
        return;
    }
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let schema = store.options().schema.quoted();
    store
        .pool()
        .get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "CREATE TABLE {schema}.projected (position bigint NOT NULL, partition int NOT NULL, \
             process bigint NOT NULL, seq bigserial PRIMARY KEY)"
        ))
        .await
        .unwrap();
    let client = store.pool().get().await.unwrap();
    let mut children = vec![
        (
            "child-0".to_string(),
            spawn_child(&database, &store, "child-0"),
        ),
        (
            "child-1".to_string(),
            spawn_child(&database, &store, "child-1"),
        ),
    ];
    let (mut kills, mut kills_in_a_batch) = (0, 0);
    for round in 0..4u32 {
        append_events(&store, round * 150, 150).await;
        // Kill the oldest member as soon as it has a batch open (its
        // handler pauses in the batch's transaction), or after 2 s; a new
        // process joins.
        let (name, mut victim) = children.remove(0);
        let mut open = 0;
        let waiting = Instant::now();
        while open == 0 && waiting.elapsed() < Duration::from_secs(2) {
            open = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE application_name = $1 AND state = 'idle in transaction'",
                    &[&name],
                )
                .await
                .unwrap()
                .get::<_, i64>(0);
        }
        victim.kill().unwrap();
        victim.wait().unwrap();
        kills += 1;
        kills_in_a_batch += usize::from(open > 0);
        let name = format!("child-{}", round + 2);
        children.push((name.clone(), spawn_child(&database, &store, &name)));
    }
    let expected = expected_partitions(&store).await;
    let wanted: usize = expected.values().map(BTreeSet::len).sum();
    let projected = projected_when_complete(&client, &schema, wanted).await;
    for (_, mut child) in children {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // Exactly once per partition: no (partition, event) twice.
    let distinct: BTreeSet<(u32, u64)> = projected.iter().map(|(_, p, e)| (*p, *e)).collect();
    assert_eq!(
        distinct.len(),
        projected.len(),
        "an event was projected twice in a partition"
    );
    assert_eq!(projected.len(), wanted);
    // In commit order each partition's events are in position order.
    check_partitions(&projected, &expected);
    let processes: BTreeSet<u32> = projected.iter().map(|(m, _, _)| *m).collect();
    assert!(
        processes.len() >= 3,
        "the work should pass between processes: {processes:?}"
    );
    // A batch's transaction was open in the killed process at least once
    // (its handler pauses inside it).
    assert!(kills_in_a_batch > 0, "no kill landed inside a batch");
    eprintln!(
        "{kills} kills ({kills_in_a_batch} with a batch open), {} rows by {} processes",
        projected.len(),
        processes.len()
    );
}
