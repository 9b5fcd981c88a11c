//! The request head a plugin builds (URL, query pairs, headers): never a
//! panic, and a head that passes carries no host-owned header and no CR, LF
//! or NUL, keeps the query pairs as given, and, with a URL that passes the
//! checks, builds an HTTP request.
#![no_main]

use arbitrary::Arbitrary;
use courier_egress::head::{
    HostLists, append_query, check_url, is_host_owned, join_url, plugin_header,
};
use courier_egress::{AllowedHost, NetworkPolicy};
use libfuzzer_sys::fuzz_target;
use url::Url;

#[derive(Debug, Arbitrary)]
struct Head<'a> {
    base: Option<&'a str>,
    target: &'a str,
    query: Vec<(&'a str, &'a str)>,
    headers: Vec<(&'a str, &'a str)>,
}

fuzz_target!(|head: Head<'_>| {
    let base = head.base.and_then(|b| Url::parse(b).ok());
    let Ok(mut url) = join_url(base.as_ref(), head.target) else {
        return;
    };
    let before = url.query_pairs().count();
    if append_query(&mut url, head.query.iter().copied()).is_err() {
        assert!(
            head.query
                .iter()
                .any(|(k, v)| format!("{k}{v}").contains(['\r', '\n', '\0']))
        );
        return;
    }
    let appended: Vec<(String, String)> = url
        .query_pairs()
        .skip(before)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let given: Vec<(String, String)> = head
        .query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(appended, given, "query pairs changed on the way into {url}");

    let mut request = http::Request::builder().method("GET");
    for (name, value) in &head.headers {
        let Ok((name, value)) = plugin_header(name, value) else {
            continue;
        };
        assert!(!is_host_owned(&name), "{name}");
        assert!(
            !value
                .as_bytes()
                .iter()
                .any(|b| matches!(b, b'\r' | b'\n' | 0)),
            "{name}: {value:?}"
        );
        request = request.header(name, value);
    }
    let any: Vec<AllowedHost> = vec![
        "http://*:*".parse().unwrap(),
        "https://*:*".parse().unwrap(),
    ];
    let everywhere =
        NetworkPolicy::allowing(vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]);
    if check_url(
        &url,
        HostLists {
            plugin: &any,
            operator: &any,
            tenant: None,
        },
        &everywhere,
    )
    .is_ok()
    {
        request
            .uri(url.as_str())
            .body(())
            .unwrap_or_else(|e| panic!("{url} passed the checks: {e}"));
    }
});
