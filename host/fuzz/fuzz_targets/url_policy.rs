//! URL checks on arbitrary text: never a panic, and a URL that passes is one
//! the sender can put on the wire as it was judged: http or https, no user
//! info, an allowed address if it is an IP literal, and the same host once
//! converted to the HTTP client's URI type.
#![no_main]

use courier_egress::head::{HostLists, check_url, join_url};
use courier_egress::{AllowedHost, NetworkPolicy, special_range};
use libfuzzer_sys::fuzz_target;
use url::Url;

fuzz_target!(|text: &str| {
    let any: Vec<AllowedHost> = vec![
        "http://*:*".parse().unwrap(),
        "https://*:*".parse().unwrap(),
    ];
    let subdomains: Vec<AllowedHost> = vec!["https://*.example.com:*".parse().unwrap()];
    let base = Url::parse("https://api.example.com/v1/").unwrap();
    let Ok(url) = join_url(Some(&base), text) else {
        return;
    };
    let network = NetworkPolicy::default();

    let narrowed = HostLists {
        plugin: &any,
        operator: &any,
        tenant: Some(&subdomains),
    };
    if check_url(&url, narrowed, &network).is_ok() {
        let host = url.host_str().expect("an allowed URL has a host");
        assert!(
            host.trim_end_matches('.').ends_with(".example.com"),
            "{url} passed *.example.com"
        );
    }
    if check_url(
        &url,
        HostLists {
            plugin: &any,
            operator: &any,
            tenant: None,
        },
        &network,
    )
    .is_err()
    {
        return;
    }
    assert!(matches!(url.scheme(), "http" | "https"), "{url}");
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{url}"
    );
    match url.host() {
        Some(url::Host::Ipv4(ip)) => assert!(special_range(ip.into()).is_none(), "{url}"),
        Some(url::Host::Ipv6(ip)) => assert!(special_range(ip.to_canonical()).is_none(), "{url}"),
        Some(url::Host::Domain(d)) => assert!(
            d.parse::<std::net::IpAddr>().is_err(),
            "{url}: an address judged as a name"
        ),
        None => panic!("{url} passed without a host"),
    }
    let uri: http::Uri = url
        .as_str()
        .parse()
        .unwrap_or_else(|e| panic!("{url} passed but is no request URI: {e}"));
    let uri_host = uri.host().expect("a request URI has a host");
    assert_eq!(
        uri_host,
        url.host_str().unwrap(),
        "{url}: the client would connect elsewhere"
    );
});
