//! Validated names the store can see: event types, tags, stream labels and metadata.
//!
//! Every value is checked when it is built, so an invalid name is a
//! [`ValidationError`] in the caller's hands, never a database error later.
//!
//! The limits are listed on [`ValidationError`].

use std::collections::BTreeMap;
use std::fmt;

/// Longest event type name, in bytes.
pub const MAX_EVENT_TYPE_BYTES: usize = 128;
/// Longest tag, in bytes.
pub const MAX_TAG_BYTES: usize = 256;
/// Longest stream label, in bytes.
pub const MAX_STREAM_BYTES: usize = 256;
/// Most tags one event may carry.
pub const MAX_TAGS_PER_EVENT: usize = 32;
/// Longest metadata key, in bytes.
pub const MAX_METADATA_KEY_BYTES: usize = 128;
/// Longest metadata value, in bytes.
pub const MAX_METADATA_VALUE_BYTES: usize = 4096;
/// Longest [`Topic`], in bytes.
pub const MAX_TOPIC_BYTES: usize = 128;
/// Most metadata entries on one event.
pub const MAX_METADATA_ENTRIES: usize = 32;

/// Which kind of value failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// An [`EventType`].
    EventType,
    /// A [`Tag`].
    Tag,
    /// A [`StreamId`].
    Stream,
    /// A [`Metadata`] key.
    MetadataKey,
    /// A [`Metadata`] value.
    MetadataValue,
    /// An outbox [`Topic`].
    Topic,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::EventType => "event type",
            NameKind::Tag => "tag",
            NameKind::Stream => "stream",
            NameKind::MetadataKey => "metadata key",
            NameKind::MetadataValue => "metadata value",
            NameKind::Topic => "topic",
        })
    }
}

/// A value that does not respect the limits below.
///
/// # The limits
///
/// | value | length in bytes (UTF-8) | other rules |
/// |---|---|---|
/// | [`EventType`] | 1 ..= [`MAX_EVENT_TYPE_BYTES`] | no control characters (this includes NUL) |
/// | [`Tag`] | 1 ..= [`MAX_TAG_BYTES`] | no control characters |
/// | [`StreamId`] | 1 ..= [`MAX_STREAM_BYTES`] | no control characters |
/// | [`Metadata`] key | 1 ..= [`MAX_METADATA_KEY_BYTES`] | no control characters |
/// | [`Metadata`] value | 0 ..= [`MAX_METADATA_VALUE_BYTES`] | no NUL (other control characters such as newlines are kept) |
/// | [`Metadata`] entries | at most [`MAX_METADATA_ENTRIES`] | keys are unique |
/// | [`Tags`] of one event | at most [`MAX_TAGS_PER_EVENT`] | a set: duplicates collapse |
///
/// Control characters are refused in names because they are invisible in logs and
/// CLI output and PostgreSQL refuses NUL in `text`. Everything else, including SQL
/// metacharacters, quotes and any unicode, is stored and read back verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidationError {
    /// The value is empty but must not be.
    Empty {
        /// What was being built.
        kind: NameKind,
    },
    /// The value is longer than allowed.
    TooLong {
        /// What was being built.
        kind: NameKind,
        /// Its length in bytes.
        len_bytes: usize,
        /// The limit in bytes.
        max_bytes: usize,
    },
    /// The value contains a character that is not allowed (control characters, NUL).
    ForbiddenCharacter {
        /// What was being built.
        kind: NameKind,
        /// The offending character.
        character: char,
        /// Its byte offset in the value.
        offset_bytes: usize,
    },
    /// More tags than [`MAX_TAGS_PER_EVENT`].
    TooManyTags {
        /// How many distinct tags were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// More metadata entries than [`MAX_METADATA_ENTRIES`].
    TooManyMetadataEntries {
        /// How many entries were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A payload larger than the store accepts.
    PayloadTooLarge {
        /// The payload's size in bytes.
        len_bytes: usize,
        /// The store's limit in bytes.
        max_bytes: usize,
    },
    /// More events in one append than the store accepts.
    TooManyEvents {
        /// How many events were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// One event id appears twice in one append.
    RepeatedEventId {
        /// The repeated id.
        id: uuid::Uuid,
    },
    /// More outbox effects for one dispatch than
    /// [`MAX_EFFECTS_PER_DISPATCH`](crate::outbox::MAX_EFFECTS_PER_DISPATCH).
    TooManyEffects {
        /// How many effects the reactor returned.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An outbox message payload larger than
    /// [`MAX_EFFECT_PAYLOAD_BYTES`](crate::outbox::MAX_EFFECT_PAYLOAD_BYTES).
    EffectTooLarge {
        /// The payload's size in bytes.
        len_bytes: usize,
        /// The limit in bytes.
        max_bytes: usize,
    },
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidationError::Empty { kind } => write!(f, "{kind} must not be empty"),
            ValidationError::TooLong {
                kind,
                len_bytes,
                max_bytes,
            } => {
                write!(
                    f,
                    "{kind} is {len_bytes} bytes long, the limit is {max_bytes} bytes"
                )
            }
            ValidationError::ForbiddenCharacter {
                kind,
                character,
                offset_bytes,
            } => write!(
                f,
                "{kind} contains the control character {character:?} at byte {offset_bytes}, which is not allowed"
            ),
            ValidationError::TooManyTags { count, max } => {
                write!(f, "an event has {count} tags, the limit is {max}")
            }
            ValidationError::TooManyMetadataEntries { count, max } => {
                write!(f, "metadata has {count} entries, the limit is {max}")
            }
            ValidationError::PayloadTooLarge {
                len_bytes,
                max_bytes,
            } => {
                write!(
                    f,
                    "event payload is {len_bytes} bytes, the store accepts at most {max_bytes}"
                )
            }
            ValidationError::TooManyEvents { count, max } => {
                write!(
                    f,
                    "{count} events in one append, the store accepts at most {max}"
                )
            }
            ValidationError::RepeatedEventId { id } => {
                write!(f, "event id {id} appears more than once in one append")
            }
            ValidationError::TooManyEffects { count, max } => {
                write!(f, "{count} outbox effects for one dispatch, at most {max}")
            }
            ValidationError::EffectTooLarge {
                len_bytes,
                max_bytes,
            } => write!(
                f,
                "outbox payload is {len_bytes} bytes, at most {max_bytes}"
            ),
        }
    }
}

impl std::error::Error for ValidationError {}

fn check(
    kind: NameKind,
    value: &str,
    min_bytes: usize,
    max_bytes: usize,
    forbid: fn(char) -> bool,
) -> Result<(), ValidationError> {
    if value.len() < min_bytes {
        return Err(ValidationError::Empty { kind });
    }
    if value.len() > max_bytes {
        return Err(ValidationError::TooLong {
            kind,
            len_bytes: value.len(),
            max_bytes,
        });
    }
    if let Some((offset_bytes, character)) = value.char_indices().find(|(_, c)| forbid(*c)) {
        return Err(ValidationError::ForbiddenCharacter {
            kind,
            character,
            offset_bytes,
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Builds the value, checking the limits listed on [`ValidationError`].
            pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                check($kind, &value, 1, $max, char::is_control)?;
                Ok(Self(value))
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The value as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `pad` honours width and alignment, so names line up in tables.
                f.pad(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValidationError;
            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValidationError;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::new(value)
            }
        }
    };
}

name_type!(
    /// The store-visible type of an event, such as `TicketSold`.
    ///
    /// ```
    /// use factos::EventType;
    /// let sold = EventType::new("TicketSold")?;
    /// assert_eq!(sold.as_str(), "TicketSold");
    /// assert!(EventType::new("").is_err());
    /// assert!(EventType::new("bad\0name").is_err());
    /// # Ok::<(), factos::ValidationError>(())
    /// ```
    EventType,
    NameKind::EventType,
    MAX_EVENT_TYPE_BYTES
);

name_type!(
    /// A store-visible tag, conventionally `key:value` such as `username:renata`.
    ///
    /// Tags are what context queries select on: any payload value a future
    /// decision must find has to be written as a tag.
    ///
    /// ```
    /// use factos::Tag;
    /// let tag = Tag::new("course:c1")?;
    /// assert_eq!(tag.to_string(), "course:c1");
    /// # Ok::<(), factos::ValidationError>(())
    /// ```
    Tag,
    NameKind::Tag,
    MAX_TAG_BYTES
);

name_type!(
    /// The topic of an outbox message: what kind of effect it is, such as
    /// `email` or `webhook:billing`. Outbox workers take the messages of
    /// one topic.
    ///
    /// ```
    /// use factos::Topic;
    /// assert_eq!(Topic::new("email")?.as_str(), "email");
    /// assert!(Topic::new("").is_err());
    /// # Ok::<(), factos::ValidationError>(())
    /// ```
    Topic,
    NameKind::Topic,
    MAX_TOPIC_BYTES
);

name_type!(
    /// A stream label. Each stream counts its own revisions from 0, without
    /// gaps.
    ///
    /// In a query dispatch the consistency boundary is the query, not the
    /// stream; but the stream is not free: its revisions stay contiguous
    /// because **writers of one stream label serialize** (on PostgreSQL the
    /// stream's key is locked with the query's keys, under every strategy).
    /// Label a decision with the entity its events are about (`account-a`),
    /// never with a constant shared by unrelated decisions (`transfers`:
    /// every transfer would wait for every other). A decision with no
    /// natural stream (a transfer between two accounts) takes
    /// [`StreamId::unique`], a stream of its own that no other writer
    /// waits for, or, when dispatched idempotently,
    /// [`StreamId::for_request`].
    ///
    /// ```
    /// use factos::StreamId;
    /// let stream = StreamId::new("buyer-renata")?;
    /// assert_eq!(stream.as_str(), "buyer-renata");
    /// assert_ne!(StreamId::unique(), StreamId::unique());
    /// # Ok::<(), factos::ValidationError>(())
    /// ```
    StreamId,
    NameKind::Stream,
    MAX_STREAM_BYTES
);

impl StreamId {
    /// A fresh stream of its own for one decision (`decision-` and a
    /// UUIDv7): its writer waits for no other writer's stream, so only the
    /// query serializes the decision. Its events are revisions 0, 1, … of
    /// that stream; nothing else is ever written to it.
    pub fn unique() -> Self {
        Self(format!("decision-{}", uuid::Uuid::now_v7()))
    }

    /// The stream of its own for the decision made under idempotency `key`
    /// (`decision-` and the key): the same on every retry of the command,
    /// so a retry is recognized as a replay of the attempt that committed
    /// (a [`StreamId::unique`] per attempt would be another stream, and the
    /// retry's events an id conflict).
    pub fn for_request(key: uuid::Uuid) -> Self {
        Self(format!("decision-{key}"))
    }
}

/// The set of tags of one event: at most [`MAX_TAGS_PER_EVENT`], sorted, no duplicates.
///
/// ```
/// use factos::{Tag, Tags};
/// let tags = Tags::new([Tag::new("b:2")?, Tag::new("a:1")?, Tag::new("b:2")?])?;
/// assert_eq!(tags.len(), 2);
/// assert_eq!(tags.iter().map(Tag::as_str).collect::<Vec<_>>(), ["a:1", "b:2"]);
/// # Ok::<(), factos::ValidationError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Tags(Vec<Tag>);

impl Tags {
    /// Builds a tag set; duplicates collapse, the order is not kept.
    pub fn new(tags: impl IntoIterator<Item = Tag>) -> Result<Self, ValidationError> {
        let mut tags: Vec<Tag> = tags.into_iter().collect();
        tags.sort();
        tags.dedup();
        if tags.len() > MAX_TAGS_PER_EVENT {
            return Err(ValidationError::TooManyTags {
                count: tags.len(),
                max: MAX_TAGS_PER_EVENT,
            });
        }
        Ok(Self(tags))
    }

    /// Parses and validates each string, then builds the set.
    ///
    /// ```
    /// let tags = factos::Tags::parse(["event:e1", "buyer:renata"])?;
    /// assert_eq!(tags.len(), 2);
    /// # Ok::<(), factos::ValidationError>(())
    /// ```
    pub fn parse<I, S>(tags: I) -> Result<Self, ValidationError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tags = tags
            .into_iter()
            .map(Tag::new)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(tags)
    }

    /// No tags.
    pub fn empty() -> Self {
        Self(Vec::new())
    }

    /// Whether the set holds `tag`.
    pub fn contains(&self, tag: &Tag) -> bool {
        self.0.binary_search(tag).is_ok()
    }

    /// The tags in sorted order.
    pub fn iter(&self) -> std::slice::Iter<'_, Tag> {
        self.0.iter()
    }

    /// How many tags.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no tags.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tags as a slice, sorted.
    pub fn as_slice(&self) -> &[Tag] {
        &self.0
    }
}

impl<'a> IntoIterator for &'a Tags {
    type Item = &'a Tag;
    type IntoIter = std::slice::Iter<'a, Tag>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// String key/value pairs carried with an event and never used in matching
/// (correlation ids, the user who acted, ...).
///
/// ```
/// use factos::Metadata;
/// let metadata = Metadata::new().with("correlation", "c-17")?;
/// assert_eq!(metadata.get("correlation"), Some("c-17"));
/// # Ok::<(), factos::ValidationError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Metadata(BTreeMap<String, String>);

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self(BTreeMap::new())
    }

    /// Adds or replaces one entry, checking the limits.
    pub fn with(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, ValidationError> {
        self.insert(key, value)?;
        Ok(self)
    }

    /// Adds or replaces one entry, checking the limits.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), ValidationError> {
        let key = key.into();
        let value = value.into();
        check(
            NameKind::MetadataKey,
            &key,
            1,
            MAX_METADATA_KEY_BYTES,
            char::is_control,
        )?;
        check(
            NameKind::MetadataValue,
            &value,
            0,
            MAX_METADATA_VALUE_BYTES,
            |c| c == '\0',
        )?;
        if !self.0.contains_key(&key) && self.0.len() >= MAX_METADATA_ENTRIES {
            return Err(ValidationError::TooManyMetadataEntries {
                count: self.0.len() + 1,
                max: MAX_METADATA_ENTRIES,
            });
        }
        self.0.insert(key, value);
        Ok(())
    }

    /// Builds metadata from pairs, checking every limit.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self, ValidationError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut metadata = Self::new();
        for (key, value) in pairs {
            metadata.insert(key, value)?;
        }
        Ok(metadata)
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced_in_bytes() {
        assert!(EventType::new("a".repeat(MAX_EVENT_TYPE_BYTES)).is_ok());
        assert_eq!(
            EventType::new("a".repeat(MAX_EVENT_TYPE_BYTES + 1)),
            Err(ValidationError::TooLong {
                kind: NameKind::EventType,
                len_bytes: MAX_EVENT_TYPE_BYTES + 1,
                max_bytes: MAX_EVENT_TYPE_BYTES
            })
        );
        // Two-byte characters count twice.
        assert!(Tag::new("é".repeat(MAX_TAG_BYTES / 2)).is_ok());
        assert!(Tag::new("é".repeat(MAX_TAG_BYTES / 2 + 1)).is_err());
    }

    #[test]
    fn control_characters_are_refused_with_their_offset() {
        assert_eq!(
            StreamId::new("ab\ncd"),
            Err(ValidationError::ForbiddenCharacter {
                kind: NameKind::Stream,
                character: '\n',
                offset_bytes: 2
            })
        );
        assert!(Tag::new("x\0").is_err());
        assert!(Tag::new("'; drop table factos_events; --").is_ok());
        assert!(Tag::new("名前:ユーザー").is_ok());
    }

    #[test]
    fn tags_are_a_bounded_set() {
        let many = (0..=MAX_TAGS_PER_EVENT).map(|i| format!("t:{i}"));
        assert_eq!(
            Tags::parse(many),
            Err(ValidationError::TooManyTags {
                count: MAX_TAGS_PER_EVENT + 1,
                max: MAX_TAGS_PER_EVENT
            })
        );
        let duplicated = std::iter::repeat_n("same", MAX_TAGS_PER_EVENT * 2);
        assert_eq!(Tags::parse(duplicated).map(|t| t.len()), Ok(1));
    }

    #[test]
    fn metadata_values_keep_newlines_but_not_nul() {
        assert!(Metadata::new().with("note", "line one\nline two").is_ok());
        assert!(Metadata::new().with("note", "a\0b").is_err());
        assert!(Metadata::new().with("", "x").is_err());
        let mut metadata = Metadata::new();
        for i in 0..MAX_METADATA_ENTRIES {
            metadata
                .insert(format!("k{i}"), "v")
                .expect("within limits");
        }
        assert!(metadata.insert("k0", "replaced").is_ok());
        assert!(matches!(
            metadata.insert("one-more", "v"),
            Err(ValidationError::TooManyMetadataEntries { .. })
        ));
    }
}
