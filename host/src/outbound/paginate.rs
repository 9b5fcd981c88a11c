//! Pagination: a request with a `pagination` record is sent page after
//! page, and the pages' items come back as one response.
//!
//! The loop runs in the host, not in the guest SDK, so that every guest
//! language gets the same behaviour from one WIT field, and so that the
//! host's caps (pages, items, bytes per step) bind whatever the plugin asks.
//! Each page is an ordinary plugin request sent through [`Sender::send_one`]:
//! policy, credentials (only for the connection's origins, so a `Link` to
//! another origin gets none, as a redirect), retries, circuit breaker, the
//! step's request limit and deadline, scrubbing, one record per hop with the
//! page number. What the loop reads (cursors, links, items) comes from the
//! scrubbed page.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use serde_json::Value;
use url::Url;

use super::{RequestRecord, Sender, StepOutbound};
use crate::exchange::{PageStyle, Pagination, Pairs, Request, Response, SendError};
use crate::limits::Limits;

/// The response header that says how many pages were read.
const PAGES_HEADER: &str = "courier-pages";
/// The response header that says why paging ended ([`End`]).
const END_HEADER: &str = "courier-pagination";

/// What one step has read through pagination so far: the figures the
/// per-step caps of [`Limits`] apply to.
#[derive(Default)]
pub(super) struct PageBudget {
    pages: AtomicU32,
    items: AtomicUsize,
    bytes: AtomicUsize,
}

impl PageBudget {
    /// Counts a page of `bytes` bytes.
    fn count_page(&self, bytes: usize) {
        self.pages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts up to `offered` items within the step's cap; returns how many
    /// were taken.
    fn take_items(&self, offered: usize, limits: &Limits) -> usize {
        let mut taken = 0;
        let _ = self
            .items
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                taken = offered.min(limits.max_page_items_per_step.saturating_sub(used));
                Some(used + taken)
            });
        taken
    }

    /// The cap that leaves no room for another page, if any.
    fn full(&self, limits: &Limits) -> Option<End> {
        if self.pages.load(Ordering::Relaxed) >= limits.max_pages_per_step {
            Some(End::MaxPages)
        } else if self.items.load(Ordering::Relaxed) >= limits.max_page_items_per_step {
            Some(End::MaxItems)
        } else if self.bytes.load(Ordering::Relaxed) >= limits.max_page_bytes_per_step {
            Some(End::MaxBytes)
        } else {
            None
        }
    }
}

/// Why paging ended, as the `courier-pagination` header and the last
/// page's record say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// There is no next page.
    Complete,
    /// The step's or the request's page cap.
    MaxPages,
    /// The step's item cap (the items past it are dropped).
    MaxItems,
    /// The step's cap on page bytes.
    MaxBytes,
    /// The step's request limit leaves no room for another page.
    RequestLimit,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            End::Complete => "complete",
            End::MaxPages => "max-pages",
            End::MaxItems => "max-items",
            End::MaxBytes => "max-bytes",
            End::RequestLimit => "request-limit",
        }
    }
}

/// A path into a JSON document: keys, or array indexes (`-1` the last).
#[derive(Debug, Clone, PartialEq, Eq)]
struct JsonPath(Vec<String>);

impl JsonPath {
    /// `text` split at `.`; `""` is the document itself when `root_ok`.
    /// An empty key or a key with whitespace or a control character is
    /// refused, naming `field`.
    fn parse(text: &str, field: &str, root_ok: bool) -> Result<Self, SendError> {
        if text.is_empty() {
            return if root_ok {
                Ok(Self(Vec::new()))
            } else {
                Err(invalid(field, "an empty path"))
            };
        }
        let keys: Vec<String> = text.split('.').map(str::to_owned).collect();
        if keys
            .iter()
            .any(|k| k.is_empty() || k.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(invalid(
                field,
                &format!("`{text}` is not a path (keys separated by `.`, none empty)"),
            ));
        }
        Ok(Self(keys))
    }

    /// The value at this path, if there is one.
    fn find<'v>(&self, document: &'v Value) -> Option<&'v Value> {
        self.0.iter().try_fold(document, |value, key| match value {
            Value::Object(map) => map.get(key),
            Value::Array(items) => {
                let index: i64 = key.parse().ok()?;
                let index = if index < 0 {
                    items.len().checked_sub(index.unsigned_abs() as usize)?
                } else {
                    usize::try_from(index).ok()?
                };
                items.get(index)
            }
            _ => None,
        })
    }
}

/// A `pagination` record, checked.
struct Plan {
    style: Style,
    items: JsonPath,
    page_size: Option<u32>,
    max_pages: u32,
}

/// A [`PageStyle`] with its path parsed.
enum Style {
    Cursor { path: JsonPath, param: String },
    Page(String),
    Offset(String),
    Link,
}

impl Plan {
    /// Checks `p`, naming the field it refuses.
    fn new(p: &Pagination) -> Result<Self, SendError> {
        let param = |name: &str, field: &str| {
            if name.trim().is_empty() {
                Err(invalid(field, "an empty parameter name"))
            } else {
                Ok(name.to_owned())
            }
        };
        let style = match &p.style {
            PageStyle::Cursor { path, param: name } => Style::Cursor {
                path: JsonPath::parse(path, "pagination.cursor.path", false)?,
                param: param(name, "pagination.cursor.param")?,
            },
            PageStyle::Page(name) => Style::Page(param(name, "pagination.page")?),
            PageStyle::Offset(name) => Style::Offset(param(name, "pagination.offset")?),
            PageStyle::Link => Style::Link,
        };
        if p.page_size == Some(0) {
            return Err(invalid("pagination.page-size", "0 items per page"));
        }
        if let Some(name) = &p.limit_param {
            param(name, "pagination.limit-param")?;
            if p.page_size.is_none() {
                return Err(invalid(
                    "pagination.page-size",
                    "none, but `limit-param` needs a page size to send",
                ));
            }
        }
        if p.max_pages == Some(0) {
            return Err(invalid("pagination.max-pages", "0 pages"));
        }
        Ok(Self {
            style,
            items: JsonPath::parse(&p.items_path, "pagination.items-path", true)?,
            page_size: p.page_size,
            max_pages: p.max_pages.unwrap_or(u32::MAX),
        })
    }

    /// Whether a page of `count` items is the last of a numbered style.
    fn short(&self, count: usize) -> bool {
        count == 0 || self.page_size.is_some_and(|size| count < size as usize)
    }
}

fn invalid(field: &str, what: &str) -> SendError {
    SendError::InvalidRequest(format!("{field}: {what}"))
}

/// Sets query parameter `name` to `value`, replacing any pair of that name.
fn set_param(query: &mut Pairs, name: &str, value: String) {
    query.retain(|(k, _)| k != name);
    query.push((name.to_owned(), value));
}

/// The `rel="next"` target of the response's `Link` fields (RFC 8288), as
/// written (not yet joined).
pub(super) fn next_link(headers: &Pairs) -> Option<String> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("link"))
        .find_map(|(_, v)| link_with_rel(v, "next"))
}

/// The target of the first link in a `Link` field value whose `rel` lists
/// `rel` (case-insensitive; `rel` may be quoted and hold several types).
fn link_with_rel(value: &str, rel: &str) -> Option<String> {
    let mut rest = value;
    loop {
        let open = rest.find('<')?;
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        rest = &rest[close + 1..];
        // The parameters run to the next `,` outside a quoted string.
        let mut quoted = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == ',' && !quoted
            })
            .map_or(rest.len(), |(i, _)| i);
        let params = &rest[..end];
        rest = &rest[end..];
        let names_rel = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case(rel))
        });
        if names_rel {
            return Some(target.trim().to_owned());
        }
    }
}

/// The cursor at `path`, as text: a string or a number; `None` when it
/// is absent, `null` or `""`.
fn cursor_text(page: &Value, path: &JsonPath) -> Result<Option<String>, SendError> {
    match path.find(page) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(invalid(
            "pagination.cursor.path",
            "the value there is not a string or a number",
        )),
    }
}

impl Sender {
    /// Sends `request` page after page as `pagination` says and answers
    /// with every page's items in one JSON array (see `wit/types.wit`,
    /// `pagination`). Each page goes through [`Sender::send_one`]; its
    /// records carry the page number, and the last one why paging ended.
    pub(super) async fn send_paged(
        &self,
        step: &StepOutbound<'_>,
        request: Request,
        pagination: Pagination,
    ) -> (Result<Response, SendError>, Vec<RequestRecord>) {
        let mut records = Vec::new();
        let result = self
            .page_loop(step, request, &pagination, &mut records)
            .await;
        (result, records)
    }

    async fn page_loop(
        &self,
        step: &StepOutbound<'_>,
        mut request: Request,
        pagination: &Pagination,
        records: &mut Vec<RequestRecord>,
    ) -> Result<Response, SendError> {
        let plan = Plan::new(pagination)?;
        if let (Some(name), Some(size)) = (&pagination.limit_param, plan.page_size) {
            set_param(&mut request.query, name, size.to_string());
        }
        match &plan.style {
            Style::Page(name) => set_param(&mut request.query, name, "1".into()),
            Style::Offset(name) => set_param(&mut request.query, name, "0".into()),
            Style::Cursor { .. } | Style::Link => {}
        }
        let budget = &step.traffic.pages;
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        let (mut page, mut offset) = (0u32, 0usize);
        loop {
            page += 1;
            let first = records.len();
            let (outcome, mut sent) = self.send_one(step, request.clone()).await;
            records.append(&mut sent);
            for record in &mut records[first..] {
                record.page = Some(page);
            }
            let response = outcome?;
            if !(200..300).contains(&response.status) {
                return Ok(response);
            }
            budget.count_page(response.body.len());
            let document: Value = serde_json::from_slice(&response.body).map_err(|e| {
                SendError::InvalidRequest(format!(
                    "pagination: page {page} is not JSON ({e}), so it has no items to gather"
                ))
            })?;
            let Some(Value::Array(found)) = plan.items.find(&document) else {
                return Err(invalid(
                    "pagination.items-path",
                    &format!("page {page} has no array at `{}`", pagination.items_path),
                ));
            };
            let count = found.len();
            let taken = budget.take_items(count, step.limits);
            items.extend(found.iter().take(taken).cloned());
            let next = match &plan.style {
                Style::Cursor { path, param } => cursor_text(&document, path)?
                    .filter(|_| count > 0)
                    .map(|cursor| {
                        let value = cursor.clone();
                        (cursor, Next::Param(param, value))
                    }),
                Style::Page(param) => (!plan.short(count))
                    .then(|| (String::new(), Next::Param(param, (page + 1).to_string()))),
                Style::Offset(param) => {
                    offset += count;
                    (!plan.short(count))
                        .then(|| (String::new(), Next::Param(param, offset.to_string())))
                }
                Style::Link => next_link(&response.headers)
                    .map(|link| join_link(&response.final_url, &link))
                    .transpose()?
                    .map(|url| (url.to_string(), Next::Url(url))),
            };
            let Some((key, next)) = next else {
                return Ok(gathered(records, response, items, page, End::Complete));
            };
            if !key.is_empty() && !seen.insert(key.clone()) {
                let what = match plan.style {
                    Style::Link => "the same next link",
                    _ => "the same cursor",
                };
                return Err(SendError::InvalidRequest(format!(
                    "pagination: page {page} answered with {what} `{key}` again: paging stopped (a loop)"
                )));
            }
            let end = if taken < count {
                Some(End::MaxItems)
            } else if page >= plan.max_pages {
                Some(End::MaxPages)
            } else {
                budget
                    .full(step.limits)
                    .or_else(|| (!step.traffic.has_room(step.limits)).then_some(End::RequestLimit))
            };
            if let Some(end) = end {
                return Ok(gathered(records, response, items, page, end));
            }
            match next {
                Next::Param(name, value) => set_param(&mut request.query, name, value),
                Next::Url(url) => self.follow_link(step, &mut request, url),
            }
        }
    }

    /// Points `request` at a next link: its URL replaces the request's URL
    /// and query. The connection's shared query parameters are taken out of
    /// it, since the pipeline appends them again.
    fn follow_link(&self, step: &StepOutbound<'_>, request: &mut Request, mut url: Url) {
        let shared = request
            .connection
            .as_ref()
            .and_then(|name| step.connections.get(name))
            .map(|c| c.shared_query.clone())
            .unwrap_or_default();
        if !shared.is_empty() {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| !shared.iter().any(|(name, _)| name == k))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.set_query(None);
            if !kept.is_empty() {
                url.query_pairs_mut().extend_pairs(kept);
            }
        }
        request.url = url.to_string();
        request.query.clear();
    }
}

/// The next page: a query parameter's new value, or a URL.
enum Next<'a> {
    Param(&'a str, String),
    Url(Url),
}

/// A `Link` target joined to the URL of the page that named it.
fn join_link(page_url: &str, link: &str) -> Result<Url, SendError> {
    Url::parse(page_url)
        .and_then(|base| base.join(link))
        .map_err(|e| SendError::Protocol(format!("invalid `Link` target `{link}`: {e}")))
}

/// The answer to a paged request: the last page's status, headers (the
/// body's own replaced, the paging figures added) and URL, with the items.
/// The last record says why paging ended.
fn gathered(
    records: &mut [RequestRecord],
    last: Response,
    items: Vec<Value>,
    pages: u32,
    end: End,
) -> Response {
    if let Some(record) = records.last_mut() {
        record.pagination = Some(end.as_str().to_owned());
    }
    let own = [
        "content-type",
        "content-length",
        "link",
        PAGES_HEADER,
        END_HEADER,
    ];
    let mut headers: Pairs = last
        .headers
        .into_iter()
        .filter(|(k, _)| !own.iter().any(|o| k.eq_ignore_ascii_case(o)))
        .collect();
    headers.push(("content-type".into(), "application/json".into()));
    headers.push((PAGES_HEADER.into(), pages.to_string()));
    headers.push((END_HEADER.into(), end.as_str().into()));
    Response {
        status: last.status,
        headers,
        body: Value::Array(items).to_string().into_bytes(),
        final_url: last.final_url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> JsonPath {
        JsonPath::parse(text, "f", false).unwrap()
    }

    #[test]
    fn paths_find_keys_indexes_and_the_last_element() {
        let doc = json!({"data": [{"id": "a"}, {"id": "b"}], "meta": {"next": 7}, "0": "key"});
        assert_eq!(path("data.-1.id").find(&doc), Some(&json!("b")));
        assert_eq!(path("data.0.id").find(&doc), Some(&json!("a")));
        assert_eq!(path("meta.next").find(&doc), Some(&json!(7)));
        assert_eq!(path("0").find(&doc), Some(&json!("key")));
        assert_eq!(path("data.2.id").find(&doc), None);
        assert_eq!(path("data.-3").find(&doc), None);
        assert_eq!(path("meta.next.deeper").find(&doc), None);
        assert_eq!(
            JsonPath::parse("", "f", true).unwrap().find(&doc),
            Some(&doc)
        );
    }

    #[test]
    fn what_is_not_a_path_is_refused_naming_the_field() {
        for text in ["", "a..b", ".a", "a.", "a b", "a.\tb"] {
            let err = JsonPath::parse(text, "pagination.cursor.path", false).unwrap_err();
            assert!(
                matches!(&err, SendError::InvalidRequest(m) if m.starts_with("pagination.cursor.path: ")),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn the_next_link_is_found_among_others_as_written() {
        let headers = |values: &[&str]| -> Pairs {
            values
                .iter()
                .map(|v| ("Link".to_owned(), (*v).to_owned()))
                .collect()
        };
        // GitHub's form.
        let github = headers(&[
            r#"<https://api.github.test/repos?page=3>; rel="next", <https://api.github.test/repos?page=9>; rel="last""#,
        ]);
        assert_eq!(
            next_link(&github).as_deref(),
            Some("https://api.github.test/repos?page=3")
        );
        // next after others, unquoted, upper case, a comma inside a quoted title.
        let mixed = headers(&[
            r#"</p?page=1>; rel="prev"; title="a, b""#,
            r#"</p?page=5>; title="x"; REL=NEXT"#,
        ]);
        assert_eq!(next_link(&mixed).as_deref(), Some("/p?page=5"));
        // Several relation types in one rel.
        let several = headers(&[r#"<https://x.test/2>; rel="last next""#]);
        assert_eq!(next_link(&several).as_deref(), Some("https://x.test/2"));
        // No next.
        let none = headers(&[r#"<https://x.test/1>; rel="prev", <https://x.test/1>; rel="first""#]);
        assert_eq!(next_link(&none), None);
        // `rel="nextish"` is not `next`.
        assert_eq!(
            next_link(&headers(&[r#"<https://x.test/1>; rel="nextish""#])),
            None
        );
        assert_eq!(next_link(&vec![]), None);
    }

    #[test]
    fn a_pagination_record_is_checked_field_by_field() {
        let base = Pagination {
            style: PageStyle::Page("page".into()),
            items_path: "data".into(),
            limit_param: None,
            page_size: None,
            max_pages: None,
        };
        let refused = |p: Pagination, field: &str| {
            let err = Plan::new(&p).err().expect("refused");
            assert!(
                matches!(&err, SendError::InvalidRequest(m) if m.starts_with(&format!("{field}: "))),
                "{field}: {err}"
            );
        };
        refused(
            Pagination {
                page_size: Some(0),
                ..base.clone()
            },
            "pagination.page-size",
        );
        refused(
            Pagination {
                limit_param: Some("limit".into()),
                ..base.clone()
            },
            "pagination.page-size",
        );
        refused(
            Pagination {
                max_pages: Some(0),
                ..base.clone()
            },
            "pagination.max-pages",
        );
        refused(
            Pagination {
                items_path: "data..x".into(),
                ..base.clone()
            },
            "pagination.items-path",
        );
        refused(
            Pagination {
                style: PageStyle::Cursor {
                    path: "next cursor".into(),
                    param: "cursor".into(),
                },
                ..base.clone()
            },
            "pagination.cursor.path",
        );
        refused(
            Pagination {
                style: PageStyle::Offset(" ".into()),
                ..base.clone()
            },
            "pagination.offset",
        );
        assert!(Plan::new(&base).is_ok());
    }
}
