//! `courier curl` against the oracle it imitates: each command, copied from
//! a vendor's API reference, is run by the real `curl` against a local
//! recording server, and converted by `courier curl` and run as a step
//! against another; the two requests must say the same (method, path and
//! query, credential, the headers the command sets, the body as its media
//! type reads).

use std::path::Path;
use std::process::Command;

use courier_tests::{Received, TestServer, scratch_dir};
use serde_json::Value;

use crate::cli::courier;

/// Commands as the vendors' API references print them (placeholders filled
/// in as a reader would), with the origin each one calls.
const COMMANDS: &[(&str, &str, &str)] = &[
    (
        // https://docs.stripe.com/api/customers/create
        "stripe",
        "https://api.stripe.com",
        r#"curl https://api.stripe.com/v1/customers \
  -u "sk_test_4eC39HqLyjWDarjtT1zdp7dc:" \
  -d name="Jenny Rosen" \
  --data-urlencode email="jennyrosen@example.com" \
  -d "metadata[order_id]"=6735"#,
    ),
    (
        // https://api.slack.com/methods/chat.postMessage
        "slack",
        "https://slack.com",
        r#"curl -X POST -H 'Authorization: Bearer xoxb-1234-56789abcdefghijklmnop' \
-H 'Content-type: application/json' \
--data '{"channel":"C123ABC456","text":"I hope the tour went well, Mr. Wonka."}' \
https://slack.com/api/chat.postMessage"#,
    ),
    (
        // https://docs.github.com/en/rest/issues/issues#create-an-issue
        "github",
        "https://api.github.com",
        r#"curl -L \
  -X POST \
  -H "Accept: application/vnd.github+json" \
  -H "Authorization: Bearer github_pat_11ABCDEFG0123456789" \
  -H "X-GitHub-Api-Version: 2022-11-28" \
  https://api.github.com/repos/OWNER/REPO/issues \
  -d '{"title":"Found a bug","body":"I'\''m having a problem with this.","assignees":["octocat"],"milestone":1,"labels":["bug"]}'"#,
    ),
    (
        // https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
        "twilio",
        "https://api.twilio.com",
        r#"curl -X POST "https://api.twilio.com/2010-04-01/Accounts/ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/Messages.json" \
--data-urlencode "To=+15558675310" \
--data-urlencode "From=+15017122661" \
--data-urlencode "Body=Hi there" \
-u ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:your_auth_token_1234"#,
    ),
    (
        // https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send
        "sendgrid",
        "https://api.sendgrid.com",
        r#"curl --request POST \
  --url https://api.sendgrid.com/v3/mail/send \
  --header 'Authorization: Bearer SG.abcdefghijklmnop' \
  --header 'Content-Type: application/json' \
  --data '{"personalizations":[{"to":[{"email":"john.doe@example.com","name":"John Doe"}],"subject":"Hello, World!"}],"content": [{"type": "text/plain", "value": "Heya!"}],"from":{"email":"sam.smith@example.com","name":"Sam Smith"},"reply_to":{"email":"sam.smith@example.com","name":"Sam Smith"}}'"#,
    ),
];

/// The body as its media type reads it: form pairs, JSON, or the bytes.
fn body_meaning(r: &Received) -> Value {
    let media = r
        .header("content-type")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" => serde_json::from_slice(&r.body).expect("a JSON body"),
        "application/x-www-form-urlencoded"
            if serde_json::from_slice::<Value>(&r.body).is_err() =>
        {
            courier_tests::form_pairs(&r.body)
                .into_iter()
                .map(|(k, v)| Value::from(vec![k, v]))
                .collect()
        }
        _ => Value::from(String::from_utf8_lossy(&r.body).into_owned()),
    }
}

#[tokio::test]
async fn vendor_curl_commands_become_steps_that_send_what_curl_sends() {
    for (vendor, origin, command) in COMMANDS {
        let by_curl = TestServer::echo().await;
        let by_step = TestServer::echo().await;
        let local = command.replace(origin, by_curl.url("").trim_end_matches('/'));
        let status = tokio::task::spawn_blocking(move || {
            Command::new("bash")
                .arg("-c")
                .arg(format!("{local} -s -o /dev/null"))
                .status()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(status.success(), "{vendor}: curl failed");

        let dir = scratch_dir(&format!("curl-{vendor}"));
        let out = courier()
            .args(["curl", command, "--out"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{vendor}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let connection = dir.join("connection.toml");
        let text = std::fs::read_to_string(&connection).unwrap();
        std::fs::write(
            &connection,
            text.replace(origin, by_step.url("").trim_end_matches('/')),
        )
        .unwrap();
        let input = std::fs::read_to_string(dir.join("input.json")).unwrap();
        assert_no_secret_in_input(vendor, &input, &text);
        let connection_arg = format!("default={}", connection.display());
        let run = tokio::task::spawn_blocking(move || {
            courier()
                .arg("run")
                .arg(courier_tests::plugin("http-request"))
                .args([
                    "request",
                    "--allow-network",
                    "127.0.0.1/32",
                    "--input",
                    &input,
                    "--connection",
                ])
                .arg(connection_arg)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let result: Value = serde_json::from_slice(&run.stdout).unwrap_or(Value::Null);
        assert_eq!(
            result["outcome"],
            "success",
            "{vendor}: {result} {}",
            String::from_utf8_lossy(&run.stderr)
        );

        let (curl, step) = (&by_curl.received()[0], &by_step.received()[0]);
        assert_eq!(step.method, curl.method, "{vendor}");
        assert_eq!(step.uri, curl.uri, "{vendor}");
        assert_eq!(
            step.header("authorization"),
            curl.header("authorization"),
            "{vendor}"
        );
        for name in ["accept", "x-github-api-version"] {
            if let Some(value) = curl.header(name).filter(|v| *v != "*/*") {
                assert_eq!(step.header(name), Some(value), "{vendor}: {name}");
            }
        }
        let media = |r: &Received| {
            r.header("content-type")
                .map(|c| c.split(';').next().unwrap().trim().to_ascii_lowercase())
        };
        assert_eq!(media(step), media(curl), "{vendor}");
        assert_eq!(body_meaning(step), body_meaning(curl), "{vendor}");
    }
}

/// The credential went to `[secrets]`: no secret value of the connection
/// file appears in the input. A Basic user name next to a password is an
/// identifier (Twilio's account SID is in its URLs too) and may.
fn assert_no_secret_in_input(vendor: &str, input: &str, connection: &str) {
    let file: toml::Table = toml::from_str(connection).unwrap();
    let secrets = file
        .get("secrets")
        .and_then(|s| s.as_table())
        .cloned()
        .unwrap_or_default();
    assert!(
        !secrets.is_empty(),
        "{vendor}: the credential is in [secrets]"
    );
    let identifier = secrets.get("password").and_then(|p| p.as_str()) != Some("");
    for (key, value) in &secrets {
        let value = value.as_str().unwrap();
        if value.is_empty() || (key == "username" && identifier) {
            continue;
        }
        assert!(
            !input.contains(value),
            "{vendor}: `{value}` stayed in the input"
        );
    }
}

#[test]
fn the_connection_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch_dir("curl-mode");
    let out = courier()
        .args([
            "curl",
            "curl -H 'X-Api-Key: key-123456789' https://api.example.com/x",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mode = std::fs::metadata(Path::new(&dir).join("connection.toml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = courier()
        .args(["curl", "curl --proxy http://p:1 https://a.test/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`--proxy`"));
}
