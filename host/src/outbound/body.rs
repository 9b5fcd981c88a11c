//! Encoding of request bodies: the host, not the plugin, produces the bytes
//! and the `Content-Type` of each body kind.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use crate::bindings::types::{Body, SendError};

/// Encodes a body. Returns the bytes and the content type the host sets, if
/// any (`None` keeps the plugin's own `Content-Type` header or sends none).
pub(super) fn encode(body: Body, headers: &HeaderMap) -> Result<(Bytes, Option<HeaderValue>), SendError> {
    let plugin_type = headers.contains_key(CONTENT_TYPE);
    let keep_or = |default: &'static str| (!plugin_type).then(|| HeaderValue::from_static(default));
    let host_typed = |kind: &str| {
        if plugin_type {
            Err(SendError::InvalidRequest(format!("Content-Type is set by the host for {kind} bodies")))
        } else {
            Ok(())
        }
    };
    Ok(match body {
        Body::None => (Bytes::new(), None),
        Body::Json(text) => {
            serde_json::from_str::<serde::de::IgnoredAny>(&text)
                .map_err(|e| SendError::InvalidRequest(format!("json body is not valid JSON: {e}")))?;
            (Bytes::from(text), keep_or("application/json"))
        }
        Body::Text(text) => (Bytes::from(text), keep_or("text/plain; charset=utf-8")),
        Body::Xml(text) => (Bytes::from(text), keep_or("application/xml")),
        Body::Form(pairs) => {
            host_typed("form")?;
            let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
            (Bytes::from(encoded), Some(HeaderValue::from_static("application/x-www-form-urlencoded")))
        }
        Body::Bytes(raw) => {
            host_typed("bytes")?;
            let ct = HeaderValue::try_from(raw.content_type.as_str())
                .map_err(|_| SendError::InvalidRequest(format!("invalid content type `{}`", raw.content_type)))?;
            (Bytes::from(raw.data), Some(ct))
        }
        Body::Graphql(q) => {
            host_typed("graphql")?;
            let variables = match q.variables {
                None => serde_json::Value::Null,
                Some(v) => match serde_json::from_str(&v) {
                    Ok(obj @ serde_json::Value::Object(_)) => obj,
                    _ => return Err(SendError::InvalidRequest("graphql variables must be a JSON object".into())),
                },
            };
            let mut doc = serde_json::json!({ "query": q.query });
            if !variables.is_null() {
                doc["variables"] = variables;
            }
            if let Some(op) = q.operation_name {
                doc["operationName"] = op.into();
            }
            (Bytes::from(doc.to_string()), Some(HeaderValue::from_static("application/json")))
        }
        Body::Multipart(_) => {
            return Err(SendError::InvalidRequest("multipart bodies are not implemented yet".into()));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{GraphqlRequest, RawBody};

    #[test]
    fn form_keeps_order_repeats_and_brackets() {
        let pairs = vec![("metadata[order_id]".into(), "6735".into()), ("a".into(), "1 2".into()), ("a".into(), "&".into())];
        let (bytes, ct) = encode(Body::Form(pairs), &HeaderMap::new()).unwrap();
        assert_eq!(&bytes[..], b"metadata%5Border_id%5D=6735&a=1+2&a=%26");
        assert_eq!(ct.unwrap(), "application/x-www-form-urlencoded");
    }

    #[test]
    fn json_must_be_valid_and_plugin_type_is_kept() {
        assert!(encode(Body::Json("{nope".into()), &HeaderMap::new()).is_err());
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/vnd.api+json"));
        let (_, ct) = encode(Body::Json("{}".into()), &h).unwrap();
        assert!(ct.is_none());
    }

    #[test]
    fn host_typed_bodies_refuse_a_plugin_content_type() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let raw = Body::Bytes(RawBody { content_type: "image/png".into(), data: vec![1] });
        assert!(matches!(encode(raw, &h), Err(SendError::InvalidRequest(_))));
    }

    #[test]
    fn graphql_becomes_a_json_document() {
        let q = GraphqlRequest { query: "{ me }".into(), variables: Some("{\"a\":1}".into()), operation_name: Some("Me".into()) };
        let (bytes, _) = encode(Body::Graphql(q), &HeaderMap::new()).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc, serde_json::json!({"query": "{ me }", "variables": {"a": 1}, "operationName": "Me"}));
    }

    #[test]
    fn multipart_is_a_typed_not_implemented() {
        let err = encode(Body::Multipart(vec![]), &HeaderMap::new()).unwrap_err();
        assert!(matches!(err, SendError::InvalidRequest(m) if m.contains("not implemented")));
    }
}
