//! Pagination end to end: the real `http-request` plugin with `paginate`,
//! real servers on 127.0.0.1 that paginate as Stripe (`starting_after`),
//! GitHub (`Link` headers) and page/offset APIs do. What the servers
//! received and the items they served are the oracle.

use courier_host::{Limits, Outcome};
use courier_tests::{Received, Reply, TestServer, host_builder, host_with};
use serde_json::{Value, json};

use crate::step;

const TOKEN: &str = "pagination-bearer-token-value";

fn bearer(server: &TestServer) -> String {
    format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'bearer'\n[secrets]\ntoken = '{TOKEN}'",
        server.url("")
    )
}

fn param(r: &Received, name: &str) -> Option<String> {
    r.query()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// `count` objects `{"id": "<prefix><n>"}`, n from 1.
fn objects(prefix: &str, range: std::ops::Range<usize>) -> Vec<Value> {
    range
        .map(|n| json!({"id": format!("{prefix}{n}")}))
        .collect()
}

fn ids(output: &Value) -> Vec<String> {
    output["body"]
        .as_array()
        .unwrap_or_else(|| panic!("an array body: {output}"))
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Five charges served as Stripe's list API serves them.
fn stripe(r: &Received) -> Reply {
    let all = objects("ch_", 1..6);
    let limit: usize = param(r, "limit").map_or(10, |l| l.parse().unwrap());
    let start = param(r, "starting_after").map_or(0, |after| {
        all.iter().position(|c| c["id"] == after).unwrap() + 1
    });
    let data: Vec<Value> = all[start..].iter().take(limit).cloned().collect();
    let has_more = start + data.len() < all.len();
    Reply::json(
        200,
        json!({"object": "list", "data": data, "has_more": has_more}),
    )
}

#[tokio::test]
async fn a_stripe_like_cursor_gathers_every_page_with_the_credential_on_each() {
    let server = TestServer::start(stripe).await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let input = json!({
        "url": "/v1/charges",
        "paginate": {
            "type": "cursor",
            "cursor_path_in_response": "data.-1.id",
            "cursor_name_in_request": "starting_after",
            "response_path": "data",
            "limit_name_in_request": "limit",
            "limit": 2
        }
    });
    let r = step(&host, "http-request", "request", input, &[&bearer(&server)]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let output = r.output.unwrap();
    assert_eq!(ids(&output), ["ch_1", "ch_2", "ch_3", "ch_4", "ch_5"]);
    assert_eq!(output["headers"]["courier-pagination"], "complete");
    // 2 + 2 + 1 items; the third page still names a cursor (a cursor API
    // may answer short pages before its end), so a fourth, empty, ends it.
    assert_eq!(output["headers"]["courier-pages"], "4");
    let received = server.received();
    let afters: Vec<Option<String>> = received
        .iter()
        .map(|r| param(r, "starting_after"))
        .collect();
    assert_eq!(
        afters,
        [
            None,
            Some("ch_2".into()),
            Some("ch_4".into()),
            Some("ch_5".into())
        ]
    );
    for r in &received {
        assert_eq!(r.header("authorization"), Some(&*format!("Bearer {TOKEN}")));
        assert_eq!(param(r, "limit").as_deref(), Some("2"));
    }
    let records: Vec<Value> = r
        .requests
        .iter()
        .map(|q| serde_json::to_value(q).unwrap())
        .collect();
    let pages: Vec<&Value> = records.iter().map(|q| &q["page"]).collect();
    assert_eq!(pages, [&json!(1), &json!(2), &json!(3), &json!(4)]);
    assert_eq!(records[3]["pagination"], "complete");
    for field in ["method", "url", "status", "attempt"] {
        assert!(records[0].get(field).is_some(), "{field} kept");
    }
}

#[tokio::test]
async fn github_like_link_headers_are_followed_and_a_link_elsewhere_gets_no_credential() {
    // The second origin: serves the last page, must never see the token.
    let elsewhere = TestServer::start(|_| Reply::json(200, json!([{"id": "r5"}]))).await;
    let last = elsewhere.url("/repos?page=3");
    let server = TestServer::start(move |r| {
        let (items, link) = match param(r, "page").as_deref() {
            None => (
                objects("r", 1..3),
                "</repos?page=2&per_page=2>; rel=\"next\"".to_owned(),
            ),
            _ => (
                objects("r", 3..5),
                format!("<{last}>; rel=\"next\", </repos?page=1>; rel=\"first\""),
            ),
        };
        let mut reply = Reply::json(200, Value::Array(items));
        reply.headers.push(("link".into(), link));
        reply
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let input = json!({"url": "/repos", "paginate": {"type": "link"}});
    let r = step(&host, "http-request", "request", input, &[&bearer(&server)]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let output = r.output.unwrap();
    assert_eq!(ids(&output), ["r1", "r2", "r3", "r4", "r5"]);
    let uris: Vec<String> = server.received().iter().map(|r| r.uri.clone()).collect();
    assert_eq!(uris, ["/repos", "/repos?page=2&per_page=2"]);
    for r in server.received() {
        assert!(r.header("authorization").is_some());
    }
    let away = elsewhere.received();
    assert_eq!(away.len(), 1);
    assert_eq!(
        away[0].header("authorization"),
        None,
        "no credential to another origin"
    );
    assert_eq!(r.requests.len(), 3);
}

/// Eleven items by page number (`page`, `per_page`) or by offset
/// (`offset`, `limit`), whichever the request names.
fn numbered(r: &Received) -> Reply {
    let all = objects("n", 1..12);
    let size: usize = param(r, "per_page")
        .or_else(|| param(r, "limit"))
        .unwrap()
        .parse()
        .unwrap();
    let start = match (param(r, "page"), param(r, "offset")) {
        (Some(page), _) => (page.parse::<usize>().unwrap() - 1) * size,
        (_, Some(offset)) => offset.parse().unwrap(),
        _ => panic!("no page or offset in {}", r.uri),
    };
    let items: Vec<Value> = all.iter().skip(start).take(size).cloned().collect();
    Reply::json(200, json!({"results": items}))
}

#[tokio::test]
async fn page_and_offset_styles_stop_at_the_short_page() {
    let server = TestServer::start(numbered).await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let want: Vec<String> = (1..12).map(|n| format!("n{n}")).collect();
    for (paginate, sent_param, sent) in [
        (
            json!({"type": "page", "response_path": "results", "limit_name_in_request": "per_page", "limit": 4}),
            "page",
            ["1", "2", "3"],
        ),
        (
            json!({"type": "offset", "response_path": "results", "limit_name_in_request": "limit", "limit": 4}),
            "offset",
            ["0", "4", "8"],
        ),
    ] {
        let before = server.received().len();
        let input = json!({"url": "/items", "paginate": paginate});
        let r = step(&host, "http-request", "request", input, &[&bearer(&server)]).await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert_eq!(ids(&r.output.unwrap()), want, "{sent_param}");
        let values: Vec<String> = server.received()[before..]
            .iter()
            .map(|r| param(r, sent_param).unwrap())
            .collect();
        assert_eq!(values, sent, "{sent_param}");
    }
}

#[tokio::test]
async fn the_hosts_page_cap_stops_paging_and_the_output_says_so() {
    let server = TestServer::start(numbered).await;
    let limits = Limits {
        max_pages_per_step: 2,
        ..Limits::default()
    };
    let host = host_with(host_builder().limits(limits), &["http-request"]).await;
    let input = json!({
        "url": "/items",
        "paginate": {"type": "page", "response_path": "results", "limit_name_in_request": "per_page", "limit": 3}
    });
    let r = step(&host, "http-request", "request", input, &[&bearer(&server)]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let output = r.output.unwrap();
    assert_eq!(ids(&output), ["n1", "n2", "n3", "n4", "n5", "n6"]);
    assert_eq!(output["headers"]["courier-pagination"], "max-pages");
    assert_eq!(server.received().len(), 2);
    assert_eq!(r.requests[1].pagination.as_deref(), Some("max-pages"));
}

#[tokio::test]
async fn bad_paginate_input_and_a_looping_cursor_fail_the_step_naming_why() {
    // The server ignores the cursor: page 1 again and again.
    let server =
        TestServer::start(|_| Reply::json(200, json!({"items": [{"id": 1}], "next": "same"})))
            .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let input = json!({
        "url": "/loop",
        "paginate": {"type": "cursor", "cursor_path_in_response": "next", "cursor_name_in_request": "cursor", "response_path": "items"}
    });
    let r = step(&host, "http-request", "request", input, &[&bearer(&server)]).await;
    assert_ne!(r.outcome, Outcome::Success);
    let message = r.error.as_ref().unwrap().message.clone();
    assert!(message.contains("same cursor `same`"), "{message}");
    assert_eq!(server.received().len(), 2);

    let input = json!({
        "url": "/loop",
        "paginate": {"type": "cursor", "cursor_path_in_response": "a..b", "cursor_name_in_request": "cursor"}
    });
    let r = step(&host, "http-request", "request", input, &[&bearer(&server)]).await;
    let message = r.error.as_ref().unwrap().message.clone();
    assert!(message.contains("pagination.cursor.path"), "{message}");
    assert_eq!(server.received().len(), 2, "nothing sent");
}
