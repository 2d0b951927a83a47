//! The example domains behave as documented, on the in-memory store; the
//! courses race also on PostgreSQL under every locking strategy.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;

use factos::json::JsonCodec;
use factos::{Codec, InMemoryStore, Query, ReadOptions, compute_events};
use factos_examples::ExampleStore;
use factos_examples::courses::{self, CourseCommand, CourseDecider, CourseError, CourseEvent};
use factos_examples::tickets::{BuyTicket, TicketDecider, TicketError, TicketEvent, run_sale};
use factos_examples::usernames::{Register, RegisterError, register};
use factos_postgres::throwaway::TestServer;
use factos_postgres::{LockingStrategy, StoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tickets_sell_exactly_the_capacity() {
    let outcome = run_sale(&InMemoryStore::new(), "c1", 100, 300, 128)
        .await
        .unwrap();
    assert_eq!(
        (outcome.accepted, outcome.sold_out, outcome.events_stored),
        (100, 200, 100)
    );
}

#[test]
fn ticket_decider_refuses_beyond_capacity() {
    let sold = TicketEvent::TicketSold {
        concert: "c".into(),
        buyer: "b".into(),
    };
    let buy = BuyTicket {
        concert: "c".into(),
        buyer: "x".into(),
    };
    let decider = TicketDecider { capacity: 2 };
    assert_eq!(
        compute_events(&decider, std::slice::from_ref(&sold), &buy).map(|e| e.len()),
        Ok(1)
    );
    assert_eq!(
        compute_events(&decider, &[sold.clone(), sold], &buy),
        Err(TicketError::SoldOut)
    );
}

#[test]
fn ticket_events_carry_their_tags() {
    let event = JsonCodec::new()
        .encode(&TicketEvent::TicketSold {
            concert: "c1".into(),
            buyer: "renata".into(),
        })
        .unwrap();
    let tags: Vec<&str> = event.tags.iter().map(factos::Tag::as_str).collect();
    assert_eq!(tags, ["buyer:renata", "event:c1"]);
}

#[tokio::test]
async fn a_username_is_claimed_once() {
    let store = InMemoryStore::new();
    let first = Register {
        user_id: "u1".into(),
        username: "renata".into(),
    };
    let second = Register {
        user_id: "u2".into(),
        username: "renata".into(),
    };
    register(&store, &first).await.unwrap();
    match register(&store, &second).await {
        Err(factos::DispatchError::Domain(RegisterError::UsernameTaken(name))) => {
            assert_eq!(name, "renata");
        }
        other => panic!("expected the username to be taken, got {other:?}"),
    }
    assert_eq!(store.len(), 1);
}

#[test]
fn course_rules_in_one_decision() {
    let decider = CourseDecider {
        course: "math".into(),
        student: "s1".into(),
    };
    let subscribe = CourseCommand::Subscribe {
        student: "s1".into(),
        course: "math".into(),
    };
    let defined = CourseEvent::CourseDefined {
        course: "math".into(),
        capacity: 1,
    };
    let taken = |student: &str, course: &str| CourseEvent::StudentSubscribed {
        student: student.into(),
        course: course.into(),
    };
    assert_eq!(
        compute_events(&decider, &[], &subscribe),
        Err(CourseError::NoSuchCourse)
    );
    assert_eq!(
        compute_events(&decider, std::slice::from_ref(&defined), &subscribe).map(|e| e.len()),
        Ok(1)
    );
    assert_eq!(
        compute_events(
            &decider,
            &[defined.clone(), taken("s2", "math")],
            &subscribe
        ),
        Err(CourseError::CourseFull)
    );
    let busy = [
        defined.clone(),
        taken("s1", "a"),
        taken("s1", "b"),
        taken("s1", "c"),
    ];
    assert_eq!(
        compute_events(&decider, &busy, &subscribe),
        Err(CourseError::TooManyCourses)
    );
    assert_eq!(
        compute_events(&decider, &[defined, taken("s1", "math")], &subscribe),
        Err(CourseError::AlreadySubscribed)
    );
}

/// Subscriptions raced at once (a barrier): twelve students for course
/// `big` (capacity 4) and for `c1` (capacity 10), and student `busy` for
/// `c1`..`c6`. Exactly 4 take `big`, exactly 10 take `c1`, `busy` takes
/// exactly 3 courses; every refusal is one of the two rules and every
/// accepted subscription is stored once.
async fn race_both_limits<S: ExampleStore>(store: &S) {
    for (course, capacity) in [
        ("big", 4),
        ("c1", 10),
        ("c2", 10),
        ("c3", 10),
        ("c4", 10),
        ("c5", 10),
        ("c6", 10),
    ] {
        courses::handle(
            store,
            &CourseCommand::Define {
                course: course.into(),
                capacity,
            },
        )
        .await
        .unwrap();
    }
    let mut requests: Vec<(String, String)> = Vec::new();
    for student in 0..12 {
        requests.push((format!("s{student}"), "big".into()));
        requests.push((format!("s{student}"), "c1".into()));
    }
    for course in ["c1", "c2", "c3", "c4", "c5", "c6"] {
        requests.push(("busy".into(), course.into()));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(student, course)| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let command = CourseCommand::Subscribe { student, course };
                barrier.wait().await;
                courses::handle(&store, &command).await
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => accepted += 1,
            Err(factos::DispatchError::Domain(
                CourseError::CourseFull | CourseError::TooManyCourses,
            )) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    let events = store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap()
        .events;
    let codec = JsonCodec::<CourseEvent>::new();
    let mut per_course = HashMap::<String, usize>::new();
    let mut per_student = HashMap::<String, usize>::new();
    for stored in &events {
        if let CourseEvent::StudentSubscribed { student, course } = codec.decode(stored).unwrap() {
            *per_course.entry(course).or_default() += 1;
            *per_student.entry(student).or_default() += 1;
        }
    }
    assert_eq!(per_course.get("big"), Some(&4), "{per_course:?}");
    assert_eq!(per_course.get("c1"), Some(&10), "{per_course:?}");
    assert_eq!(
        per_student.get("busy"),
        Some(&courses::MAX_COURSES_PER_STUDENT),
        "{per_student:?}"
    );
    assert_eq!(
        per_course.values().sum::<usize>(),
        accepted,
        "every accepted subscription is stored once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_subscriptions_respect_both_limits_in_memory() {
    race_both_limits(&InMemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_subscriptions_respect_both_limits_on_postgres() {
    let server = TestServer::shared().unwrap_or_else(|e| panic!("{e}"));
    for locking in [
        LockingStrategy::Scoped,
        LockingStrategy::TableLock,
        LockingStrategy::Optimistic,
    ] {
        let database = server
            .create_database()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let store = database
            .store(StoreOptions::default().locking(locking))
            .unwrap();
        store.migrate().await.unwrap();
        race_both_limits(&store).await;
        println!("{locking:?}: ok");
    }
}

#[test]
fn the_sales_view_counts_tickets_and_keeps_the_last_buyer() {
    use factos::fold_view;
    use factos_examples::box_office::{ConcertSales, SalesView};
    let sold = |buyer: &str| TicketEvent::TicketSold {
        concert: "c".into(),
        buyer: buyer.into(),
    };
    assert_eq!(
        fold_view(&SalesView, &[sold("a"), sold("b")]),
        ConcertSales {
            sold: 2,
            last_buyer: "b".into()
        }
    );
    assert_eq!(fold_view(&SalesView, &[]), ConcertSales::default());
}
