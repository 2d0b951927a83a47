//! HTML for the admin pages: escaping, links with query strings, the page
//! frame and tables. Everything interpolated into a page goes through
//! [`escape`] (text and attributes) or [`query_value`] (inside a URL).

use std::fmt::Write as _;

/// `text` with the five HTML-significant characters escaped, safe in text
/// and in quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `value` percent-encoded for a query string (unreserved characters stay).
pub(crate) fn query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// `path?k=v&...` from the pairs whose value is not empty, escaped for an
/// `href` attribute.
pub(crate) fn link(path: &str, pairs: &[(&str, String)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", query_value(v)))
        .collect();
    if query.is_empty() {
        escape(path)
    } else {
        escape(&format!("{path}?{}", query.join("&")))
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}\
nav a{margin-right:1rem}table{border-collapse:collapse;margin:.5rem 0}\
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}\
th{background:#f3f3f3}pre{background:#f7f7f7;padding:.5rem;overflow:auto;max-width:100%}\
.error{color:#a00}.muted{color:#777}form.inline{display:inline}\
input{margin-right:.5rem}.pager a{margin-right:1rem}";

/// A whole page: the navigation, `title` and `body` (already HTML).
/// `refresh_s` reloads the page that often.
pub(crate) fn page(title: &str, body: &str, mode: &str, refresh_s: Option<u32>) -> String {
    let refresh = refresh_s
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <title>{title} · factos</title><style>{STYLE}</style></head><body>\
         <nav><strong>factos</strong> <a href=\"/events\">Events</a><a href=\"/subscriptions\">Subscriptions</a>\
         <a href=\"/outbox\">Outbox</a><a href=\"/store\">Store</a><a href=\"/chart\">Chart</a>\
         <span class=\"muted\">{mode}</span></nav><h1>{title}</h1>{body}</body></html>",
        title = escape(title),
        mode = escape(mode),
    )
}

/// A table with `headers` and `rows` (cells already HTML).
pub(crate) fn table(id: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table id=\"{}\"><thead><tr>", escape(id));
    for h in headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A POST form with one button, carrying the CSRF token and `fields`.
pub(crate) fn action(path: &str, csrf: &str, fields: &[(&str, String)], label: &str) -> String {
    let mut out = format!(
        "<form class=\"inline\" method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(path),
        escape(csrf)
    );
    for (name, value) in fields {
        let _ = write!(
            out,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(value)
        );
    }
    let _ = write!(
        out,
        "<button type=\"submit\">{}</button></form>",
        escape(label)
    );
    out
}

/// A time as RFC 3339 (seconds, UTC).
pub(crate) fn time(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_urls_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(query_value("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(
            link("/events", &[("tag", "k:v".into()), ("type", String::new())]),
            "/events?tag=k%3Av"
        );
    }
}
