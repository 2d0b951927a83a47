//! Events that outlive their code: another module's event types under the
//! same tags, and older versions of an event read as the current one
//! (upcasting), with the JSON codec's options.

use factos::json::{JsonCodec, JsonEvent};
use factos::{
    AppendCondition, AppendError, Decider, DecodeError, DispatchError, Dispatcher, EventStore,
    EventType, NewEvent, Query, ReadOptions, Tag, Tags, dispatch_with_query, read_context,
};
use serde::{Deserialize, Serialize};

use super::stream;
use crate::CaseResult;

/// The bank's one event: a deposit in cents, in a currency (version 3).
/// Version 1 held whole units (`amount`); version 2 held cents without a
/// currency (always euros then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Bank {
    Deposited {
        account: String,
        amount_cents: u64,
        currency: String,
    },
}

impl JsonEvent for Bank {
    const EVENT_TYPES: &'static [&'static str] = &["Deposited"];
    fn event_type(&self) -> &'static str {
        "Deposited"
    }
    fn tags(&self) -> Vec<String> {
        let Bank::Deposited { account, .. } = self;
        vec![format!("account:{account}")]
    }
}

/// Deposits into one account; the state is the balance per currency, in
/// cents, as the decider saw it (a deposit of 0 cents is refused).
#[derive(Debug, Clone, Copy)]
struct Balance;

impl Decider for Balance {
    type State = Vec<(String, u64)>;
    type Command = (String, u64);
    type Event = Bank;
    type Error = &'static str;

    fn initial(&self) -> Self::State {
        Vec::new()
    }

    fn decide(
        &self,
        _: &Self::State,
        (account, cents): &(String, u64),
    ) -> Result<Vec<Bank>, &'static str> {
        if *cents == 0 {
            return Err("nothing to deposit");
        }
        Ok(vec![Bank::Deposited {
            account: account.clone(),
            amount_cents: *cents,
            currency: "EUR".into(),
        }])
    }

    fn evolve(&self, mut balances: Self::State, event: &Bank) -> Self::State {
        let Bank::Deposited {
            amount_cents,
            currency,
            ..
        } = event;
        match balances.iter_mut().find(|(c, _)| c == currency) {
            Some((_, total)) => *total += amount_cents,
            None => balances.push((currency.clone(), *amount_cents)),
        }
        balances
    }
}

fn account_query(account: &str) -> Result<Query, String> {
    let tag = Tag::new(format!("account:{account}")).map_err(|e| e.to_string())?;
    Ok(Query::tagged_with_all([tag]))
}

fn raw(event_type: &str, account: &str, version: u32, data: &[u8]) -> Result<NewEvent, String> {
    let event_type = EventType::new(event_type).map_err(|e| e.to_string())?;
    let tags = Tags::parse([format!("account:{account}")]).map_err(|e| e.to_string())?;
    Ok(NewEvent::new(event_type, data.to_vec())
        .with_tags(tags)
        .with_version(version))
}

async fn append_raw<S: EventStore>(store: &S, on: &str, event: NewEvent) -> CaseResult {
    store
        .append(&stream(on), vec![event], AppendCondition::None)
        .await
        .map(|_| ())
        .map_err(|e| format!("appending a raw event: {e}"))
}

/// Another module's `AddressChanged` under the bank's tag `account:bob`:
/// the default JSON codec refuses it (a decode error naming the event);
/// passing over foreign types, the decision and the context read leave it
/// out, while the append condition still counts it (a context read before
/// it no longer holds); a dispatcher's cache passes over it the same way;
/// and the query the codec builds from its types never meets it.
pub(super) async fn foreign_event_types_are_refused_or_passed_over<S: EventStore + Clone>(
    store: S,
) -> CaseResult {
    let query = account_query("bob")?;
    let bank = stream("bank-bob");
    let deposit = |cents: u64| ("bob".to_string(), cents);
    let strict = JsonCodec::<Bank>::new();
    let lenient = JsonCodec::<Bank>::new().passing_over_foreign_types();
    dispatch_with_query(&store, &bank, &query, &Balance, &strict, &deposit(500))
        .await
        .map_err(|e| format!("the first deposit: {e:?}"))?;
    append_raw(
        &store,
        "profile-bob",
        raw("AddressChanged", "bob", 1, b"Main St 1")?,
    )
    .await?;
    let refused = dispatch_with_query(&store, &bank, &query, &Balance, &strict, &deposit(1)).await;
    ensure!(
        matches!(&refused, Err(DispatchError::Decode(e))
            if e.event_type.as_str() == "AddressChanged"
                && matches!(e.error, DecodeError::UnknownEvent { .. })),
        "the default codec on a foreign event: {refused:?}"
    );
    // Passed over: the context holds the deposit only, yet its condition
    // is at the foreign event.
    let context = read_context(&store, &query, &Balance, &lenient)
        .await
        .map_err(|e| format!("reading the context: {e}"))?;
    ensure_eq!(context.events.len(), 1, "decoded events of the context");
    ensure_eq!(
        context.state.clone(),
        vec![("EUR".to_string(), 500)],
        "the context's state"
    );
    let head = store
        .read(&query, ReadOptions::default())
        .await
        .map_err(|e| e.to_string())?
        .events
        .last()
        .map(|e| e.position);
    ensure_eq!(
        context.position,
        head,
        "the context's position (the foreign event's)"
    );
    dispatch_with_query(&store, &bank, &query, &Balance, &lenient, &deposit(700))
        .await
        .map_err(|e| format!("a deposit passing over the foreign event: {e:?}"))?;
    // The condition counts foreign events: one appended after a context
    // fails an append under that context's condition.
    let context = read_context(&store, &query, &Balance, &lenient)
        .await
        .map_err(|e| format!("reading the context again: {e}"))?;
    ensure_eq!(
        context.state.clone(),
        vec![("EUR".to_string(), 1200)],
        "the state after two deposits"
    );
    append_raw(
        &store,
        "profile-bob",
        raw("AddressChanged", "bob", 1, b"Main St 2")?,
    )
    .await?;
    let late = factos::Codec::encode(
        &lenient,
        &Bank::Deposited {
            account: "bob".into(),
            amount_cents: 1,
            currency: "EUR".into(),
        },
    )
    .map_err(|e| e.to_string())?;
    let appended = store
        .append(&bank, vec![late], context.append_condition.clone())
        .await;
    ensure!(
        matches!(appended, Err(AppendError::ConditionFailed(_))),
        "an append under a context a foreign event followed: {appended:?}"
    );
    through_a_dispatcher_and_a_typed_query(&store, &query).await
}

/// A dispatcher's cache passes over foreign events too, and the query of
/// the codec's own types never meets them, even with the strict codec.
async fn through_a_dispatcher_and_a_typed_query<S: EventStore + Clone>(
    store: &S,
    query: &Query,
) -> CaseResult {
    let bank = stream("bank-bob");
    let deposit = |cents: u64| ("bob".to_string(), cents);
    let strict = JsonCodec::<Bank>::new();
    let lenient = JsonCodec::<Bank>::new().passing_over_foreign_types();
    let dispatcher = Dispatcher::new(store.clone(), Balance, lenient.clone());
    for (cents, note) in [(100, "Main St 3"), (200, "Main St 4")] {
        dispatcher
            .dispatch_with_query(&bank, query, &deposit(cents))
            .await
            .map_err(|e| format!("a cached deposit of {cents}: {e:?}"))?;
        append_raw(
            store,
            "profile-bob",
            raw("AddressChanged", "bob", 1, note.as_bytes())?,
        )
        .await?;
    }
    let state = read_context(store, query, &Balance, &lenient)
        .await
        .map_err(|e| e.to_string())?
        .state;
    ensure_eq!(
        state,
        vec![("EUR".to_string(), 1500)],
        "the balance after the cached deposits"
    );
    let typed = strict.query(["account:bob"]).map_err(|e| e.to_string())?;
    dispatch_with_query(store, &bank, &typed, &Balance, &strict, &deposit(5))
        .await
        .map_err(|e| format!("a deposit on the typed query: {e:?}"))?;
    Ok(())
}

/// An account whose deposits are stored at versions 1, 2 and 3 decides and
/// reads exactly as one whose deposits are all stored at version 3; new
/// events are written at version 3; a version past the newest the codec
/// knows is a decode error that says so.
pub(super) async fn older_event_versions_are_upcast_to_the_newest<S: EventStore + Clone>(
    store: S,
) -> CaseResult {
    let codec = upcasting_codec();
    for (version, data) in [
        (1, r#"{"Deposited":{"account":"mixed","amount":5}}"#),
        (2, r#"{"Deposited":{"account":"mixed","amount_cents":250}}"#),
        (
            3,
            r#"{"Deposited":{"account":"mixed","amount_cents":25,"currency":"USD"}}"#,
        ),
    ] {
        append_raw(
            &store,
            "bank-mixed",
            raw("Deposited", "mixed", version, data.as_bytes())?,
        )
        .await?;
    }
    for (cents, currency) in [(500, "EUR"), (250, "EUR"), (25, "USD")] {
        let data = format!(
            r#"{{"Deposited":{{"account":"latest","amount_cents":{cents},"currency":"{currency}"}}}}"#
        );
        append_raw(
            &store,
            "bank-latest",
            raw("Deposited", "latest", 3, data.as_bytes())?,
        )
        .await?;
    }
    let mut seen = Vec::new();
    for account in ["mixed", "latest"] {
        let query = account_query(account)?;
        let context = read_context(&store, &query, &Balance, &codec)
            .await
            .map_err(|e| format!("reading {account}: {e}"))?;
        let dispatched = dispatch_with_query(
            &store,
            &stream(&format!("bank-{account}")),
            &query,
            &Balance,
            &codec,
            &(account.to_string(), 1),
        )
        .await
        .map_err(|e| format!("a deposit into {account}: {e:?}"))?;
        let versions: Vec<u32> = dispatched.events.iter().map(|r| r.version).collect();
        ensure_eq!(
            versions,
            vec![3],
            format!("versions written into {account}")
        );
        let currencies: Vec<String> = context
            .events
            .iter()
            .map(|r| {
                let Bank::Deposited { currency, .. } = &r.event;
                currency.clone()
            })
            .collect();
        seen.push((context.state, currencies));
    }
    ensure_eq!(
        seen[0].clone(),
        seen[1].clone(),
        "the mixed account against the one stored at the newest version"
    );
    ensure_eq!(
        seen[0].0.clone(),
        vec![("EUR".to_string(), 750), ("USD".to_string(), 25)],
        "the balances"
    );
    let future = r#"{"Deposited":{"account":"future","amount_cents":1,"currency":"EUR","fee":0}}"#;
    append_raw(
        &store,
        "bank-future",
        raw("Deposited", "future", 4, future.as_bytes())?,
    )
    .await?;
    let outcome = dispatch_with_query(
        &store,
        &stream("bank-future"),
        &account_query("future")?,
        &Balance,
        &codec,
        &("future".to_string(), 1),
    )
    .await;
    ensure!(
        matches!(&outcome, Err(DispatchError::Decode(e))
            if matches!(e.error, DecodeError::NewerVersion { version: 4, newest: 3, .. })),
        "a version newer than the code: {outcome:?}"
    );
    Ok(())
}

/// The bank's codec with its two steps: v1 (whole units) to v2 (cents),
/// v2 to v3 (the currency, euros before it was stored).
fn upcasting_codec() -> JsonCodec<Bank> {
    JsonCodec::<Bank>::new()
        .upcasting("Deposited", 1, |mut v1| {
            let body = v1
                .get_mut("Deposited")
                .and_then(serde_json::Value::as_object_mut)
                .ok_or("not a deposit")?;
            let units = body
                .remove("amount")
                .and_then(|a| a.as_u64())
                .ok_or("no amount")?;
            body.insert("amount_cents".into(), (units * 100).into());
            Ok(v1)
        })
        .upcasting("Deposited", 2, |mut v2| {
            let body = v2
                .get_mut("Deposited")
                .and_then(serde_json::Value::as_object_mut)
                .ok_or("not a deposit")?;
            body.insert("currency".into(), "EUR".into());
            Ok(v2)
        })
}
