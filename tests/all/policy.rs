//! Egress policy: denials are typed and nothing reaches the target.

use courier_host::{Host, Outcome};
use courier_tests::{TestServer, host_builder, host_with};
use serde_json::json;

use crate::step;

#[tokio::test]
async fn loopback_is_refused_unless_the_operator_allows_it() {
    let server = TestServer::echo().await;
    let builder = Host::builder().allow_host("http://*:*".parse().unwrap());
    let host = host_with(builder, &["http-request"]).await;
    for url in [
        server.url("/"),
        format!("http://localhost:{}/", server.addr.port()),
        format!("http://0x7f.0.0.1:{}/", server.addr.port()),
    ] {
        let r = step(&host, "http-request", "request", json!({"url": url}), &[]).await;
        assert_eq!(r.outcome, Outcome::Denied, "{url}: {r:?}");
        assert_eq!(r.error.unwrap().kind, "denied");
    }
    assert_eq!(server.connections(), 0, "the target must see no connection");
}

#[tokio::test]
async fn an_operator_cidr_pattern_allows_ip_literals_in_its_network() {
    let server = TestServer::echo().await;
    let host = host_with(
        Host::builder().allow_host("http://127.0.0.0/8:*".parse().unwrap()),
        &["http-request"],
    )
    .await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/in")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(server.received().len(), 1);
    // Names never match a network pattern, even one that resolves into it.
    let name = format!("http://localhost:{}/name", server.addr.port());
    let r = step(&host, "http-request", "request", json!({"url": name}), &[]).await;
    assert_eq!(r.outcome, Outcome::Denied, "{r:?}");
    assert!(r.error.unwrap().message.contains("operator"));
    assert_eq!(
        server.received().len(),
        1,
        "the denied request never arrived"
    );
}

#[tokio::test]
async fn hosts_outside_the_operator_allowlist_are_denied() {
    let server = TestServer::echo().await;
    let builder = Host::builder()
        .allow_host("https://api.example.com".parse().unwrap())
        .allow_network("127.0.0.1/32".parse().unwrap());
    let host = host_with(builder, &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Denied, "{r:?}");
    assert!(r.error.unwrap().message.contains("operator"));
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn no_allowlist_means_nothing_is_reachable() {
    let server = TestServer::echo().await;
    let host = host_with(
        Host::builder().allow_network("127.0.0.1/32".parse().unwrap()),
        &["http-request"],
    )
    .await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Denied, "{r:?}");
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn redirect_to_a_refused_address_is_denied() {
    let server = TestServer::start(|_| courier_tests::Reply {
        status: 302,
        headers: vec![(
            "location".into(),
            "http://169.254.169.254/latest/meta-data".into(),
        )],
        body: vec![],
    })
    .await;
    let host = host_with(courier_tests::host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Denied, "{r:?}");
    assert!(r.error.unwrap().message.contains("link-local"));
}

/// A resolver with fixed answers that counts its lookups.
struct FixedResolver {
    answers: std::collections::HashMap<&'static str, Vec<std::net::IpAddr>>,
    lookups: std::sync::atomic::AtomicUsize,
}

impl FixedResolver {
    fn new(answers: &[(&'static str, &[&str])]) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            answers: answers
                .iter()
                .map(|(n, ips)| (*n, ips.iter().map(|ip| ip.parse().unwrap()).collect()))
                .collect(),
            lookups: 0.into(),
        })
    }
}

impl courier_host::Resolve for FixedResolver {
    fn resolve(
        &self,
        host: &str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<Vec<std::net::IpAddr>>> + Send + '_>,
    > {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let found = self.answers.get(host).cloned();
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name"))
        })
    }
}

const SPECIAL_NAMES: &[(&str, &[&str])] = &[
    ("loopback.test", &["127.0.0.1"]),
    ("loopback-other.test", &["127.9.9.9"]),
    ("unspecified.test", &["0.0.0.0"]),
    ("mapped.test", &["::ffff:127.0.0.1"]),
    ("compat.test", &["::127.0.0.1"]),
    ("nat64.test", &["64:ff9b::7f00:1"]),
    ("sixtofour.test", &["2002:7f00:1::1"]),
    ("teredo.test", &["2001:0:4136:e378:8000:63bf:80ff:fffe"]),
    ("loopback6.test", &["::1"]),
    ("private.test", &["10.0.0.1", "172.16.5.4", "192.168.1.1"]),
    ("metadata.test", &["169.254.169.254"]),
    ("cgnat.test", &["100.64.0.1"]),
    ("ietf.test", &["192.0.0.8"]),
    ("docs.test", &["192.0.2.1", "2001:db8::1"]),
    ("bench.test", &["198.18.0.1"]),
    ("ula.test", &["fd00::1"]),
    ("linklocal6.test", &["fe80::1"]),
    ("multicast.test", &["224.0.0.1", "ff02::1"]),
    ("broadcast.test", &["255.255.255.255"]),
];

#[tokio::test]
async fn every_special_address_class_is_denied_and_the_canary_sees_nothing() {
    let canary = TestServer::echo().await;
    let port = canary.addr.port();
    let resolver = FixedResolver::new(SPECIAL_NAMES);
    let builder = Host::builder()
        .allow_host("http://*:*".parse().unwrap())
        .resolver(resolver);
    let host = host_with(builder, &["http-request"]).await;
    let mut urls: Vec<String> = SPECIAL_NAMES
        .iter()
        .map(|(name, _)| format!("http://{name}:{port}/"))
        .collect();
    // IP literals in every spelling are canonicalized and checked, never resolved.
    for literal in [
        "127.0.0.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "0x7f.1",
        "0",
        "[::1]",
        "[::ffff:7f00:1]",
        "[::ffff:127.0.0.1]",
        "[64:ff9b::127.0.0.1]",
        "169.254.169.254",
        "0xa9fea9fe",
        "LOCALHOST.",
    ] {
        urls.push(format!("http://{literal}:{port}/"));
    }
    for url in &urls {
        let r = step(&host, "http-request", "request", json!({"url": url}), &[]).await;
        assert_eq!(r.outcome, Outcome::Denied, "{url}: {r:?}");
        assert_eq!(r.error.as_ref().unwrap().kind, "denied", "{url}");
    }
    assert_eq!(
        canary.connections(),
        0,
        "no refused address may be connected to"
    );
}

#[tokio::test]
async fn malformed_and_smuggling_requests_are_rejected_before_sending() {
    let canary = TestServer::echo().await;
    let port = canary.addr.port();
    let host = host_with(courier_tests::host_builder(), &["http-request"]).await;
    let cases = [
        json!({"url": format!("http://user:pw@127.0.0.1:{port}/")}),
        json!({"url": format!("ftp://127.0.0.1:{port}/")}),
        json!({"url": format!("file:///etc/passwd")}),
        json!({"url": format!("http://127.0.0.1:{port}/"), "headers": {"X-A": "v\r\nInjected: 1"}}),
        json!({"url": format!("http://127.0.0.1:{port}/"), "headers": {"Host": "evil.test"}}),
        json!({"url": format!("http://127.0.0.1:{port}/"), "headers": {"Transfer-Encoding": "chunked"}}),
        json!({"url": format!("http://127.0.0.1:{port}/"), "headers": {"Proxy-Authorization": "Basic x"}}),
        json!({"url": format!("http://127.0.0.1:{port}/"), "headers": {"Cookie": "a=1"}}),
        json!({"url": format!("http://127.0.0.1:{port}/"), "headers": {"Upgrade": "h2c"}}),
    ];
    for input in cases {
        let r = step(&host, "http-request", "request", input.clone(), &[]).await;
        assert_ne!(r.outcome, Outcome::Success, "{input}: {r:?}");
        let kind = &r.error.as_ref().unwrap().kind;
        assert!(
            kind == "invalid-request" || kind == "denied",
            "{input}: {r:?}"
        );
    }
    assert_eq!(canary.connections(), 0);
}

#[tokio::test]
async fn host_names_are_normalized_before_matching() {
    let canary = TestServer::echo().await;
    let port = canary.addr.port();
    let resolver = FixedResolver::new(&[
        ("api.example.test", &["127.0.0.1"]),
        ("api.example.test.", &["127.0.0.1"]),
        ("xn--bcher-kva.example.test", &["127.0.0.1"]),
        ("api.example.test.evil.test", &["127.0.0.1"]),
        ("evil-api.example.test", &["127.0.0.1"]),
    ]);
    let builder = Host::builder()
        .allow_host(format!("http://api.example.test:{port}").parse().unwrap())
        .allow_host(
            format!("http://bücher.example.test:{port}")
                .parse()
                .unwrap(),
        )
        .allow_network("127.0.0.1/32".parse().unwrap())
        .resolver(resolver.clone());
    let host = host_with(builder, &["http-request"]).await;
    // Case, the root dot, ideographic full stops and Unicode labels: the same hosts.
    for spelling in [
        "API.Example.TEST",
        "api.example.test.",
        "api\u{3002}example\u{3002}test",
        "BÜCHER.example.test",
    ] {
        let url = format!("http://{spelling}:{port}/");
        let r = step(&host, "http-request", "request", json!({"url": url}), &[]).await;
        assert_eq!(r.outcome, Outcome::Success, "{spelling}: {r:?}");
    }
    assert_eq!(canary.received().len(), 4);
    // Look-alikes that only contain or extend the allowed name are other hosts.
    for spelling in [
        "api.example.test.evil.test",
        "evil-api.example.test",
        "api.example.test:1@evil.test",
    ] {
        let url = format!("http://{spelling}:{port}/");
        let r = step(&host, "http-request", "request", json!({"url": url}), &[]).await;
        assert_ne!(r.outcome, Outcome::Success, "{spelling}: {r:?}");
    }
    assert_eq!(
        canary.received().len(),
        4,
        "no look-alike reached the target"
    );
}

#[tokio::test]
async fn names_no_dns_server_would_take_are_refused_before_resolving() {
    let canary = TestServer::echo().await;
    let resolver =
        FixedResolver::new(&[("x;y.test", &["127.0.0.1"]), ("a{b}.test", &["127.0.0.1"])]);
    let builder = Host::builder()
        .allow_host("http://*:*".parse().unwrap())
        .allow_network("127.0.0.1/32".parse().unwrap())
        .resolver(resolver.clone());
    let host = host_with(builder, &["http-request"]).await;
    for name in ["x;y.test", "a{b}.test"] {
        let url = format!("http://{name}:{}/", canary.addr.port());
        let r = step(&host, "http-request", "request", json!({"url": url}), &[]).await;
        let error = r.error.expect("refused");
        assert_eq!(error.kind, "invalid-request", "{name}");
        assert!(
            error.message.contains("not a valid DNS name"),
            "{name}: {}",
            error.message
        );
    }
    assert_eq!(
        resolver.lookups.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "never handed to the resolver"
    );
    assert_eq!(canary.connections(), 0);
}

#[tokio::test]
async fn mixed_answers_keep_only_allowed_addresses_and_resolve_once() {
    let canary = TestServer::echo().await;
    let resolver =
        FixedResolver::new(&[("mixed.test", &["10.0.0.1", "127.0.0.1", "169.254.169.254"])]);
    let builder = Host::builder()
        .allow_host("http://*:*".parse().unwrap())
        .allow_network("127.0.0.1/32".parse().unwrap())
        .resolver(resolver.clone());
    let host = host_with(builder, &["http-request"]).await;
    let url = format!("http://mixed.test:{}/", canary.addr.port());
    let r = step(&host, "http-request", "request", json!({"url": url}), &[]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(canary.connections(), 1, "the vetted address was used");
    assert_eq!(
        resolver.lookups.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "resolved once, no second lookup"
    );
}

#[tokio::test]
async fn operator_policy_per_plugin_and_per_tenant() {
    use courier_host::PluginPolicy;
    let server = TestServer::echo().await;
    let port = server.addr.port();
    let builder = Host::builder()
        .allow_network("127.0.0.1/32".parse().unwrap())
        .allow_host("https://api.example.com".parse().unwrap())
        .plugin_policy(
            "http-request",
            PluginPolicy {
                allowed_hosts: Some(vec![format!("http://127.0.0.1:{port}").parse().unwrap()]),
                contract_drift: None,
                limits: None,
            },
        )
        .tenant_hosts("narrow", vec!["https://api.example.com".parse().unwrap()]);
    let host = host_with(builder, &["http-request", "misbehave"]).await;
    let url = server.url("/p");

    let r = step(&host, "http-request", "request", json!({"url": url}), &[]).await;
    assert_eq!(
        r.outcome,
        Outcome::Success,
        "the plugin's own operator list extends the default: {r:?}"
    );

    let r = step(&host, "misbehave", "send", json!({"url": url}), &[]).await;
    assert_eq!(
        r.outcome,
        Outcome::Denied,
        "other plugins keep the host-wide list: {r:?}"
    );

    let request = courier_host::StepRequest {
        tenant: "narrow".into(),
        plugin: "http-request".into(),
        call: "request".into(),
        input: json!({"url": url}),
        connections: vec![],
    };
    let r = host.run_step(request).await;
    assert_eq!(r.outcome, Outcome::Denied, "{r:?}");
    assert!(r.error.unwrap().message.contains("tenant's policy"));
    assert_eq!(
        server.received().len(),
        1,
        "only the allowed step reached the server"
    );
}

#[tokio::test]
async fn an_operator_path_scope_admits_only_urls_under_it() {
    // `/allowed/go` redirects out of the scope; everything else echoes.
    let server = TestServer::start(|r| {
        if r.uri == "/allowed/go" {
            courier_tests::Reply {
                status: 302,
                headers: vec![("location".into(), "/other".into())],
                body: vec![],
            }
        } else {
            courier_tests::Reply::json(200, courier_tests::echo_json(r))
        }
    })
    .await;
    let port = server.addr.port();
    let builder = Host::builder()
        .allow_host(
            format!("http://127.0.0.1:{port}/allowed/*")
                .parse()
                .unwrap(),
        )
        .allow_network("127.0.0.1/32".parse().unwrap());
    let host = host_with(builder, &["http-request"]).await;

    for path in ["/allowed/x", "/allowed", "/allowed/x/../y"] {
        let url = server.url(path);
        let r = step(&host, "http-request", "request", json!({"url": url}), &[]).await;
        assert_eq!(r.outcome, Outcome::Success, "{path}: {r:?}");
    }
    let arrived: Vec<String> = server.received().into_iter().map(|r| r.uri).collect();
    assert_eq!(arrived, ["/allowed/x", "/allowed", "/allowed/y"]);
    let connections = server.connections();

    // Dot segments are resolved before matching (`/allowed/../other` is
    // `/other`); encoded separators and `..;` refuse a match outright.
    for path in [
        "/other",
        "/allowedx/y",
        "/allowed/../other",
        "/allowed/%2e%2e/other",
        "/allowed/%2E%2E/other",
        "/allowed\\..\\other",
        "/allowed/..%2fother",
        "/allowed/x%2F..%2F..%2Fother",
        "/allowed/x%5c..%5c..%5cother",
        "/allowed/..;/other",
        "/Allowed/x",
    ] {
        let url = server.url(path);
        let r = step(&host, "http-request", "request", json!({"url": url}), &[]).await;
        assert_eq!(r.outcome, Outcome::Denied, "{path}: {r:?}");
        let error = r.error.unwrap();
        assert_eq!(error.kind, "denied", "{path}");
        assert!(
            error.message.contains("operator"),
            "{path}: {}",
            error.message
        );
    }
    assert_eq!(
        server.connections(),
        connections,
        "no denied URL opened a connection"
    );
    assert_eq!(server.received().len(), 3, "no denied URL arrived");

    // A redirect out of the scope is checked like any URL.
    let url = server.url("/allowed/go");
    let r = step(&host, "http-request", "request", json!({"url": url}), &[]).await;
    assert_eq!(r.outcome, Outcome::Denied, "{r:?}");
    let arrived: Vec<String> = server.received().into_iter().map(|r| r.uri).collect();
    assert_eq!(
        arrived,
        ["/allowed/x", "/allowed", "/allowed/y", "/allowed/go"],
        "the redirect target never arrived"
    );
}

#[tokio::test]
async fn a_relative_url_never_leaves_the_connections_base_path() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let acme = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'bearer'\n[secrets]\ntoken = 'acme-token-123'",
        server.url("/accounts/acme/")
    );
    for url in [
        "../globex/orders",
        "%2e%2e/globex/orders",
        "%2E%2E/globex/orders",
        "..%2fglobex/orders",
        "orders/..\\..\\globex",
        "..;/globex/orders",
        "%252e%252e/globex/orders",
    ] {
        let r = step(
            &host,
            "http-request",
            "request",
            json!({"url": url}),
            &[&acme],
        )
        .await;
        assert_eq!(r.outcome, Outcome::Error, "{url}: {r:?}");
        assert_eq!(r.error.unwrap().kind, "invalid-request", "{url}");
    }
    assert_eq!(server.connections(), 0, "nothing was sent");
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "orders/../invoices"}),
        &[&acme],
    )
    .await;
    assert_eq!(
        r.outcome,
        Outcome::Error,
        "even a dot segment that stays inside is refused: {r:?}"
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "orders?id=1"}),
        &[&acme],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(server.received()[0].uri, "/accounts/acme/orders?id=1");
}
