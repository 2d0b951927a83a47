//! The DCB classic: students subscribe to courses. One decision enforces two
//! rules at once: a course has a capacity, and a student takes at most
//! [`MAX_COURSES_PER_STUDENT`] courses. No aggregate owns both, so the
//! context is a query over two boundaries:
//!
//! `(CourseDefined | StudentSubscribed) with course:<c>` OR `StudentSubscribed with student:<s>`.

use factos::json::{JsonCodec, JsonEvent};
use factos::{
    Decider, DispatchError, Query, QueryItem, StreamId, ValidationError, dispatch_with_query,
};
use serde::{Deserialize, Serialize};

use crate::{ExampleStore, with_retries};

/// Most courses one student may take.
pub const MAX_COURSES_PER_STUDENT: usize = 3;

/// The facts of the courses domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CourseEvent {
    /// A course exists with a capacity.
    CourseDefined {
        /// The course.
        course: String,
        /// Seats.
        capacity: usize,
    },
    /// A student took a seat.
    StudentSubscribed {
        /// The student.
        student: String,
        /// The course.
        course: String,
    },
}

impl JsonEvent for CourseEvent {
    const EVENT_TYPES: &'static [&'static str] = &["CourseDefined", "StudentSubscribed"];
    fn event_type(&self) -> &'static str {
        match self {
            CourseEvent::CourseDefined { .. } => "CourseDefined",
            CourseEvent::StudentSubscribed { .. } => "StudentSubscribed",
        }
    }
    fn tags(&self) -> Vec<String> {
        match self {
            CourseEvent::CourseDefined { course, .. } => vec![format!("course:{course}")],
            CourseEvent::StudentSubscribed { student, course } => {
                vec![format!("course:{course}"), format!("student:{student}")]
            }
        }
    }
}

/// The commands of the courses domain.
#[derive(Debug, Clone)]
pub enum CourseCommand {
    /// Define a course.
    Define {
        /// The course.
        course: String,
        /// Seats.
        capacity: usize,
    },
    /// Subscribe a student.
    Subscribe {
        /// The student.
        student: String,
        /// The course.
        course: String,
    },
}

/// Why a command is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CourseError {
    /// The course is already defined.
    AlreadyDefined,
    /// The course does not exist.
    NoSuchCourse,
    /// Every seat is taken.
    CourseFull,
    /// The student already takes this course.
    AlreadySubscribed,
    /// The student takes the maximum number of courses.
    TooManyCourses,
}

impl std::fmt::Display for CourseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CourseError::AlreadyDefined => "course already defined",
            CourseError::NoSuchCourse => "no such course",
            CourseError::CourseFull => "course is full",
            CourseError::AlreadySubscribed => "already subscribed",
            CourseError::TooManyCourses => "student takes too many courses",
        })
    }
}

/// What a decision about one (student, course) pair knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CourseState {
    /// The course's capacity, once defined.
    pub capacity: Option<usize>,
    /// Students in the course.
    pub subscribers: usize,
    /// Courses the student takes.
    pub student_courses: usize,
    /// Whether the student takes this course.
    pub already: bool,
}

/// Decides on one course and one student. Built per command, because which
/// events count as "this course" and "this student" depends on it.
#[derive(Debug, Clone)]
pub struct CourseDecider {
    /// The course the command is about.
    pub course: String,
    /// The student the command is about (empty for `Define`).
    pub student: String,
}

impl Decider for CourseDecider {
    type State = CourseState;
    type Command = CourseCommand;
    type Event = CourseEvent;
    type Error = CourseError;

    fn initial(&self) -> CourseState {
        CourseState::default()
    }

    fn decide(
        &self,
        state: &CourseState,
        command: &CourseCommand,
    ) -> Result<Vec<CourseEvent>, CourseError> {
        match command {
            CourseCommand::Define { course, capacity } => {
                if state.capacity.is_some() {
                    return Err(CourseError::AlreadyDefined);
                }
                Ok(vec![CourseEvent::CourseDefined {
                    course: course.clone(),
                    capacity: *capacity,
                }])
            }
            CourseCommand::Subscribe { student, course } => {
                let capacity = state.capacity.ok_or(CourseError::NoSuchCourse)?;
                if state.already {
                    return Err(CourseError::AlreadySubscribed);
                }
                if state.subscribers >= capacity {
                    return Err(CourseError::CourseFull);
                }
                if state.student_courses >= MAX_COURSES_PER_STUDENT {
                    return Err(CourseError::TooManyCourses);
                }
                Ok(vec![CourseEvent::StudentSubscribed {
                    student: student.clone(),
                    course: course.clone(),
                }])
            }
        }
    }

    fn evolve(&self, mut state: CourseState, event: &CourseEvent) -> CourseState {
        match event {
            CourseEvent::CourseDefined { course, capacity } if *course == self.course => {
                state.capacity = Some(*capacity);
            }
            CourseEvent::StudentSubscribed { student, course } => {
                if *course == self.course {
                    state.subscribers += 1;
                }
                if *student == self.student {
                    state.student_courses += 1;
                    state.already |= *course == self.course;
                }
            }
            CourseEvent::CourseDefined { .. } => {}
        }
        state
    }
}

/// The context of a command.
pub fn course_query(command: &CourseCommand) -> Result<Query, ValidationError> {
    match command {
        CourseCommand::Define { course, .. } => Ok(Query::item(QueryItem::parse(
            ["CourseDefined"],
            [format!("course:{course}")],
        )?)),
        CourseCommand::Subscribe { student, course } => Ok(Query::from_items([
            QueryItem::parse(
                ["CourseDefined", "StudentSubscribed"],
                [format!("course:{course}")],
            )?,
            QueryItem::parse(["StudentSubscribed"], [format!("student:{student}")])?,
        ])),
    }
}

/// Handles one command, re-deciding if the context moved.
pub async fn handle<S: ExampleStore>(
    store: &S,
    command: &CourseCommand,
) -> Result<(), DispatchError<CourseError>> {
    let invalid = |e: ValidationError| DispatchError::Encode(e.into());
    let query = course_query(command).map_err(invalid)?;
    let (decider, stream) = match command {
        CourseCommand::Define { course, .. } => (
            CourseDecider {
                course: course.clone(),
                student: String::new(),
            },
            StreamId::new(format!("course-{course}")).map_err(invalid)?,
        ),
        CourseCommand::Subscribe { student, course } => (
            CourseDecider {
                course: course.clone(),
                student: student.clone(),
            },
            StreamId::new(format!("student-{student}")).map_err(invalid)?,
        ),
    };
    let codec = JsonCodec::<CourseEvent>::new();
    with_retries(|| dispatch_with_query(store, &stream, &query, &decider, &codec, command)).await?;
    Ok(())
}
