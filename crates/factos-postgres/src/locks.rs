//! Advisory lock keys of the scoped locking protocol (see `DESIGN.md`).
//!
//! Every event that can match a query item holds a key that the item locks,
//! in conflicting modes: a decision locks its query's keys exclusively before
//! it reads; a writer locks its events' keys shared before it inserts.
//!
//! | query item | decision takes (exclusive) | an event (T, tags) takes (shared) |
//! |---|---|---|
//! | types and tags | `L(T, g0)` for each type T, g0 = its first tag | `L(T, t)` for each tag t |
//! | types only | `Ty(T)` for each type T | `Ty(T)` |
//! | tags only | `Tg(g0)` | `Tg(t)` for each tag t |
//! | all events | the table lock (`EXCLUSIVE`) | the table lock (`ROW EXCLUSIVE`, by inserting) |
//!
//! Keys are 64-bit hashes that include the schema; a collision only makes
//! two unrelated decisions wait for each other.

use factos::{EventType, NewEvent, Query, StreamId, Tag};

use crate::sql::SchemaName;

/// Most advisory keys one decision takes for its query; beyond it the
/// decision takes the table lock (bounds the server's lock table use).
pub(crate) const MAX_QUERY_KEYS: usize = 64;
/// Most advisory keys one append takes for its events; beyond it the append
/// takes the coarse key exclusively instead.
pub(crate) const MAX_EVENT_KEYS: usize = 64;

#[derive(Clone, Copy)]
enum Kind {
    TypeTag = 1,
    Type = 2,
    Tag = 3,
    Stream = 4,
    /// The class of the writers' own keys: a writer holds the pair (class,
    /// its transaction id's low 32 bits) from position allocation to commit
    /// (schema version 8; up to version 7, kind 5 was one barrier key all
    /// writers shared).
    Writers = 8,
    /// Held shared by every scoped decision; an append with too many keys
    /// takes it exclusively.
    Coarse = 6,
    /// Held (session-level) by the one active instance of a subscriber.
    Subscriber = 7,
}

/// The lock keys of one schema.
#[derive(Debug, Clone)]
pub(crate) struct LockKeys {
    seed: u64,
}

const FNV_PRIME: u64 = 0x0100_0000_01b3;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// A lock request: key and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KeyLock {
    pub(crate) key: i64,
    pub(crate) exclusive: bool,
}

/// Sorts by key and keeps one request per key, exclusive if any was.
pub(crate) fn normalize(mut locks: Vec<KeyLock>) -> Vec<KeyLock> {
    locks.sort_by(|a, b| a.key.cmp(&b.key).then(b.exclusive.cmp(&a.exclusive)));
    locks.dedup_by_key(|l| l.key);
    locks
}

/// Splits lock requests into the parallel arrays the SQL functions take.
pub(crate) fn arrays(locks: &[KeyLock]) -> (Vec<i64>, Vec<bool>) {
    locks.iter().map(|l| (l.key, l.exclusive)).unzip()
}

impl LockKeys {
    pub(crate) fn new(schema: &SchemaName) -> Self {
        Self {
            seed: fnv(0xcbf2_9ce4_8422_2325, format!("factos:{schema}").as_bytes()),
        }
    }

    fn key(&self, kind: Kind, parts: &[&str]) -> i64 {
        let mut hash = fnv(self.seed, &[kind as u8]);
        for part in parts {
            hash = fnv(hash, &[0x1f]);
            hash = fnv(hash, part.as_bytes());
        }
        i64::from_ne_bytes(hash.to_ne_bytes())
    }

    pub(crate) fn stream(&self, stream: &StreamId) -> i64 {
        self.key(Kind::Stream, &[stream.as_str()])
    }

    pub(crate) fn subscriber(&self, name: &str) -> i64 {
        self.key(Kind::Subscriber, &[name])
    }

    /// The first half of every writer's own advisory key (the second is its
    /// transaction id's low 32 bits): what settled reads wait for.
    pub(crate) fn writers(&self) -> i32 {
        let [a, b, c, d, ..] = self.key(Kind::Writers, &[]).to_le_bytes();
        i32::from_le_bytes([a, b, c, d])
    }

    fn coarse(&self) -> i64 {
        self.key(Kind::Coarse, &[])
    }

    /// The exclusive keys protecting a decision on `query`, with the shared
    /// coarse key; `None` when the query needs the table lock (all events,
    /// or more than [`MAX_QUERY_KEYS`] keys).
    pub(crate) fn query(&self, query: &Query) -> Option<Vec<KeyLock>> {
        if query.is_all() {
            return None;
        }
        let mut locks = vec![KeyLock {
            key: self.coarse(),
            exclusive: false,
        }];
        for item in query.items() {
            match (item.types(), item.tags().first()) {
                (types, Some(first_tag)) if !types.is_empty() => {
                    for event_type in types {
                        locks.push(self.type_tag(event_type, first_tag, true));
                    }
                }
                (types, None) => {
                    for event_type in types {
                        locks.push(KeyLock {
                            key: self.key(Kind::Type, &[event_type.as_str()]),
                            exclusive: true,
                        });
                    }
                }
                (_, Some(first_tag)) => {
                    locks.push(KeyLock {
                        key: self.key(Kind::Tag, &[first_tag.as_str()]),
                        exclusive: true,
                    });
                }
            }
        }
        let locks = normalize(locks);
        (locks.len() <= MAX_QUERY_KEYS).then_some(locks)
    }

    fn type_tag(&self, event_type: &EventType, tag: &Tag, exclusive: bool) -> KeyLock {
        KeyLock {
            key: self.key(Kind::TypeTag, &[event_type.as_str(), tag.as_str()]),
            exclusive,
        }
    }

    /// The shared keys an append of `events` takes, or the coarse key
    /// exclusively when there would be more than [`MAX_EVENT_KEYS`].
    pub(crate) fn events(&self, events: &[NewEvent]) -> Vec<KeyLock> {
        let mut locks = Vec::new();
        for event in events {
            locks.push(KeyLock {
                key: self.key(Kind::Type, &[event.event_type.as_str()]),
                exclusive: false,
            });
            for tag in &event.tags {
                locks.push(self.type_tag(&event.event_type, tag, false));
                locks.push(KeyLock {
                    key: self.key(Kind::Tag, &[tag.as_str()]),
                    exclusive: false,
                });
            }
        }
        let locks = normalize(locks);
        if locks.len() > MAX_EVENT_KEYS {
            return vec![KeyLock {
                key: self.coarse(),
                exclusive: true,
            }];
        }
        locks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use factos::{QueryItem, Tags};

    fn keys() -> LockKeys {
        LockKeys::new(&SchemaName::default())
    }

    fn event(event_type: &str, tags: &[&str]) -> NewEvent {
        NewEvent::new(EventType::new(event_type).unwrap(), Vec::new())
            .with_tags(Tags::parse(tags.iter().copied()).unwrap())
    }

    /// The protocol's invariant: whenever an event matches a query, the
    /// event's shared keys meet the query's exclusive keys.
    #[test]
    fn every_matching_event_meets_an_exclusive_key() {
        let types = ["A", "B"];
        let tags = ["x:1", "x:2", "y:1"];
        let mut items = Vec::new();
        for t in [vec![], vec!["A"], vec!["A", "B"]] {
            for g in [vec![], vec!["x:1"], vec!["x:1", "y:1"], vec!["x:2"]] {
                if !(t.is_empty() && g.is_empty()) {
                    items.push(QueryItem::parse(t.clone(), g.clone()).unwrap());
                }
            }
        }
        let mut events = Vec::new();
        for t in types {
            for mask in 0..(1 << tags.len()) {
                let chosen: Vec<&str> = tags
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, t)| *t)
                    .collect();
                events.push(event(t, &chosen));
            }
        }
        let keys = keys();
        for a in &items {
            for b in &items {
                let query = Query::from_items([a.clone(), b.clone()]);
                let exclusive: Vec<i64> = keys
                    .query(&query)
                    .unwrap()
                    .iter()
                    .filter(|l| l.exclusive)
                    .map(|l| l.key)
                    .collect();
                for e in &events {
                    if query.matches(&e.event_type, &e.tags) {
                        let shared = keys.events(std::slice::from_ref(e));
                        assert!(
                            shared.iter().any(|l| exclusive.contains(&l.key)),
                            "{query} matches {:?} {:?} but their keys do not meet",
                            e.event_type,
                            e.tags
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn all_events_needs_the_table_lock() {
        assert!(keys().query(&Query::all()).is_none());
    }

    #[test]
    fn keys_depend_on_the_schema() {
        let other = LockKeys::new(&SchemaName::new("other").unwrap());
        assert_ne!(keys().writers(), other.writers());
        assert_ne!(
            keys().stream(&StreamId::new("s").unwrap()),
            other.stream(&StreamId::new("s").unwrap())
        );
    }

    #[test]
    fn too_many_event_keys_take_the_coarse_key() {
        let many: Vec<NewEvent> = (0..40).map(|i| event("A", &[&format!("t:{i}")])).collect();
        let locks = keys().events(&many);
        assert_eq!(locks.len(), 1);
        assert!(locks[0].exclusive);
        let query_locks = keys()
            .query(&Query::item(QueryItem::parse(["A"], ["t:1"]).unwrap()))
            .unwrap();
        assert!(
            query_locks
                .iter()
                .any(|l| l.key == locks[0].key && !l.exclusive),
            "scoped decisions hold the coarse key shared"
        );
    }
}
