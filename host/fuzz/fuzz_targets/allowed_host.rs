//! Allowed-host patterns: parsing never panics, a parsed pattern displays as
//! a pattern that parses back to itself, and the URL it names (its path
//! included) matches it.
#![no_main]

use courier_egress::AllowedHost;
use libfuzzer_sys::fuzz_target;
use url::Url;

fuzz_target!(|text: &str| {
    let Ok(pattern) = text.parse::<AllowedHost>() else {
        return;
    };
    let shown = pattern.to_string();
    let again: AllowedHost = shown
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} displays as {shown:?}, which fails: {e}"));
    assert_eq!(again, pattern, "{text:?} -> {shown:?}");

    let example = example_url(&pattern, &shown);
    let url = Url::parse(&example)
        .unwrap_or_else(|e| panic!("{shown:?} names no URL ({example:?}: {e})"));
    assert!(
        pattern.matches(&url),
        "{shown:?} does not match its own {example:?}"
    );
});

/// A URL inside the pattern: `*` hosts and ports made concrete, a network
/// replaced by its first address, a `/*` path scope given one more segment.
fn example_url(pattern: &AllowedHost, shown: &str) -> String {
    let (scheme, rest) = shown
        .split_once("://")
        .expect("a displayed pattern has a scheme");
    // A network has no path; any other authority ends at the first `/`.
    let (rest, path) = match pattern.network() {
        Some(_) => (rest, ""),
        None => rest.find('/').map_or((rest, ""), |i| rest.split_at(i)),
    };
    let path = match path.strip_suffix("/*") {
        Some(scope) => format!("{scope}/x"),
        None if path.is_empty() => "/".to_owned(),
        None => path.to_owned(),
    };
    let rest = match pattern.network() {
        Some(net) => {
            let port = rest
                .rsplit_once('/')
                .map(|(_, p)| p.trim_start_matches(|c: char| c.is_ascii_digit()))
                .unwrap_or("");
            let port = port.strip_suffix(']').unwrap_or(port);
            match net.network() {
                std::net::IpAddr::V4(ip) => format!("{ip}{port}"),
                std::net::IpAddr::V6(ip) => format!("[{ip}]{}", port.trim_start_matches(']')),
            }
        }
        None if rest == "*" || rest.starts_with("*:") => format!("any.test{}", &rest[1..]),
        None => rest.replacen("*.", "a.", 1),
    };
    format!("{scheme}://{}{path}", rest.replace(":*", ":8080"))
}
