//! One decision for several commands on one boundary (group commit): the
//! store sees a single [`DecisionProcess`] whose context is the boundary's,
//! and which decides each command in arrival order on the running state.
//!
//! Command k is decided on the context plus the events of the commands
//! accepted before it, exactly as if the commands had been dispatched one
//! after the other; a command that is refused, fails to encode or panics is
//! left out and changes nothing for the others. The store appends the
//! accepted commands' events in one append under the boundary's condition,
//! so the guarantee is the single decision's: the batch commits only if no
//! event matching the query appeared after the context it was decided on.
//! When the store decides again (a failed condition, events fed since), every
//! command is decided again from the new context.

use std::collections::HashMap;

use crate::dispatch::{
    DispatchOptions, ProcessError, decide_command, evolve_stored, guarded, lost_state, react_to,
    with_key_ids, within_effect_limits,
};
use crate::effect::Effect;
use crate::event_store::{Committed, DecisionProcess, Folded};
use crate::{Codec, Decider, NewEvent, Query, Revision, StoredEvent, StreamId};

/// One command of a batch: its stream, and what it adds to its decision,
/// as alone: an idempotency key (its events carry the ids the key derives)
/// and a reactor (its events' effects are recorded with the append).
pub(crate) struct BatchCommand<'a, C, E> {
    pub(crate) stream: &'a StreamId,
    pub(crate) command: &'a C,
    pub(crate) options: DispatchOptions<'a, E>,
}

impl<C, E> Clone for BatchCommand<'_, C, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C, E> Copy for BatchCommand<'_, C, E> {}

/// What the latest decide made of one command.
pub(crate) enum Outcome<D: Decider> {
    /// Accepted: its events (decided, and as many encoded in the append).
    Accepted(Vec<D::Event>),
    /// Left out, with why.
    Refused(ProcessError<D::Error>),
}

/// The decision process of a batch of commands on one boundary.
pub(crate) struct BatchProcess<'a, D: Decider, C> {
    decider: &'a D,
    codec: &'a C,
    query: &'a Query,
    /// Each command, with the stream its events go to, in arrival order;
    /// the first command's stream is the decision's.
    commands: Vec<BatchCommand<'a, D::Command, D::Event>>,
    /// The streams of the other commands, once each, without the decision's.
    other_streams: Vec<StreamId>,
    /// The first id each keyed command's key derives.
    first_ids: Vec<uuid::Uuid>,
    /// After a decide: for each appended event, its command's stream as an
    /// index into `other_streams` (`None`: the decision's stream).
    routes: Vec<Option<usize>>,
    /// The boundary's context folded so far (the store feeds it); `None`
    /// only after a panic of the decider's `evolve` left it unusable.
    state: Option<D::State>,
    /// Each command's outcome at the latest decide, in arrival order.
    pub(crate) outcomes: Vec<Outcome<D>>,
    /// The state after the latest decide's accepted events that match the
    /// query, and how many matched: what the context is after the commit.
    after: Option<(D::State, usize)>,
    /// After a decide: whether an accepted command's reactor reacts to one
    /// of its events (asked there, under the panic guard).
    reacts: bool,
}

impl<'a, D, C> BatchProcess<'a, D, C>
where
    D: Decider,
    D::State: Clone,
    C: Codec<Event = D::Event>,
{
    pub(crate) fn new(
        decider: &'a D,
        codec: &'a C,
        query: &'a Query,
        commands: Vec<BatchCommand<'a, D::Command, D::Event>>,
        state: D::State,
    ) -> Self {
        let mut other_streams: Vec<StreamId> = Vec::new();
        if let Some((own, rest)) = commands.split_first() {
            for other in rest {
                if other.stream != own.stream && !other_streams.contains(other.stream) {
                    other_streams.push(other.stream.clone());
                }
            }
        }
        let first_ids = commands
            .iter()
            .filter_map(|c| c.options.idempotency_key)
            .map(|key| crate::event_id(key, 0))
            .collect();
        Self {
            decider,
            codec,
            query,
            commands,
            other_streams,
            first_ids,
            routes: Vec::new(),
            state: Some(state),
            outcomes: Vec::new(),
            after: None,
            reacts: false,
        }
    }

    /// The context right after the commit, for the cache: the state and
    /// what it is folded from (the store's `committed` plus the accepted
    /// events that match the query).
    pub(crate) fn context_after(&mut self, committed: &Committed) -> Option<(D::State, Folded)> {
        let (state, matched) = self.after.take()?;
        let folded = Folded {
            position: committed.context_position.max(committed.position),
            events: committed.context_events + matched,
        };
        Some((state, folded))
    }
}

impl<D, C> DecisionProcess for BatchProcess<'_, D, C>
where
    D: Decider<State: Send + Clone, Event: Send, Command: Sync, Error: Send> + Sync,
    C: Codec<Event = D::Event>,
{
    type Error = ProcessError<D::Error>;

    fn evolve(&mut self, stored: &StoredEvent) -> Result<(), Self::Error> {
        // A keyed command's earlier attempt committed after the dispatcher
        // looked for it: the batch fails (nothing written) and each command
        // goes alone, where that one is replayed.
        if self.first_ids.contains(&stored.id) {
            return Err(ProcessError::EarlierAttempt);
        }
        evolve_stored(self.decider, self.codec, &mut self.state, stored)
    }

    fn decide(&mut self) -> Result<Vec<NewEvent>, Self::Error> {
        let base = self.state.as_ref().ok_or_else(lost_state)?;
        let mut running = guarded("decider state clone", || base.clone())?;
        let (decider, codec, query) = (self.decider, self.codec, self.query);
        let mut appended = Vec::new();
        let mut matched = 0;
        self.outcomes.clear();
        self.routes.clear();
        for batched in &self.commands {
            match decide_command(decider, codec, &running, batched.command) {
                Ok((events, encoded)) => {
                    let encoded = with_key_ids(encoded, batched.options.idempotency_key);
                    for (event, new) in events.iter().zip(&encoded) {
                        if query.matches(&new.event_type, &new.tags) {
                            // A panic here fails the whole batch: the running
                            // state is gone (the dispatcher then dispatches
                            // each command alone).
                            running = guarded("decider evolve", || decider.evolve(running, event))?;
                            matched += 1;
                        }
                    }
                    let route = self
                        .other_streams
                        .iter()
                        .position(|other| other == batched.stream);
                    self.routes
                        .extend(std::iter::repeat_n(route, encoded.len()));
                    appended.extend(encoded);
                    self.outcomes.push(Outcome::Accepted(events));
                }
                Err(e) => self.outcomes.push(Outcome::Refused(e)),
            }
        }
        self.after = Some((running, matched));
        let (commands, outcomes) = (&self.commands, &self.outcomes);
        // A reactor that panics here fails the batch, as one that panics
        // reacting does.
        self.reacts = guarded("reactor reacts_to", || {
            commands.iter().zip(outcomes).any(|(batched, outcome)| {
                match (batched.options.reactor, outcome) {
                    (Some(reactor), Outcome::Accepted(events)) => {
                        events.iter().any(|e| reactor.reacts_to(e))
                    }
                    _ => false,
                }
            })
        })?;
        Ok(appended)
    }

    /// A batch is never its own replay: an id of its events found stored
    /// (a keyed command's earlier attempt committed meanwhile) is a
    /// conflict, and the dispatcher sends each command alone, where a keyed
    /// one is replayed.
    fn is_replay_of(&self, _: &StreamId, _: &[NewEvent], _: &[StoredEvent]) -> bool {
        false
    }

    fn other_streams(&self) -> &[StreamId] {
        &self.other_streams
    }

    fn has_effects(&self) -> bool {
        self.reacts
    }

    /// Each accepted command's effects by its own reactor, on its own
    /// events, in arrival order; a reactor that panics or breaks a
    /// dispatch's effect limits, or a batch whose effects together break
    /// them, fails the batch (the dispatcher then sends each command alone,
    /// and only a command over the limits on its own fails).
    fn effects(&mut self, appended: &[StoredEvent]) -> Result<Vec<Effect>, Self::Error> {
        let mut rest = appended;
        let mut effects = Vec::new();
        for (batched, outcome) in self.commands.iter().zip(&mut self.outcomes) {
            let Outcome::Accepted(events) = outcome else {
                continue;
            };
            let (own, after) = rest
                .split_at_checked(events.len())
                .ok_or_else(unaccounted_events)?;
            rest = after;
            if let Some(reactor) = batched.options.reactor {
                let (decided, reacted) = react_to(reactor, own, std::mem::take(events));
                *events = decided;
                effects.extend(reacted?);
            }
        }
        // The batch records its effects in one insert: within one
        // dispatch's limits, or each command goes alone.
        within_effect_limits(effects)
    }

    fn event_stream(&self, index: usize) -> Option<&StreamId> {
        let route = (*self.routes.get(index)?)?;
        self.other_streams.get(route)
    }
}

/// The store appended fewer events than the batch decided (a bug, reported
/// as a failure of the batch rather than hidden).
fn unaccounted_events<E>() -> ProcessError<E> {
    ProcessError::Panicked {
        during: "combined batch",
        message: "the appended events do not match the batch's decided events".to_string(),
    }
}

/// Splits a batch's commit into each command's own commit, as if the
/// commands had been dispatched one after the other: its events (contiguous,
/// in arrival order, on its stream), its stream's revision right after its
/// own events (or, for a command that appended nothing, where its stream
/// stood then) and its last position; every command reports the batch's
/// context. `streams[i]` and `counts[i]` are command i's stream and number
/// of appended events. `None` when the commit does not hold exactly those
/// events (the caller reports a store error).
pub(crate) fn split_commit(
    committed: &Committed,
    streams: &[&StreamId],
    counts: &[usize],
) -> Option<Vec<Committed>> {
    if counts.iter().sum::<usize>() != committed.events.len() || streams.len() != counts.len() {
        return None;
    }
    // Where each stream stood before the batch.
    let mut running: HashMap<&StreamId, Revision> = HashMap::new();
    for stream in streams {
        let before = match committed.events.iter().find(|e| &e.stream == *stream) {
            Some(first) => first
                .revision
                .checked_sub(1)
                .map_or(Revision::NoEvents, Revision::Current),
            None if *stream == &committed.stream => committed.current_revision,
            None => committed
                .other_revisions
                .iter()
                .find(|(other, _)| other == *stream)
                .map(|(_, revision)| *revision)?,
        };
        running.entry(stream).or_insert(before);
    }
    let mut rest = committed.events.as_slice();
    let mut commits = Vec::with_capacity(counts.len());
    for (&stream, &count) in streams.iter().zip(counts) {
        let (own, after) = rest.split_at(count);
        rest = after;
        if own.iter().any(|e| &e.stream != stream) {
            return None;
        }
        let revision = running.get_mut(stream)?;
        if let Some(last) = own.last() {
            *revision = Revision::Current(last.revision);
        }
        commits.push(Committed {
            stream: stream.clone(),
            current_revision: *revision,
            position: own.last().map(|e| e.position),
            events: own.to_vec(),
            context_position: committed.context_position,
            context_events: committed.context_events,
            replayed: committed.replayed,
            other_revisions: Vec::new(),
        });
    }
    Some(commits)
}
