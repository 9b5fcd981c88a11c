//! Typed allowed-host patterns: `scheme://host[:port]`, deny by default.
//!
//! A host is a literal name or IP address, `*.domain` (strict subdomains) or
//! `*`; operators may also name a network in CIDR form (`10.0.0.0/8`,
//! `[fd00::/8]`), which matches URLs whose host is an IP literal in it.
//! Hosts are normalized like URLs (lowercase, IDNA, canonical IP literals,
//! no trailing dot) so patterns and URLs compare equal.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use url::Url;

/// A pattern could not be parsed; the message shows the accepted format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid allowed host `{pattern}`: {reason} (expected `http[s]://HOST[:PORT]` where HOST is `api.example.com`, `*.example.com`, `*` or, in an operator's policy, a CIDR such as `10.0.0.0/8` or `[fd00::/8]`, and PORT a number or `*`)"
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
        let fail = |reason| PatternError {
            pattern: pattern.to_owned(),
            reason,
        };
        let (scheme, rest) = pattern
            .split_once("://")
            .ok_or_else(|| fail("missing scheme"))?;
        let scheme = Scheme::parse(&scheme.to_ascii_lowercase())
            .ok_or_else(|| fail("only http and https are allowed"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['?', '#', '@']) {
            return Err(fail("a pattern names a host, not a path, query or user"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| fail("malformed port"))?;
        if port.is_some_and(|p| p.contains('/')) {
            return Err(fail("a pattern names a host, not a path, query or user"));
        }
        let port = match port {
            None => PortMatch::Default,
            Some("*") => PortMatch::Any,
            Some(p) => PortMatch::Exact(p.parse().map_err(|_| fail("malformed port"))?),
        };
        let host = if host == "*" {
            HostMatch::Any
        } else if host.contains('/') {
            HostMatch::Network(
                parse_network(host)
                    .ok_or_else(|| fail("a pattern names a host, not a path, query or user"))?,
            )
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
    /// Whether the URL's scheme, host and port match this pattern. The URL must
    /// already be parsed (its host normalized by the URL parser).
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
            PortMatch::Default => Ok(()),
            PortMatch::Any => write!(f, ":*"),
            PortMatch::Exact(p) => write!(f, ":{p}"),
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
            "https://x.com/path",
            "https://.",
            "https://*..",
            "https://10.0..",
            "http://*.28:80",
            "http://%2A",
            "https://a%7Cb.example",
            "https://*.[::1]",
            "https://x.com:80/path",
            "https://10.0.0.0/33",
            "https://[fd00::/8",
            "https://u@x.com",
            "https://x.com:port",
        ] {
            let err = bad.parse::<AllowedHost>().unwrap_err().to_string();
            assert!(
                err.contains("expected `http[s]://HOST[:PORT]`"),
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

    #[test]
    fn ip_literals_in_patterns_are_canonical() {
        let p: AllowedHost = "http://127.0.0.1:*".parse().unwrap();
        assert!(p.matches(&url("http://0x7f.0.0.1:9/")));
        assert_eq!(p.to_string(), "http://127.0.0.1:*");
    }
}
