//! Credentials reach the upstream; the plugin never sees them.

use courier_host::Outcome;
use courier_tests::{Reply, TestServer, echo_json, host_builder, host_with};
use serde_json::json;

use crate::step;

const TOKEN: &str = "tok_Sup3rSecret-9f8e7d";

fn bearer(base: &str) -> String {
    format!(
        "connection = 'default'\nbase_url = '{base}'\nauth = 'bearer'\n[secrets]\ntoken = '{TOKEN}'"
    )
}

#[tokio::test]
async fn bearer_reaches_the_server_and_never_the_plugin() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/me"}),
        &[&bearer(&server.url("/"))],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        server.received()[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let everything = serde_json::to_string(&r).unwrap();
    assert!(
        !everything.contains(TOKEN),
        "the step result leaks the token: {everything}"
    );
    let out = r.output.unwrap();
    assert_eq!(
        out["headers"]["x-echo-authorization"], "Bearer [REDACTED]",
        "{out}"
    );
    assert!(
        out["body"].to_string().contains("Bearer [REDACTED]"),
        "{out}"
    );
}

#[tokio::test]
async fn encoded_echoes_are_scrubbed_too() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(TOKEN);
    let server = TestServer::start(move |r| {
        let mut reply = Reply::json(200, echo_json(r));
        reply.headers.push(("x-b64".into(), b64.clone()));
        reply
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/me"}),
        &[&bearer(&server.url("/"))],
    )
    .await;
    let out = r.output.unwrap().to_string();
    let b64 = base64::engine::general_purpose::STANDARD.encode(TOKEN);
    assert!(!out.contains(&b64) && !out.contains(TOKEN), "{out}");
}

#[tokio::test]
async fn basic_and_api_key_query_are_injected_and_scrubbed() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let basic = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'basic'\n[secrets]\nusername = 'ada'\npassword = 'pw-{TOKEN}'",
        server.url("")
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/b"}),
        &[&basic],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(
        server.received()[0]
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    assert!(
        !serde_json::to_string(&r).unwrap().contains("YWRh"),
        "base64 of user:pass must not leak"
    );

    let key = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'api-key'\nquery = 'api_key'\n[secrets]\nkey = '{TOKEN}'",
        server.url("")
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/k", "params": {"q": "1"}}),
        &[&key],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(
        server.received()[1]
            .query()
            .contains(&("api_key".into(), TOKEN.into()))
    );
    let everything = serde_json::to_string(&r).unwrap();
    assert!(!everything.contains(TOKEN), "{everything}");
}

#[tokio::test]
async fn credentials_stay_home_when_the_request_goes_elsewhere() {
    let home = TestServer::echo().await;
    let other = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": other.url("/x")}),
        &[&bearer(&home.url("/"))],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(other.received()[0].header("authorization"), None);
}

#[tokio::test]
async fn redirect_to_another_origin_drops_the_credential() {
    let other = TestServer::echo().await;
    let target = other.url("/landed");
    let home = TestServer::start(move |_| Reply {
        status: 307,
        headers: vec![("location".into(), target.clone())],
        body: vec![],
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/go"}),
        &[&bearer(&home.url("/"))],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(home.received()[0].header("authorization").is_some());
    assert_eq!(other.received()[0].header("authorization"), None);
}

#[tokio::test]
async fn a_plugin_cannot_set_the_authorization_header() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["misbehave"]).await;
    let input = json!({"url": server.url("/"), "headers": {"Authorization": "Bearer mine"}});
    let r = step(&host, "misbehave", "send", input, &[]).await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    assert_eq!(r.error.unwrap().kind, "invalid-request");
    assert_eq!(server.connections(), 0);
}

/// Token alphabets real keys use: base64, base64url and `-_.~`, hex, and
/// printable ASCII (no space at either end: HTTP trims header values).
const ALPHABETS: [&str; 4] = [
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~",
    "0123456789abcdef",
    " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
];

/// The forms `tests/support/encoding_echo.py` writes with Python's encoders.
pub(crate) const FORMS: [&str; 21] = [
    "raw",
    "json-ascii",
    "json-php",
    "json-all-upper",
    "json-all-lower",
    "percent",
    "percent-lower",
    "percent-every-byte",
    "form",
    "html",
    "html-named",
    "html-decimal",
    "html-hex",
    "xml",
    "base64",
    "base64-nopad",
    "base64url",
    "base64url-nopad",
    "base64-basic-pair",
    "base64-inside",
    "json-all-of-percent",
];

/// Where the upstream puts the encoded token.
const PLACES: [&str; 9] = [
    "json", "text", "xml", "html", "form", "gzip", "header", "location", "error",
];

/// A small deterministic generator (xorshift), seeded per run and printed,
/// so a failure can be replayed with `COURIER_SECRETS_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn token(&mut self, alphabet: &str) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        let len = 8 + (self.next() % 33) as usize;
        let mut token: String = (0..len)
            .map(|_| chars[(self.next() % chars.len() as u64) as usize])
            .collect();
        token = token.trim().to_owned();
        while token.len() < 8 {
            token.push('x');
        }
        token
    }
}

/// Every string in a step result, and what Python-independent decoders
/// (percent, form, HTML, base64 at every offset) make of it.
pub(crate) fn readable_forms(result: &serde_json::Value) -> Vec<Vec<u8>> {
    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            serde_json::Value::Object(m) => m.iter().for_each(|(k, v)| {
                out.push(k.clone());
                strings(v, out);
            }),
            _ => {}
        }
    }
    let mut all = vec![];
    strings(result, &mut all);
    let mut out = vec![];
    for s in all {
        let percent = percent_encoding::percent_decode_str(&s).collect::<Vec<u8>>();
        let form: String = form_urlencoded::parse(format!("x={s}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .collect();
        let html = html_escape::decode_html_entities(&s).into_owned();
        let json = serde_json::from_str::<String>(&format!("\"{s}\"")).unwrap_or_default();
        for text in [
            s.as_bytes().to_vec(),
            percent,
            form.into_bytes(),
            html.into_bytes(),
            json.into_bytes(),
        ] {
            let printable = String::from_utf8_lossy(&text).into_owned();
            for run in printable.split(|c: char| !(c.is_ascii_alphanumeric() || "+/-_".contains(c)))
            {
                for start in 0..run.len().min(4) {
                    let body = &run[start..];
                    let body = &body[..body.len() / 4 * 4];
                    for engine in [&data_encoding::BASE64, &data_encoding::BASE64URL] {
                        if let Ok(bytes) = engine.decode(body.as_bytes()) {
                            out.push(bytes);
                        }
                    }
                }
            }
            out.push(text);
        }
    }
    out
}

/// Random tokens × every form a real encoder writes (Python's standard
/// library in the upstream) × every place in a response (JSON, text, XML,
/// HTML and form bodies, a gzip body, a header, a redirect's target and
/// final URL, an error message) × random chunk boundaries: the step result
/// never holds the token in any form those decoders read back, each echo was
/// found (`[REDACTED]` is there), and a JSON body stays JSON with its numbers.
#[tokio::test]
async fn every_encoded_echo_is_scrubbed_everywhere() {
    let seed = std::env::var("COURIER_SECRETS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("COURIER_SECRETS_SEED={seed}");
    let mut rng = Rng(seed);
    let upstream = courier_tests::encoding_echo();
    let host = host_with(host_builder(), &["http-request"]).await;
    for alphabet in ALPHABETS {
        let token = rng.token(alphabet);
        let connection = format!(
            "connection = 'default'\nbase_url = '{}'\nauth = 'bearer'\n[secrets]\ntoken = {}",
            upstream.url("/"),
            toml::Value::String(token.clone())
        );
        for form in FORMS {
            for place in PLACES {
                let url = format!("/{form}/{place}?seed={}", rng.next() % 1000);
                let r = step(
                    &host,
                    "http-request",
                    "request",
                    json!({"url": url}),
                    &[&connection],
                )
                .await;
                let what = format!("{form} in {place} (token {token:?}, seed {seed})");
                let expected = if place == "error" {
                    Outcome::Error
                } else {
                    Outcome::Success
                };
                assert_eq!(r.outcome, expected, "{what}: {r:?}");
                let text = serde_json::to_string(&r).unwrap();
                assert!(
                    text.contains(REDACTED_TEXT),
                    "{what}: the echo was not found: {text}"
                );
                let value = serde_json::to_value(&r).unwrap();
                for readable in readable_forms(&value) {
                    assert!(
                        !readable.windows(token.len()).any(|w| w == token.as_bytes()),
                        "{what}: the token is readable in {}",
                        String::from_utf8_lossy(&readable)
                    );
                }
                if place == "json" {
                    let body = &r.output.as_ref().unwrap()["body"];
                    assert_eq!(body["id"], 912345678, "{what}: {body}");
                    assert!(body["nested"]["list"].is_array(), "{what}: {body}");
                }
            }
        }
    }
}

const REDACTED_TEXT: &str = "[REDACTED]";
