//! The pure parts of a command handler: deciders, views and reactors.

use crate::Recorded;

/// A pure, synchronous decision: from the state folded over the relevant
/// events and a command, the new events (or a domain error).
///
/// ```
/// use factos::{Decider, compute_events};
///
/// struct Counter;
/// impl Decider for Counter {
///     type State = u32;
///     type Command = u32; // add this many, at most 3 in total
///     type Event = u32;
///     type Error = &'static str;
///     fn initial(&self) -> u32 { 0 }
///     fn decide(&self, state: &u32, add: &u32) -> Result<Vec<u32>, &'static str> {
///         if state + add > 3 { Err("too many") } else { Ok(vec![*add]) }
///     }
///     fn evolve(&self, state: u32, event: &u32) -> u32 { state + event }
/// }
///
/// assert_eq!(compute_events(&Counter, &[1, 1], &1), Ok(vec![1]));
/// assert_eq!(compute_events(&Counter, &[1, 1], &2), Err("too many"));
/// ```
pub trait Decider {
    /// What the decision needs to know, folded from past events.
    type State;
    /// The request to decide on.
    type Command;
    /// The facts produced.
    type Event;
    /// Why a command is refused.
    type Error;

    /// The state before any event.
    fn initial(&self) -> Self::State;
    /// Decides which events the command produces. Must be pure.
    fn decide(
        &self,
        state: &Self::State,
        command: &Self::Command,
    ) -> Result<Vec<Self::Event>, Self::Error>;
    /// Applies one event to the state. Must be pure.
    fn evolve(&self, state: Self::State, event: &Self::Event) -> Self::State;
}

/// A [`Decider`] the dispatch functions can run: a dispatch holds the
/// decider, the command and the state across the store's `.await`s, so the
/// decider and its command must be [`Sync`], its state, events and errors
/// [`Send`].
///
/// It names the bound the dispatch functions and [`Dispatcher`](crate::Dispatcher)
/// share and is implemented for every such decider: implement [`Decider`],
/// never this.
///
/// ```
/// use factos::{Decider, DispatchDecider};
/// struct Count;
/// impl Decider for Count {
///     type State = u32; type Command = (); type Event = (); type Error = ();
///     fn initial(&self) -> u32 { 0 }
///     fn decide(&self, _: &u32, _: &()) -> Result<Vec<()>, ()> { Ok(vec![()]) }
///     fn evolve(&self, n: u32, _: &()) -> u32 { n + 1 }
/// }
/// fn dispatchable<D: DispatchDecider>(_: &D) {}
/// dispatchable(&Count);
/// ```
pub trait DispatchDecider:
    Decider<State: Send, Event: Send, Command: Sync, Error: Send> + Sync
{
}

impl<D> DispatchDecider for D where
    D: Decider<State: Send, Event: Send, Command: Sync, Error: Send> + Sync
{
}

/// Folds `events` into a decider's state.
pub fn fold_decider<'a, D>(decider: &D, events: impl IntoIterator<Item = &'a D::Event>) -> D::State
where
    D: Decider,
    D::Event: 'a,
{
    events.into_iter().fold(decider.initial(), |state, event| {
        decider.evolve(state, event)
    })
}

/// Folds `events`, then decides: a whole command handler without a store, for unit tests.
pub fn compute_events<D: Decider>(
    decider: &D,
    events: &[D::Event],
    command: &D::Command,
) -> Result<Vec<D::Event>, D::Error> {
    let state = fold_decider(decider, events);
    decider.decide(&state, command)
}

/// A read-side fold over events.
///
/// ```
/// use factos::{View, fold_view, merge_views};
/// struct Count;
/// impl View for Count {
///     type State = usize;
///     type Event = i32;
///     fn initial(&self) -> usize { 0 }
///     fn evolve(&self, n: usize, _: &i32) -> usize { n + 1 }
/// }
/// struct Sum;
/// impl View for Sum {
///     type State = i32;
///     type Event = i32;
///     fn initial(&self) -> i32 { 0 }
///     fn evolve(&self, s: i32, e: &i32) -> i32 { s + e }
/// }
/// let both = merge_views(Count, Sum);
/// assert_eq!(fold_view(&both, &[2, 3, 4]), (3, 9));
/// ```
pub trait View {
    /// The folded state.
    type State;
    /// The events folded.
    type Event;
    /// The state before any event.
    fn initial(&self) -> Self::State;
    /// Applies one event.
    fn evolve(&self, state: Self::State, event: &Self::Event) -> Self::State;
}

/// Folds `events` into a view's state.
pub fn fold_view<'a, V>(view: &V, events: impl IntoIterator<Item = &'a V::Event>) -> V::State
where
    V: View,
    V::Event: 'a,
{
    events
        .into_iter()
        .fold(view.initial(), |state, event| view.evolve(state, event))
}

/// Two views over the same events, kept side by side; see [`merge_views`].
#[derive(Debug, Clone, Copy)]
pub struct MergedViews<A, B> {
    first: A,
    second: B,
}

/// Merges two views into one whose state is the pair of their states.
pub fn merge_views<A, B>(first: A, second: B) -> MergedViews<A, B>
where
    A: View,
    B: View<Event = A::Event>,
{
    MergedViews { first, second }
}

impl<A, B> View for MergedViews<A, B>
where
    A: View,
    B: View<Event = A::Event>,
{
    type State = (A::State, B::State);
    type Event = A::Event;

    fn initial(&self) -> Self::State {
        (self.first.initial(), self.second.initial())
    }

    fn evolve(&self, (a, b): Self::State, event: &Self::Event) -> Self::State {
        (self.first.evolve(a, event), self.second.evolve(b, event))
    }
}

/// Turns committed events into effects (emails, calls, messages) for the
/// application to run after the commit.
///
/// ```
/// use factos::{Reactor, react_all, reactor_fn, merge_reactors};
/// let greet = reactor_fn(|r: &factos::Recorded<String>| vec![format!("hello {}", r.event)]);
/// let log = reactor_fn(|r: &factos::Recorded<String>| vec![format!("log {}", r.position)]);
/// let both = merge_reactors(greet, log);
/// # let recorded = factos::Recorded {
/// #     id: uuid::Uuid::nil(), stream: factos::StreamId::new("s")?, revision: 0,
/// #     position: factos::Position::FIRST, event_type: factos::EventType::new("T")?,
/// #     version: 1, tags: factos::Tags::empty(), metadata: factos::Metadata::new(),
/// #     event: "renata".to_string() };
/// assert_eq!(react_all(&both, &[recorded]), ["hello renata", "log 1"]);
/// # Ok::<(), factos::ValidationError>(())
/// ```
pub trait Reactor {
    /// The events reacted to.
    type Event;
    /// What the application should do.
    type Effect;
    /// The effects of one committed event.
    fn react(&self, recorded: &Recorded<Self::Event>) -> Vec<Self::Effect>;

    /// Whether [`react`](Self::react) is asked about `event` at all
    /// (default: every event). An event it says no to has no effects,
    /// whatever `react` would give, and a decision none of whose events it
    /// reacts to commits as a plain dispatch does: on PostgreSQL in the
    /// same round trip as its append (a decision with effects takes one
    /// more, to record them before the commit). Say no for the events that
    /// never have effects, from the event alone (its positions are not
    /// known yet).
    fn reacts_to(&self, event: &Self::Event) -> bool {
        let _ = event;
        true
    }
}

/// The effects of every event the reactor [reacts to](Reactor::reacts_to),
/// in event order (what an outbox dispatch records).
pub fn react_all<R: Reactor>(reactor: &R, events: &[Recorded<R::Event>]) -> Vec<R::Effect> {
    events
        .iter()
        .filter(|recorded| reactor.reacts_to(&recorded.event))
        .flat_map(|recorded| reactor.react(recorded))
        .collect()
}

type ReactFn<E, X> = fn(&Recorded<E>) -> Vec<X>;

/// A reactor made from a closure; see [`reactor_fn`]. It is `Clone` when
/// the closure (and the filter) is (a combining
/// [`Dispatcher`](crate::Dispatcher) clones an outbox dispatch's reactor
/// into its queue).
pub struct FnReactor<E, X, F, W = fn(&E) -> bool> {
    react: F,
    when: W,
    marker: std::marker::PhantomData<ReactFn<E, X>>,
}

/// Makes a reactor from a closure (it reacts to every event; narrow it with
/// [`FnReactor::when`]).
pub fn reactor_fn<E, X, F>(react: F) -> FnReactor<E, X, F>
where
    F: Fn(&Recorded<E>) -> Vec<X>,
{
    FnReactor {
        react,
        when: |_| true,
        marker: std::marker::PhantomData,
    }
}

impl<E, X, F> FnReactor<E, X, F> {
    /// The same reactor, asked only about the events `when` accepts (see
    /// [`Reactor::reacts_to`]): a decision none of whose events it accepts
    /// costs what a plain dispatch does.
    ///
    /// ```
    /// use factos::{Reactor, reactor_fn};
    /// let welcome = reactor_fn(|r: &factos::Recorded<String>| vec![r.event.clone()])
    ///     .when(|event: &String| event.starts_with("registered"));
    /// assert!(welcome.reacts_to(&"registered renata".to_string()));
    /// assert!(!welcome.reacts_to(&"renamed renata".to_string()));
    /// ```
    pub fn when<W>(self, when: W) -> FnReactor<E, X, F, W>
    where
        W: Fn(&E) -> bool,
    {
        FnReactor {
            react: self.react,
            when,
            marker: std::marker::PhantomData,
        }
    }
}

impl<E, X, F: Clone, W: Clone> Clone for FnReactor<E, X, F, W> {
    fn clone(&self) -> Self {
        Self {
            react: self.react.clone(),
            when: self.when.clone(),
            marker: std::marker::PhantomData,
        }
    }
}

impl<E, X, F, W> Reactor for FnReactor<E, X, F, W>
where
    F: Fn(&Recorded<E>) -> Vec<X>,
    W: Fn(&E) -> bool,
{
    type Event = E;
    type Effect = X;
    fn react(&self, recorded: &Recorded<E>) -> Vec<X> {
        (self.react)(recorded)
    }

    fn reacts_to(&self, event: &E) -> bool {
        (self.when)(event)
    }
}

/// Two reactors; per event, the effects of the first, then of the second. See [`merge_reactors`].
#[derive(Debug, Clone, Copy)]
pub struct MergedReactors<A, B> {
    first: A,
    second: B,
}

/// Merges two reactors with the same events and effects.
pub fn merge_reactors<A, B>(first: A, second: B) -> MergedReactors<A, B>
where
    A: Reactor,
    B: Reactor<Event = A::Event, Effect = A::Effect>,
{
    MergedReactors { first, second }
}

impl<A, B> Reactor for MergedReactors<A, B>
where
    A: Reactor,
    B: Reactor<Event = A::Event, Effect = A::Effect>,
{
    type Event = A::Event;
    type Effect = A::Effect;
    fn react(&self, recorded: &Recorded<Self::Event>) -> Vec<Self::Effect> {
        let mut effects = if self.first.reacts_to(&recorded.event) {
            self.first.react(recorded)
        } else {
            Vec::new()
        };
        if self.second.reacts_to(&recorded.event) {
            effects.extend(self.second.react(recorded));
        }
        effects
    }

    fn reacts_to(&self, event: &Self::Event) -> bool {
        self.first.reacts_to(event) || self.second.reacts_to(event)
    }
}
