//! Global log positions and per-stream revisions.

use std::fmt;
use std::num::NonZeroU64;

/// A position in the global log: strictly increasing in commit order of
/// visibility, starting at 1, with gaps allowed (an aborted append leaves one).
///
/// It is not a stream revision. "No position" (nothing observed) is `Option::<Position>::None`.
///
/// ```
/// use factos::Position;
/// let p = Position::new(7).unwrap();
/// assert_eq!(p.get(), 7);
/// assert!(Position::new(0).is_none());
/// assert_eq!(factos::highest_position(Some(p), None), Some(p));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(NonZeroU64);

impl Position {
    /// The largest position a store hands out (PostgreSQL's `bigint` maximum).
    pub const MAX: u64 = i64::MAX as u64;

    /// A position, if `value` is in `1..=Position::MAX`.
    pub fn new(value: u64) -> Option<Self> {
        if value > Self::MAX {
            return None;
        }
        NonZeroU64::new(value).map(Self)
    }

    /// The first position of an empty log.
    pub const FIRST: Position = Position(NonZeroU64::MIN);

    /// The numeric value.
    pub fn get(self) -> u64 {
        self.0.get()
    }

    /// The next position, if any.
    pub fn next(self) -> Option<Self> {
        Self::new(self.get().checked_add(1)?)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The higher of two optional positions (`None` means nothing observed).
pub fn highest_position(a: Option<Position>, b: Option<Position>) -> Option<Position> {
    a.max(b)
}

/// The revision of one stream: no events yet, or the revision of its last event.
/// Revisions start at 0 and are contiguous.
///
/// ```
/// use factos::Revision;
/// assert_eq!(Revision::NoEvents.next(), 0);
/// assert_eq!(Revision::Current(4).next(), 5);
/// assert_eq!(Revision::NoEvents.to_string(), "no events");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Revision {
    /// The stream holds no event.
    #[default]
    NoEvents,
    /// The revision of the stream's last event.
    Current(u64),
}

impl Revision {
    /// The revision the next event of the stream gets.
    pub fn next(self) -> u64 {
        match self {
            Revision::NoEvents => 0,
            Revision::Current(n) => n.saturating_add(1),
        }
    }

    /// The revision after `count` more events.
    #[must_use]
    pub fn advanced_by(self, count: usize) -> Revision {
        match count {
            0 => self,
            n => Revision::Current(self.next().saturating_add(n as u64 - 1)),
        }
    }

    /// The original library's integer form: `-1` for no events.
    pub fn as_i64(self) -> i64 {
        match self {
            Revision::NoEvents => -1,
            Revision::Current(n) => i64::try_from(n).unwrap_or(i64::MAX),
        }
    }

    /// The revision of the last event, if any.
    pub fn current(self) -> Option<u64> {
        match self {
            Revision::NoEvents => None,
            Revision::Current(n) => Some(n),
        }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revision::NoEvents => f.write_str("no events"),
            Revision::Current(n) => write!(f, "revision {n}"),
        }
    }
}
