//! The `github` plugin through Prism serving GitHub's own REST document
//! (`@octokit/openapi`, `api.github.com.json`). The upstream behind it
//! answers as GitHub's docs say:
//! <https://docs.github.com/en/rest/issues/issues>, `Link` pagination
//! (<https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api>)
//! and the `x-ratelimit-*` headers
//! (<https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api>).
//! It also issues GitHub App installation access tokens as GitHub documents
//! it ([`GitHubApp`]); Prism checks the exchange against the document's
//! `apps/create-installation-access-token` operation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use courier_host::Outcome;
use courier_tests::{ManualClock, Received, Reply, TestServer, host_with};
use serde_json::{Value, json};

use super::{Prism, host_for, openapi_subset, query, vendor_builder, vendor_document};
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
            ("post", "/app/installations/{installation_id}/access_tokens"),
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

/// The app whose installation tokens the Prism upstream issues, on the machine's clock.
static APP: GitHubApp = GitHubApp::new();

/// GitHub's REST API for listing and creating issues, as documented, with
/// the personal token or an installation token [`APP`] issued.
fn github(r: &Received) -> Reply {
    let now = SystemTime::now();
    if let Some(reply) = APP.exchange(r, now) {
        return reply;
    }
    let authorization = r.header("authorization").unwrap_or_default();
    if authorization != format!("Bearer {TOKEN}") && !APP.authorizes(authorization, now) {
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
        // `octo-org/echo` titles its issue with the credential it was sent.
        ("GET", "octo-org/echo") => Reply::json(
            200,
            json!([issue(repo, 1, &format!("sent {authorization}"), &[])]),
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

/// The GitHub App of the tests: its client ID (the JWT's `iss`), its
/// installation, and its key pair (made with `openssl genrsa -traditional`:
/// PKCS#1, the form GitHub hands an app's private key out in).
const APP_CLIENT_ID: &str = "Iv23liCourierTest01";
const INSTALLATION: u64 = 4242;
/// The app's installations: one per test that counts its exchanges (the
/// Prism upstream is shared by tests running in parallel).
const INSTALLATIONS: [u64; 4] = [INSTALLATION, 4243, 4244, 4245];
const APP_KEY: &str = include_str!("../../fixtures/github-app-test-key.pem");
const APP_PUBLIC_KEY: &str = include_str!("../../fixtures/github-app-test-key.pub.pem");

/// A connection authenticating as installation `installation` of the app.
fn app_connection(installation: u64) -> String {
    format!(
        "connection = 'github'\nid = 'app-{installation}'\nauth = 'jwt'\nalgorithm = 'RS256'\n\
         backdate_secs = 60\nlifetime_secs = 600\n\
         token_url = 'https://api.github.com/app/installations/{installation}/access_tokens'\n\
         exchange = {{ kind = 'bearer' }}\n[claims]\niss = '{APP_CLIENT_ID}'\n\
         [secrets]\nprivate_key = '''{APP_KEY}'''"
    )
}

/// GitHub's side of app authentication, written from its docs: the app's
/// JWT (<https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app>:
/// RS256, `iss` the client ID, `iat` in the past, `exp` at most ten minutes
/// ahead) exchanged with `POST /app/installations/{installation_id}/access_tokens`
/// (<https://docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app>,
/// `@octokit/openapi` operation `apps/create-installation-access-token`):
/// `Authorization: Bearer <JWT>`, answered 201 with `token` and
/// `expires_at` an hour ahead
/// (<https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-an-installation-access-token-for-a-github-app>).
/// The JWT is checked with `jsonwebtoken` on RustCrypto's RSA (the host
/// signs with ring).
struct GitHubApp {
    /// Every token issued: the JWT it was issued for, the token, its expiry.
    issued: Mutex<Vec<(String, String, SystemTime)>>,
}

impl GitHubApp {
    const fn new() -> Self {
        Self {
            issued: Mutex::new(Vec::new()),
        }
    }

    /// The answer to an installation token request at time `now`; `None`
    /// for any other request.
    fn exchange(&self, r: &Received, now: SystemTime) -> Option<Reply> {
        let installation = r
            .uri
            .strip_prefix("/app/installations/")?
            .strip_suffix("/access_tokens")?;
        let refuse = |status, message: &str| {
            let docs = "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app";
            Some(Reply::json(
                status,
                json!({"message": message, "documentation_url": docs}),
            ))
        };
        let Some(jwt) = r
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
        else {
            return refuse(401, "A JSON web token could not be decoded");
        };
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(APP_PUBLIC_KEY.as_bytes()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        // Times are checked below against `now`, which a test's clock may set.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "exp"]);
        validation.set_issuer(&[APP_CLIENT_ID]);
        let Ok(token) = jsonwebtoken::decode::<Value>(jwt, &key, &validation) else {
            return refuse(401, "A JSON web token could not be decoded");
        };
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let claims = &token.claims;
        let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
            return refuse(401, "'iat' and 'exp' claims are required");
        };
        if iat > secs(now) {
            return refuse(401, "'Issued at' claim ('iat') must be a time in the past");
        }
        if exp <= secs(now) || exp > secs(now) + 600 || exp - iat > 600 {
            return refuse(
                401,
                "'Expiration time' claim ('exp') is too far in the future or past",
            );
        }
        if !INSTALLATIONS.iter().any(|i| i.to_string() == installation) {
            return refuse(404, "Not Found");
        }
        let mut issued = self.issued.lock().unwrap();
        let token = format!("ghs_{:036}", 16_000_000 + issued.len());
        let expires_at = now + Duration::from_secs(3600);
        issued.push((jwt.to_owned(), token.clone(), expires_at));
        Some(Reply::json(
            201,
            json!({"token": token, "expires_at": rfc3339(expires_at),
                   "permissions": {"issues": "write"}, "repository_selection": "all"}),
        ))
    }

    /// Whether `authorization` carries a token this app issued that has
    /// not expired at `now` (as `Bearer` or `token`).
    fn authorizes(&self, authorization: &str, now: SystemTime) -> bool {
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("token "));
        let issued = self.issued.lock().unwrap();
        issued
            .iter()
            .any(|(_, t, expires)| Some(t.as_str()) == token && now < *expires)
    }

    /// The token issued for `jwt`, if one was.
    fn issued_for(&self, jwt: &str) -> Option<String> {
        let issued = self.issued.lock().unwrap();
        issued
            .iter()
            .find(|(j, ..)| j == jwt)
            .map(|(_, t, _)| t.clone())
    }
}

/// `t` as RFC 3339 UTC (`2016-07-11T22:14:10Z`), the civil date computed as
/// in Howard Hinnant's `civil_from_days`.
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rest / 3600, rest / 60 % 60, rest % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

#[test]
fn the_rfc3339_oracle_writes_githubs_example() {
    // GitHub's example answer: "expires_at": "2016-07-11T22:14:10Z".
    assert_eq!(
        rfc3339(UNIX_EPOCH + Duration::from_secs(1_468_275_250)),
        "2016-07-11T22:14:10Z"
    );
}

/// The JWT the token request carried.
fn jwt_of(exchange: &Received) -> String {
    let authorization = exchange.header("authorization").unwrap();
    authorization.strip_prefix("Bearer ").unwrap().to_owned()
}

/// The exchanges of installation `installation` that reached the upstream.
fn exchanges(received: Vec<Received>, installation: u64) -> Vec<Received> {
    let path = format!("/app/installations/{installation}/access_tokens");
    received.into_iter().filter(|p| p.uri == path).collect()
}

/// The key's PEM body, in pieces long enough to find.
fn key_pieces() -> Vec<String> {
    let body: String = APP_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    vec![body[..64].to_owned(), body[body.len() - 64..].to_owned()]
}

#[tokio::test]
async fn a_github_app_installation_token_authenticates_the_calls_and_is_kept() {
    let host = host_for("github", BASE, prism().addr).await;
    let conn = app_connection(INSTALLATION);
    let unix_now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let before = unix_now();
    let input = json!({"owner": "octo-org", "repo": "app-list", "max_pages": 1});
    let listed = step(&host, "github", "list_issues", input, &[&conn]).await;
    assert_eq!(listed.outcome, Outcome::Success, "{listed:?}");
    let after = unix_now();
    let input = json!({"owner": "octo-org", "repo": "app-list", "title": "From the app"});
    let created = step(&host, "github", "create_issue", input, &[&conn]).await;
    assert_eq!(created.outcome, Outcome::Success, "{created:?}");
    // One exchange for both steps, through Prism (which checked it against
    // GitHub's document), with the connection's GitHub headers.
    let exchanges = exchanges(prism().received(), INSTALLATION);
    assert_eq!(exchanges.len(), 1, "{exchanges:?}");
    let exchange = &exchanges[0];
    assert_eq!(exchange.method, "POST");
    assert!(exchange.body.is_empty());
    assert_eq!(
        exchange.header("accept"),
        Some("application/vnd.github+json")
    );
    assert_eq!(exchange.header("x-github-api-version"), Some("2022-11-28"));
    assert!(exchange.header("user-agent").is_some());
    let jwt = jwt_of(exchange);
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&jwt)
        .unwrap()
        .claims;
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert!(
        (before - 60..=after - 60).contains(&iat),
        "iat {iat} is 60 s before the step ({before} to {after})"
    );
    assert_eq!(exp - iat, 600);
    // The token the app issued for this JWT authenticated both calls.
    let token = APP.issued_for(&jwt).expect("the app issued a token");
    let calls: Vec<Received> = prism()
        .received()
        .into_iter()
        .filter(|p| p.uri.starts_with("/repos/octo-org/app-list/issues"))
        .collect();
    assert_eq!(calls.len(), 2);
    for call in &calls {
        assert_eq!(
            call.header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
    }
    let token_requests =
        |r: &courier_host::StepResult| r.requests.iter().filter(|q| q.token_request).count();
    assert_eq!((token_requests(&listed), token_requests(&created)), (1, 0));
    let pieces = key_pieces();
    for r in [&listed, &created] {
        assert_no_leak(r, &[&token, &jwt, &pieces[0], &pieces[1]]);
    }
}

#[tokio::test]
async fn the_installation_token_is_scrubbed_from_what_github_answers() {
    let host = host_for("github", BASE, prism().addr).await;
    let input = json!({"owner": "octo-org", "repo": "echo", "max_pages": 1});
    let r = step(
        &host,
        "github",
        "list_issues",
        input,
        &[&app_connection(4243)],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let title = r.output.clone().unwrap()["issues"][0]["title"].clone();
    assert_eq!(title, "sent Bearer [REDACTED]", "{r:?}");
    let echoed = prism()
        .received()
        .into_iter()
        .rfind(|p| p.uri.starts_with("/repos/octo-org/echo/issues"))
        .unwrap();
    let token = echoed.header("authorization").unwrap()["Bearer ".len()..].to_owned();
    assert!(APP.authorizes(&format!("token {token}"), SystemTime::now()));
    assert_no_leak(&r, &[&token]);
}

#[tokio::test]
async fn a_refused_exchange_is_a_credential_failure_and_needs_reauthorization() {
    let host = host_for("github", BASE, prism().addr).await;
    let conn = app_connection(999);
    let input = json!({"owner": "octo-org", "repo": "refused", "max_pages": 1});
    let mut results = Vec::new();
    for _ in 0..2 {
        let r = step(&host, "github", "list_issues", input.clone(), &[&conn]).await;
        assert_eq!(r.outcome, Outcome::Error, "{r:?}");
        let e = r.error.as_ref().unwrap();
        assert_eq!(e.kind, "credential", "{e:?}");
        results.push(r);
    }
    assert!(
        results[0]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("answered 404 (Not Found)"),
        "{results:?}"
    );
    let refused = exchanges(prism().received(), 999);
    assert_eq!(refused.len(), 1, "a refused connection is not retried");
    let jwt = jwt_of(&refused[0]);
    let pieces = key_pieces();
    for r in &results {
        assert_no_leak(r, &[&jwt, &pieces[0], &pieces[1]]);
    }
    assert_eq!(host.needs_reauthorization("test", "app-999"), Some(true));
    assert!(
        !prism()
            .received()
            .iter()
            .any(|p| p.uri.contains("/refused/"))
    );
}

/// A JWT dated two hours ago has expired when it reaches GitHub: refused (401).
#[tokio::test]
async fn an_expired_app_jwt_is_refused() {
    let clock = ManualClock::starting_at(SystemTime::now() - Duration::from_secs(7200));
    let host = host_with(vendor_builder(BASE, prism().addr).clock(clock), &["github"]).await;
    let conn = app_connection(4245);
    let input = json!({"owner": "octo-org", "repo": "expired", "max_pages": 1});
    let r = step(&host, "github", "list_issues", input, &[&conn]).await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.kind, "credential", "{e:?}");
    assert!(e.message.contains("answered 401"), "{e:?}");
    assert_eq!(host.needs_reauthorization("test", "app-4245"), Some(true));
}

/// The installation token expires an hour after it is issued: the host
/// (on a manual clock the upstream shares) keeps it until shortly before
/// `expires_at`, then exchanges a new JWT for a new token.
#[tokio::test]
async fn the_installation_token_is_renewed_before_it_expires() {
    let clock = ManualClock::new();
    let app = std::sync::Arc::new(GitHubApp::new());
    let server = {
        let (clock, app) = (clock.clone(), app.clone());
        TestServer::start(move |r| {
            let now = courier_host::Clock::wall(&*clock);
            if let Some(reply) = app.exchange(r, now) {
                return reply;
            }
            match app.authorizes(r.header("authorization").unwrap_or_default(), now) {
                true => Reply::json(200, json!([])),
                false => Reply::json(401, json!({"message": "Bad credentials"})),
            }
        })
        .await
    };
    let host = host_with(
        vendor_builder(BASE, server.addr).clock(clock.clone()),
        &["github"],
    )
    .await;
    let conn = app_connection(4244);
    let input = json!({"owner": "octo-org", "repo": "renewed", "max_pages": 1});
    for advance in [0, 3000, 560, 20, 60] {
        clock.advance(Duration::from_secs(advance));
        let r = step(&host, "github", "list_issues", input.clone(), &[&conn]).await;
        assert_eq!(r.outcome, Outcome::Success, "after {advance} s: {r:?}");
    }
    let received = server.received();
    let exchanges = exchanges(received.clone(), 4244);
    // Issued at 0 until 3600: kept at 3000 and 3560, renewed at 3580
    // (within 30 s of its expiry), the new one kept at 3640.
    assert_eq!(exchanges.len(), 2, "{received:?}");
    let tokens: Vec<String> = exchanges
        .iter()
        .map(|e| app.issued_for(&jwt_of(e)).unwrap())
        .collect();
    assert_ne!(tokens[0], tokens[1]);
    let used: Vec<&str> = received
        .iter()
        .filter(|p| p.uri.starts_with("/repos/"))
        .map(|p| p.header("authorization").unwrap())
        .collect();
    let bearer = |t: &str| format!("Bearer {t}");
    assert_eq!(
        used,
        [
            bearer(&tokens[0]),
            bearer(&tokens[0]),
            bearer(&tokens[0]),
            bearer(&tokens[1]),
            bearer(&tokens[1])
        ]
    );
    // The second JWT was dated by the manual clock.
    let iat = |e: &Received| {
        jsonwebtoken::dangerous::insecure_decode::<Value>(jwt_of(e))
            .unwrap()
            .claims["iat"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(iat(&exchanges[1]) - iat(&exchanges[0]), 3580);
}
