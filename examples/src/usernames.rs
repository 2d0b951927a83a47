//! Unique usernames: a username can be claimed once, across all users.
//!
//! The context is every event tagged `username:<name>`; each user has their own stream.

use factos::json::{JsonCodec, JsonEvent};
use factos::{Decider, DispatchError, Query, StreamId, Tag, ValidationError, dispatch_with_query};
use serde::{Deserialize, Serialize};

use crate::{ExampleStore, with_retries};

/// The facts of the usernames domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserEvent {
    /// A user registered with a username.
    UserRegistered {
        /// The user.
        user_id: String,
        /// The username claimed.
        username: String,
    },
}

impl JsonEvent for UserEvent {
    const EVENT_TYPES: &'static [&'static str] = &["UserRegistered"];
    fn event_type(&self) -> &'static str {
        "UserRegistered"
    }
    fn tags(&self) -> Vec<String> {
        let UserEvent::UserRegistered { user_id, username } = self;
        vec![format!("username:{username}"), format!("user:{user_id}")]
    }
}

/// Register a user under a username.
#[derive(Debug, Clone)]
pub struct Register {
    /// The user.
    pub user_id: String,
    /// The wanted username.
    pub username: String,
}

/// Why a registration is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// Someone holds the username.
    UsernameTaken(String),
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let RegisterError::UsernameTaken(name) = self;
        write!(f, "username {name} is taken")
    }
}

/// Refuses a username that is already registered.
#[derive(Debug, Clone, Copy, Default)]
pub struct UsernameDecider;

impl Decider for UsernameDecider {
    type State = bool;
    type Command = Register;
    type Event = UserEvent;
    type Error = RegisterError;

    fn initial(&self) -> bool {
        false
    }

    fn decide(&self, taken: &bool, command: &Register) -> Result<Vec<UserEvent>, RegisterError> {
        if *taken {
            return Err(RegisterError::UsernameTaken(command.username.clone()));
        }
        Ok(vec![UserEvent::UserRegistered {
            user_id: command.user_id.clone(),
            username: command.username.clone(),
        }])
    }

    fn evolve(&self, _: bool, _: &UserEvent) -> bool {
        true
    }
}

/// The context of a registration.
pub fn username_query(username: &str) -> Result<Query, ValidationError> {
    Ok(Query::tagged_with_all([Tag::new(format!(
        "username:{username}"
    ))?]))
}

/// Registers `command`, re-deciding if the context moved.
pub async fn register<S: ExampleStore>(
    store: &S,
    command: &Register,
) -> Result<(), DispatchError<RegisterError>> {
    let query = username_query(&command.username).map_err(|e| DispatchError::Encode(e.into()))?;
    let stream = StreamId::new(format!("user-{}", command.user_id))
        .map_err(|e| DispatchError::Encode(e.into()))?;
    let codec = JsonCodec::<UserEvent>::new();
    with_retries(|| dispatch_with_query(store, &stream, &query, &UsernameDecider, &codec, command))
        .await?;
    Ok(())
}
