//! Cassettes: a step recorded once against a live upstream (secrets replaced
//! by `[REDACTED]` before anything is written) and replayed offline
//! (`Recorder`, `Replayer`, `courier test`).

use std::sync::{Arc, OnceLock};

use courier_host::{Cassette, Outcome, Recorder, Replayer, Transport};
use courier_tests::{TestServer, host_builder, host_with, scratch_dir};
use serde_json::json;

use crate::cli::courier;
use crate::secrets::{FORMS, readable_forms};
use crate::step;

/// The canary: characters every encoder escapes differently.
const TOKEN: &str = "Can4ry/+=&<>'\" %~tok_9f";

fn bearer(base: &str, token: &str) -> String {
    format!(
        "connection = 'default'\nbase_url = '{base}'\nauth = 'bearer'\n[secrets]\ntoken = {}",
        toml::Value::String(token.into())
    )
}

/// Where a cassette holds the token in a form the independent decoders read
/// back, JSON bodies (strings of the cassette) decoded too.
fn leaks(cassette: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(cassette).expect("a cassette is JSON");
    leaks_in(&value)
}

fn leaks_in(value: &serde_json::Value) -> Option<String> {
    let found = readable_forms(value)
        .into_iter()
        .find(|r| r.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()))
        .map(|r| String::from_utf8_lossy(&r).into_owned());
    found.or_else(|| match value {
        serde_json::Value::String(s) => serde_json::from_str::<serde_json::Value>(s)
            .ok()
            .filter(|v| v.is_object() || v.is_array())
            .and_then(|v| leaks_in(&v)),
        serde_json::Value::Array(a) => a.iter().find_map(leaks_in),
        serde_json::Value::Object(m) => m.values().find_map(leaks_in),
        _ => None,
    })
}

/// Recorded against a live echo of the credential, replayed with the server
/// gone and a dummy secret: the same outcome and output; the cassette holds
/// the placeholder, never the token. A changed request is refused, naming
/// what differs from the closest recording.
#[tokio::test]
async fn recorded_once_replayed_offline_with_the_same_result() {
    let server = TestServer::echo().await;
    let recorder: Arc<OnceLock<Arc<Recorder>>> = Arc::default();
    let slot = recorder.clone();
    let builder = host_builder().wrap_transport(move |inner| {
        let r = Arc::new(Recorder::new(inner));
        slot.set(r.clone()).ok();
        r as Arc<dyn Transport>
    });
    let host = host_with(builder, &["http-request"]).await;
    let input = json!({"url": "/me?page=2", "method": "POST", "body": {"name": "Ada"}});
    let live = step(
        &host,
        "http-request",
        "request",
        input.clone(),
        &[&bearer(&server.url("/"), TOKEN)],
    )
    .await;
    assert_eq!(live.outcome, Outcome::Success, "{live:?}");
    assert_eq!(server.received().len(), 1);
    let text = recorder.get().unwrap().cassette().to_json();
    assert!(text.contains("Bearer [REDACTED]"), "{text}");
    assert_eq!(leaks(&text), None, "the cassette leaks the token: {text}");
    let base = server.url("/");
    drop(server);

    let cassette = Cassette::from_json(&text).unwrap();
    assert_eq!(cassette.len(), 1);
    let replayer = Arc::new(Replayer::new(cassette));
    let host = host_with(
        host_builder().transport(replayer.clone()),
        &["http-request"],
    )
    .await;
    let dummy = bearer(&base, "dummy-token-for-ci");
    let again = step(&host, "http-request", "request", input.clone(), &[&dummy]).await;
    assert_eq!(again.outcome, Outcome::Success, "{again:?}");
    assert_eq!(again.output, live.output);
    assert!(replayer.mismatches().is_empty());

    let changed = json!({"url": "/me?page=3", "method": "POST", "body": {"name": "Bob"}});
    let r = step(&host, "http-request", "request", changed, &[&dummy]).await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    let why = replayer.mismatches().join("\n");
    assert!(
        why.contains("query: recorded `page=2`, sent `page=3`")
            && why.contains("body at `/name`: recorded `\"Ada\"`, sent `\"Bob\"`"),
        "{why}"
    );
    assert!(r.error.unwrap().message.contains("cassette mismatch"));
}

/// Where the upstream puts the encoded token in these cases (see
/// `tests/support/encoding_echo.py`); `gzip` checks that a compressed body
/// is decoded before it is scrubbed, `location` a redirect's two hops.
const PLACES: [&str; 5] = ["json", "header", "gzip", "location", "form"];

/// `courier test --record` against an upstream echoing the token in every
/// form Python's encoders write and in every place: no cassette holds it in
/// any form; `courier test` then passes offline, and a changed input fails
/// naming the difference.
#[test]
fn courier_test_records_without_secrets_and_replays() {
    let upstream = courier_tests::encoding_echo();
    let dir = scratch_dir("cassettes-cli");
    std::fs::write(dir.join("api.toml"), bearer(&upstream.url("/"), TOKEN)).unwrap();
    let mut cases = String::from("allow_network = [\"127.0.0.1/32\"]\n");
    for form in FORMS {
        for place in PLACES {
            cases += &format!(
                "\n[[case]]\nname = \"{form}-{place}\"\ncall = \"request\"\n\
                 input = {{ url = \"/{form}/{place}?seed=7\" }}\n\
                 connections = {{ default = \"api.toml\" }}\n"
            );
        }
    }
    std::fs::write(dir.join("courier-test.toml"), &cases).unwrap();
    let plugin = courier_tests::plugin("http-request");
    let run = |args: &[&str], cases: &str| {
        let out = courier()
            .arg("test")
            .arg(&plugin)
            .args(["--cases", cases])
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.code(),
            stdout + &String::from_utf8_lossy(&out.stderr),
        )
    };

    let (code, out) = run(&["--record"], "courier-test.toml");
    let total = FORMS.len() * PLACES.len();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("{total} passed, 0 failed")), "{out}");
    let mut redacted = 0;
    for entry in std::fs::read_dir(dir.join("cassettes")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(leaks(&text), None, "{} leaks the token", path.display());
        // The echo is in a response (a gzip body decoded before scrubbing,
        // or a redirect's `Location`), not only in the request's header.
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let responses = value["interactions"].as_array().unwrap().iter();
        let echoed = responses
            .map(|i| i["response"].to_string())
            .any(|r| r.contains("[REDACTED]") && !r.contains("content-encoding"));
        redacted += usize::from(echoed);
    }
    assert_eq!(redacted, total, "every cassette holds the echo, scrubbed");

    // Offline: the cassettes answer, whatever the connection holds.
    let elsewhere = bearer("http://127.0.0.1:9", "dummy-token-for-ci");
    std::fs::write(dir.join("api.toml"), elsewhere).unwrap();
    let (code, out) = run(&[], "courier-test.toml");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("origin: recorded"), "{out}");

    std::fs::write(
        dir.join("api.toml"),
        bearer(&upstream.url("/"), "dummy-token-for-ci"),
    )
    .unwrap();
    let (code, out) = run(&[], "courier-test.toml");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("{total} passed, 0 failed")), "{out}");

    let changed = cases.replacen("/raw/json?seed=7", "/raw/json?seed=8", 1);
    std::fs::write(dir.join("changed.toml"), changed).unwrap();
    let (code, out) = run(&[], "changed.toml");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL raw-json: GET")
            && out.contains("query: recorded `seed=7`, sent `seed=8`"),
        "{out}"
    );
}
