//! Printing events and listings as tables or as JSON lines.
//!
//! A listing that is read whole (`events`, `subscriptions`) is laid out by
//! `comfy-table`: every column as wide as its longest value, so a long
//! stream name or tag list never pushes the columns after it out of line.
//! `tail` prints events as they arrive, before the widths of later rows are
//! known: its columns have fixed widths and longer values are cut with `…`.

use std::time::SystemTime;

use comfy_table::{CellAlignment, Table};
use factos::{StoredEvent, Tag};

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Table,
    JsonLines,
}

/// The columns of an event row.
const EVENT_HEADER: [&str; 7] = [
    "position",
    "recorded at",
    "stream",
    "revision",
    "type",
    "tags",
    "data",
];

/// `tail`'s fixed column widths (the data column takes the rest of the line).
const STREAMED_WIDTHS: [usize; 6] = [10, 24, 24, 8, 20, 30];

/// A table without borders, two spaces between columns, the `right`
/// columns (numbers) aligned right.
pub(crate) fn table<const N: usize>(header: [&str; N], right: &[usize]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(header);
    for (index, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        if right.contains(&index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// Prints `table` without the trailing spaces of its last column.
pub(crate) fn print_table(table: &Table) {
    for line in table.lines() {
        println!("{}", line.trim_end());
    }
}

/// Prints events read whole: one table, or one JSON line each.
pub(crate) fn print_events(format: Format, events: &[StoredEvent]) {
    match format {
        Format::Table => {
            let mut rows = table(EVENT_HEADER, &[0, 3]);
            for event in events {
                rows.add_row(event_cells(event));
            }
            print_table(&rows);
            println!("({} events)", events.len());
        }
        Format::JsonLines => events.iter().for_each(print_json_line),
    }
}

/// Prints the header of events printed as they arrive.
pub(crate) fn print_streamed_header(format: Format) {
    if format == Format::Table {
        println!("{}", streamed_line(&EVENT_HEADER.map(str::to_string)));
    }
}

/// Prints one event as it arrives.
pub(crate) fn print_streamed_event(format: Format, event: &StoredEvent) {
    match format {
        Format::Table => println!("{}", streamed_line(&event_cells(event))),
        Format::JsonLines => print_json_line(event),
    }
}

fn event_cells(event: &StoredEvent) -> [String; 7] {
    let tags: Vec<&str> = event.tags.iter().map(Tag::as_str).collect();
    [
        event.position.to_string(),
        recorded(event.recorded_at),
        event.stream.to_string(),
        event.revision.to_string(),
        event.event_type.to_string(),
        tags.join(","),
        preview(&event.data),
    ]
}

/// A streamed row: each cell cut or padded to its fixed width (positions
/// and revisions aligned right), the data last.
fn streamed_line(cells: &[String; 7]) -> String {
    let mut line = String::new();
    for (index, (cell, width)) in cells.iter().zip(STREAMED_WIDTHS).enumerate() {
        let cell = fit(cell, width);
        let padding = " ".repeat(width - cell.chars().count());
        if index == 0 || index == 3 {
            line.push_str(&padding);
            line.push_str(&cell);
        } else {
            line.push_str(&cell);
            line.push_str(&padding);
        }
        line.push_str("  ");
    }
    line.push_str(&cells[6]);
    line
}

/// `text` if it fits in `width` characters, else its start and `…`.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A recorded time in RFC 3339, UTC, to the millisecond.
fn recorded(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

fn preview(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) => fit(text, 60),
        Err(_) => format!("<{} bytes>", data.len()),
    }
}

fn hex(data: &[u8]) -> String {
    use std::fmt::Write as _;
    data.iter()
        .fold(String::with_capacity(data.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

fn print_json_line(event: &StoredEvent) {
    let tags: Vec<&str> = event.tags.iter().map(Tag::as_str).collect();
    let metadata: serde_json::Map<String, serde_json::Value> = event
        .metadata
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    let mut line = serde_json::json!({
        "position": event.position.get(),
        "id": event.id.to_string(),
        "recorded_at": humantime::format_rfc3339_micros(event.recorded_at).to_string(),
        "stream": event.stream.as_str(),
        "revision": event.revision,
        "type": event.event_type.as_str(),
        "version": event.version,
        "tags": tags,
        "metadata": metadata,
    });
    // JSON payloads are inlined; anything else is given as hex.
    match serde_json::from_slice::<serde_json::Value>(&event.data) {
        Ok(data) => line["data"] = data,
        Err(_) => line["data_hex"] = serde_json::Value::String(hex(&event.data)),
    }
    println!("{line}");
}

/// A subscriber's row of `factos subscriptions`.
pub(crate) struct SubscriberRow {
    pub(crate) name: String,
    pub(crate) checkpoint: u64,
    pub(crate) behind_head: u64,
    pub(crate) active: bool,
}

/// An outbox topic's row of `factos subscriptions`.
pub(crate) struct TopicRow {
    pub(crate) topic: String,
    pub(crate) waiting: u64,
    pub(crate) leased: u64,
    pub(crate) parked: u64,
}

/// Prints the subscribers and the outbox topics, whatever the store.
pub(crate) fn print_subscriptions(subscribers: Vec<SubscriberRow>, topics: Vec<TopicRow>) {
    if subscribers.is_empty() {
        println!("no subscribers");
    } else {
        let mut rows = table(
            ["subscriber", "checkpoint", "behind head", "state"],
            &[1, 2],
        );
        for s in subscribers {
            rows.add_row([
                s.name,
                s.checkpoint.to_string(),
                s.behind_head.to_string(),
                if s.active { "active" } else { "stopped" }.to_string(),
            ]);
        }
        print_table(&rows);
    }
    if topics.is_empty() {
        println!("outbox: empty");
    } else {
        let mut rows = table(["outbox topic", "waiting", "leased", "parked"], &[1, 2, 3]);
        for topic in topics {
            rows.add_row([
                topic.topic,
                topic.waiting.to_string(),
                topic.leased.to_string(),
                topic.parked.to_string(),
            ]);
        }
        print_table(&rows);
    }
}

#[cfg(test)]
mod tests {
    use super::{EVENT_HEADER, streamed_line};

    /// A streamed row with a value longer than its column is cut with `…`,
    /// so the columns after it start where the header's do.
    #[test]
    fn streamed_rows_cut_long_values_to_keep_their_columns() {
        let header = streamed_line(&EVENT_HEADER.map(str::to_string));
        let long_stream = "s".repeat(50);
        let row = streamed_line(&[
            "7".into(),
            "2026-12-04T00:00:00.000Z".into(),
            long_stream.clone(),
            "0".into(),
            "Booked".into(),
            "t".repeat(45),
            "{}".into(),
        ]);
        let at = |line: &str, word: &str| line.find(word).map(|i| line[..i].chars().count());
        assert_eq!(at(&row, "Booked"), at(&header, "type"), "{header}\n{row}");
        assert_eq!(at(&row, "{}"), at(&header, "data"), "{header}\n{row}");
        assert!(!row.contains(&long_stream), "{row}");
        assert!(row.contains(&format!("{}…", "s".repeat(23))), "{row}");
    }
}
