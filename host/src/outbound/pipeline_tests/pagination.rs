//! Pagination through the pipeline: the fake upstreams below paginate as
//! Stripe (a `starting_after` cursor), GitHub (`Link` headers) and page or
//! offset APIs do; the expected items, page numbers and query values are
//! written out by hand.

use serde_json::{Value, json};

use super::*;
use crate::exchange::{PageStyle, Pagination};

/// A query parameter of the URL the transport was handed.
fn param(seen: &Seen, name: &str) -> Option<String> {
    Url::parse(&seen.url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn json_page(body: Value) -> TransportResponse {
    respond(
        200,
        &[("content-type", "application/json")],
        body.to_string(),
    )
}

/// Seven customers `cus_1` … `cus_7`, served Stripe's way: `limit` of them
/// after the id in `starting_after`, with `has_more`.
fn stripe(seen: &Seen) -> TransportResponse {
    let all: Vec<String> = (1..=7).map(|n| format!("cus_{n}")).collect();
    let limit: usize = param(seen, "limit").map_or(10, |l| l.parse().unwrap());
    let start = match param(seen, "starting_after") {
        Some(after) => all.iter().position(|id| *id == after).unwrap() + 1,
        None => 0,
    };
    let page: Vec<Value> = all[start..]
        .iter()
        .take(limit)
        .map(|id| json!({"id": id}))
        .collect();
    let has_more = start + page.len() < all.len();
    json_page(json!({"object": "list", "data": page, "has_more": has_more}))
}

fn paged(request: Request, pagination: Pagination) -> Request {
    Request {
        pagination: Some(pagination),
        ..request
    }
}

fn cursor(path: &str, param: &str, items: &str, size: Option<(&str, u32)>) -> Pagination {
    Pagination {
        style: PageStyle::Cursor {
            path: path.into(),
            param: param.into(),
        },
        items_path: items.into(),
        limit_param: size.map(|(name, _)| name.into()),
        page_size: size.map(|(_, n)| n),
        max_pages: None,
    }
}

fn numbered(style: PageStyle, size: Option<(&str, u32)>) -> Pagination {
    Pagination {
        style,
        items_path: "items".into(),
        limit_param: size.map(|(name, _)| name.into()),
        page_size: size.map(|(_, n)| n),
        max_pages: None,
    }
}

fn link() -> Pagination {
    Pagination {
        style: PageStyle::Link,
        items_path: String::new(),
        limit_param: None,
        page_size: None,
        max_pages: None,
    }
}

fn ids(response: &Response) -> Vec<String> {
    let items: Vec<Value> = serde_json::from_slice(&response.body).unwrap();
    items
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

fn header<'r>(response: &'r Response, name: &str) -> Option<&'r str> {
    response
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn cursor_pages_are_sent_with_the_credential_and_their_items_gathered() {
    let world = World::new(BEARER, Box::new(stripe));
    let request = paged(
        get("customers", Some("default")),
        cursor("data.-1.id", "starting_after", "data", Some(("limit", 3))),
    );
    let (result, records) = world.send(request).await;
    let response = result.unwrap();
    let want: Vec<String> = (1..=7).map(|n| format!("cus_{n}")).collect();
    assert_eq!(ids(&response), want);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    // 3 + 3 + 1 items; the page of 1 still names a cursor, so a fourth
    // page comes back empty and ends paging.
    assert_eq!(header(&response, "courier-pages"), Some("4"));
    assert_eq!(header(&response, "courier-pagination"), Some("complete"));
    let seen = world.transport.seen();
    let afters: Vec<Option<String>> = seen.iter().map(|s| param(s, "starting_after")).collect();
    assert_eq!(
        afters,
        [
            None,
            Some("cus_3".into()),
            Some("cus_6".into()),
            Some("cus_7".into())
        ]
    );
    for s in &seen {
        assert_eq!(param(s, "limit").as_deref(), Some("3"));
        assert_eq!(
            s.header("authorization"),
            Some("Bearer s3cret-bearer-value")
        );
        assert!(
            s.url.starts_with("https://api.test/v1/customers?"),
            "{}",
            s.url
        );
    }
    let pages: Vec<Option<u32>> = records.iter().map(|r| r.page).collect();
    assert_eq!(pages, [Some(1), Some(2), Some(3), Some(4)]);
    let ends: Vec<Option<&str>> = records.iter().map(|r| r.pagination.as_deref()).collect();
    assert_eq!(ends, [None, None, None, Some("complete")]);
}

#[tokio::test]
async fn page_numbers_and_offsets_stop_at_a_short_page() {
    // Ten items; `size` per page at the offset the request names.
    let items = |offset: usize, size: usize| -> TransportResponse {
        let page: Vec<Value> = (offset..10.min(offset + size))
            .map(|n| json!({"id": format!("i{n}")}))
            .collect();
        json_page(json!({ "items": page }))
    };
    let world = World::new(
        BEARER,
        Box::new(move |seen| {
            let size: usize = param(seen, "per_page").unwrap().parse().unwrap();
            let page: usize = param(seen, "p").unwrap().parse().unwrap();
            items((page - 1) * size, size)
        }),
    );
    let (result, records) = world
        .send(paged(
            get("https://api.test/things", None),
            numbered(PageStyle::Page("p".into()), Some(("per_page", 4))),
        ))
        .await;
    let want: Vec<String> = (0..10).map(|n| format!("i{n}")).collect();
    assert_eq!(ids(&result.unwrap()), want);
    let pages: Vec<String> = world
        .transport
        .seen()
        .iter()
        .map(|s| param(s, "p").unwrap())
        .collect();
    assert_eq!(
        pages,
        ["1", "2", "3"],
        "the page of 2 < 4 items is the last"
    );
    assert_eq!(
        records.last().unwrap().pagination.as_deref(),
        Some("complete")
    );

    // Offsets move on by the items each page held; without a page size
    // only an empty page ends paging.
    let world = World::new(
        BEARER,
        Box::new(move |seen| items(param(seen, "skip").unwrap().parse().unwrap(), 4)),
    );
    let (result, _) = world
        .send(paged(
            get("https://api.test/things", None),
            numbered(PageStyle::Offset("skip".into()), None),
        ))
        .await;
    assert_eq!(ids(&result.unwrap()), want);
    let offsets: Vec<String> = world
        .transport
        .seen()
        .iter()
        .map(|s| param(s, "skip").unwrap())
        .collect();
    assert_eq!(offsets, ["0", "4", "8", "10"]);
}

#[tokio::test]
async fn link_pages_follow_next_and_a_link_to_another_origin_gets_no_credential() {
    let world = World::new(
        BEARER,
        Box::new(
            |seen| match (seen.origin.as_str(), param(seen, "page").as_deref()) {
                ("https://api.test", None) => respond(
                    200,
                    &[
                        ("content-type", "application/json"),
                        (
                            "link",
                            r#"</v1/repos?page=2&per_page=2>; rel="next", </v1/repos?page=3&per_page=2>; rel="last""#,
                        ),
                    ],
                    r#"[{"id":"r1"},{"id":"r2"}]"#,
                ),
                ("https://api.test", Some("2")) => respond(
                    200,
                    &[(
                        "link",
                        r#"<https://other.test/repos?page=3>; rel="next", </v1/repos?page=1>; rel="first""#,
                    )],
                    r#"[{"id":"r3"},{"id":"r4"}]"#,
                ),
                _ => json_page(json!([{"id": "r5"}])),
            },
        ),
    );
    let (result, records) = world
        .send(paged(get("repos", Some("default")), link()))
        .await;
    let response = result.unwrap();
    assert_eq!(ids(&response), ["r1", "r2", "r3", "r4", "r5"]);
    assert_eq!(
        header(&response, "link"),
        None,
        "the page's own link is not passed on"
    );
    assert_eq!(response.final_url, "https://other.test/repos?page=3");
    let seen = world.transport.seen();
    let urls: Vec<&str> = seen.iter().map(|s| s.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://api.test/v1/repos",
            "https://api.test/v1/repos?page=2&per_page=2",
            "https://other.test/repos?page=3",
        ]
    );
    let auth: Vec<Option<&str>> = seen.iter().map(|s| s.header("authorization")).collect();
    assert_eq!(
        auth,
        [
            Some("Bearer s3cret-bearer-value"),
            Some("Bearer s3cret-bearer-value"),
            None
        ]
    );
    assert_eq!(records.len(), 3);
}

#[tokio::test]
async fn a_link_to_a_refused_origin_is_denied_before_the_transport() {
    let world = World::new(
        BEARER,
        Box::new(|_| {
            respond(
                200,
                &[("link", r#"<https://evil.test/p2>; rel="next""#)],
                "[1]",
            )
        }),
    );
    let (result, records) = world
        .send(paged(get("repos", Some("default")), link()))
        .await;
    assert!(matches!(result, Err(SendError::Denied(_))), "{result:?}");
    assert_eq!(world.transport.seen().len(), 1);
    assert_eq!(records.len(), 1);
}

#[tokio::test]
async fn the_host_caps_stop_paging_cleanly_and_say_so() {
    let request = || {
        paged(
            get("customers", Some("default")),
            cursor("data.-1.id", "starting_after", "data", Some(("limit", 2))),
        )
    };
    let run = |limits: Limits| async move {
        let world = World::with_limits(BEARER, Box::new(stripe), limits);
        let (result, records) = world.send(request()).await;
        let response = result.unwrap();
        let end = header(&response, "courier-pagination").unwrap().to_owned();
        assert_eq!(
            records.last().unwrap().pagination.as_deref(),
            Some(end.as_str())
        );
        (ids(&response), end, world.transport.seen().len())
    };
    let cases = [
        (
            Limits {
                max_pages_per_step: 2,
                ..Limits::default()
            },
            (vec!["cus_1", "cus_2", "cus_3", "cus_4"], "max-pages", 2),
        ),
        (
            Limits {
                max_page_items_per_step: 3,
                ..Limits::default()
            },
            (vec!["cus_1", "cus_2", "cus_3"], "max-items", 2),
        ),
        (
            // The first page's body alone passes 10 bytes.
            Limits {
                max_page_bytes_per_step: 10,
                ..Limits::default()
            },
            (vec!["cus_1", "cus_2"], "max-bytes", 1),
        ),
        (
            Limits {
                max_requests_per_step: 3,
                ..Limits::default()
            },
            (
                vec!["cus_1", "cus_2", "cus_3", "cus_4", "cus_5", "cus_6"],
                "request-limit",
                3,
            ),
        ),
    ];
    for (limits, (ids, end, sent)) in cases {
        let got = run(limits).await;
        assert_eq!(
            got,
            (
                ids.iter().map(|s| s.to_string()).collect(),
                end.to_owned(),
                sent
            )
        );
    }

    // The request's own page cap.
    let world = World::new(BEARER, Box::new(stripe));
    let mut pagination = cursor("data.-1.id", "starting_after", "data", Some(("limit", 2)));
    pagination.max_pages = Some(1);
    let (result, _) = world
        .send(paged(get("customers", Some("default")), pagination))
        .await;
    let response = result.unwrap();
    assert_eq!(ids(&response), ["cus_1", "cus_2"]);
    assert_eq!(header(&response, "courier-pagination"), Some("max-pages"));
}

#[tokio::test]
async fn the_same_cursor_or_next_link_twice_stops_with_invalid_request() {
    // An upstream that ignores the cursor parameter answers page 1 again.
    let world = World::new(
        BEARER,
        Box::new(|_| json_page(json!({"data": [{"id": 1}], "next": "abc"}))),
    );
    let (result, records) = world
        .send(paged(
            get("https://api.test/x", None),
            cursor("next", "cursor", "data", None),
        ))
        .await;
    let Err(SendError::InvalidRequest(message)) = result else {
        panic!("{result:?}");
    };
    assert!(message.contains("same cursor `abc`"), "{message}");
    assert_eq!(world.transport.seen().len(), 2);
    assert_eq!(records.len(), 2);

    let world = World::new(
        BEARER,
        Box::new(|_| {
            respond(
                200,
                &[("link", "<https://api.test/x?p=2>; rel=next")],
                "[1]",
            )
        }),
    );
    let (result, _) = world
        .send(paged(get("https://api.test/x", None), link()))
        .await;
    let Err(SendError::InvalidRequest(message)) = result else {
        panic!("{result:?}");
    };
    assert!(message.contains("same next link"), "{message}");
    assert_eq!(
        world.transport.seen().len(),
        2,
        "page 2 names itself as next: not sent again"
    );
}

#[tokio::test]
async fn bad_pagination_is_refused_before_the_transport_and_bad_pages_named() {
    let world = World::new(BEARER, Box::new(|_| respond(200, &[], "not json")));
    for (pagination, field) in [
        (cursor("a..b", "c", "", None), "pagination.cursor.path: "),
        (cursor("", "c", "", None), "pagination.cursor.path: "),
        (
            numbered(PageStyle::Page("p".into()), Some(("n", 0))),
            "pagination.page-size: ",
        ),
    ] {
        let (result, records) = world
            .send(paged(get("https://api.test/x", None), pagination))
            .await;
        assert!(
            matches!(&result, Err(SendError::InvalidRequest(m)) if m.starts_with(field)),
            "{field}: {result:?}"
        );
        assert!(records.is_empty());
    }
    assert!(world.transport.seen().is_empty());

    let (result, _) = world
        .send(paged(get("https://api.test/x", None), link()))
        .await;
    assert!(
        matches!(&result, Err(SendError::InvalidRequest(m)) if m.contains("page 1 is not JSON")),
        "{result:?}"
    );
    let world = World::new(BEARER, Box::new(|_| json_page(json!({"data": {"id": 1}}))));
    let (result, _) = world
        .send(paged(
            get("https://api.test/x", None),
            cursor("next", "c", "data", None),
        ))
        .await;
    assert!(
        matches!(&result, Err(SendError::InvalidRequest(m)) if m.starts_with("pagination.items-path: page 1")),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_page_outside_2xx_is_the_answer_as_it_came() {
    let world = World::new(
        BEARER,
        Box::new(|seen| match param(seen, "p").as_deref() {
            Some("1") => json_page(json!({"items": [{"id": "a"}]})),
            _ => respond(404, &[("x-why", "gone")], "no such page"),
        }),
    );
    let (result, records) = world
        .send(paged(
            get("https://api.test/x", None),
            numbered(PageStyle::Page("p".into()), None),
        ))
        .await;
    let response = result.unwrap();
    assert_eq!(
        (response.status, response.body.as_slice()),
        (404, &b"no such page"[..])
    );
    assert_eq!(header(&response, "courier-pagination"), None);
    assert_eq!(
        records.iter().map(|r| r.page).collect::<Vec<_>>(),
        [Some(1), Some(2)]
    );
}
