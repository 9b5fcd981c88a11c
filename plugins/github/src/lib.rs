//! GitHub issues: list a repository's issues (every page through the
//! `Link` header, <https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api>)
//! and create one. The operator's connection chooses how the host
//! authenticates (<https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api>):
//! a personal access token (`auth = "bearer"`), or a GitHub App, whose
//! RS256 JWT the host signs and exchanges for an installation access token
//! (`auth = "jwt"` with a bearer `exchange`; the README's "GitHub App"
//! connection file). The plugin sees neither.
//! GitHub's `x-ratelimit-*` headers are read by the host, which holds the
//! connection when they announce none remaining; the calls report them too.

use courier_sdk::prelude::*;

/// The connection the operator binds: a GitHub token or a GitHub App installation.
const CONNECTION: &str = "github";

fn plugin() -> Plugin {
    Plugin::new("github", env!("CARGO_PKG_VERSION"))
        .description("GitHub issues")
        .connection(
            Connection::new(CONNECTION)
                .description(
                    "A GitHub account (`auth = \"bearer\"`, its token as `token`) or a GitHub App \
                     installation (`auth = \"jwt\"`, the app's key as `private_key`, exchanged \
                     for an installation token)",
                )
                // Its origin is allowed: `Link` headers also point at `/repositories/{id}/…`.
                .base_url("https://api.github.com")
                // A token or an app: the operator's connection file says which.
                .auth(Auth::OperatorDefined)
                // https://docs.github.com/en/rest/about-the-rest-api/api-versions
                .shared_header("Accept", "application/vnd.github+json")
                .shared_header("X-GitHub-Api-Version", "2022-11-28")
                // GitHub refuses requests without one (https://docs.github.com/en/rest/using-the-rest-api/getting-started-with-the-rest-api#user-agent).
                .shared_header("User-Agent", "courier-github-plugin")
                // The primary limit of a token: 5,000 requests an hour
                // (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api).
                .rate(5000, 3600),
        )
        .call(list_issues::call())
        .call(create_issue::call())
}

courier_sdk::export!(plugin);

/// `GET /repos/{owner}/{repo}/issues`
/// (<https://docs.github.com/en/rest/issues/issues#list-repository-issues>).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListIssues {
    /// The account owning the repository.
    owner: String,
    /// The repository's name.
    repo: String,
    /// `open` (default), `closed` or `all`.
    #[serde(default)]
    state: Option<State>,
    /// Only issues with every one of these labels.
    #[serde(default)]
    labels: Vec<String>,
    /// Issues per page, 1 to 100 (default 100).
    #[serde(default = "default_page_size")]
    #[schemars(range(min = 1, max = 100))]
    page_size: u32,
    /// At most this many pages (the host caps pages and items too).
    #[serde(default)]
    #[schemars(range(min = 1))]
    max_pages: Option<u32>,
}

/// An issue's state, as a filter.
#[derive(Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum State {
    /// Open issues.
    Open,
    /// Closed issues.
    Closed,
    /// Both.
    All,
}

fn default_page_size() -> u32 {
    100
}

/// `POST /repos/{owner}/{repo}/issues`
/// (<https://docs.github.com/en/rest/issues/issues#create-an-issue>).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateIssue {
    /// The account owning the repository.
    owner: String,
    /// The repository's name.
    repo: String,
    /// The issue's title.
    title: String,
    /// The issue's text (Markdown).
    #[serde(default)]
    body: Option<String>,
    /// Labels to add (ignored by GitHub without push access).
    #[serde(default)]
    labels: Vec<String>,
    /// Logins to assign (ignored by GitHub without push access).
    #[serde(default)]
    assignees: Vec<String>,
}

/// An issue, as the calls return it.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Issue {
    /// The issue's number in its repository.
    number: u64,
    /// Its title.
    title: String,
    /// `open` or `closed`.
    state: String,
    /// Its page on github.com.
    html_url: String,
    /// Its labels' names.
    #[serde(default, deserialize_with = "label_names")]
    labels: Vec<String>,
    /// Whether it is a pull request (the list returns both).
    #[serde(default, deserialize_with = "is_present")]
    pull_request: bool,
}

/// The issues a list returned.
#[derive(Serialize, JsonSchema)]
struct Issues {
    /// Every issue on the pages read, in GitHub's order.
    issues: Vec<Issue>,
    /// Why paging ended: `complete`, or the cap that was reached.
    pagination: String,
    /// The token's rate limit after the last page.
    rate_limit: RateLimit,
}

/// GitHub's rate-limit headers as the last response carried them.
#[derive(Serialize, JsonSchema)]
struct RateLimit {
    /// `x-ratelimit-limit`: requests allowed in the window.
    limit: Option<u64>,
    /// `x-ratelimit-remaining`: requests left in the window.
    remaining: Option<u64>,
    /// `x-ratelimit-reset`: when the window resets, seconds since the epoch.
    reset: Option<u64>,
}

/// Lists a repository's issues and pull requests, following every page.
#[call(data, title = "List issues")]
fn list_issues(input: ListIssues) -> Result<Issues, StepError> {
    let mut pages = Pagination::link().page_size("per_page", input.page_size);
    if let Some(max) = input.max_pages {
        pages = pages.max_pages(max);
    }
    let mut request = Request::get(issues_path(&input.owner, &input.repo)?).paginate(pages);
    if let Some(state) = input.state {
        let state = match state {
            State::Open => "open",
            State::Closed => "closed",
            State::All => "all",
        };
        request = request.query("state", state);
    }
    if !input.labels.is_empty() {
        request = request.query("labels", input.labels.join(","));
    }
    let response = checked(request.connection(CONNECTION).send()?)?;
    let header = |name: &str| response.header(name).and_then(|v| v.parse().ok());
    Ok(Issues {
        rate_limit: RateLimit {
            limit: header("x-ratelimit-limit"),
            remaining: header("x-ratelimit-remaining"),
            reset: header("x-ratelimit-reset"),
        },
        pagination: response
            .header("courier-pagination")
            .unwrap_or("complete")
            .to_owned(),
        issues: response.json()?,
    })
}

/// Opens an issue in a repository.
#[call(action, title = "Create issue")]
fn create_issue(input: CreateIssue) -> Result<Issue, StepError> {
    let mut body = json!({"title": input.title});
    if let Some(text) = input.body {
        body["body"] = text.into();
    }
    if !input.labels.is_empty() {
        body["labels"] = input.labels.into();
    }
    if !input.assignees.is_empty() {
        body["assignees"] = input.assignees.into();
    }
    let request = Request::post(issues_path(&input.owner, &input.repo)?).json(&body);
    checked(request.connection(CONNECTION).send()?)?.json()
}

/// `/repos/OWNER/REPO/issues`, once both are names GitHub allows: letters,
/// digits, `-`, and in a repository's name `_` and `.` (never `.` or `..`).
fn issues_path(owner: &str, repo: &str) -> Result<String, StepError> {
    let owner_ok = !owner.is_empty()
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let repo_ok = !matches!(repo, "" | "." | "..")
        && repo
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !owner_ok || !repo_ok {
        return Err(StepError::invalid_input(format!(
            "`{owner}/{repo}` is not a GitHub repository name"
        )));
    }
    Ok(format!("/repos/{owner}/{repo}/issues"))
}

/// The response if it is 2xx, else a step error with GitHub's `message`
/// (<https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api>)
/// and the error body as output.
fn checked(response: Response) -> Result<Response, StepError> {
    if response.is_success() {
        return Ok(response);
    }
    let body: Value = response.json().unwrap_or(Value::Null);
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message");
    let mut text = format!("GitHub answered {}: {message}", response.status());
    if response.header("x-ratelimit-remaining") == Some("0") {
        text.push_str(" (rate limit exhausted)");
    }
    Err(StepError::Http {
        status: response.status(),
        message: text,
        output: Some(body),
    })
}

/// The `name` of each label object.
fn label_names<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    struct Label {
        name: String,
    }
    let labels = Vec::<Label>::deserialize(deserializer)?;
    Ok(labels.into_iter().map(|label| label.name).collect())
}

/// Whether the field is present and not `null`.
fn is_present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<Value>::deserialize(deserializer)?.is_some())
}
