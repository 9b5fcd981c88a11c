//! The `github` plugin through Prism serving GitHub's own REST document
//! (`@octokit/openapi`, `api.github.com.json`). The upstream behind it
//! answers as GitHub's docs say:
//! <https://docs.github.com/en/rest/issues/issues>, `Link` pagination
//! (<https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api>)
//! and the `x-ratelimit-*` headers
//! (<https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api>).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use courier_host::Outcome;
use courier_tests::{Received, Reply};
use serde_json::{Value, json};

use super::{Prism, host_for, openapi_subset, query, vendor_document};
use crate::auth::assert_no_leak;
use crate::step;

const BASE: &str = "https://api.github.com";
const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";

fn connection() -> String {
    format!("connection = 'github'\nauth = 'bearer'\n[secrets]\ntoken = '{TOKEN}'")
}

fn prism() -> &'static Prism {
    static PRISM: OnceLock<Prism> = OnceLock::new();
    PRISM.get_or_init(|| {
        let document = vendor_document("@octokit/openapi/generated/api.github.com.json");
        let ops = [
            ("get", "/repos/{owner}/{repo}/issues"),
            ("post", "/repos/{owner}/{repo}/issues"),
        ];
        Prism::start("github", &openapi_subset(&document, &ops), github)
    })
}

fn issue(repo: &str, number: u64, title: &str, labels: &[&str]) -> Value {
    let url = format!("https://api.github.com/repos/{repo}/issues/{number}");
    json!({"id": number, "node_id": format!("I_{number}"), "number": number, "title": title,
           "state": "open", "locked": false, "url": url, "html_url": format!("https://github.com/{repo}/issues/{number}"),
           "repository_url": format!("https://api.github.com/repos/{repo}"),
           "labels_url": format!("{url}/labels{{/name}}"), "comments_url": format!("{url}/comments"),
           "events_url": format!("{url}/events"), "comments": 0, "user": null, "assignee": null,
           "milestone": null, "closed_at": null, "created_at": "2026-01-01T00:00:00Z",
           "updated_at": "2026-01-01T00:00:00Z",
           "labels": labels.iter().map(|l| json!({"id": 1, "name": l})).collect::<Vec<_>>()})
}

/// Requests served so far: `x-ratelimit-remaining` counts down from 5,000.
static USED: AtomicU64 = AtomicU64::new(0);

/// GitHub's REST API for listing and creating issues, as documented.
fn github(r: &Received) -> Reply {
    if r.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
        return Reply::json(
            401,
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
        );
    }
    let path = r.uri.split('?').next().unwrap();
    let repo = path
        .strip_prefix("/repos/")
        .and_then(|p| p.strip_suffix("/issues"))
        .unwrap_or("");
    let reset = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let used = USED.fetch_add(1, Ordering::SeqCst) + 1;
    // `octo-org/exhausted` answers as GitHub does on the last request of the hour.
    let remaining = if repo == "octo-org/exhausted" {
        0
    } else {
        5000 - used
    };
    let mut reply = match (r.method.as_str(), repo) {
        (_, "octo-org/missing") => Reply::json(
            404,
            json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest/issues/issues"}),
        ),
        ("GET", _) => {
            let all: Vec<Value> = (1..=5)
                .rev()
                .map(|n| {
                    let mut i = issue(repo, n, &format!("Issue {n}"), &["bug"]);
                    if n == 2 {
                        i["pull_request"] =
                            json!({"url": format!("https://api.github.com/repos/{repo}/pulls/2")});
                    }
                    i
                })
                .collect();
            let per_page: usize = query(r, "per_page").map_or(30, |p| p.parse().unwrap());
            let page: usize = query(r, "page").map_or(1, |p| p.parse().unwrap());
            let items: Vec<Value> = all
                .iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .cloned()
                .collect();
            let last = all.len().div_ceil(per_page);
            let mut reply = Reply::json(200, Value::Array(items));
            let link = |n: usize, rel: &str| {
                format!(
                    "<https://api.github.com/repos/{repo}/issues?per_page={per_page}&page={n}>; rel=\"{rel}\""
                )
            };
            let mut links = Vec::new();
            if page < last {
                links.push(link(page + 1, "next"));
                links.push(link(last, "last"));
            }
            if page > 1 {
                links.push(link(1, "first"));
                links.push(link(page - 1, "prev"));
            }
            if !links.is_empty() {
                reply.headers.push(("link".into(), links.join(", ")));
            }
            reply
        }
        ("POST", _) => {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            let labels: Vec<&str> = body["labels"].as_array().map_or(Vec::new(), |l| {
                l.iter().map(|v| v.as_str().unwrap()).collect()
            });
            let mut created = issue(repo, 42, body["title"].as_str().unwrap(), &labels);
            created["body"] = body["body"].clone();
            Reply::json(201, created)
        }
        _ => Reply::json(404, json!({"message": "Not Found"})),
    };
    for (name, value) in [
        ("x-ratelimit-limit", 5000),
        ("x-ratelimit-remaining", remaining),
        ("x-ratelimit-used", used),
        ("x-ratelimit-reset", reset),
    ] {
        reply.headers.push((name.into(), value.to_string()));
    }
    reply
        .headers
        .push(("x-ratelimit-resource".into(), "core".into()));
    reply
}

#[tokio::test]
async fn list_issues_follows_link_headers_and_reports_the_rate_limit() {
    let host = host_for("github", BASE, prism().addr).await;
    let input = json!({"owner": "octo-org", "repo": "hello-world", "state": "all", "labels": ["bug", "ui"], "page_size": 2});
    let r = step(&host, "github", "list_issues", input, &[&connection()]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(r.contract_drift.is_empty(), "{:?}", r.contract_drift);
    let output = r.output.clone().unwrap();
    let numbers: Vec<u64> = output["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [5, 4, 3, 2, 1]);
    assert_eq!(output["issues"][0]["labels"], json!(["bug"]));
    assert_eq!(output["issues"][3]["pull_request"], true);
    assert_eq!(output["issues"][0]["pull_request"], false);
    assert_eq!(output["pagination"], "complete");
    assert_eq!(output["rate_limit"]["limit"], 5000);
    let remaining = output["rate_limit"]["remaining"].as_u64().unwrap();
    assert!(
        remaining < 5000 - 2,
        "three pages were counted: {remaining}"
    );
    // Three pages: the first as the plugin built it, the next two from `Link`.
    let pages: Vec<Received> = prism()
        .received()
        .into_iter()
        .filter(|p| p.method == "GET" && p.uri.starts_with("/repos/octo-org/hello-world/issues"))
        .collect();
    let numbers: Vec<Option<String>> = pages.iter().map(|p| query(p, "page")).collect();
    assert_eq!(numbers, [None, Some("2".into()), Some("3".into())]);
    assert_eq!(query(&pages[0], "labels").as_deref(), Some("bug,ui"));
    assert_eq!(query(&pages[0], "state").as_deref(), Some("all"));
    for page in &pages {
        assert_eq!(
            page.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(page.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(page.header("x-github-api-version"), Some("2022-11-28"));
        assert!(page.header("user-agent").is_some());
    }
    assert_no_leak(&r, &[TOKEN]);
}

#[tokio::test]
async fn an_exhausted_rate_limit_holds_the_connection_until_its_reset() {
    let host = host_for("github", BASE, prism().addr).await;
    let input = json!({"owner": "octo-org", "repo": "exhausted", "max_pages": 1});
    let r = step(
        &host,
        "github",
        "list_issues",
        input.clone(),
        &[&connection()],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.output.unwrap()["rate_limit"]["remaining"], 0);
    let before = prism().received().len();
    // The host heard `x-ratelimit-remaining: 0` until an hour from now: the
    // next request on the connection is not sent.
    let r = step(&host, "github", "list_issues", input, &[&connection()]).await;
    assert_eq!(r.outcome, Outcome::MaxConnection, "{r:?}");
    assert!(
        prism().received()[before..]
            .iter()
            .all(|p| !p.uri.contains("/exhausted/"))
    );
}

#[tokio::test]
async fn create_issue_sends_the_documented_json_and_names_github_errors() {
    let host = host_for("github", BASE, prism().addr).await;
    let input = json!({"owner": "octo-org", "repo": "hello-world", "title": "Found a bug",
                       "body": "I'm having a problem with this.", "labels": ["bug"], "assignees": ["octocat"]});
    let r = step(&host, "github", "create_issue", input, &[&connection()]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(r.contract_drift.is_empty(), "{:?}", r.contract_drift);
    assert_eq!(
        r.output.clone().unwrap(),
        json!({"number": 42, "title": "Found a bug", "state": "open", "labels": ["bug"],
               "html_url": "https://github.com/octo-org/hello-world/issues/42", "pull_request": false})
    );
    let sent = prism()
        .received()
        .into_iter()
        .rfind(|p| p.method == "POST" && p.uri == "/repos/octo-org/hello-world/issues")
        .unwrap();
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_slice::<Value>(&sent.body).unwrap(),
        json!({"title": "Found a bug", "body": "I'm having a problem with this.", "labels": ["bug"], "assignees": ["octocat"]})
    );
    assert_no_leak(&r, &[TOKEN]);

    let input = json!({"owner": "octo-org", "repo": "missing", "title": "t"});
    let r = step(&host, "github", "create_issue", input, &[&connection()]).await;
    assert_eq!(
        (r.outcome, r.status),
        (Outcome::HttpError, Some(404)),
        "{r:?}"
    );
    assert!(
        r.error
            .unwrap()
            .message
            .contains("GitHub answered 404: Not Found")
    );

    let input = json!({"owner": "octo-org", "repo": "..", "title": "t"});
    let r = step(&host, "github", "create_issue", input, &[&connection()]).await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    assert!(r.requests.is_empty());
}

#[tokio::test]
async fn prism_refuses_a_request_that_departs_from_githubs_document() {
    // The oracle's own check: `state` must be open, closed or all.
    let path = "/repos/octo-org/self-check/issues?state=shut";
    assert_eq!(prism().status_of("GET", path, &[], "").await, 422);
    assert!(
        !prism()
            .received()
            .iter()
            .any(|p| p.uri.contains("self-check"))
    );
}
