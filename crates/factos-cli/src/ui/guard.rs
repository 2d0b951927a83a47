//! Who may use the admin pages, and what they may do:
//!
//! - **Token.** With a token (required when bound beyond loopback), a
//!   request carries it as the `factos_ui` cookie or an `Authorization:
//!   Bearer` header; opening any page with `?token=…` sets the cookie
//!   (`HttpOnly`, `SameSite=Strict`) and redirects to the page without it.
//! - **Host.** Without a token the pages answer only to a loopback `Host`
//!   (`127.0.0.1`, `localhost`, `[::1]`), so a web page whose domain is
//!   rebound to 127.0.0.1 cannot read them.
//! - **Writes** (requeue a parked message, reset a subscriber) need the
//!   `--allow-writes` flag, a POST with the page's CSRF token (random per
//!   process, only in pages served to the user), and no cross-site
//!   `Sec-Fetch-Site` or foreign `Origin`.
//! - **Headers.** A strict Content-Security-Policy (no scripts at all), no
//!   framing, no referrer sent to other sites, no caching.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::Ui;

const COOKIE: &str = "factos_ui";

/// Compares without stopping at the first difference (the token's length
/// is not secret).
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

fn query_token(uri: &axum::http::Uri) -> Option<String> {
    uri.query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "token")
        .map(|(_, value)| value.to_string())
}

fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

/// The middleware every request passes: the token or a loopback host, then
/// the security headers on the response.
pub(crate) async fn admit(
    axum::extract::State(ui): axum::extract::State<std::sync::Arc<Ui>>,
    request: Request<Body>,
    next: Next,
) -> Response {
    if let Some(expected) = &ui.token {
        let headers = request.headers();
        let carried = cookie_token(headers)
            .or_else(|| bearer_token(headers))
            .is_some_and(|t| same_secret(&t, expected));
        if !carried {
            if let Some(given) = query_token(request.uri())
                && same_secret(&given, expected)
            {
                let path = request.uri().path().to_string();
                let mut response = Redirect::to(&path).into_response();
                let cookie = format!("{COOKIE}={expected}; HttpOnly; SameSite=Strict; Path=/");
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().insert(header::SET_COOKIE, value);
                }
                return secured(response);
            }
            return secured(super::refuse(
                StatusCode::UNAUTHORIZED,
                "This page needs the token the UI was started with: open it with ?token=… once.",
                &ui,
            ));
        }
    } else if !loopback_host(request.headers()) {
        return secured(super::refuse(
            StatusCode::FORBIDDEN,
            "Without a token the UI answers only to a loopback host name (127.0.0.1, localhost, [::1]).",
            &ui,
        ));
    }
    secured(next.run(request).await)
}

fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // `no-referrer` makes Chromium send `Origin: null` with the page's own
        // forms, which the write check refuses; nothing leaves the site.
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Why a write may not go ahead, as the page to send (`None`: it may):
/// writes allowed, the form's CSRF token, and a same-origin request.
pub(crate) fn refuse_write(ui: &Ui, headers: &HeaderMap, csrf: Option<&str>) -> Option<Response> {
    if !ui.allow_writes {
        return Some(super::refuse(
            StatusCode::FORBIDDEN,
            "The UI is read-only: start it with --allow-writes to requeue or reset.",
            ui,
        ));
    }
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| !matches!(site, "same-origin" | "none"));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let foreign_origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            Some(origin_host) != host
        });
    let token_ok = csrf.is_some_and(|t| same_secret(t, &ui.csrf));
    if cross_site || foreign_origin || !token_ok {
        return Some(super::refuse(
            StatusCode::FORBIDDEN,
            "Refused: a write must come from a form of this UI (cross-site request or missing CSRF token).",
            ui,
        ));
    }
    None
}

/// A write's form fields once the write may go ahead; else the page to send
/// (400 for a body that is not a form, [`refuse_write`]'s refusal).
pub(crate) fn write_form(
    ui: &Ui,
    headers: &HeaderMap,
    form: Result<axum::extract::Form<super::Params>, axum::extract::rejection::FormRejection>,
) -> Result<super::Params, Box<Response>> {
    let form = super::form_fields(form).map_err(|message| {
        Box::new(super::refuse(
            axum::http::StatusCode::BAD_REQUEST,
            &message,
            ui,
        ))
    })?;
    match refuse_write(ui, headers, form.get("csrf").map(String::as_str)) {
        Some(refused) => Err(Box::new(refused)),
        None => Ok(form),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
    }

    #[test]
    fn only_loopback_names_pass_without_a_token() {
        let mut headers = HeaderMap::new();
        for (host, ok) in [
            ("127.0.0.1:7474", true),
            ("localhost:1", true),
            ("[::1]:80", true),
            ("evil.example:7474", false),
            ("127.0.0.1.evil.example", false),
        ] {
            headers.insert(header::HOST, HeaderValue::from_static(host));
            assert_eq!(loopback_host(&headers), ok, "{host}");
        }
    }
}
