//! The example domains behave as documented, on the in-memory store.

#![allow(clippy::unwrap_used, clippy::panic)]

use factos::json::JsonCodec;
use factos::{Codec, InMemoryStore, compute_events};
use factos_examples::courses::{self, CourseCommand, CourseDecider, CourseError, CourseEvent};
use factos_examples::tickets::{BuyTicket, TicketDecider, TicketError, TicketEvent, run_sale};
use factos_examples::usernames::{Register, RegisterError, register};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_subscriptions_respect_both_limits() {
    let store = InMemoryStore::new();
    for course in ["a", "b", "c", "d", "e"] {
        courses::handle(
            &store,
            &CourseCommand::Define {
                course: course.into(),
                capacity: 4,
            },
        )
        .await
        .unwrap();
    }
    let mut tasks = Vec::new();
    for student in 0..8 {
        for course in ["a", "b", "c", "d", "e"] {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let command = CourseCommand::Subscribe {
                    student: format!("s{student}"),
                    course: course.into(),
                };
                courses::handle(&store, &command).await
            }));
        }
    }
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
    let events = store.all_events();
    let codec = JsonCodec::<CourseEvent>::new();
    let mut per_course = std::collections::HashMap::<String, usize>::new();
    let mut per_student = std::collections::HashMap::<String, usize>::new();
    for stored in &events {
        if let CourseEvent::StudentSubscribed { student, course } = codec.decode(stored).unwrap() {
            *per_course.entry(course).or_default() += 1;
            *per_student.entry(student).or_default() += 1;
        }
    }
    assert!(per_course.values().all(|&n| n <= 4), "{per_course:?}");
    assert!(
        per_student
            .values()
            .all(|&n| n <= courses::MAX_COURSES_PER_STUDENT),
        "{per_student:?}"
    );
    assert_eq!(
        per_course.values().sum::<usize>(),
        accepted,
        "every accepted subscription is stored once"
    );
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
