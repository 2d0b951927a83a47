//! The chart page (reloads every 5 s): events appended per 10 s over the
//! last 10 minutes, from the log's `recorded_at`, and each subscriber's lag
//! (positions behind the head), sampled by the UI every 5 s while it runs.
//! Drawn as inline SVG on the server.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};

use super::html::{self, escape};
use super::{Ui, store_failed};

const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Samples kept: 10 minutes.
const MAX_SAMPLES: usize = 120;
const BUCKET: Duration = Duration::from_secs(10);
const WINDOW: Duration = Duration::from_secs(600);
/// Subscribers drawn (the ones furthest behind).
const MAX_LINES: usize = 8;

/// The lag samples: (when, subscriber → positions behind).
#[derive(Default)]
pub(crate) struct LagHistory(Mutex<VecDeque<(SystemTime, BTreeMap<String, u64>)>>);

impl LagHistory {
    fn push(&self, sample: BTreeMap<String, u64>) {
        let mut samples = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if samples.len() == MAX_SAMPLES {
            samples.pop_front();
        }
        samples.push_back((SystemTime::now(), sample));
    }

    fn snapshot(&self) -> Vec<(SystemTime, BTreeMap<String, u64>)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}

/// Samples every subscriber's lag every 5 s (a failed sample is skipped).
pub(crate) async fn sample_lag(ui: Arc<Ui>) {
    loop {
        if let Ok((subscribers, status)) =
            tokio::try_join!(ui.store.subscribers(), ui.store.status())
        {
            let head = status.head.map_or(0, factos::Position::get);
            ui.lag.push(
                subscribers
                    .into_iter()
                    .map(|s| {
                        (
                            s.name,
                            head.saturating_sub(s.checkpoint.map_or(0, factos::Position::get)),
                        )
                    })
                    .collect(),
            );
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;

/// Bars of `values` (one per bucket, oldest first) scaled to the chart.
fn bars(id: &str, values: &[u64], label: &str) -> String {
    let seen = values.iter().copied().max().unwrap_or(0);
    let top = seen.max(1);
    #[allow(clippy::cast_precision_loss)]
    let width = WIDTH / values.len().max(1) as f64;
    let mut svg = format!(
        "<svg id=\"{id}\" width=\"{WIDTH}\" height=\"{}\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\" aria-label=\"{}\">",
        HEIGHT + 20.0,
        HEIGHT + 20.0,
        escape(label)
    );
    for (i, value) in values.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let h = HEIGHT * (*value as f64) / (top as f64);
        #[allow(clippy::cast_precision_loss)]
        let x = i as f64 * width;
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#4a7\"><title>{value}</title></rect>",
            HEIGHT - h,
            (width - 1.0).max(1.0)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{}\" font-size=\"12\">max {seen} per {} s · {}</text></svg>",
        HEIGHT + 16.0,
        BUCKET.as_secs(),
        escape(label)
    );
    svg
}

/// One polyline per subscriber over the samples.
fn lines(samples: &[(SystemTime, BTreeMap<String, u64>)]) -> String {
    let mut furthest: BTreeMap<String, u64> = BTreeMap::new();
    for (_, sample) in samples {
        for (name, lag) in sample {
            let entry = furthest.entry(name.clone()).or_default();
            *entry = (*entry).max(*lag);
        }
    }
    let mut names: Vec<(String, u64)> = furthest.into_iter().collect();
    names.sort_by_key(|(_, lag)| std::cmp::Reverse(*lag));
    names.truncate(MAX_LINES);
    let seen = names.iter().map(|(_, lag)| *lag).max().unwrap_or(0);
    let top = seen.max(1);
    let mut svg = format!(
        "<svg id=\"lag\" width=\"{WIDTH}\" height=\"{}\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\" aria-label=\"subscriber lag\">",
        HEIGHT + 20.0,
        HEIGHT + 20.0
    );
    let colours = [
        "#c33", "#36c", "#393", "#c90", "#939", "#099", "#666", "#960",
    ];
    #[allow(clippy::cast_precision_loss)]
    let step = WIDTH / (MAX_SAMPLES - 1) as f64;
    for (line, (name, _)) in names.iter().enumerate() {
        let points: Vec<String> = samples
            .iter()
            .enumerate()
            .map(|(i, (_, sample))| {
                let lag = sample.get(name).copied().unwrap_or(0);
                #[allow(clippy::cast_precision_loss)]
                let (x, y) = (i as f64 * step, HEIGHT - HEIGHT * lag as f64 / top as f64);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let colour = colours[line % colours.len()];
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"><title>{}</title></polyline>\
             <text x=\"4\" y=\"{}\" font-size=\"12\" fill=\"{colour}\">{}</text>",
            points.join(" "),
            escape(name),
            14 + 14 * line,
            escape(name)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{}\" font-size=\"12\">max {seen} positions behind · a sample every {} s</text></svg>",
        HEIGHT + 16.0,
        SAMPLE_EVERY.as_secs()
    );
    svg
}

/// `GET /chart`.
pub(crate) async fn show(State(ui): State<Arc<Ui>>) -> Response {
    let rate = match ui.store.append_rate(BUCKET, WINDOW).await {
        Ok(r) => r,
        Err(e) => return store_failed(&e, &ui),
    };
    let now = SystemTime::now();
    let buckets = usize::try_from(WINDOW.as_secs() / BUCKET.as_secs()).unwrap_or(60);
    let mut values = vec![0u64; buckets];
    for (start, events) in rate {
        let age = now.duration_since(start).unwrap_or_default().as_secs() / BUCKET.as_secs();
        if let Some(slot) = usize::try_from(age).ok().filter(|a| *a < buckets) {
            values[buckets - 1 - slot] += events;
        }
    }
    let appended: u64 = values.iter().sum();
    let samples = ui.lag.snapshot();
    let mut body = format!(
        "<h2>Events appended</h2><p id=\"appended\">{appended} in the last {} minutes</p>",
        WINDOW.as_secs() / 60
    );
    body.push_str(&bars("append-rate", &values, "events appended per bucket"));
    body.push_str("<h2>Subscriber lag</h2>");
    if samples.iter().all(|(_, s)| s.is_empty()) {
        body.push_str("<p id=\"no-lag\">No subscriber sampled yet.</p>");
    } else {
        body.push_str(&lines(&samples));
    }
    Html(html::page("Chart", &body, ui.mode(), Some(5))).into_response()
}
