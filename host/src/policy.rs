//! Egress policy: which URLs a step may call and which addresses it may reach.
//!
//! Two independent checks, both deny by default:
//! - [`AllowedHost`] patterns (`scheme://host[:port]`) match the URL. A request
//!   must match the plugin manifest's patterns **and** the operator's.
//! - [`NetworkPolicy`] checks every address a name resolves to (and IP literals)
//!   at connect time: special-purpose ranges (loopback, private, link-local, …)
//!   are refused unless the operator allows their CIDR explicitly.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;
use url::Url;

/// A pattern could not be parsed; the message shows the accepted format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid allowed host `{pattern}`: {reason} (expected `http[s]://HOST[:PORT]` where HOST is `api.example.com`, `*.example.com` or `*`, and PORT a number or `*`)")]
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

/// One typed allowed-host pattern: `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Scheme,
    host: HostMatch,
    port: PortMatch,
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
        let fail = |reason| PatternError { pattern: pattern.to_owned(), reason };
        let (scheme, rest) = pattern.split_once("://").ok_or_else(|| fail("missing scheme"))?;
        let scheme = Scheme::parse(&scheme.to_ascii_lowercase())
            .ok_or_else(|| fail("only http and https are allowed"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(fail("a pattern names a host, not a path, query or user"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| fail("malformed port"))?;
        let port = match port {
            None => PortMatch::Default,
            Some("*") => PortMatch::Any,
            Some(p) => PortMatch::Exact(p.parse().map_err(|_| fail("malformed port"))?),
        };
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.contains('*') {
                return Err(fail("`*` may only stand alone or as the first label"));
            }
            HostMatch::Subdomain(normalize_pattern_host(domain).ok_or_else(|| fail("invalid host"))?)
        } else {
            if host.contains('*') {
                return Err(fail("`*` may only stand alone or as the first label"));
            }
            HostMatch::Literal(normalize_pattern_host(host).ok_or_else(|| fail("invalid host"))?)
        };
        Ok(Self { scheme, host, port })
    }
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

/// Normalizes a host the way URLs are normalized (lowercase, IDNA, IP literals
/// canonical), so patterns and URLs compare equal.
fn normalize_pattern_host(host: &str) -> Option<String> {
    let url = Url::parse(&format!("http://{host}/")).ok()?;
    url.host_str().map(|h| h.trim_end_matches('.').to_owned())
}

impl AllowedHost {
    /// Whether the URL's scheme, host and port match this pattern. The URL must
    /// already be parsed (its host normalized by the URL parser).
    pub fn matches(&self, url: &Url) -> bool {
        let Some(scheme) = Scheme::parse(url.scheme()) else { return false };
        let Some(host) = url.host_str() else { return false };
        let host = host.trim_end_matches('.');
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
                    host.len() > d.len() + 1 && host.ends_with(d.as_str()) && host[..host.len() - d.len()].ends_with('.')
                }
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
        }
        match self.port {
            PortMatch::Default => Ok(()),
            PortMatch::Any => write!(f, ":*"),
            PortMatch::Exact(p) => write!(f, ":{p}"),
        }
    }
}

/// Parses a list of patterns, failing on the first invalid one.
pub(crate) fn parse_allowed_hosts<S: AsRef<str>>(patterns: &[S]) -> Result<Vec<AllowedHost>, PatternError> {
    patterns.iter().map(|p| p.as_ref().parse()).collect()
}

/// The operator's network policy: special-purpose address ranges are refused
/// unless one of `allowed` contains the address.
#[derive(Debug, Clone, Default)]
pub(crate) struct NetworkPolicy {
    allowed: Vec<IpNet>,
}

impl NetworkPolicy {
    /// A policy that additionally allows these networks (for example
    /// `127.0.0.1/32` for a local test server).
    pub(crate) fn allowing(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Checks one resolved address. `Err` names the range that refused it.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), &'static str> {
        let ip = ip.to_canonical();
        if self.allowed.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match special_range(ip) {
            Some(range) => Err(range),
            None => Ok(()),
        }
    }
}

/// The special-purpose range an address belongs to, if any. IPv6 forms that
/// embed an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) are judged
/// by the embedded address as well.
pub(crate) fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match () {
        _ if ip.is_unspecified() || a == 0 => "unspecified (0.0.0.0/8)",
        _ if ip.is_loopback() => "loopback (127.0.0.0/8)",
        _ if ip.is_private() => "private (RFC 1918)",
        _ if ip.is_link_local() => "link-local (169.254.0.0/16)",
        _ if a == 100 && (64..128).contains(&b) => "shared address space (100.64.0.0/10)",
        _ if a == 192 && b == 0 && c == 0 => "IETF protocol assignments (192.0.0.0/24)",
        _ if (a, b, c) == (192, 0, 2) || (a, b, c) == (198, 51, 100) || (a, b, c) == (203, 0, 113) => {
            "documentation"
        }
        _ if a == 198 && (b == 18 || b == 19) => "benchmarking (198.18.0.0/15)",
        _ if ip.is_broadcast() => "broadcast",
        _ if ip.is_multicast() => "multicast (224.0.0.0/4)",
        _ if a >= 240 => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return Some(special_v4(v4).unwrap_or("IPv6 form of an IPv4 address"));
    }
    let s = ip.segments();
    Some(match () {
        _ if ip.is_unspecified() => "unspecified (::)",
        _ if ip.is_loopback() => "loopback (::1)",
        _ if s[0] & 0xfe00 == 0xfc00 => "unique local (fc00::/7)",
        _ if s[0] & 0xffc0 == 0xfe80 => "link-local (fe80::/10)",
        _ if s[0] & 0xffc0 == 0xfec0 => "site-local (fec0::/10)",
        _ if s[0] & 0xff00 == 0xff00 => "multicast (ff00::/8)",
        _ if s[0] == 0x2001 && s[1] == 0x0db8 => "documentation (2001:db8::/32)",
        _ if s[0] == 0x0100 && s[1..4] == [0, 0, 0] => "discard (100::/64)",
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it:
/// IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96), 6to4 (2002::/16),
/// Teredo (2001::/32, client address inverted).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let from = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(from(hi, lo)),
        [0, 0, 0, 0, 0, 0, hi, lo] if !(hi == 0 && lo <= 1) => Some(from(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(from(hi, lo)),
        [0x2002, hi, lo, ..] => Some(from(hi, lo)),
        [0x2001, 0, .., hi, lo] => Some(from(!hi, !lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
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
        for bad in ["*", "api.example.com", "ftp://x.com", "https://*stripe.com", "https://api.*.com", "https://x.com/path", "https://u@x.com", "https://x.com:port"] {
            let err = bad.parse::<AllowedHost>().unwrap_err().to_string();
            assert!(err.contains("expected `http[s]://HOST[:PORT]`"), "{bad}: {err}");
        }
    }

    #[test]
    fn hosts_are_normalized_before_matching() {
        let p: AllowedHost = "https://Bücher.Example".parse().unwrap();
        assert_eq!(p.to_string(), "https://xn--bcher-kva.example");
        for same in ["https://xn--bcher-kva.example/", "https://BÜCHER.example./", "https://bücher.EXAMPLE:443/"] {
            assert!(p.matches(&url(same)), "{same}");
        }
        assert!(!p.matches(&url("https://bucher.example/")));
    }

    #[test]
    fn ip_literals_in_patterns_are_canonical() {
        let p: AllowedHost = "http://127.0.0.1:*".parse().unwrap();
        assert!(p.matches(&url("http://0x7f.0.0.1:9/")));
        assert_eq!(p.to_string(), "http://127.0.0.1:*");
    }

    #[test]
    fn special_ranges_are_refused_by_default() {
        let policy = NetworkPolicy::default();
        for ip in [
            "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
            "192.0.0.8", "198.18.0.1", "255.255.255.255", "224.0.0.1", "::1", "::", "fc00::1", "fe80::1",
            "::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "2001:0:4136:e378:8000:63bf:80ff:fffe",
        ] {
            assert!(policy.check(ip.parse().unwrap()).is_err(), "{ip} should be refused");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(policy.check(ip.parse().unwrap()).is_ok(), "{ip} should pass");
        }
    }

    #[test]
    fn operator_can_allow_a_cidr() {
        let policy = NetworkPolicy::allowing(vec!["127.0.0.1/32".parse().unwrap()]);
        assert!(policy.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("127.0.0.2".parse().unwrap()).is_err());
        assert!(policy.check("10.0.0.1".parse().unwrap()).is_err());
    }
}
