//! Typed allowed-host patterns: `scheme://host[:port][/path[/*]]`, deny by
//! default.
//!
//! A host is a literal name or IP address, `*.domain` (strict subdomains) or
//! `*`; operators may also name a network in CIDR form (`10.0.0.0/8`,
//! `[fd00::/8]`), which matches URLs whose host is an IP literal in it.
//! Hosts are normalized like URLs (lowercase, IDNA, canonical IP literals,
//! no trailing dot) so patterns and URLs compare equal.
//!
//! A pattern may be scoped by path: `https://api.example.com/v1/orders`
//! matches that path only, `https://api.example.com/v1/*` matches `/v1` and
//! every path under it at a segment boundary (`/v1/x`, not `/v10` or
//! `/v1x`). No path, `/` or `/*` means every path. See [`AllowedHost`] for
//! how paths are normalized and compared.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnet::IpNet;
use url::Url;

/// A pattern could not be parsed; the message shows the accepted format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid allowed host `{pattern}`: {reason} (expected `http[s]://HOST[:PORT][/PATH[/*]]` where HOST is `api.example.com`, `*.example.com`, `*` or, in an operator's policy, a CIDR such as `10.0.0.0/8` or `[fd00::/8]` (without a path), PORT a number or `*`, and PATH a path such as `/v1/orders` (that path only) or `/v1/*` (`/v1` and every path under it))"
)]
pub struct PatternError {
    pattern: String,
    reason: &'static str,
}

/// Which hosts a pattern matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    /// Every host (`*`).
    Any,
    /// The domain's strict subdomains (`*.example.com` matches `a.example.com`
    /// and `a.b.example.com`, not `example.com`).
    Subdomain(String),
    /// Exactly this normalized host name or IP literal.
    Literal(String),
    /// IP literals in this network (operators only).
    Network(IpNet),
}

/// Which ports a pattern matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortMatch {
    /// The scheme's default port (no port in the pattern).
    Default,
    /// Any port (`:*`).
    Any,
    /// Exactly this port.
    Exact(u16),
}

/// Which paths a pattern matches. Paths are kept normalized (see
/// `normalize_escapes`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathMatch {
    /// Every path (no path in the pattern, `/` or `/*`).
    Any,
    /// Exactly this path (`/v1/orders`).
    Exact(String),
    /// This path and every path under it at a segment boundary: `/v1/*` is
    /// kept as `/v1` and matches `/v1`, `/v1/` and `/v1/x`, not `/v10`.
    Under(String),
}

/// One typed allowed-host pattern: `scheme://host[:port][/path[/*]]`.
///
/// # Paths
///
/// Without a path (or with `/` or `/*`) a pattern matches every path, as
/// patterns always did. `/v1/orders` matches that exact path only (not
/// `/v1/orders/` nor `/v1/orders/1`); `/v1/*` matches `/v1` and every path
/// that continues it with a `/`. `*` may appear nowhere else in a path.
///
/// A pattern's path must start with `/` and may not hold a query or
/// fragment, a backslash, a space or control character (percent-encode
/// them), an empty segment (`//`; an exact path may end in `/`), malformed
/// percent-encoding, or a segment that could take a server outside it: one
/// that, percent-decoded any number of times, is `.` or `..` (also before a
/// `;` parameter, as in `..;`) or holds a `/` or `\` (`%2f`, `%5C`, …). It is
/// then put in the form the URL parser gives a request's path (`é` as
/// `%C3%A9`), with percent-encoding normalized: escapes of unreserved
/// characters (letters, digits, `-`, `.`, `_`, `~`) decoded, other escapes
/// in uppercase hex. That is the form [`Display`](fmt::Display) shows.
///
/// A URL is matched on its parsed path: the URL parser has already resolved
/// `.` and `..` segments (also `%2e` forms) and turned `\` into `/`. A
/// path-scoped pattern never matches a URL whose path still holds a segment
/// a server could decode into a step outside the scope (by the same rule as
/// for patterns: `%2f` or `%5c` anywhere, `%252e%252e`, `..;`). The path is
/// then normalized like the pattern's and compared case-sensitively, byte
/// for byte: `/Accounts` is not `/accounts`, `/%7Euser` is `/~user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Scheme,
    host: HostMatch,
    port: PortMatch,
    path: PathMatch,
}

/// The two schemes a request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "http" => Some(Self::Http),
            "https" => Some(Self::Https),
            _ => None,
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

impl FromStr for AllowedHost {
    type Err = PatternError;

    fn from_str(pattern: &str) -> Result<Self, Self::Err> {
        let fail = |reason| PatternError {
            pattern: pattern.to_owned(),
            reason,
        };
        let (scheme, rest) = pattern
            .split_once("://")
            .ok_or_else(|| fail("missing scheme"))?;
        let scheme = Scheme::parse(&scheme.to_ascii_lowercase())
            .ok_or_else(|| fail("only http and https are allowed"))?;
        if rest.contains('\\') {
            return Err(fail(
                "a backslash is neither part of a host nor a path separator",
            ));
        }
        let (authority, path) = split_authority(rest);
        if authority.contains(['?', '#', '@']) || path.contains(['?', '#']) {
            return Err(fail("a pattern names no query, fragment or user"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| fail("malformed port"))?;
        let port = match port {
            None => PortMatch::Default,
            Some("*") => PortMatch::Any,
            Some(p) => PortMatch::Exact(p.parse().map_err(|_| fail("malformed port"))?),
        };
        let host = if host == "*" {
            HostMatch::Any
        } else if host.contains('/') {
            HostMatch::Network(parse_network(host).ok_or_else(|| fail("invalid CIDR network"))?)
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.contains('*') {
                return Err(fail("`*` may only stand alone or as the first label"));
            }
            let domain = normalize_pattern_host(domain).ok_or_else(|| fail("invalid host"))?;
            if domain.parse::<IpAddr>().is_ok() || domain.starts_with('[') {
                return Err(fail("`*.` needs a domain name, not an IP address"));
            }
            HostMatch::Subdomain(domain)
        } else {
            if host.contains('*') {
                return Err(fail("`*` may only stand alone or as the first label"));
            }
            HostMatch::Literal(normalize_pattern_host(host).ok_or_else(|| fail("invalid host"))?)
        };
        let path = parse_path(path).map_err(fail)?;
        if let PathMatch::Exact(p) | PathMatch::Under(p) = &path {
            if matches!(host, HostMatch::Network(_)) {
                return Err(fail("a CIDR network cannot be scoped by a path"));
            }
            // Shown as `http://10.0.0.1/8…`, such a pattern would read back as
            // a network: the port must be written out.
            let ipv4 = matches!(&host, HostMatch::Literal(h) if h.parse::<Ipv4Addr>().is_ok());
            if ipv4
                && port == PortMatch::Default
                && p[1..].starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(fail(
                    "after an IPv4 address, `/` and a digit start a CIDR prefix length: write the port before such a path (`http://10.0.0.1:80/2024/*`)",
                ));
            }
        }
        Ok(Self {
            scheme,
            host,
            port,
            path,
        })
    }
}

/// Splits `authority[/path]` at the `/` that starts the path. A bracketed
/// IPv6 host or network ends at `]`; after an IPv4 address, `/` and a digit
/// start a CIDR prefix length (`10.0.0.0/8:443`), so the path starts at the
/// next `/`.
fn split_authority(rest: &str) -> (&str, &str) {
    let slash = match rest.find(']') {
        Some(close) if rest.starts_with('[') => rest[close..].find('/').map(|i| close + i),
        _ => match rest.find('/') {
            Some(i)
                if rest[..i].parse::<Ipv4Addr>().is_ok()
                    && rest[i + 1..].starts_with(|c: char| c.is_ascii_digit()) =>
            {
                rest[i + 1..].find('/').map(|j| i + 1 + j)
            }
            other => other,
        },
    };
    match slash {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    }
}

/// Parses a pattern's path (empty or starting with `/`) into its normalized
/// form; the rules are on [`AllowedHost`].
fn parse_path(raw: &str) -> Result<PathMatch, &'static str> {
    if raw.is_empty() || raw == "/" || raw == "/*" {
        return Ok(PathMatch::Any);
    }
    let (path, under) = match raw.strip_suffix("/*") {
        Some(prefix) => (prefix, true),
        None => (raw, false),
    };
    if path.contains('*') {
        return Err("`*` may only end a path, as `/*`");
    }
    if path.contains(|c: char| c == ' ' || c.is_ascii_control()) {
        // The URL parser trims or drops some of them (a trailing space, tabs).
        return Err("spaces and control characters must be percent-encoded (`%20`) in a path");
    }
    if !escapes_are_well_formed(path) {
        return Err("malformed percent-encoding in the path");
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() && (under || i + 1 < segments.len()) {
            return Err("empty path segment (`//`)");
        }
        if let Some(why) = segment_escapes(segment) {
            return Err(why);
        }
    }
    // The path the URL parser gives a request naming this one: characters
    // URLs percent-encode are encoded (a space as `%20`, `é` as `%C3%A9`).
    let url = Url::parse(&format!("http://pattern.invalid{path}")).map_err(|_| "invalid path")?;
    let path = normalize_escapes(url.path());
    Ok(if under {
        PathMatch::Under(path)
    } else {
        PathMatch::Exact(path)
    })
}

/// Whether every `%` starts a `%XX` escape.
fn escapes_are_well_formed(path: &str) -> bool {
    let b = path.as_bytes();
    (0..b.len()).all(|i| b[i] != b'%' || escaped_byte(b, i).is_some())
}

/// The byte a `%XX` escape at `b[i]` stands for.
fn escaped_byte(b: &[u8], i: usize) -> Option<u8> {
    let hex = |c: u8| char::from(c).to_digit(16);
    match b.get(i..i + 3)? {
        [b'%', hi, lo] => Some((hex(*hi)? * 16 + hex(*lo)?) as u8),
        _ => None,
    }
}

/// Why a path segment could take a server outside the path it seems to be
/// under, if it could: decoded any number of times (as a chain of servers
/// may decode it), it holds `/` or `\`, or is `.` or `..`, also before a
/// `;` parameter (`..;`, which some servers read as `..`).
pub(crate) fn segment_escapes(segment: &str) -> Option<&'static str> {
    let mut bytes = segment.as_bytes().to_vec();
    loop {
        if bytes.iter().any(|b| matches!(b, b'/' | b'\\')) {
            return Some("an encoded `/` or `\\` (`%2f`, `%5c`) may not appear in a path");
        }
        let name = bytes.split(|&b| b == b';').next().unwrap_or_default();
        if name == b"." || name == b".." {
            return Some("`.` and `..` segments (in any `%2e` form) may not appear in a path");
        }
        let decoded: Vec<u8> = percent_encoding::percent_decode(&bytes).collect();
        if decoded == bytes {
            return None;
        }
        bytes = decoded;
    }
}

/// Normalizes percent-encoding in a parsed (ASCII) path so that equivalent
/// spellings compare equal: escapes of unreserved characters (letters,
/// digits, `-`, `.`, `_`, `~`) are decoded (`%7E` is `~`, `%41` is `A`) and
/// other escapes written in uppercase hex (`%c3%a9` is `%C3%A9`). Nothing
/// else changes, so case still matters everywhere else.
fn normalize_escapes(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        let escape = escaped_byte(b, i);
        match escape {
            Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') => {
                out.push(char::from(c));
                i += 3;
            }
            Some(c) => {
                out.push_str(&format!("%{c:02X}"));
                i += 3;
            }
            None => {
                out.push(char::from(b[i]));
                i += 1;
            }
        }
    }
    out
}

/// Splits `host[:port]`, keeping bracketed IPv6 literals whole.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        return match after {
            "" => Some((&s[..v6.len() + 2], None)),
            _ => Some((&s[..v6.len() + 2], Some(after.strip_prefix(':')?))),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => Some((h, Some(p))),
        Some(_) => None,
        None if s.is_empty() => None,
        None => Some((s, None)),
    }
}

/// Whether a name is one the resolver can be asked: labels of 1 to 63
/// letters, digits, `-` or `_`, 253 characters in all (a trailing dot
/// allowed). URLs accept more (`` ` ``, `|`, `}`, `*` …), which no DNS name
/// and no HTTP client takes.
pub(crate) fn is_dns_name(name: &str) -> bool {
    let labels = without_root_dot(name);
    labels.len() <= 253
        && labels.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A name without its one trailing (root) dot: `example.com.` is `example.com`.
fn without_root_dot(host: &str) -> &str {
    host.strip_suffix('.').unwrap_or(host)
}

/// A CIDR host: `a.b.c.d/n`, or `[v6/n]` in brackets like any IPv6 host.
/// The address is truncated to its network.
fn parse_network(host: &str) -> Option<IpNet> {
    let net: IpNet = match host.strip_prefix('[') {
        Some(v6) => IpNet::V6(v6.strip_suffix(']')?.parse().ok()?),
        None => IpNet::V4(host.parse().ok()?),
    };
    Some(net.trunc())
}

/// Normalizes a host the way URLs are normalized (lowercase, IDNA, IP literals
/// canonical), so patterns and URLs compare equal.
fn normalize_pattern_host(host: &str) -> Option<String> {
    let url = Url::parse(&format!("http://{host}/")).ok()?;
    let host = without_root_dot(url.host_str()?);
    let valid = match url.host()? {
        url::Host::Domain(domain) => is_dns_name(domain),
        url::Host::Ipv4(_) | url::Host::Ipv6(_) => true,
    };
    valid.then(|| host.to_owned())
}

impl AllowedHost {
    /// The pattern that allows exactly `url`'s origin (scheme, host and
    /// port; every path): how a connection's base URL allows its own host.
    /// `None` for a URL that is not `http(s)` with a host.
    pub fn origin_of(url: &Url) -> Option<Self> {
        match url.origin() {
            origin @ url::Origin::Tuple(..) => origin.ascii_serialization().parse().ok(),
            url::Origin::Opaque(_) => None,
        }
    }

    /// Whether the URL's scheme, host, port and path match this pattern. The
    /// URL must already be parsed (its host normalized and its dot segments
    /// resolved by the URL parser); how paths compare is described on
    /// [`AllowedHost`].
    pub fn matches(&self, url: &Url) -> bool {
        let Some(scheme) = Scheme::parse(url.scheme()) else {
            return false;
        };
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = without_root_dot(host);
        let port = url.port_or_known_default().unwrap_or(0);
        scheme == self.scheme
            && match self.port {
                PortMatch::Default => port == scheme.default_port(),
                PortMatch::Any => true,
                PortMatch::Exact(p) => port == p,
            }
            && match &self.host {
                HostMatch::Any => true,
                HostMatch::Literal(h) => host == h,
                HostMatch::Subdomain(d) => {
                    host.len() > d.len() + 1
                        && host.ends_with(d.as_str())
                        && host[..host.len() - d.len()].ends_with('.')
                }
                HostMatch::Network(net) => match url.host() {
                    Some(url::Host::Ipv4(ip)) => net.contains(&IpAddr::V4(ip)),
                    Some(url::Host::Ipv6(ip)) => net.contains(&ip.to_canonical()),
                    _ => false,
                },
            }
            && self.path_matches(url.path())
    }

    /// Whether a parsed URL path is in this pattern's path scope: no segment
    /// a server could decode into a step outside it, then the normalized path
    /// compared byte for byte (at a segment boundary for `/*`).
    fn path_matches(&self, path: &str) -> bool {
        let (scope, under) = match &self.path {
            PathMatch::Any => return true,
            PathMatch::Exact(p) => (p, false),
            PathMatch::Under(p) => (p, true),
        };
        if path.split('/').any(|s| segment_escapes(s).is_some()) {
            return false;
        }
        match normalize_escapes(path).strip_prefix(scope.as_str()) {
            Some("") => true,
            Some(rest) => under && rest.starts_with('/'),
            None => false,
        }
    }

    /// The network of a CIDR pattern, which the operator thereby allows to
    /// be reached even where it is a special-purpose range.
    pub fn network(&self) -> Option<IpNet> {
        match self.host {
            HostMatch::Network(net) => Some(net),
            _ => None,
        }
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://")?;
        match &self.host {
            HostMatch::Any => write!(f, "*")?,
            HostMatch::Subdomain(d) => write!(f, "*.{d}")?,
            HostMatch::Literal(h) => write!(f, "{h}")?,
            HostMatch::Network(IpNet::V4(net)) => write!(f, "{net}")?,
            HostMatch::Network(IpNet::V6(net)) => write!(f, "[{net}]")?,
        }
        match self.port {
            PortMatch::Default => {}
            PortMatch::Any => write!(f, ":*")?,
            PortMatch::Exact(p) => write!(f, ":{p}")?,
        }
        match &self.path {
            PathMatch::Any => Ok(()),
            PathMatch::Exact(p) => write!(f, "{p}"),
            PathMatch::Under(p) => write!(f, "{p}/*"),
        }
    }
}

/// Parses a plugin manifest's patterns, failing on the first invalid one.
/// CIDR hosts are the operator's to grant, not a plugin's.
pub fn parse_plugin_hosts<S: AsRef<str>>(patterns: &[S]) -> Result<Vec<AllowedHost>, PatternError> {
    patterns
        .iter()
        .map(|p| {
            let pattern: AllowedHost = p.as_ref().parse()?;
            match pattern.host {
                HostMatch::Network(_) => Err(PatternError {
                    pattern: p.as_ref().to_owned(),
                    reason: "a CIDR range may only be allowed by the operator",
                }),
                _ => Ok(pattern),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn a_base_url_allows_its_origin_only() {
        let origin = |s: &str| AllowedHost::origin_of(&url(s)).unwrap();
        let stripe = origin("https://api.stripe.com/v1/");
        assert_eq!(stripe, "https://api.stripe.com".parse().unwrap());
        assert!(stripe.matches(&url("https://api.stripe.com/v2/x")));
        assert!(!stripe.matches(&url("https://api.stripe.com:8443/")));
        assert!(!stripe.matches(&url("http://api.stripe.com/")));
        assert!(!stripe.matches(&url("https://files.stripe.com/")));
        let local = origin("http://127.0.0.1:8080/base");
        assert!(local.matches(&url("http://127.0.0.1:8080/x")));
        assert!(!local.matches(&url("http://127.0.0.1:8081/x")));
        let v6 = origin("http://[::1]:9/");
        assert!(v6.matches(&url("http://[::1]:9/a")));
        assert!(!v6.matches(&url("http://[::2]:9/a")));
        assert!(AllowedHost::origin_of(&url("data:text/plain,x")).is_none());
    }

    #[test]
    fn patterns_match_scheme_host_and_port() {
        let p: AllowedHost = "https://api.example.com".parse().unwrap();
        assert!(p.matches(&url("https://api.example.com/v1")));
        assert!(p.matches(&url("https://API.Example.com./v1")));
        assert!(!p.matches(&url("http://api.example.com/")));
        assert!(!p.matches(&url("https://api.example.com:8443/")));
        assert!(!p.matches(&url("https://api.example.com.evil.net/")));

        let sub: AllowedHost = "https://*.example.com:*".parse().unwrap();
        assert!(sub.matches(&url("https://a.b.example.com:9000/")));
        assert!(!sub.matches(&url("https://example.com/")));
        assert!(!sub.matches(&url("https://badexample.com/")));

        let any: AllowedHost = "http://*:8080".parse().unwrap();
        assert!(any.matches(&url("http://anything.test:8080/")));
        assert!(!any.matches(&url("http://anything.test/")));
    }

    #[test]
    fn bad_patterns_are_rejected_with_the_format() {
        for bad in [
            "*",
            "api.example.com",
            "ftp://x.com",
            "https://*stripe.com",
            "https://api.*.com",
            "https://x.com?q=1",
            "https://x.com/path#frag",
            "https://.",
            "https://*..",
            "https://10.0..",
            "http://*.28:80",
            "http://%2A",
            "https://a%7Cb.example",
            "https://*.[::1]",
            "https://x.com:80/v1/*/x",
            "https://x.com\\evil.com",
            "https://10.0.0.0/33",
            "https://[fd00::/8",
            "https://u@x.com",
            "https://x.com:port",
        ] {
            let err = bad.parse::<AllowedHost>().unwrap_err().to_string();
            assert!(
                err.contains("expected `http[s]://HOST[:PORT][/PATH[/*]]`"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn hosts_are_normalized_before_matching() {
        let p: AllowedHost = "https://Bücher.Example".parse().unwrap();
        assert_eq!(p.to_string(), "https://xn--bcher-kva.example");
        for same in [
            "https://xn--bcher-kva.example/",
            "https://BÜCHER.example./",
            "https://bücher.EXAMPLE:443/",
        ] {
            assert!(p.matches(&url(same)), "{same}");
        }
        assert!(!p.matches(&url("https://bucher.example/")));
    }

    #[test]
    fn operators_may_name_networks() {
        let v4: AllowedHost = "https://10.1.2.3/8:*".parse().unwrap();
        assert_eq!(v4.to_string(), "https://10.0.0.0/8:*");
        assert_eq!(v4.network(), Some("10.0.0.0/8".parse().unwrap()));
        assert!(v4.matches(&url("https://10.200.0.1:9443/")));
        assert!(v4.matches(&url("https://[::ffff:10.0.0.7]/")));
        assert!(
            v4.matches(&url("https://012.1/")),
            "octal short form of 10.0.0.1"
        );
        assert!(!v4.matches(&url("https://11.0.0.1/")));
        assert!(
            !v4.matches(&url("https://ten.example/")),
            "names never match a network"
        );

        let v6: AllowedHost = "http://[FD00::1/8]".parse().unwrap();
        assert_eq!(v6.to_string(), "http://[fd00::/8]");
        assert!(v6.matches(&url("http://[fd12::3]/")));
        assert!(!v6.matches(&url("http://[fe80::1]/")));
        assert_eq!(v6.to_string().parse::<AllowedHost>().unwrap(), v6);

        let err = parse_plugin_hosts(&["https://10.0.0.0/8"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("only be allowed by the operator"), "{err}");
        assert!(parse_plugin_hosts(&["https://api.example.com"]).is_ok());
    }

    /// The pattern of the path tests: one account's subtree.
    fn acme() -> AllowedHost {
        "https://api.example.com/accounts/acme/*".parse().unwrap()
    }

    #[test]
    fn a_path_scope_matches_its_subtree_at_a_segment_boundary() {
        let p = acme();
        assert_eq!(p.to_string(), "https://api.example.com/accounts/acme/*");
        for ok in [
            "https://api.example.com/accounts/acme/orders",
            "https://api.example.com/accounts/acme",
            "https://api.example.com/accounts/acme/",
            "https://api.example.com/accounts/acme/orders/42?expand=items#top",
            "https://API.example.com:443/accounts/acme/orders",
            // Dot segments the URL parser resolves inside the scope.
            "https://api.example.com/accounts/acme/x/../orders",
            "https://api.example.com/accounts/globex/../acme/orders",
            // Escapes of unreserved characters are those characters.
            "https://api.example.com/accounts/%61cme/orders",
            "https://api.example.com/accounts/acme/%7euser",
        ] {
            assert!(p.matches(&url(ok)), "{ok} should match");
        }
        for denied in [
            "https://api.example.com/accounts/acmecorp/x",
            "https://api.example.com/accounts/acme-evil",
            "https://api.example.com/accounts",
            "https://api.example.com/",
            "https://api.example.com/accounts/globex/orders",
            // Another host, port or scheme, with the same path.
            "https://other.example.com/accounts/acme/orders",
            "https://api.example.com:8443/accounts/acme/orders",
            "http://api.example.com/accounts/acme/orders",
        ] {
            assert!(!p.matches(&url(denied)), "{denied} should be denied");
        }
    }

    #[test]
    fn path_tricks_never_leave_the_scope() {
        let p = acme();
        // Each trick next to the same URL without it, which matches: a denial
        // is the trick's doing, not a typo.
        for (trick, neighbour) in [
            // Resolved by the URL parser to /accounts/globex/orders.
            (
                "/accounts/acme/../globex/orders",
                "/accounts/acme/./globex/orders",
            ),
            ("/accounts/acme/%2e%2e/globex", "/accounts/acme/%2e/globex"),
            (
                "/accounts/acme/%2E%2E/globex",
                "/accounts/acme/%2E%2Eb/globex",
            ),
            ("/accounts/acme/.%2E/globex", "/accounts/acme/.%2Eb/globex"),
            // Encoded separators a server may decode.
            ("/accounts/acme/..%2fglobex", "/accounts/acme/..globex"),
            ("/accounts/acme/..%2Fglobex", "/accounts/acme/..-globex"),
            ("/accounts/acme/%2fglobex", "/accounts/acme/%2dglobex"),
            ("/accounts/acme/x%5c..%5cglobex", "/accounts/acme/x..globex"),
            ("/accounts/acme/x%5C..%5C..", "/accounts/acme/x..x.."),
            // Doubly encoded, for servers that decode twice.
            (
                "/accounts/acme/%252e%252e/globex",
                "/accounts/acme/%2525/globex",
            ),
            (
                "/accounts/acme/x%252f..%252f..",
                "/accounts/acme/x%2525..%2525..",
            ),
            // A `..` with a path parameter, read as `..` by some servers.
            ("/accounts/acme/..;/globex", "/accounts/acme/..a;/globex"),
            (
                "/accounts/acme/%2e%2e;x/globex",
                "/accounts/acme/%2e%2ex;/globex",
            ),
            // Backslashes, turned into `/` by the URL parser and then resolved.
            ("/accounts/acme\\..\\globex", "/accounts/acme\\.\\globex"),
            (
                "/accounts/acme\\..\\..\\acme",
                "/accounts/acme\\.\\..\\acme",
            ),
            // Paths are case-sensitive.
            ("/Accounts/acme/x", "/accounts/acme/x"),
            ("/accounts/ACME/x", "/accounts/acme/x"),
        ] {
            let trick = format!("https://api.example.com{trick}");
            let neighbour = format!("https://api.example.com{neighbour}");
            assert!(
                !p.matches(&url(&trick)),
                "{trick} ({}) should be denied",
                url(&trick)
            );
            assert!(p.matches(&url(&neighbour)), "{neighbour} should match");
        }
    }

    #[test]
    fn a_path_without_star_matches_that_path_only() {
        let p: AllowedHost = "https://api.example.com/v1/orders".parse().unwrap();
        assert_eq!(p.to_string(), "https://api.example.com/v1/orders");
        assert!(p.matches(&url("https://api.example.com/v1/orders")));
        assert!(p.matches(&url("https://api.example.com/v1/orders?page=2")));
        assert!(p.matches(&url("https://api.example.com/v1/x/../orders")));
        assert!(p.matches(&url("https://api.example.com/v1/%6Frders")));
        for denied in [
            "https://api.example.com/v1/orders/",
            "https://api.example.com/v1/orders/42",
            "https://api.example.com/v1/orders2",
            "https://api.example.com/v1",
            "https://api.example.com/v1/Orders",
        ] {
            assert!(!p.matches(&url(denied)), "{denied}");
        }

        let slash: AllowedHost = "https://api.example.com/v1/".parse().unwrap();
        assert!(slash.matches(&url("https://api.example.com/v1/")));
        assert!(!slash.matches(&url("https://api.example.com/v1")));
        assert!(!slash.matches(&url("https://api.example.com/v1/x")));

        let under: AllowedHost = "https://api.example.com/v1/*".parse().unwrap();
        assert!(under.matches(&url("https://api.example.com/v1")));
        assert!(under.matches(&url("https://api.example.com/v1/x/y")));
        assert!(!under.matches(&url("https://api.example.com/v10/x")));
        assert!(!under.matches(&url("https://api.example.com/v1x")));
    }

    #[test]
    fn no_path_slash_and_star_mean_every_path() {
        let bare: AllowedHost = "https://api.example.com".parse().unwrap();
        for same in [
            "https://api.example.com/",
            "https://api.example.com/*",
            "HTTPS://api.example.com",
        ] {
            let p: AllowedHost = same.parse().unwrap();
            assert_eq!(p, bare, "{same}");
            assert_eq!(p.to_string(), "https://api.example.com", "{same}");
        }
        // Unscoped patterns judge no path, encoded slashes included.
        assert!(bare.matches(&url("https://api.example.com/a%2fb/%2e%2e;x")));
    }

    #[test]
    fn pattern_paths_are_normalized_like_url_paths() {
        for (pattern, shown) in [
            (
                "https://h.example/caf\u{e9}/*",
                "https://h.example/caf%C3%A9/*",
            ),
            (
                "https://h.example/caf%c3%a9/*",
                "https://h.example/caf%C3%A9/*",
            ),
            (
                "https://h.example/%7Euser/a%20b",
                "https://h.example/~user/a%20b",
            ),
            ("https://h.example/a%20b/%41", "https://h.example/a%20b/A"),
            ("https://h.example/x/@me", "https://h.example/x/@me"),
            ("https://h.example/a:b;c=d", "https://h.example/a:b;c=d"),
            ("http://[::1]:8080/2024/*", "http://[::1]:8080/2024/*"),
            ("http://10.0.0.1:80/2024/*", "http://10.0.0.1:80/2024/*"),
            ("http://10.0.0.1/v1/*", "http://10.0.0.1/v1/*"),
            ("http://*:*/v1/*", "http://*:*/v1/*"),
            ("https://*.example.com/v1", "https://*.example.com/v1"),
        ] {
            let p: AllowedHost = pattern.parse().unwrap_or_else(|e| panic!("{pattern}: {e}"));
            assert_eq!(p.to_string(), shown, "{pattern}");
            assert_eq!(shown.parse::<AllowedHost>().unwrap(), p, "{shown}");
        }
        let p: AllowedHost = "https://h.example/caf\u{e9}/*".parse().unwrap();
        assert!(p.matches(&url("https://h.example/caf\u{e9}/x")));
        assert!(p.matches(&url("https://h.example/caf%c3%a9/x")));
        assert!(!p.matches(&url("https://h.example/cafe/x")));
        let p: AllowedHost = "https://h.example/a%20b".parse().unwrap();
        assert!(p.matches(&url("https://h.example/a%20b")));
        assert!(!p.matches(&url("https://h.example/a+b")));
    }

    #[test]
    fn bad_pattern_paths_say_why() {
        for (bad, why) in [
            ("https://api.example.com/v1/*/x", "`*` may only end a path"),
            ("https://api.example.com/v1*", "`*` may only end a path"),
            ("https://api.example.com/v1/x*", "`*` may only end a path"),
            ("https://api.example.com/*/v1", "`*` may only end a path"),
            ("https://api.example.com/v1/../x", "`.` and `..` segments"),
            ("https://api.example.com/v1/./x", "`.` and `..` segments"),
            (
                "https://api.example.com/v1/%2e%2e/x",
                "`.` and `..` segments",
            ),
            ("https://api.example.com/v1/%2E./*", "`.` and `..` segments"),
            ("https://api.example.com/v1/..;/x", "`.` and `..` segments"),
            (
                "https://api.example.com/v1/%252e%252e",
                "`.` and `..` segments",
            ),
            ("https://api.example.com/v1?x", "no query, fragment or user"),
            (
                "https://api.example.com/v1/*?x=1",
                "no query, fragment or user",
            ),
            ("https://api.example.com/v1#x", "no query, fragment or user"),
            ("https://api.example.com/v1/%2f", "an encoded `/` or `\\`"),
            (
                "https://api.example.com/v1/%2Fx/*",
                "an encoded `/` or `\\`",
            ),
            ("https://api.example.com/v1/%5c", "an encoded `/` or `\\`"),
            ("https://api.example.com/v1/%5C", "an encoded `/` or `\\`"),
            ("https://api.example.com/v1/%252f", "an encoded `/` or `\\`"),
            ("https://api.example.com/v1\\x", "a backslash"),
            ("https://api.example.com/v1//x", "empty path segment"),
            ("https://api.example.com//*", "empty path segment"),
            ("https://api.example.com/v1//*", "empty path segment"),
            ("https://api.example.com/100%", "malformed percent-encoding"),
            ("https://api.example.com/%zz", "malformed percent-encoding"),
            ("https://api.example.com/%+1", "malformed percent-encoding"),
            (
                "https://api.example.com/v1/ ",
                "spaces and control characters",
            ),
            (
                "https://api.example.com/a b",
                "spaces and control characters",
            ),
            (
                "https://api.example.com/a\tb/*",
                "spaces and control characters",
            ),
            (
                "https://10.0.0.0/8/v1/*",
                "a CIDR network cannot be scoped by a path",
            ),
            (
                "https://10.0.0.0/8:*/v1",
                "a CIDR network cannot be scoped by a path",
            ),
            (
                "http://[fd00::/8]/v1/*",
                "a CIDR network cannot be scoped by a path",
            ),
            (
                "http://10.0.0.1/%32024/x",
                "`/` and a digit start a CIDR prefix length",
            ),
            (
                "http://0x0a.1/8",
                "`/` and a digit start a CIDR prefix length",
            ),
        ] {
            let err = bad
                .parse::<AllowedHost>()
                .map(|p| panic!("{bad} parsed as {p}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("[/PATH[/*]]"), "{bad}: {err}");
        }
        // CIDR patterns keep their meaning; a trailing `/` is no path.
        let net: AllowedHost = "https://10.0.0.0/8:*/".parse().unwrap();
        assert_eq!(net.to_string(), "https://10.0.0.0/8:*");
        // Plugins may scope their hosts by path too.
        let hosts = parse_plugin_hosts(&["https://api.example.com/v1/*"]).unwrap();
        assert!(hosts[0].matches(&url("https://api.example.com/v1/x")));
        assert!(!hosts[0].matches(&url("https://api.example.com/v2/x")));
    }

    #[test]
    fn ip_literals_in_patterns_are_canonical() {
        let p: AllowedHost = "http://127.0.0.1:*".parse().unwrap();
        assert!(p.matches(&url("http://0x7f.0.0.1:9/")));
        assert_eq!(p.to_string(), "http://127.0.0.1:*");
    }
}
