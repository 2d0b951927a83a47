//! Events outlive their code: a stored event keeps the version it was
//! written at, and [`Upcasts`] turns an older payload into the current one
//! through a chain of steps registered per event type, each a pure function
//! from one version to the next (v1 → v2 → v3). Stored events are never
//! rewritten; the steps run on every decode of an old event.
//!
//! `P` is the payload as a codec works on it: [`serde_json::Value`] for the
//! [`JsonCodec`](crate::json::JsonCodec), raw bytes or a format's own value
//! for other codecs.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::{DecodeError, EventType};

/// Most steps one event type's chain may hold: a limit on the work one
/// decode can do.
pub const MAX_UPCAST_STEPS: u32 = 1_000;

/// One step of a chain: the payload at one version to the payload at the next.
type Step<P> = Arc<dyn Fn(P) -> Result<P, String> + Send + Sync>;

/// The upcasting steps of a codec, per event type.
///
/// ```
/// use factos::upcast::Upcasts;
/// use factos::EventType;
/// let upcasts = Upcasts::<String>::new()
///     .step("Deposited", 1, |v1| Ok(format!("{v1}+currency")))
///     .step("Deposited", 2, |v2| Ok(format!("{v2}+note")));
/// let deposited = EventType::new("Deposited")?;
/// assert_eq!(upcasts.newest(&deposited), Some(3));
/// assert_eq!(upcasts.to_newest(&deposited, 1, "amount".to_string())?, "amount+currency+note");
/// assert_eq!(upcasts.to_newest(&deposited, 3, "as is".to_string())?, "as is");
/// assert!(upcasts.to_newest(&deposited, 4, String::new()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Upcasts<P> {
    /// Per type, the step from each version (key) to the next.
    chains: HashMap<String, BTreeMap<u32, Step<P>>>,
}

impl<P> Upcasts<P> {
    /// No steps: every payload is read at the version it was stored at.
    pub fn new() -> Self {
        Self {
            chains: HashMap::new(),
        }
    }

    /// Adds the step of `event_type` from version `from` to `from + 1`
    /// (registering `from` again replaces its step). A type's newest
    /// version is then one past its highest step.
    #[must_use]
    pub fn step(
        mut self,
        event_type: &str,
        from: u32,
        step: impl Fn(P) -> Result<P, String> + Send + Sync + 'static,
    ) -> Self {
        self.chains
            .entry(event_type.to_string())
            .or_default()
            .insert(from, Arc::new(step));
        self
    }

    /// Whether no step is registered.
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }

    /// The newest version of `event_type` the steps lead to; `None` when it
    /// has no steps (its payloads are read as stored).
    pub fn newest(&self, event_type: &EventType) -> Option<u32> {
        self.chains
            .get(event_type.as_str())?
            .last_key_value()
            .map(|(from, _)| from.saturating_add(1))
    }

    /// `payload`, stored at `version`, brought to the newest version of
    /// `event_type` (unchanged when the type has no steps or is at its
    /// newest already).
    ///
    /// # Errors
    ///
    /// [`DecodeError::NewerVersion`] when `version` is past the newest the
    /// steps know; [`DecodeError::InvalidData`] when a step is missing from
    /// the chain, the chain is longer than [`MAX_UPCAST_STEPS`], or a step
    /// fails.
    pub fn to_newest(
        &self,
        event_type: &EventType,
        version: u32,
        payload: P,
    ) -> Result<P, DecodeError> {
        let Some(chain) = self.chains.get(event_type.as_str()) else {
            return Ok(payload);
        };
        let Some(newest) = self.newest(event_type) else {
            return Ok(payload);
        };
        if version > newest {
            return Err(DecodeError::NewerVersion {
                event_type: event_type.clone(),
                version,
                newest,
            });
        }
        let invalid = |message: String| DecodeError::InvalidData {
            event_type: event_type.clone(),
            version,
            message,
        };
        if newest - version > MAX_UPCAST_STEPS {
            return Err(invalid(format!(
                "{} upcasting steps to version {newest}, more than the {MAX_UPCAST_STEPS} allowed",
                newest - version
            )));
        }
        let mut payload = payload;
        for from in version..newest {
            let step = chain
                .get(&from)
                .ok_or_else(|| invalid(format!("no upcasting step from version {from}")))?;
            payload = step(payload)
                .map_err(|e| invalid(format!("upcasting from version {from}: {e}")))?;
        }
        Ok(payload)
    }
}

impl<P> Default for Upcasts<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P> Clone for Upcasts<P> {
    fn clone(&self) -> Self {
        Self {
            chains: self.chains.clone(),
        }
    }
}

impl<P> fmt::Debug for Upcasts<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut types: Vec<(&String, Option<u32>)> = self
            .chains
            .iter()
            .map(|(t, chain)| (t, chain.last_key_value().map(|(k, _)| k.saturating_add(1))))
            .collect();
        types.sort();
        f.debug_struct("Upcasts").field("newest", &types).finish()
    }
}
