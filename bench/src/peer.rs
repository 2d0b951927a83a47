//! The peer baseline: `disintegrate-postgres` (crates.io) doing the
//! disjoint and hot workloads on the same server, in its own database.
//!
//! Its schema is created from its own SQL (`bench/sql/disintegrate_schema.sql`,
//! see there for the one PostgreSQL 15 workaround) and the store is built
//! with `PgEventStore::new_uninitialized`. It appends under SERIALIZABLE and
//! does not retry: a failed decision counts as a conflict and is not
//! retried, like the failed conditions of the factos rows.

use std::time::{Duration, Instant};

use disintegrate::serde::json::Json;
use disintegrate::{Decision, Event, NoSnapshot, StateMutate, StateQuery};
use disintegrate_postgres::PgEventStore;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::{BoxError, Sample, Workload};

/// The one event: a booking on a boundary (its only domain id).
#[derive(Debug, Clone, PartialEq, Eq, Event, Serialize, Deserialize)]
#[stream(BookingEvent, [Booked])]
pub(crate) enum PeerEvent {
    /// A booking.
    Booked {
        /// The boundary.
        #[id]
        boundary: String,
    },
}

/// Counts the bookings of one boundary.
#[derive(Default, StateQuery, Clone, Serialize, Deserialize)]
#[state_query(BookingEvent)]
pub(crate) struct Bookings {
    #[id]
    boundary: String,
    count: u64,
}

impl StateMutate for Bookings {
    fn mutate(&mut self, _: Self::Event) {
        self.count += 1;
    }
}

/// Never refused.
#[derive(Debug)]
pub(crate) struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

/// Books one more on a boundary (like the factos subjects' decider).
struct Book(String);

impl Decision for Book {
    type Event = PeerEvent;
    type StateQuery = Bookings;
    type Error = Never;

    fn state_query(&self) -> Bookings {
        Bookings {
            boundary: self.0.clone(),
            count: 0,
        }
    }

    fn process(&self, _: &Bookings) -> Result<Vec<PeerEvent>, Never> {
        Ok(vec![PeerEvent::Booked {
            boundary: self.0.clone(),
        }])
    }
}

pub(crate) type Maker =
    disintegrate_postgres::PgDecisionMaker<PeerEvent, Json<PeerEvent>, NoSnapshot>;

/// The peer's decision maker on database `database` of the cluster whose
/// socket is in `socket_dir` (the database must exist).
pub(crate) async fn connect(
    socket_dir: &std::path::Path,
    database: &str,
) -> Result<Maker, BoxError> {
    let options = PgConnectOptions::new()
        .socket(socket_dir)
        .username("postgres")
        .database(database);
    let pool = PgPoolOptions::new()
        .max_connections(80)
        .connect_with(options)
        .await?;
    sqlx::raw_sql(include_str!("../sql/disintegrate_schema.sql"))
        .execute(&pool)
        .await?;
    let store = PgEventStore::new_uninitialized(pool, Json::<PeerEvent>::default());
    Ok(disintegrate_postgres::decision_maker(store, NoSnapshot))
}

/// `clients` clients deciding for `duration` on the same boundaries the
/// factos subjects use for `workload`. A decision that fails with the
/// peer's concurrency error counts as a failed condition; a SERIALIZABLE
/// failure it reports as a database error counts in `serialization_errors`.
pub(crate) async fn run(
    maker: &Maker,
    workload: Workload,
    clients: usize,
    duration: Duration,
    round: usize,
) -> Sample {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let maker = maker.clone();
            tokio::spawn(async move {
                let mut latencies_us = Vec::new();
                let (mut conflicts, mut serialization, mut errors) = (0u64, 0u64, 0u64);
                let mut n: usize = client * 7919;
                while Instant::now() < deadline {
                    n = n.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let boundary = match workload {
                        Workload::Hot => format!("hot:{round}"),
                        _ => format!("b:peer:{client}:{}", (n >> 16) % 50),
                    };
                    let started = Instant::now();
                    match maker.make(Book(boundary)).await {
                        Ok(_) => latencies_us
                            .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)),
                        Err(disintegrate::DecisionError::StateStore(e)) => {
                            match e.downcast_ref::<disintegrate_postgres::Error>() {
                                Some(disintegrate_postgres::Error::Concurrency) => conflicts += 1,
                                Some(disintegrate_postgres::Error::Database(
                                    sqlx::Error::Database(db),
                                )) if db.code().as_deref() == Some("40001") => {
                                    serialization += 1;
                                }
                                _ => errors += 1,
                            }
                        }
                        Err(_) => errors += 1,
                    }
                }
                (latencies_us, conflicts, serialization, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut sample = Sample::default();
    for task in tasks {
        if let Ok((latencies, conflicts, serialization, errors)) = task.await {
            all.extend(latencies);
            sample.failed_conditions += conflicts;
            sample.serialization_errors += serialization;
            sample.errors += errors;
        }
    }
    sample.with_latencies(all, duration)
}
