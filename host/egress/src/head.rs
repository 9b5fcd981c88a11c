//! The request head a plugin may send, checked before anything leaves the
//! host: the URL (a connection's base URL, joined to it, scheme, user info,
//! allowed hosts, IP literals), query pairs and headers (host-owned names,
//! CR/LF/NUL).

use http::header::{HeaderName, HeaderValue};
use url::Url;

use crate::hosts::{is_dns_name, segment_escapes};
use crate::{AllowedHost, NetworkPolicy};

/// Why a request head is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The policy does not allow it (scheme, host, address).
    #[error("{0}")]
    Denied(String),
    /// The request is malformed or sets what the host owns.
    #[error("{0}")]
    Invalid(String),
}

/// Request headers the host owns: a plugin that sets one is refused.
/// Names starting with `proxy-` are host-owned too.
pub const HOST_OWNED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "authorization",
    "cookie",
    "accept-encoding",
    "idempotency-key",
];

/// Whether the host sets this (lowercase) header name itself.
pub fn is_host_owned(name: &HeaderName) -> bool {
    HOST_OWNED_HEADERS.contains(&name.as_str()) || name.as_str().starts_with("proxy-")
}

/// Refuses CR, LF and NUL anywhere in `s` (a `what`: URL, query, header).
pub fn reject_control_chars(what: &str, s: &str) -> Result<(), Refusal> {
    if s.contains(['\r', '\n', '\0']) {
        return Err(Refusal::Invalid(format!("CR, LF or NUL in a {what}")));
    }
    Ok(())
}

/// A header as typed names and values, without control characters. It does
/// not judge ownership: see [`plugin_header`].
pub fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), Refusal> {
    reject_control_chars("header", name)?;
    reject_control_chars("header", value)?;
    let n = HeaderName::try_from(name)
        .map_err(|_| Refusal::Invalid(format!("invalid header name `{name}`")))?;
    let v = HeaderValue::try_from(value)
        .map_err(|_| Refusal::Invalid(format!("invalid value for header `{name}`")))?;
    Ok((n, v))
}

/// A header a plugin (or a connection's shared headers) asks for: a valid
/// pair whose name the host does not own.
pub fn plugin_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), Refusal> {
    let (name, value) = header_pair(name, value)?;
    if is_host_owned(&name) {
        return Err(Refusal::Invalid(format!(
            "header `{name}` is set by the host"
        )));
    }
    Ok((name, value))
}

/// Parses a connection's base URL (declared by a plugin or set by the
/// operator), the base [`join_url`] joins relative URLs to: absolute http(s)
/// with a host, no user info (which [`check_url`] refuses on every request),
/// no query or fragment (a joined URL carries the request's own).
pub fn parse_base_url(s: &str) -> Result<Url, Refusal> {
    let invalid = |m: String| Refusal::Invalid(m);
    let url = Url::parse(s).map_err(|e| invalid(format!("base URL `{s}`: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(format!(
            "base URL `{s}` must be an http or https URL"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(format!("base URL `{s}` must not carry user info")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(format!(
            "base URL `{s}` must not carry a query or fragment"
        )));
    }
    Ok(url)
}

/// Joins a request URL to a base URL. Absolute URLs pass as they are;
/// relative ones keep the base path and never double a `/`. CR, LF and NUL
/// are refused first.
///
/// The base path is a boundary: a relative URL with a segment that a server
/// could read as a step outside it (`.` or `..` in any `%2e`/`%2E` form,
/// decoded any number of times, also before a `;` parameter as in `..;`, or
/// a segment holding an encoded `/` or `\\` such as `..%2f`, or a raw `\\`)
/// is refused, and the joined path must still start with the base path at a
/// segment boundary.
pub fn join_url(base: Option<&Url>, target: &str) -> Result<Url, Refusal> {
    reject_control_chars("URL", target)?;
    match Url::parse(target) {
        Ok(url) => Ok(url),
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            let base = base.ok_or_else(|| {
                Refusal::Invalid(format!(
                    "relative URL `{target}` needs a connection with a base URL"
                ))
            })?;
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (target, None),
            };
            let escapes = || {
                Refusal::Invalid(format!(
                    "relative URL `{target}` leaves the base path `{}`",
                    base.path()
                ))
            };
            if path.split('/').any(|s| segment_escapes(s).is_some()) {
                return Err(escapes());
            }
            let mut url = base.clone();
            let prefix = base.path().trim_end_matches('/');
            let joined = format!("{prefix}/{}", path.trim_start_matches('/'));
            url.set_path(&joined);
            url.set_query(query);
            if !url
                .path()
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            {
                return Err(escapes());
            }
            Ok(url)
        }
        Err(e) => Err(Refusal::Invalid(format!("invalid URL `{target}`: {e}"))),
    }
}

/// Appends query pairs (percent-encoded by the URL), refusing control
/// characters; an empty query is dropped.
pub fn append_query<'a>(
    url: &mut Url,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), Refusal> {
    let mut pairs = pairs.into_iter().peekable();
    if pairs.peek().is_some() {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            reject_control_chars("query", k)?;
            reject_control_chars("query", v)?;
            query.append_pair(k, v);
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    Ok(())
}

/// The allowed-host lists a URL must match: the plugin's manifest, the
/// operator's, and the tenant's narrowing when it has one.
#[derive(Debug, Clone, Copy)]
pub struct HostLists<'a> {
    /// The plugin manifest's patterns.
    pub plugin: &'a [AllowedHost],
    /// The operator's patterns for this plugin.
    pub operator: &'a [AllowedHost],
    /// The tenant's patterns, if the operator narrowed this tenant.
    pub tenant: Option<&'a [AllowedHost]>,
}

/// Checks a URL before it is sent (first request and every redirect hop):
/// http or https only, no user info, every host list matches, and an IP
/// literal host is not in a refused range. Names are checked by address
/// when they resolve.
pub fn check_url(url: &Url, hosts: HostLists<'_>, network: &NetworkPolicy) -> Result<(), Refusal> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::Denied(format!(
            "scheme `{}` is not allowed",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Invalid("URLs must not carry user info".into()));
    }
    let denied =
        |why: &str| Refusal::Denied(format!("{} {why}", url.origin().ascii_serialization()));
    if !hosts.plugin.iter().any(|h| h.matches(url)) {
        return Err(denied("is not among the plugin's allowed hosts"));
    }
    if !hosts.operator.iter().any(|h| h.matches(url)) {
        return Err(denied("is not allowed by the operator's policy"));
    }
    if hosts
        .tenant
        .is_some_and(|t| !t.iter().any(|h| h.matches(url)))
    {
        return Err(denied("is not allowed by the tenant's policy"));
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.into(),
        Some(url::Host::Ipv6(ip)) => ip.into(),
        Some(url::Host::Domain(name)) => return check_dns_name(name),
        None => return Err(Refusal::Invalid(format!("URL `{url}` has no host"))),
    };
    network
        .check(ip)
        .map_err(|range| Refusal::Denied(format!("address {ip} is in a refused range: {range}")))
}

/// Refuses names no DNS server or HTTP client takes (see [`is_dns_name`]).
fn check_dns_name(name: &str) -> Result<(), Refusal> {
    if !is_dns_name(name) {
        return Err(Refusal::Invalid(format!(
            "host `{name}` is not a valid DNS name"
        )));
    }
    Ok(())
}

/// The URL as the HTTP client's URI type (refused if it cannot carry it).
pub fn request_uri(url: &Url) -> Result<http::Uri, Refusal> {
    url.as_str()
        .parse()
        .map_err(|e| Refusal::Invalid(format!("URL `{url}` cannot be sent: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Vec<AllowedHost> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn base_urls_are_absolute_http_without_user_info_query_or_fragment() {
        for ok in [
            "https://api.test/v1",
            "http://127.0.0.1:8080/",
            "https://api.test",
        ] {
            assert_eq!(
                parse_base_url(ok).unwrap().as_str(),
                Url::parse(ok).unwrap().as_str()
            );
        }
        for (bad, why) in [
            ("/v1", "base URL `/v1`: relative URL without a base"),
            ("ftp://files.test/", "must be an http or https URL"),
            ("https://user:pw@api.test/", "must not carry user info"),
            (
                "https://api.test/v1?key=1",
                "must not carry a query or fragment",
            ),
            (
                "https://api.test/v1#top",
                "must not carry a query or fragment",
            ),
        ] {
            let err = parse_base_url(bad).unwrap_err();
            assert!(
                matches!(&err, Refusal::Invalid(m) if m.contains(why)),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn relative_urls_join_the_base_path() {
        for base in ["https://api.test/v1/", "https://api.test/v1"] {
            let base = Url::parse(base).unwrap();
            for (rel, want) in [
                ("customers", "https://api.test/v1/customers"),
                ("/customers", "https://api.test/v1/customers"),
                (
                    "customers/42?expand=a",
                    "https://api.test/v1/customers/42?expand=a",
                ),
            ] {
                assert_eq!(join_url(Some(&base), rel).unwrap().as_str(), want);
            }
        }
        let base = Url::parse("https://api.example.com/v1/").unwrap();
        assert_eq!(
            join_url(Some(&base), "/charges?limit=2").unwrap().as_str(),
            "https://api.example.com/v1/charges?limit=2"
        );
        assert_eq!(
            join_url(Some(&base), "https://other.example/x")
                .unwrap()
                .as_str(),
            "https://other.example/x"
        );
        assert!(
            matches!(join_url(None, "charges"), Err(Refusal::Invalid(m)) if m.contains("needs a connection"))
        );
        assert!(
            matches!(join_url(Some(&base), "a\r\nb"), Err(Refusal::Invalid(m)) if m.contains("CR, LF or NUL"))
        );
    }

    #[test]
    fn relative_urls_never_leave_the_base_path() {
        let base = Url::parse("https://api.example.com/accounts/acme/").unwrap();
        for rel in [
            "../globex/orders",
            "%2e%2e/globex/orders",
            "%2E%2E/globex/orders",
            ".%2e/globex",
            "orders/../../globex",
            "./../globex",
            "..%2fglobex/orders",
            "..%2Fglobex",
            "..%5cglobex",
            "..\\globex\\orders",
            "orders\\..\\..\\globex",
            "..",
            "%2e",
            "orders/%2e%2e",
            "a%2fb",
            "..;/globex",
            "%2e%2e;x/globex",
            "%252e%252e/globex",
            "..%252fglobex",
        ] {
            assert!(
                matches!(join_url(Some(&base), rel), Err(Refusal::Invalid(ref m)) if m.contains("leaves the base path")),
                "{rel} -> {:?}",
                join_url(Some(&base), rel)
            );
        }
        for (rel, want) in [
            ("orders", "https://api.example.com/accounts/acme/orders"),
            (
                "orders..json",
                "https://api.example.com/accounts/acme/orders..json",
            ),
            ("...", "https://api.example.com/accounts/acme/..."),
            (
                "a%20b/.well",
                "https://api.example.com/accounts/acme/a%20b/.well",
            ),
            ("", "https://api.example.com/accounts/acme/"),
        ] {
            assert_eq!(join_url(Some(&base), rel).unwrap().as_str(), want, "{rel}");
        }
    }

    #[test]
    fn host_owned_and_malformed_headers_are_refused() {
        for name in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "Proxy-Authorization",
            "Cookie",
            "TE",
        ] {
            assert!(
                matches!(plugin_header(name, "x"), Err(Refusal::Invalid(m)) if m.contains("set by the host")),
                "{name}"
            );
        }
        assert!(
            matches!(plugin_header("x-a", "1\r\nx-b: 2"), Err(Refusal::Invalid(m)) if m.contains("CR, LF or NUL"))
        );
        assert!(
            matches!(plugin_header("bad name", "1"), Err(Refusal::Invalid(m)) if m.contains("invalid header name"))
        );
        assert_eq!(
            plugin_header("X-Trace", "abc").unwrap().0.as_str(),
            "x-trace"
        );
    }

    #[test]
    fn urls_must_match_every_list() {
        let plugin = patterns(&["https://*.example.com", "http://8.8.8.8"]);
        let operator = patterns(&["https://*"]);
        let tenant = patterns(&["https://a.example.com"]);
        let lists = HostLists {
            plugin: &plugin,
            operator: &operator,
            tenant: Some(&tenant),
        };
        let net = NetworkPolicy::default();
        let check = |u: &str| check_url(&Url::parse(u).unwrap(), lists, &net);
        assert!(check("https://a.example.com/x").is_ok());
        assert!(
            matches!(check("https://b.example.com/"), Err(Refusal::Denied(m)) if m.contains("tenant"))
        );
        assert!(
            matches!(check("http://8.8.8.8/"), Err(Refusal::Denied(m)) if m.contains("operator"))
        );
        assert!(
            matches!(check("https://evil.test/"), Err(Refusal::Denied(m)) if m.contains("plugin"))
        );
        assert!(
            matches!(check("https://u:p@a.example.com/"), Err(Refusal::Invalid(m)) if m.contains("user info"))
        );
        assert!(
            matches!(check("ftp://a.example.com/"), Err(Refusal::Denied(m)) if m.contains("scheme"))
        );
        let any = patterns(&["https://*"]);
        let open = HostLists {
            plugin: &any,
            operator: &any,
            tenant: None,
        };
        for bad in [
            "https://`tps/",
            "https://x;y.example/",
            "https://a{b}.example/",
        ] {
            let r = check_url(
                &Url::parse(bad).unwrap_or_else(|e| panic!("{bad}: {e}")),
                open,
                &net,
            );
            assert!(
                matches!(&r, Err(Refusal::Invalid(m)) if m.contains("not a valid DNS name")),
                "{bad}: {r:?}"
            );
        }
        assert!(
            check_url(
                &Url::parse("https://Under_score.example./").unwrap(),
                open,
                &net
            )
            .is_ok()
        );

        let any = patterns(&["http://*:*"]);
        let open = HostLists {
            plugin: &any,
            operator: &any,
            tenant: None,
        };
        let refused = check_url(&Url::parse("http://0x7f.1:8080/").unwrap(), open, &net);
        assert!(
            matches!(refused, Err(Refusal::Denied(m)) if m.contains("127.0.0.1") && m.contains("loopback"))
        );
    }

    #[test]
    fn empty_queries_are_dropped_and_pairs_encoded() {
        let mut url = Url::parse("https://a.example/p").unwrap();
        append_query(&mut url, []).unwrap();
        assert_eq!(url.as_str(), "https://a.example/p");
        append_query(&mut url, [("q", "a b&c")]).unwrap();
        assert_eq!(url.query(), Some("q=a+b%26c"));
        assert!(append_query(&mut url, [("k", "\n")]).is_err());
    }
}
