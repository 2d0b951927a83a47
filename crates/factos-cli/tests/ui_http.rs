//! `factos ui` over plain HTTP: every route on known data, the filters and
//! paging, the bad inputs, the token, the host check, writes (refused when
//! read-only, without the CSRF token, cross-site; done otherwise), and no
//! page showing the connection string's password.

#![allow(clippy::unwrap_used, clippy::panic)]

mod ui_support;

use ui_support::{SALES, SECRET, csrf, get, request, seeded, start};

/// Positions listed in the events table, in page order.
fn positions(body: &str) -> Vec<u64> {
    body.split("<td><a href=\"/events/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next()?.parse().ok())
        .collect()
}

/// An event page: JSON pretty-printed (and escaped); bytes as hex.
fn one_event(a: &str) -> (ui_support::Reply, ui_support::Reply) {
    let json = get(a, "/events/1");
    assert!(
        json.body.contains("id=\"payload-kind\">JSON")
            && json.body.contains("&lt;b&gt;x&lt;/b&gt;"),
        "{}",
        json.body
    );
    let blob = get(a, &format!("/events/{}", SALES + 1));
    assert!(
        blob.body.contains("not UTF-8") && blob.body.contains("ff fe 00 41"),
        "{}",
        blob.body
    );
    (json, blob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_on_known_data() {
    let (database, _store) = seeded().await;
    let ui = start(&database, &["--bind", "127.0.0.1:0"]);
    let a = &ui.address;
    let total = SALES + 2; // and the blob and the mail
    // The root sends to the events.
    let root = get(a, "/");
    assert_eq!(
        (root.status, root.header("location")),
        (303, Some("/events"))
    );
    // Events: newest first, 50 a page, paging both ways.
    let first = get(a, "/events");
    assert_eq!(first.status, 200);
    assert_eq!(first.rows("events"), 50);
    let page = positions(&first.body);
    assert_eq!(page.first(), Some(&total));
    assert!(page.windows(2).all(|w| w[0] == w[1] + 1), "{page:?}");
    let older = get(a, &format!("/events?before={}", page[49]));
    let older_page = positions(&older.body);
    assert_eq!(older_page.first(), Some(&(page[49] - 1)));
    let newer = get(a, &format!("/events?after={}", older_page[49]));
    let above: Vec<u64> = (older_page[49] + 1..=older_page[49] + 50).rev().collect();
    assert_eq!(positions(&newer.body), above);
    // Filters narrow: a tag, a type, a stream, a range.
    let tagged = get(a, "/events?tag=concert%3A1&limit=500");
    assert_eq!(tagged.rows("events"), 40);
    assert_eq!(tagged.body.matches(">concert:1</a>").count(), 40);
    let refunds = get(a, "/events?type=Refunded&limit=500");
    assert_eq!(refunds.rows("events"), 12);
    let stream = get(a, "/events?stream=concert-2&from=10&to=30&limit=500");
    assert!(
        positions(&stream.body)
            .iter()
            .all(|p| (10..=30).contains(p))
    );
    assert_eq!(stream.rows("events"), 7);
    let none = get(a, "/events?tag=nope%3A1");
    assert_eq!(
        (none.status, none.body.contains("No events match")),
        (200, true)
    );
    let (json, blob) = one_event(a);
    // Subscriptions: the caught-up one and the one with a parked refund.
    let subscriptions = get(a, "/subscriptions");
    assert_eq!(subscriptions.rows("subscriptions"), 2);
    assert!(
        subscriptions.body.contains(">sales</a>") && subscriptions.body.contains(">refunds</a>")
    );
    let refunds = get(a, "/subscription?name=refunds");
    assert_eq!(refunds.rows("parked"), 12);
    assert!(refunds.body.contains("cannot project a refund"));
    // The outbox: the parked message and its error.
    let outbox = get(a, "/outbox");
    assert!(outbox.body.contains(">mail</a>"));
    let parked = get(a, "/outbox/topic?topic=mail");
    assert_eq!(parked.rows("parked"), 1);
    assert!(
        parked.body.contains("550 &lt;no such user&gt;"),
        "{}",
        parked.body
    );
    // The store and the chart.
    let store = get(a, "/store");
    assert!(
        store
            .body
            .contains(&format!("<td>Events</td><td>{total}</td>")),
        "{}",
        store.body
    );
    let chart = get(a, "/chart");
    assert!(
        chart.body.contains("<svg id=\"append-rate\"")
            && chart
                .body
                .contains(&format!("{total} in the last 10 minutes")),
        "{}",
        chart.body
    );
    // No page shows the password, every page has the strict policy.
    for page in [
        &first,
        &json,
        &blob,
        &subscriptions,
        &refunds,
        &outbox,
        &parked,
        &store,
        &chart,
    ] {
        assert!(!page.body.contains(SECRET), "a page shows the password");
        assert!(
            page.header("content-security-policy")
                .is_some_and(|p| p.contains("default-src 'none'"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_a_clear_400_and_unknown_things_404() {
    let (database, _store) = seeded().await;
    let ui = start(&database, &["--bind", "127.0.0.1:0"]);
    let a = &ui.address;
    for (path, status, says) in [
        ("/events?from=99999999999999999999", 400, "not a position"),
        ("/events?to=9223372036854775808", 400, "out of range"),
        ("/events?before=0", 400, "out of range"),
        ("/events?limit=1000000", 400, "1 to 500"),
        ("/events?tag=a%0Ab", 400, "tag"),
        ("/events?type=%00", 400, "type"),
        ("/events/abc", 400, "not a position"),
        ("/events/0", 400, "out of range"),
        ("/events/999999", 404, "No event at position 999999"),
        ("/subscription?name=ghost", 404, "No subscriber"),
        ("/outbox/topic?topic=", 400, "which topic"),
        ("/nowhere", 404, "No such page"),
    ] {
        let reply = get(a, path);
        let message = reply
            .body
            .split("id=\"message\">")
            .nth(1)
            .unwrap_or("(no message)");
        assert_eq!(reply.status, status, "{path}: {message}");
        assert!(reply.body.contains(says), "{path}: {}", reply.body);
        assert!(!reply.body.contains(SECRET));
    }
    // A body that is not a form gets the page too (nothing is written).
    let not_a_form = request(
        a,
        "POST",
        "/outbox/requeue",
        &[("Content-Type", "text/plain")],
        "id=1",
    );
    assert_eq!(not_a_form.status, 400);
    assert!(
        not_a_form.body.contains("The form is malformed"),
        "{}",
        not_a_form.body
    );
    // A rebound domain pointing at 127.0.0.1 is not served.
    let rebound = request(a, "GET", "/events", &[("Host", "evil.example:7474")], "");
    assert_eq!(rebound.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_flag_the_csrf_token_and_the_same_origin() {
    let (database, store) = seeded().await;
    let read_only = start(&database, &["--bind", "127.0.0.1:0"]);
    let page = get(&read_only.address, "/outbox/topic?topic=mail");
    assert!(
        !page.body.contains("Requeue"),
        "a read-only UI offers a write"
    );
    let refused = request(
        &read_only.address,
        "POST",
        "/outbox/requeue",
        &[],
        "topic=mail&id=1&csrf=x",
    );
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("read-only"));

    let ui = start(&database, &["--bind", "127.0.0.1:0", "--allow-writes"]);
    let a = &ui.address;
    let page = get(a, "/outbox/topic?topic=mail");
    let token = csrf(&page.body);
    let id = store
        .parked_messages(&factos::Topic::new("mail").unwrap(), 10)
        .await
        .unwrap()[0]
        .id;
    let form = format!("topic=mail&id={id}&csrf={token}");
    for (headers, why) in [
        (vec![], "no CSRF token"),
        (vec![("Sec-Fetch-Site", "cross-site")], "cross-site"),
        (vec![("Origin", "http://evil.example")], "foreign origin"),
    ] {
        let body = if why == "no CSRF token" {
            format!("topic=mail&id={id}")
        } else {
            form.clone()
        };
        let reply = request(a, "POST", "/outbox/requeue", &headers, &body);
        assert_eq!(reply.status, 403, "{why}: {}", reply.body);
    }
    assert_eq!(
        store
            .parked_messages(&factos::Topic::new("mail").unwrap(), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let origin = format!("http://{a}");
    let done = request(
        a,
        "POST",
        "/outbox/requeue",
        &[("Origin", &origin), ("Sec-Fetch-Site", "same-origin")],
        &form,
    );
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(
        store
            .parked_messages(&factos::Topic::new("mail").unwrap(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Resetting a subscriber no instance runs.
    let reset = request(
        a,
        "POST",
        "/subscription/reset",
        &[],
        &format!("name=sales&csrf={token}"),
    );
    assert_eq!(reset.status, 303, "{}", reset.body);
    let sales = get(a, "/subscription?name=sales");
    assert!(
        sales.body.contains("<strong id=\"checkpoint\">0</strong>"),
        "{}",
        sales.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_every_page_and_beyond_loopback_one_is_required() {
    let (database, _store) = seeded().await;
    let token = "0123456789abcdef-token";
    let ui = start(&database, &["--bind", "127.0.0.1:0", "--token", token]);
    let a = &ui.address;
    assert_eq!(get(a, "/events").status, 401);
    assert_eq!(get(a, "/events?token=wrong-wrong-wrong-wrong").status, 401);
    let login = get(a, &format!("/events?token={token}"));
    assert_eq!(login.status, 303);
    let cookie = login.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    assert_eq!(
        request(a, "GET", "/events", &[("Cookie", pair)], "").status,
        200
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        request(a, "GET", "/store", &[("Authorization", &bearer)], "").status,
        200
    );
    // Beyond loopback without a token the UI does not start.
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("factos"))
        .env("DATABASE_URL", ui_support::url_with_secret(&database))
        .args(["ui", "--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        err.contains("only with a token") && !err.contains(SECRET),
        "{err}"
    );
}
