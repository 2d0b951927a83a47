//! The DCB course subscription (`factos_examples::courses`): random students
//! subscribe to random courses, so contexts overlap (a course is shared by
//! its subscribers, a student by their courses). Each command is one
//! `dispatch_with_query` over two query items, re-decided if its context
//! moved.

use std::time::{Duration, Instant};

use factos::DispatchError;
use factos_examples::courses::{CourseCommand, CourseError, handle};
use factos_postgres::PostgresStore;

use crate::Sample;

/// Courses per run; each has room for everyone.
const COURSES: u64 = 200;
/// Students per run (each may take 3 courses).
const STUDENTS: u64 = 100_000;

/// Defines this run's courses, then `clients` clients subscribe random
/// students to random courses for `duration`. Refusals by the domain (a
/// student's fourth course, a repeat) count as decided commands.
pub(crate) async fn run(
    store: &PostgresStore,
    clients: usize,
    duration: Duration,
    round: usize,
) -> Sample {
    let mut sample = Sample::default();
    for course in 0..COURSES {
        let define = CourseCommand::Define {
            course: format!("r{round}-c{course}"),
            capacity: 1_000_000,
        };
        if handle(store, &define).await.is_err() {
            sample.errors += 1;
        }
    }
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut seed = 0x2545_f491_4f6c_dd1d_u64 ^ ((client as u64 + 1) << 32) ^ round as u64;
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let (mut latencies_us, mut failed, mut errors) = (Vec::new(), 0u64, 0u64);
            while Instant::now() < deadline {
                let command = CourseCommand::Subscribe {
                    student: format!("r{round}-s{}", next() % STUDENTS),
                    course: format!("r{round}-c{}", next() % COURSES),
                };
                let started = Instant::now();
                match handle(&store, &command).await {
                    Ok(())
                    | Err(DispatchError::Domain(
                        CourseError::AlreadySubscribed | CourseError::TooManyCourses,
                    )) => latencies_us
                        .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    Err(DispatchError::AppendConditionFailed(_)) => failed += 1,
                    Err(_) => errors += 1,
                }
            }
            (latencies_us, failed, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    for task in tasks {
        if let Ok((l, failed, errors)) = task.await {
            latencies_us.extend(l);
            sample.failed_conditions += failed;
            sample.errors += errors;
        } else {
            sample.errors += 1;
        }
    }
    sample.with_latencies(latencies_us, duration)
}
