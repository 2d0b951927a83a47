//! Effects and outbox messages, and their limits (documented at
//! [`crate::outbox`]).

use crate::{Position, Topic};

/// Most effects one dispatch may record.
pub const MAX_EFFECTS_PER_DISPATCH: usize = 1000;
/// Largest outbox payload, in bytes.
pub const MAX_EFFECT_PAYLOAD_BYTES: usize = 1 << 20;

/// One effect to deliver: a topic and an opaque payload.
///
/// ```
/// use factos::{OutboxMessage, Topic};
/// let message = OutboxMessage::new(Topic::new("email")?, b"{\"to\":\"renata\"}".to_vec());
/// assert_eq!(message.topic.as_str(), "email");
/// # Ok::<(), factos::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// What kind of effect it is; workers take one topic.
    pub topic: Topic,
    /// The payload, opaque to the store.
    pub payload: Vec<u8>,
}

impl OutboxMessage {
    /// A message (the payload's size is checked when it is recorded).
    pub fn new(topic: Topic, payload: Vec<u8>) -> Self {
        Self { topic, payload }
    }
}

/// An effect as a store records it: the message and the event that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// Position of the event whose reaction this is.
    pub cause: Position,
    /// The message.
    pub message: OutboxMessage,
}
