//! Queries of types and tags, and the append condition built from them.

use std::fmt;

use crate::{EventType, Position, Tag, Tags};

/// One alternative of a [`Query`]: an event matches when its type is one of
/// `types` (or `types` is empty) **and** it carries every tag in `tags` (or `tags`
/// is empty).
///
/// Types and tags are kept sorted and without duplicates, so equal items compare equal.
///
/// ```
/// use factos::{EventType, QueryItem, Tag, Tags};
/// let item = QueryItem::new()
///     .with_type(EventType::new("TicketSold")?)
///     .with_tag(Tag::new("event:e1")?);
/// let sold = EventType::new("TicketSold")?;
/// assert!(item.matches(&sold, &Tags::parse(["event:e1", "buyer:b"])?));
/// assert!(!item.matches(&sold, &Tags::parse(["event:e2"])?));
/// # Ok::<(), factos::ValidationError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryItem {
    types: Vec<EventType>,
    tags: Vec<Tag>,
}

impl QueryItem {
    /// An item with no constraint (it matches every event).
    pub fn new() -> Self {
        Self::default()
    }

    /// An item from types (OR-ed) and tags (AND-ed).
    pub fn from_parts(
        types: impl IntoIterator<Item = EventType>,
        tags: impl IntoIterator<Item = Tag>,
    ) -> Self {
        let mut item = Self {
            types: types.into_iter().collect(),
            tags: tags.into_iter().collect(),
        };
        item.normalize();
        item
    }

    /// Parses type and tag names; the first invalid one is the error.
    ///
    /// ```
    /// let item = factos::QueryItem::parse(["CourseDefined", "StudentSubscribed"], ["course:c1"])?;
    /// assert_eq!(item.types().len(), 2);
    /// # Ok::<(), factos::ValidationError>(())
    /// ```
    pub fn parse<T, G>(
        types: impl IntoIterator<Item = T>,
        tags: impl IntoIterator<Item = G>,
    ) -> Result<Self, crate::ValidationError>
    where
        T: Into<String>,
        G: Into<String>,
    {
        let types = types
            .into_iter()
            .map(EventType::new)
            .collect::<Result<Vec<_>, _>>()?;
        let tags = tags
            .into_iter()
            .map(Tag::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_parts(types, tags))
    }

    /// Adds one accepted type.
    #[must_use]
    pub fn with_type(mut self, event_type: EventType) -> Self {
        self.types.push(event_type);
        self.normalize();
        self
    }

    /// Adds one required tag.
    #[must_use]
    pub fn with_tag(mut self, tag: Tag) -> Self {
        self.tags.push(tag);
        self.normalize();
        self
    }

    fn normalize(&mut self) {
        self.types.sort();
        self.types.dedup();
        self.tags.sort();
        self.tags.dedup();
    }

    /// The accepted types (empty: any type).
    pub fn types(&self) -> &[EventType] {
        &self.types
    }

    /// The required tags (empty: no tag constraint).
    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }

    /// Whether this item constrains nothing and so matches every event.
    pub fn is_unconstrained(&self) -> bool {
        self.types.is_empty() && self.tags.is_empty()
    }

    /// Whether an event with this type and these tags matches the item.
    pub fn matches(&self, event_type: &EventType, tags: &Tags) -> bool {
        (self.types.is_empty() || self.types.binary_search(event_type).is_ok())
            && self.tags.iter().all(|tag| tags.contains(tag))
    }

    /// Like [`matches`](Self::matches), for a type and tags given by name
    /// (as a domain event names them, before they are validated).
    pub fn matches_names<T: AsRef<str>>(&self, event_type: &str, tags: &[T]) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t.as_str() == event_type))
            && self
                .tags
                .iter()
                .all(|tag| tags.iter().any(|given| given.as_ref() == tag.as_str()))
    }
}

/// Which events a decision depends on: all events, or the union of [`QueryItem`]s.
///
/// A query built from an empty item list is [`Query::all`], as in the original
/// library. Items are kept sorted and unique, so equal queries compare equal.
///
/// ```
/// use factos::{EventType, Query, QueryItem, Tags};
/// let query = Query::from_items([
///     QueryItem::parse(["CourseDefined"], ["course:c1"])?,
///     QueryItem::parse(["StudentSubscribed"], ["student:s1"])?,
/// ]);
/// let subscribed = EventType::new("StudentSubscribed")?;
/// assert!(query.matches(&subscribed, &Tags::parse(["student:s1", "course:c9"])?));
/// assert!(Query::from_items([]).is_all());
/// # Ok::<(), factos::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    /// Empty means all events.
    items: Vec<QueryItem>,
}

impl Query {
    /// The query that matches every event.
    pub fn all() -> Self {
        Self { items: Vec::new() }
    }

    /// A query of one item.
    pub fn item(item: QueryItem) -> Self {
        Self::from_items([item])
    }

    /// A query from items combined with OR. No items means all events; an item
    /// without constraints also matches all events, so the query becomes [`Query::all`].
    pub fn from_items(items: impl IntoIterator<Item = QueryItem>) -> Self {
        let mut items: Vec<QueryItem> = items.into_iter().collect();
        if items.iter().any(QueryItem::is_unconstrained) {
            items.clear();
        }
        items.sort();
        items.dedup();
        Self { items }
    }

    /// A query matching events of any of these types.
    pub fn types(types: impl IntoIterator<Item = EventType>) -> Self {
        Self::item(QueryItem::from_parts(types, []))
    }

    /// A query matching events that carry **every one** of these tags (of
    /// any type). For events carrying any one of them, OR items:
    /// `Query::from_items(tags.map(|t| QueryItem::new().with_tag(t)))`.
    ///
    /// ```
    /// use factos::{EventType, Query, Tag, Tags};
    /// let query = Query::tagged_with_all([Tag::new("account:a")?, Tag::new("account:b")?]);
    /// let moved = EventType::new("MoneyTransferred")?;
    /// assert!(query.matches(&moved, &Tags::parse(["account:a", "account:b"])?));
    /// assert!(!query.matches(&moved, &Tags::parse(["account:a"])?));
    /// # Ok::<(), factos::ValidationError>(())
    /// ```
    pub fn tagged_with_all(tags: impl IntoIterator<Item = Tag>) -> Self {
        Self::item(QueryItem::from_parts([], tags))
    }

    /// The former name of [`Query::tagged_with_all`], which read as "any
    /// of these tags".
    #[deprecated(
        since = "0.2.0",
        note = "the tags are AND-ed: use `Query::tagged_with_all` (or OR items for any of them)"
    )]
    pub fn tags(tags: impl IntoIterator<Item = Tag>) -> Self {
        Self::tagged_with_all(tags)
    }

    /// Adds one more alternative.
    #[must_use]
    pub fn or(self, item: QueryItem) -> Self {
        if self.is_all() {
            return self;
        }
        Self::from_items(self.items.into_iter().chain([item]))
    }

    /// Whether the query matches every event.
    pub fn is_all(&self) -> bool {
        self.items.is_empty()
    }

    /// The items (empty for [`Query::all`]).
    pub fn items(&self) -> &[QueryItem] {
        &self.items
    }

    /// Whether an event with this type and these tags matches.
    pub fn matches(&self, event_type: &EventType, tags: &Tags) -> bool {
        self.is_all() || self.items.iter().any(|item| item.matches(event_type, tags))
    }

    /// Like [`matches`](Self::matches), for a type and tags given by name.
    ///
    /// ```
    /// let query = factos::Query::from_items([factos::QueryItem::parse(["Moved"], ["account:a"])?]);
    /// assert!(query.matches_names("Moved", &["account:b", "account:a"]));
    /// assert!(!query.matches_names("Moved", &["account:b"]));
    /// assert!(!query.matches_names("Deposited", &["account:a"]));
    /// # Ok::<(), factos::ValidationError>(())
    /// ```
    pub fn matches_names<T: AsRef<str>>(&self, event_type: &str, tags: &[T]) -> bool {
        self.is_all()
            || self
                .items
                .iter()
                .any(|item| item.matches_names(event_type, tags))
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("all events");
        }
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str(" OR ")?;
            }
            f.write_str("(")?;
            let types: Vec<&str> = item.types.iter().map(EventType::as_str).collect();
            let tags: Vec<&str> = item.tags.iter().map(Tag::as_str).collect();
            match (types.is_empty(), tags.is_empty()) {
                (false, false) => write!(
                    f,
                    "type in [{}] and tags [{}]",
                    types.join(", "),
                    tags.join(", ")
                )?,
                (false, true) => write!(f, "type in [{}]", types.join(", "))?,
                (true, false) => write!(f, "tags [{}]", tags.join(", "))?,
                (true, true) => f.write_str("any event")?,
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// The condition an append must satisfy.
///
/// `FailIfEventsMatch { query, after }` fails if any event matching `query` has a
/// position greater than `after` (with `after: None`, if any matching event exists).
///
/// ```
/// use factos::{AppendCondition, Query};
/// let condition = AppendCondition::fail_if_events_match(Query::all(), None);
/// assert_eq!(condition.to_string(), "fail if events match all events");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum AppendCondition {
    /// Append unconditionally.
    #[default]
    None,
    /// Fail if an event matching `query` exists after `after`.
    FailIfEventsMatch {
        /// The events that would invalidate the decision.
        query: Query,
        /// The last position the decision saw (`None`: it saw none).
        after: Option<Position>,
    },
}

impl AppendCondition {
    /// Shorthand for [`AppendCondition::FailIfEventsMatch`].
    pub fn fail_if_events_match(query: Query, after: Option<Position>) -> Self {
        AppendCondition::FailIfEventsMatch { query, after }
    }
}

impl fmt::Display for AppendCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppendCondition::None => f.write_str("no condition"),
            AppendCondition::FailIfEventsMatch { query, after: None } => {
                write!(f, "fail if events match {query}")
            }
            AppendCondition::FailIfEventsMatch {
                query,
                after: Some(after),
            } => {
                write!(f, "fail if events match {query} after position {after}")
            }
        }
    }
}
