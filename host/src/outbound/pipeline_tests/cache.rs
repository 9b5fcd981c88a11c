//! The response cache through the pipeline: what reaches the fake transport
//! is the oracle of a hit (nothing) and a miss (one request); expiry moves
//! with the manual clock.

use std::sync::atomic::AtomicU32;

use super::*;

/// Answers `answer n` (n counting from 1) with these headers.
fn counting_upstream(headers: &'static [(&'static str, &'static str)]) -> Script {
    let n = AtomicU32::new(0);
    Box::new(move |_| {
        let n = n.fetch_add(1, Ordering::SeqCst) + 1;
        respond(200, headers, format!("answer {n}"))
    })
}

fn cached(url: &str, ttl_ms: u32) -> Request {
    Request {
        cache_ttl_ms: Some(ttl_ms),
        ..get(url, Some("default"))
    }
}

fn body(result: &Result<Response, SendError>) -> String {
    String::from_utf8(result.as_ref().unwrap().body.clone()).unwrap()
}

#[tokio::test]
async fn a_hit_never_reaches_the_transport_and_is_marked_in_the_record() {
    let world = World::new(BEARER, counting_upstream(&[]));
    let (first, records) = world.send(cached("items", 60_000)).await;
    assert_eq!(body(&first), "answer 1");
    assert_eq!(records[0].cache.as_deref(), Some("miss"));
    let (second, records) = world.send(cached("items", 60_000)).await;
    assert_eq!(body(&second), "answer 1");
    assert_eq!(world.transport.seen().len(), 1, "the hit was not sent");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].cache.as_deref(), Some("hit"));
    assert_eq!(records[0].status, Some(200));
    assert_eq!(records[0].url, "https://api.test/v1/items");
    // Without a TTL the same URL is sent and not marked.
    let (third, records) = world.send(get("items", Some("default"))).await;
    assert_eq!(body(&third), "answer 2");
    assert_eq!(records[0].cache, None);
}

#[tokio::test]
async fn entries_expire_on_the_clock_and_max_age_shortens_the_ttl() {
    let world = World::new(BEARER, counting_upstream(&[]));
    world.send(cached("a", 60_000)).await.0.unwrap();
    world.clock.advance(Duration::from_secs(59));
    assert_eq!(body(&world.send(cached("a", 60_000)).await.0), "answer 1");
    world.clock.advance(Duration::from_secs(2));
    assert_eq!(body(&world.send(cached("a", 60_000)).await.0), "answer 2");

    let world = World::new(
        BEARER,
        counting_upstream(&[("cache-control", "public, max-age=10")]),
    );
    world.send(cached("a", 60_000)).await.0.unwrap();
    world.clock.advance(Duration::from_secs(9));
    assert_eq!(body(&world.send(cached("a", 60_000)).await.0), "answer 1");
    world.clock.advance(Duration::from_secs(2));
    assert_eq!(body(&world.send(cached("a", 60_000)).await.0), "answer 2");
}

#[tokio::test]
async fn no_store_private_no_cache_and_vary_star_are_never_kept() {
    for headers in [
        &[("cache-control", "no-store")][..],
        &[("Cache-Control", "private, max-age=600")],
        &[("cache-control", "no-cache")],
        &[("vary", "*")],
    ] {
        let world = World::new(BEARER, counting_upstream(headers));
        world.send(cached("a", 60_000)).await.0.unwrap();
        let (result, records) = world.send(cached("a", 60_000)).await;
        assert_eq!(body(&result), "answer 2", "{headers:?}");
        assert_eq!(records[0].cache.as_deref(), Some("miss"));
    }
}

#[tokio::test]
async fn only_get_and_head_answered_200_are_cached() {
    let world = World::new(BEARER, counting_upstream(&[]));
    let post = || Request {
        method: Method::Post,
        ..cached("a", 60_000)
    };
    world.send(post()).await.0.unwrap();
    assert_eq!(body(&world.send(post()).await.0), "answer 2");
    let head = || Request {
        method: Method::Head,
        ..cached("a", 60_000)
    };
    world.send(head()).await.0.unwrap();
    world.send(head()).await.0.unwrap();
    assert_eq!(world.transport.seen().len(), 3, "the second HEAD was a hit");

    let n = AtomicU32::new(0);
    let world = World::new(
        BEARER,
        Box::new(move |_| respond(404 + n.fetch_add(1, Ordering::SeqCst) as u16, &[], "")),
    );
    world.send(cached("a", 60_000)).await.0.unwrap();
    let (result, _) = world.send(cached("a", 60_000)).await;
    assert_eq!(result.unwrap().status, 405, "a 404 is not kept");
}

#[tokio::test]
async fn vary_names_request_headers_whose_values_must_match() {
    let world = World::new(BEARER, counting_upstream(&[("vary", "Accept-Language")]));
    let with = |language: Option<&str>| Request {
        headers: language
            .map(|l| vec![("accept-language".to_owned(), l.to_owned())])
            .unwrap_or_default(),
        ..cached("a", 60_000)
    };
    assert_eq!(body(&world.send(with(Some("en"))).await.0), "answer 1");
    assert_eq!(body(&world.send(with(Some("en"))).await.0), "answer 1");
    assert_eq!(body(&world.send(with(Some("de"))).await.0), "answer 2");
    // The "de" answer replaced the "en" one; no header is another variant.
    assert_eq!(body(&world.send(with(None)).await.0), "answer 3");
    assert_eq!(body(&world.send(with(None)).await.0), "answer 3");
}

#[tokio::test]
async fn the_kept_response_is_the_scrubbed_one() {
    let world = World::new(
        BEARER,
        Box::new(|seen| {
            let auth = seen.header("authorization").unwrap().to_owned();
            respond(200, &[("x-echo", &auth)], format!("token: {auth}"))
        }),
    );
    world.send(cached("a", 60_000)).await.0.unwrap();
    let (hit, records) = world.send(cached("a", 60_000)).await;
    assert_eq!(records[0].cache.as_deref(), Some("hit"));
    let hit = hit.unwrap();
    let text = String::from_utf8(hit.body).unwrap();
    assert_eq!(text, format!("token: Bearer {REDACTED}"));
    assert!(hit.headers.iter().all(|(_, v)| !v.contains("s3cret")));
}

#[test]
fn a_connections_identity_differs_by_tenant_and_secret_never_holding_it() {
    let world = World::new(BEARER, counting_upstream(&[]));
    let spec = &world.manifest.connections[0];
    let identity = |tenant: &str, file: &str| {
        let config: ConnectionConfig = toml::from_str(file).unwrap();
        BoundConnection::bind(
            spec,
            config,
            tenant,
            world.sender.tokens(),
            &Caches::default(),
        )
        .unwrap()
        .identity
    };
    let other_token = BEARER.replace("s3cret-bearer-value", "another-bearer-value");
    let same = identity("t", BEARER);
    assert_eq!(same, identity("t", BEARER), "same content, same identity");
    assert_ne!(same, identity("u", BEARER));
    assert_ne!(same, identity("t", &other_token));
    assert!(!same.contains("s3cret"), "{same}");
}
