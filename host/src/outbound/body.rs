//! Encoding of request bodies: the host, not the plugin, produces the bytes
//! and the `Content-Type` of each body kind.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use sha2::{Digest, Sha256};

use crate::exchange::{Body, FormPart, SendError};

/// Encodes a body. Returns the bytes and the content type the host sets, if
/// any (`None` keeps the plugin's own `Content-Type` header or sends none).
pub(super) fn encode(
    body: Body,
    headers: &HeaderMap,
) -> Result<(Bytes, Option<HeaderValue>), SendError> {
    let plugin_type = headers.contains_key(CONTENT_TYPE);
    let keep_or = |default: &'static str| (!plugin_type).then(|| HeaderValue::from_static(default));
    let host_typed = |kind: &str| {
        if plugin_type {
            Err(SendError::InvalidRequest(format!(
                "Content-Type is set by the host for {kind} bodies"
            )))
        } else {
            Ok(())
        }
    };
    Ok(match body {
        Body::None => (Bytes::new(), None),
        Body::Json(text) => {
            serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|e| {
                SendError::InvalidRequest(format!("json body is not valid JSON: {e}"))
            })?;
            (Bytes::from(text), keep_or("application/json"))
        }
        Body::Text(text) => (Bytes::from(text), keep_or("text/plain; charset=utf-8")),
        Body::Xml(text) => (Bytes::from(text), keep_or("application/xml")),
        Body::Form(pairs) => {
            host_typed("form")?;
            let encoded = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            (
                Bytes::from(encoded),
                Some(HeaderValue::from_static(
                    "application/x-www-form-urlencoded",
                )),
            )
        }
        Body::Bytes(raw) => {
            host_typed("bytes")?;
            let ct = HeaderValue::try_from(raw.content_type.as_str()).map_err(|_| {
                SendError::InvalidRequest(format!("invalid content type `{}`", raw.content_type))
            })?;
            (Bytes::from(raw.data), Some(ct))
        }
        Body::Graphql(q) => {
            host_typed("graphql")?;
            let variables = match q.variables {
                None => serde_json::Value::Null,
                Some(v) => match serde_json::from_str(&v) {
                    Ok(obj @ serde_json::Value::Object(_)) => obj,
                    _ => {
                        return Err(SendError::InvalidRequest(
                            "graphql variables must be a JSON object".into(),
                        ));
                    }
                },
            };
            let mut doc = serde_json::json!({ "query": q.query });
            if !variables.is_null() {
                doc["variables"] = variables;
            }
            if let Some(op) = q.operation_name {
                doc["operationName"] = op.into();
            }
            (
                Bytes::from(doc.to_string()),
                Some(HeaderValue::from_static("application/json")),
            )
        }
        Body::Multipart(parts) => {
            host_typed("multipart")?;
            let (bytes, boundary) = multipart(&parts)?;
            let ct = HeaderValue::try_from(format!("multipart/form-data; boundary={boundary}"))
                .expect("the boundary is ASCII hex");
            (bytes, Some(ct))
        }
    })
}

/// Encodes `multipart/form-data` (RFC 7578). The boundary is derived from the
/// parts' content and checked not to occur in any part, so the same parts
/// always give the same bytes. Returns the body and the boundary.
fn multipart(parts: &[FormPart]) -> Result<(Bytes, String), SendError> {
    let mut heads = Vec::with_capacity(parts.len());
    for part in parts {
        let mut head = format!(
            "Content-Disposition: form-data; name=\"{}\"",
            quoted(&part.name, "part name")?
        );
        if let Some(filename) = &part.filename {
            head.push_str(&format!(
                "; filename=\"{}\"",
                quoted(filename, "file name")?
            ));
        }
        let content_type = match (&part.content_type, &part.filename) {
            (Some(ct), _) => Some(ct.as_str()),
            (None, Some(_)) => Some("application/octet-stream"),
            (None, None) => None,
        };
        if let Some(ct) = content_type {
            if HeaderValue::try_from(ct).is_err() || ct.contains(['\r', '\n']) {
                return Err(SendError::InvalidRequest(format!(
                    "invalid part content type `{ct}`"
                )));
            }
            head.push_str(&format!("\r\nContent-Type: {ct}"));
        }
        heads.push(head);
    }
    let boundary = boundary_for(parts);
    let mut out = Vec::new();
    for (part, head) in parts.iter().zip(&heads) {
        out.extend_from_slice(format!("--{boundary}\r\n{head}\r\n\r\n").as_bytes());
        out.extend_from_slice(&part.data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok((Bytes::from(out), boundary))
}

/// A boundary that occurs in no part's bytes, name or file name.
fn boundary_for(parts: &[FormPart]) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(part.name.as_bytes());
        digest.update(part.filename.as_deref().unwrap_or_default().as_bytes());
        digest.update(&part.data);
    }
    first_free_boundary(&digest.finalize(), parts)
}

/// The first candidate boundary from `seed` that occurs in no part.
fn first_free_boundary(seed: &[u8], parts: &[FormPart]) -> String {
    (0u32..)
        .map(|n| candidate_boundary(seed, n))
        .find(|b| {
            !parts.iter().any(|p| {
                contains(&p.data, b.as_bytes())
                    || p.name.contains(b.as_str())
                    || p.filename
                        .as_deref()
                        .is_some_and(|f| f.contains(b.as_str()))
            })
        })
        .expect("some counter gives a boundary that occurs nowhere")
}

fn candidate_boundary(seed: &[u8], n: u32) -> String {
    let digest = Sha256::new()
        .chain_update(seed)
        .chain_update(n.to_be_bytes())
        .finalize();
    format!("courier-{}", hex::encode(&digest[..16]))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A name or file name for a quoted `Content-Disposition` parameter, escaped
/// as browsers do (`"` → `%22`, CR → `%0D`, LF → `%0A`); NUL is refused.
fn quoted(value: &str, what: &str) -> Result<String, SendError> {
    if value.contains('\0') {
        return Err(SendError::InvalidRequest(format!(
            "NUL in a multipart {what}"
        )));
    }
    Ok(value
        .replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{GraphqlRequest, RawBody};

    #[test]
    fn form_keeps_order_repeats_and_brackets() {
        let pairs = vec![
            ("metadata[order_id]".into(), "6735".into()),
            ("a".into(), "1 2".into()),
            ("a".into(), "&".into()),
        ];
        let (bytes, ct) = encode(Body::Form(pairs), &HeaderMap::new()).unwrap();
        assert_eq!(&bytes[..], b"metadata%5Border_id%5D=6735&a=1+2&a=%26");
        assert_eq!(ct.unwrap(), "application/x-www-form-urlencoded");
    }

    #[test]
    fn json_must_be_valid_and_plugin_type_is_kept() {
        assert!(encode(Body::Json("{nope".into()), &HeaderMap::new()).is_err());
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.api+json"),
        );
        let (_, ct) = encode(Body::Json("{}".into()), &h).unwrap();
        assert!(ct.is_none());
    }

    #[test]
    fn host_typed_bodies_refuse_a_plugin_content_type() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let raw = Body::Bytes(RawBody {
            content_type: "image/png".into(),
            data: vec![1],
        });
        assert!(matches!(encode(raw, &h), Err(SendError::InvalidRequest(_))));
    }

    #[test]
    fn graphql_becomes_a_json_document() {
        let q = GraphqlRequest {
            query: "{ me }".into(),
            variables: Some("{\"a\":1}".into()),
            operation_name: Some("Me".into()),
        };
        let (bytes, _) = encode(Body::Graphql(q), &HeaderMap::new()).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"query": "{ me }", "variables": {"a": 1}, "operationName": "Me"})
        );
    }

    fn part(
        name: &str,
        filename: Option<&str>,
        content_type: Option<&str>,
        data: &[u8],
    ) -> FormPart {
        FormPart {
            name: name.into(),
            filename: filename.map(Into::into),
            content_type: content_type.map(Into::into),
            data: data.to_vec(),
        }
    }

    #[test]
    fn multipart_frames_text_fields_and_files() {
        let parts = vec![
            part("note", None, None, b"hi"),
            part("doc", Some("a \"b\".bin"), None, &[0, 1, 2]),
            part("img", Some("x.png"), Some("image/png"), b"png"),
        ];
        let (bytes, ct) = encode(Body::Multipart(parts.clone()), &HeaderMap::new()).unwrap();
        let ct = ct.unwrap();
        let boundary = ct
            .to_str()
            .unwrap()
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap()
            .to_owned();
        let mut want = Vec::new();
        want.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n")
                .as_bytes(),
        );
        want.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a %22b%22.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        want.extend_from_slice(&[0, 1, 2]);
        want.extend_from_slice(format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"img\"; filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\npng\r\n--{boundary}--\r\n").as_bytes());
        assert_eq!(&bytes[..], &want[..]);
        let (again, _) = encode(Body::Multipart(parts), &HeaderMap::new()).unwrap();
        assert_eq!(again, bytes, "the same parts give the same bytes");
    }

    #[test]
    fn multipart_boundary_never_occurs_in_a_part() {
        let first = candidate_boundary(b"seed", 0);
        let evil = part("a", None, None, format!("--{first}--").as_bytes());
        assert_eq!(
            first_free_boundary(b"seed", &[evil]),
            candidate_boundary(b"seed", 1)
        );
    }

    #[test]
    fn multipart_refuses_header_injection() {
        let bad = part("f", Some("x"), Some("text/plain\r\nX-Evil: 1"), b"");
        assert!(matches!(
            encode(Body::Multipart(vec![bad]), &HeaderMap::new()),
            Err(SendError::InvalidRequest(_))
        ));
        let (bytes, _) = encode(
            Body::Multipart(vec![part("a\r\nX-Evil: 1", None, None, b"")]),
            &HeaderMap::new(),
        )
        .unwrap();
        assert!(
            !bytes.windows(9).any(|w| w == b"\r\nX-Evil"),
            "CR/LF in a name are escaped"
        );
    }
}
