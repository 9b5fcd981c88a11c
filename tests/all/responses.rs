//! What comes back is decoded and bounded: content codings, decoded size cap,
//! header caps; scrubbing sees the decoded bytes.

use std::io::Write;

use courier_host::{Limits, Outcome};
use courier_tests::{Reply, TestServer, host_builder, host_with};
use serde_json::json;

use crate::step;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
    e.write_all(data).unwrap();
    drop(e);
    out
}

fn encoded(coding: &str, body: Vec<u8>) -> Reply {
    Reply {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("content-encoding".into(), coding.into()),
        ],
        body,
    }
}

#[tokio::test]
async fn gzip_deflate_and_brotli_are_decoded() {
    let doc = json!({"items": vec!["the same words again"; 50]});
    let plain = doc.to_string().into_bytes();
    let server = TestServer::start(move |r| match r.uri.as_str() {
        "/gzip" => encoded("gzip", gzip(&plain)),
        "/deflate" => encoded("deflate", zlib(&plain)),
        _ => encoded("br", brotli(&plain)),
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    for path in ["/gzip", "/deflate", "/br"] {
        let r = step(
            &host,
            "http-request",
            "request",
            json!({"url": server.url(path)}),
            &[],
        )
        .await;
        assert_eq!(r.outcome, Outcome::Success, "{path}: {r:?}");
        let out = r.output.unwrap();
        assert_eq!(out["body"], doc, "{path}");
        assert!(
            out["headers"].get("content-encoding").is_none(),
            "{path}: the coding is gone once decoded: {out}"
        );
    }
    for got in server.received() {
        assert_eq!(got.header("accept-encoding"), Some("gzip, deflate, br"));
    }
}

#[tokio::test]
async fn a_compressed_bomb_ends_in_too_large() {
    let bomb = gzip(&vec![b'a'; 64 << 20]);
    assert!(
        bomb.len() < 128 << 10,
        "64 MiB compress to {} bytes",
        bomb.len()
    );
    let server = TestServer::start(move |_| encoded("gzip", bomb.clone())).await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/bomb")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    let error = r.error.unwrap();
    assert_eq!(error.kind, "too-large", "{error:?}");
    assert!(error.message.contains("decoded"), "{error:?}");
}

#[tokio::test]
async fn an_oversized_plain_body_ends_in_too_large() {
    let server = TestServer::start(|_| Reply {
        status: 200,
        headers: vec![],
        body: vec![b'x'; 4096],
    })
    .await;
    let limits = Limits {
        max_response_bytes: 4095,
        ..Limits::default()
    };
    let host = host_with(host_builder().limits(limits), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/big")}),
        &[],
    )
    .await;
    assert_eq!(r.error.unwrap().kind, "too-large");

    let limits = Limits {
        max_response_bytes: 4096,
        ..Limits::default()
    };
    let host = host_with(host_builder().limits(limits), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/big")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "exactly the cap passes: {r:?}");
}

#[tokio::test]
async fn oversized_or_too_many_response_headers_end_in_too_large() {
    let server = TestServer::start(|r| {
        let headers = match r.uri.as_str() {
            "/long" => vec![("x-long".into(), "v".repeat(100 << 10))],
            "/many" => (0..150).map(|i| (format!("x-h{i}"), "v".into())).collect(),
            _ => (0..50).map(|i| (format!("x-h{i}"), "v".into())).collect(),
        };
        Reply {
            status: 200,
            headers,
            body: b"ok".to_vec(),
        }
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    for path in ["/long", "/many"] {
        let r = step(
            &host,
            "http-request",
            "request",
            json!({"url": server.url(path)}),
            &[],
        )
        .await;
        assert_eq!(
            r.error.as_ref().map(|e| e.kind.as_str()),
            Some("too-large"),
            "{path}: {r:?}"
        );
    }
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/fine")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
}

#[tokio::test]
async fn secrets_are_scrubbed_from_decoded_bodies_and_accept_encoding_is_the_hosts() {
    const TOKEN: &str = "sk_live_compressed_0123456789";
    let server = TestServer::start(|r| {
        let echoed = json!({"seen": r.header("authorization")}).to_string();
        encoded("gzip", gzip(echoed.as_bytes()))
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'bearer'\n[secrets]\ntoken = '{TOKEN}'",
        server.url("/")
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/echo"}),
        &[&conn],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        server.received()[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let out = serde_json::to_string(&r.output).unwrap();
    assert!(
        !out.contains(TOKEN),
        "the decoded body leaks the token: {out}"
    );

    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/echo", "headers": {"Accept-Encoding": "identity"}}),
        &[&conn],
    )
    .await;
    assert_eq!(r.error.unwrap().kind, "invalid-request");
    assert_eq!(server.received().len(), 1);
}
