//! The spans the crate documents (the "Tracing" table of `src/lib.rs`) are
//! the spans a workload opens: every documented span is opened, with
//! exactly the documented fields, no undocumented `factos.*` span is, and
//! the `kind` and `outcome` values said there are the ones recorded.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use factos::{
    AppendCondition, Dispatcher, EventStore, Query, ReadOptions, StreamId, Tag, dispatch,
    dispatch_with_query,
};
use factos_postgres::StoreOptions;
use factos_testkit::model::{KitCodec, KitEvent, Shelf, ShelfCommand};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// What the spans named `factos.*` declared and recorded.
#[derive(Default)]
struct Seen {
    /// Span name → every field it declares.
    fields: BTreeMap<String, BTreeSet<String>>,
    /// (span name, field) → every value recorded.
    values: BTreeMap<(String, String), BTreeSet<String>>,
    /// Open span → its name.
    names: HashMap<u64, String>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Seen>>);

struct Values<'a> {
    span: &'a str,
    seen: &'a mut Seen,
}

impl Visit for Values<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_text(field, format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_text(field, value.to_string());
    }
}

impl Values<'_> {
    fn record_text(&mut self, field: &Field, value: String) {
        self.seen
            .values
            .entry((self.span.to_string(), field.name().to_string()))
            .or_default()
            .insert(value);
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let name = attrs.metadata().name();
        if !name.starts_with("factos.") {
            return;
        }
        let mut seen = self.0.lock().unwrap();
        let fields = attrs
            .metadata()
            .fields()
            .iter()
            .map(|f| f.name().to_string());
        seen.fields
            .entry(name.to_string())
            .or_default()
            .extend(fields);
        seen.names.insert(id.into_u64(), name.to_string());
        attrs.record(&mut Values {
            span: name,
            seen: &mut seen,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut seen = self.0.lock().unwrap();
        let Some(name) = seen.names.get(&id.into_u64()).cloned() else {
            return;
        };
        values.record(&mut Values {
            span: &name,
            seen: &mut seen,
        });
    }
}

/// The documented table: span name → its fields (the words in backticks
/// of the fields column; the values named in parentheses are not fields).
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let docs = include_str!("../src/lib.rs");
    let mut spans = BTreeMap::new();
    for row in docs
        .lines()
        .filter_map(|l| l.strip_prefix("//! | `factos."))
    {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let name = format!("factos.{}", cells[0].trim_end_matches('`'));
        let without_values: String = {
            let mut depth = 0;
            cells[2]
                .chars()
                .filter(|&c| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0 && c != ')'
                })
                .collect()
        };
        let fields: BTreeSet<String> = without_values
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        spans.insert(name, fields);
    }
    spans
}

fn shelf_query(name: &str) -> Query {
    Query::tagged_with_all([Tag::new(format!("box:{name}")).unwrap()])
}

#[tokio::test(flavor = "current_thread")]
async fn the_documented_spans_are_the_spans_opened() {
    let recorder = Recorder::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(recorder.clone()));
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let stream = StreamId::new("shelf").unwrap();
    let codec = KitCodec::default();
    let shelf = Shelf::default();
    let add = ShelfCommand::Add("a".into());

    // A query dispatch that commits, one refused, a stream dispatch, and
    // one through a warm cache.
    dispatch_with_query(&store, &stream, &shelf_query("a"), &shelf, &codec, &add)
        .await
        .unwrap();
    let close = ShelfCommand::CloseAt("a".into(), 5);
    dispatch_with_query(&store, &stream, &shelf_query("a"), &shelf, &codec, &close)
        .await
        .unwrap_err();
    dispatch(&store, &stream, &shelf, &codec, &add)
        .await
        .unwrap();
    factos::dispatch_with_condition(
        &store,
        &stream,
        &shelf_query("a"),
        &shelf_query("a"),
        &shelf,
        &codec,
        &add,
    )
    .await
    .unwrap();
    let cached = Dispatcher::new(store.clone(), shelf.clone(), codec.clone());
    for _ in 0..2 {
        cached
            .dispatch_with_query(&stream, &shelf_query("b"), &ShelfCommand::Add("b".into()))
            .await
            .unwrap();
    }
    // An append that commits and one whose condition fails; a read.
    let event = || codec_event(&codec);
    store
        .append(&stream, vec![event()], AppendCondition::None)
        .await
        .unwrap();
    store
        .append(
            &stream,
            vec![event()],
            AppendCondition::FailIfEventsMatch {
                query: Query::all(),
                after: None,
            },
        )
        .await
        .unwrap_err();
    store
        .read(&Query::all(), ReadOptions::default())
        .await
        .unwrap();

    let seen = recorder.0.lock().unwrap();
    let documented = documented();
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        [
            "factos.append",
            "factos.dispatch",
            "factos.migrate",
            "factos.read"
        ],
        "the table as parsed"
    );
    assert_eq!(
        seen.fields, documented,
        "spans opened vs the documented table"
    );
    let values = |span: &str, field: &str| -> Vec<String> {
        seen.values
            .get(&(span.to_string(), field.to_string()))
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(
        values("factos.dispatch", "kind"),
        ["cached", "condition", "query", "stream"]
    );
    assert_eq!(
        values("factos.dispatch", "outcome"),
        ["committed", "refused"]
    );
    assert_eq!(
        values("factos.append", "outcome"),
        ["committed", "condition failed"]
    );
    assert!(!values("factos.read", "events").is_empty());
    assert!(!values("factos.read", "head").is_empty());
}

fn codec_event(codec: &KitCodec) -> factos::NewEvent {
    factos::Codec::encode(codec, &KitEvent::new("Item", &["box:c"])).unwrap()
}
