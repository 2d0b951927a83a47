//! Printing events as a table or as JSON lines.

use factos::{StoredEvent, Tag};

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Table,
    JsonLines,
}

pub(crate) fn print_header(format: Format) {
    if format == Format::Table {
        println!(
            "{:>10}  {:<24} {:>8}  {:<20} {:<30} data",
            "position", "stream", "revision", "type", "tags"
        );
    }
}

fn preview(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) if text.chars().count() > 60 => {
            format!("{}…", text.chars().take(59).collect::<String>())
        }
        Ok(text) => text.to_string(),
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

pub(crate) fn print_event(format: Format, event: &StoredEvent) {
    let tags: Vec<&str> = event.tags.iter().map(Tag::as_str).collect();
    match format {
        Format::Table => println!(
            "{:>10}  {:<24} {:>8}  {:<20} {:<30} {}",
            event.position,
            event.stream,
            event.revision,
            event.event_type,
            tags.join(","),
            preview(&event.data)
        ),
        Format::JsonLines => {
            let metadata: serde_json::Map<String, serde_json::Value> = event
                .metadata
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                .collect();
            let mut line = serde_json::json!({
                "position": event.position.get(),
                "id": event.id.to_string(),
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
    }
}
