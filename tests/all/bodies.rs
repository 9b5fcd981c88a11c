//! Every method and body kind of `http-request`, checked by parsing what the
//! server received.

use courier_host::Outcome;
use courier_tests::{
    ReceivedPart, TestServer, form_pairs, host_builder, host_with, multipart_parts,
};
use serde_json::json;

use crate::step;

#[tokio::test]
async fn every_method_arrives_as_sent() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    for method in methods {
        let r = step(
            &host,
            "http-request",
            "request",
            json!({"url": server.url("/m"), "method": method.to_lowercase()}),
            &[],
        )
        .await;
        assert_eq!(r.outcome, Outcome::Success, "{method}: {r:?}");
        assert_eq!(r.requests[0].method, method);
    }
    let arrived: Vec<String> = server.received().into_iter().map(|r| r.method).collect();
    assert_eq!(arrived, methods);
}

#[tokio::test]
async fn raw_bodies_in_utf8_base64_and_hex() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    for (encoding, text) in [
        ("utf8", "héllo"),
        ("base64", "/wD+AQ=="),
        ("hex", "ff00FE01"),
    ] {
        let input = json!({
            "url": server.url("/raw"), "method": "PUT", "body_type": "raw", "encoding": encoding,
            "body": text, "headers": {"Content-Type": "image/x-test"},
        });
        let r = step(&host, "http-request", "request", input, &[]).await;
        assert_eq!(r.outcome, Outcome::Success, "{encoding}: {r:?}");
    }
    let received = server.received();
    assert_eq!(received[0].body, "héllo".as_bytes());
    assert_eq!(received[1].body, [0xff, 0x00, 0xfe, 0x01]);
    assert_eq!(received[2].body, [0xff, 0x00, 0xfe, 0x01]);
    assert!(
        received
            .iter()
            .all(|r| r.header("content-type") == Some("image/x-test"))
    );

    let bad = json!({"url": server.url("/raw"), "method": "PUT", "body_type": "raw", "encoding": "hex", "body": "xyz"});
    let r = step(&host, "http-request", "request", bad, &[]).await;
    assert_eq!(r.error.unwrap().kind, "invalid-input");
    assert_eq!(
        server.received().len(),
        3,
        "an undecodable body is never sent"
    );
}

#[tokio::test]
async fn multipart_text_fields_and_file_parts() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let input = json!({
        "url": server.url("/upload"),
        "method": "POST",
        "body_type": "multipart",
        "body": [
            {"name": "purpose", "value": "dispute_evidence"},
            {"name": "note", "value": "line 1\r\nline 2 \"quoted\""},
            {"name": "file", "filename": "receipt.png", "content_type": "image/png", "value": "iVBORw0KGgo=", "encoding": "base64"},
            {"name": "blob", "filename": "raw.bin", "value": "00ff2d2d0d0a", "encoding": "hex"},
        ],
    });
    let r = step(&host, "http-request", "request", input, &[]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let got = &server.received()[0];
    let parts = multipart_parts(got.header("content-type").unwrap(), &got.body);
    let part = |name: &str, filename: Option<&str>, content_type: Option<&str>, data: &[u8]| {
        ReceivedPart {
            name: name.into(),
            filename: filename.map(Into::into),
            content_type: content_type.map(Into::into),
            data: data.to_vec(),
        }
    };
    assert_eq!(
        parts,
        [
            part("purpose", None, None, b"dispute_evidence"),
            part("note", None, None, b"line 1\r\nline 2 \"quoted\""),
            part(
                "file",
                Some("receipt.png"),
                Some("image/png"),
                &[0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n']
            ),
            part(
                "blob",
                Some("raw.bin"),
                Some("application/octet-stream"),
                &[0x00, 0xff, b'-', b'-', b'\r', b'\n']
            ),
        ]
    );
    assert_eq!(
        got.header("content-length"),
        Some(got.body.len().to_string().as_str())
    );
}

#[tokio::test]
async fn xml_and_graphql_bodies() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let xml = "<order id=\"7\"><item>a &amp; b</item></order>";
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/x"), "method": "POST", "body_type": "xml", "body": xml}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let graphql = json!({"query": "query Me($id: ID!) { user(id: $id) { name } }", "variables": {"id": "42"}, "operation_name": "Me"});
    let r = step(&host, "http-request", "request", json!({"url": server.url("/graphql"), "method": "POST", "body_type": "graphql", "body": graphql}), &[]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");

    let received = server.received();
    assert_eq!(received[0].header("content-type"), Some("application/xml"));
    assert_eq!(received[0].body, xml.as_bytes());
    assert_eq!(received[1].method, "POST");
    assert_eq!(received[1].header("content-type"), Some("application/json"));
    let doc: serde_json::Value = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!(
        doc,
        json!({"query": "query Me($id: ID!) { user(id: $id) { name } }", "variables": {"id": "42"}, "operationName": "Me"})
    );
}

#[tokio::test]
async fn form_bodies_on_patch_and_delete() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    for method in ["PATCH", "DELETE"] {
        let input = json!({"url": server.url("/f"), "method": method, "body_type": "form", "body": [["a", "1"], ["a", "2 3"]]});
        let r = step(&host, "http-request", "request", input, &[]).await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    }
    for got in server.received() {
        assert_eq!(
            form_pairs(&got.body),
            [("a", "1"), ("a", "2 3")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }
}
