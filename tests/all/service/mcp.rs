//! The MCP endpoint end to end: the `mcp` package's client (PyPI, in
//! `target/mcp-venv`, driven by `scripts/mcp_client.py`) against the real
//! `courier serve`, with real upstreams. The tools are checked against the
//! plugin's manifest as the API describes it; the secret against every form
//! `auth::encodings` knows, in every byte the client received.

use super::*;

/// What `scripts/mcp_client.py` printed, and whether it succeeded.
struct Session {
    ok: bool,
    report: Value,
}

/// Runs the MCP client against `tenant`'s endpoint with `token`, calling
/// each `(tool, arguments)` in one session.
async fn mcp(s: &Service, tenant: &str, token: &str, calls: &[(&str, Value)]) -> Session {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(tool, arguments)| json!({"tool": tool, "arguments": arguments}))
        .collect();
    mcp_calls(s, tenant, token, &calls).await
}

/// Runs the MCP client with these calls (`scripts/mcp_client.py`'s
/// `CALL_JSON`: tool, arguments, meta).
async fn mcp_calls(s: &Service, tenant: &str, token: &str, calls: &[Value]) -> Session {
    let python = target_dir().join("mcp-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `./dev test` installs the MCP client (or run `./dev mcp-client`)",
        python.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/mcp_client.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg(format!("{}/v1/tenants/{tenant}/mcp", s.base))
        .arg(token);
    for call in calls {
        cmd.arg(call.to_string());
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "the client printed no JSON: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Session {
        ok: out.status.success(),
        report,
    }
}

/// The text content of a tool result, parsed as JSON.
fn text_json(result: &Value) -> Value {
    let content = result["content"].as_array().unwrap();
    assert_eq!(content.len(), 1, "{result}");
    assert_eq!(content[0]["type"], "text");
    serde_json::from_str(content[0]["text"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn mcp_tools_are_the_plugin_calls_and_run_steps_without_the_secret() {
    let echo = TestServer::echo().await;
    let encoded = courier_tests::encoding_echo();
    let s = Service::start("");
    let t = s.tenant("acme").await;
    s.connection("acme", &t, "crm", &echo.url("/v1")).await;
    let manifest = s
        .get("/v1/tenants/acme/plugins/http-request", &t)
        .await
        .body;

    let first = mcp(
        &s,
        "acme",
        &t,
        &[(
            "http-request__request",
            json!({"url": "/orders", "method": "POST", "body": {"amount": 1200}}),
        )],
    )
    .await;
    assert!(first.ok, "{}", first.report);
    let report = &first.report;
    assert_eq!(report["server"], "courier");

    // One tool per call of each installed plugin (the test fixtures too),
    // named as MCP allows; `http-request`'s: its schema the call's input
    // schema, its description and title the call's.
    let tools = report["tools"].as_array().unwrap();
    let plugins = s.get("/v1/tenants/acme/plugins", &t).await.body;
    let offered: usize = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["calls"].as_array().unwrap().len())
        .sum();
    assert_eq!(tools.len(), offered, "{tools:?}");
    for tool in tools {
        let name = tool["name"].as_str().unwrap();
        assert!(
            (1..=128).contains(&name.len())
                && name.contains("__")
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{name}"
        );
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
    }
    // A call whose input is any JSON value takes any object.
    let misbehave = s.get("/v1/tenants/acme/plugins/misbehave", &t).await.body;
    let any = misbehave["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ok")
        .unwrap();
    assert!(any["input_schema"].get("type").is_none(), "{any}");
    let mut objects = any["input_schema"].clone();
    objects["type"] = json!("object");
    let tool = tools.iter().find(|t| t["name"] == "misbehave__ok").unwrap();
    assert_eq!(tool["inputSchema"], objects);
    let calls = manifest["calls"].as_array().unwrap();
    let ours = tools.iter().filter(|t| {
        t["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("http-request__"))
    });
    assert_eq!(ours.count(), calls.len(), "{tools:?}");
    for call in calls {
        let name = format!("http-request__{}", call["name"].as_str().unwrap());
        let tool = tools
            .iter()
            .find(|t| t["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no tool {name}: {tools:?}"));
        assert_eq!(tool["inputSchema"], call["input_schema"], "{name}");
        assert_eq!(tool["description"], call["description"], "{name}");
        assert_eq!(tool["title"], call["title"], "{name}");
    }

    // The call ran as a step with the stored connection: the upstream got
    // the secret, the client its echo scrubbed, as structured content and
    // as text, and the history has the step under the id the result names.
    let result = &report["calls"][0];
    assert_ne!(result["isError"], true, "{result}");
    let step = &result["structuredContent"];
    assert_eq!(step["outcome"], "success", "{step}");
    assert_eq!(step["output"]["body"]["uri"], "/v1/orders", "{step}");
    assert_eq!(step["output"]["body"]["method"], "POST", "{step}");
    assert_eq!(
        step["output"]["headers"]["x-echo-authorization"], "Bearer [REDACTED]",
        "{step}"
    );
    assert_eq!(
        echo.received()[0].header("authorization"),
        Some(format!("Bearer {CANARY}").as_str())
    );
    assert_eq!(&text_json(result), step);
    let id = result["_meta"]["courier/step-id"].as_str().unwrap();
    let stored = s.get(&format!("/v1/tenants/acme/steps/{id}"), &t).await;
    assert_eq!(&stored.body["result"], step, "{}", stored.text);

    // Two stored connections for the one declared connection: the tool
    // cannot choose and says so, running nothing.
    s.connection("acme", &t, "other", &echo.url("/v2")).await;
    let ambiguous = mcp(
        &s,
        "acme",
        &t,
        &[("http-request__request", json!({"url": "/x"}))],
    )
    .await;
    let result = &ambiguous.report["calls"][0];
    assert_eq!(result["isError"], true, "{result}");
    let why = result["content"][0]["text"].as_str().unwrap();
    assert!(why.contains("crm") && why.contains("other"), "{why}");
    assert_eq!(echo.received().len(), 1);

    // The one named as the declared connection is chosen: here, an upstream
    // that echoes the token in many encodings, in the body, in a header, and
    // in a redirect whose failure the host quotes (a failed step: isError).
    s.connection("acme", &t, "default", &encoded.url("/")).await;
    let places = [
        "base64/json",
        "percent/header",
        "json-ascii/text",
        "raw/error",
    ];
    let calls: Vec<(&str, Value)> = places
        .iter()
        .map(|p| {
            (
                "http-request__request",
                json!({"url": format!("/{p}?seed=7")}),
            )
        })
        .collect();
    let forms = mcp(&s, "acme", &t, &calls).await;
    assert!(forms.ok, "{}", forms.report);
    let results = forms.report["calls"].as_array().unwrap();
    for (place, result) in places.iter().zip(results) {
        let step = &result["structuredContent"];
        let failed = *place == "raw/error";
        assert_eq!(result["isError"] == true, failed, "{place}: {result}");
        assert_eq!(step["outcome"] == "success", !failed, "{place}: {step}");
        assert!(step.to_string().contains("[REDACTED]"), "{place}: {step}");
        assert_eq!(&text_json(result), step, "{place}");
    }
    // Not in any byte the client received, nor in the logs.
    for (session, ran) in [(&first, true), (&ambiguous, false), (&forms, true)] {
        let raw = session.report["raw"].as_str().unwrap();
        assert_eq!(raw.contains("[REDACTED]"), ran, "{raw}");
        assert_no_canary(raw);
    }
    assert_no_canary(&s.logs());
}

#[tokio::test]
async fn mcp_refuses_wrong_tokens_and_offers_only_the_tenants_plugins_and_connections() {
    let echo = TestServer::echo().await;
    let s = Service::start("");
    let acme = s.tenant("acme").await;
    let other = s.tenant("other").await;
    s.connection("acme", &acme, "crm", &echo.url("")).await;

    // The client is turned away: a wrong token, another tenant's token.
    let wrong = mcp(&s, "acme", "ctk_nope_nope", &[]).await;
    assert!(!wrong.ok, "{}", wrong.report);
    assert_eq!(wrong.report["statuses"], json!([401]), "{}", wrong.report);
    let foreign = mcp(&s, "acme", &other, &[]).await;
    assert!(!foreign.ok, "{}", foreign.report);
    assert_eq!(
        foreign.report["statuses"],
        json!([404]),
        "{}",
        foreign.report
    );
    // As the rest of the API answers them: problem documents.
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}});
    let mcp_path = "/v1/tenants/acme/mcp";
    s.send(Method::POST, mcp_path, None, Some(&initialize), &[])
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    s.post(mcp_path, "wrong", &initialize)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    s.post(mcp_path, &other, &initialize)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    s.post("/v1/tenants/nobody/mcp", &acme, &initialize)
        .await
        .assert_problem(StatusCode::NOT_FOUND);

    // A plugin enabled for `other` only is a tool of `other`'s only.
    let relay = std::fs::read(target_dir().join("plugin-versions/relay-v1.wasm"))
        .expect("the relay fixture (./dev build-plugins)");
    let upload = http::Request::post(format!("{}/v1/plugins", s.base))
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/wasm")
        .body(Full::new(Bytes::from(relay)))
        .unwrap();
    assert_eq!(s.raw(upload).await.status, StatusCode::CREATED);
    let enabled = s
        .put(
            "/v1/tenants/other/plugins/relay",
            ADMIN,
            &json!({"enabled": true}),
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.text);
    let names = |session: &Session| -> Vec<String> {
        session.report["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let ours = mcp(&s, "acme", &acme, &[]).await;
    assert!(ours.ok, "{}", ours.report);
    assert!(names(&ours).contains(&"http-request__request".to_owned()));
    assert!(!names(&ours).iter().any(|n| n.starts_with("relay__")));

    // Another tenant's own session runs its steps without acme's connection.
    let theirs = mcp(
        &s,
        "other",
        &other,
        &[("http-request__request", json!({"url": echo.url("/theirs")}))],
    )
    .await;
    assert!(theirs.ok, "{}", theirs.report);
    assert!(names(&theirs).contains(&"relay__fetch".to_owned()));
    let step = &theirs.report["calls"][0]["structuredContent"];
    assert_eq!(step["outcome"], "success", "{step}");
    let received = echo.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].uri, "/theirs");
    assert_eq!(received[0].header("authorization"), None);
    // Its history has the step; acme's has none.
    let history = s.get("/v1/tenants/other/steps", &other).await;
    assert_eq!(history.body["steps"].as_array().unwrap().len(), 1);
    let history = s.get("/v1/tenants/acme/steps", &acme).await;
    assert_eq!(history.body["steps"], json!([]));
}

#[tokio::test]
async fn an_mcp_call_with_an_idempotency_key_runs_once() {
    let (upstream, count) = counting_upstream().await;
    let s = Service::start("");
    let t = s.tenant("acme").await;
    s.connection("acme", &t, "crm", &upstream.url("")).await;
    let call = |url: &str, key: Option<&str>| {
        let mut call = json!({"tool": "http-request__request", "arguments": {"url": url}});
        if let Some(key) = key {
            call["meta"] = json!({"courier/idempotency-key": key});
        }
        call
    };
    let session = mcp_calls(
        &s,
        "acme",
        &t,
        &[
            call("/once", Some("k-1")),
            call("/once", Some("k-1")),
            call("/other", Some("k-1")),
            call("/once", None),
        ],
    )
    .await;
    assert!(session.ok, "{}", session.report);
    let calls = session.report["calls"].as_array().unwrap();
    let (first, repeat, changed, unkeyed) = (&calls[0], &calls[1], &calls[2], &calls[3]);
    assert_eq!(
        first["structuredContent"]["output"]["body"]["n"], 1,
        "{first}"
    );
    assert!(
        first["_meta"].get("courier/idempotent-replayed").is_none(),
        "{first}"
    );
    // The repeat gets the first result, marked, and runs nothing.
    assert_eq!(repeat["structuredContent"], first["structuredContent"]);
    assert_eq!(
        repeat["_meta"]["courier/step-id"],
        first["_meta"]["courier/step-id"]
    );
    assert_eq!(
        repeat["_meta"]["courier/idempotent-replayed"], true,
        "{repeat}"
    );
    // The key with other arguments is refused; without a key it runs again.
    assert_eq!(changed["isError"], true, "{changed}");
    assert!(
        changed["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("different request"),
        "{changed}"
    );
    assert_eq!(
        unkeyed["structuredContent"]["output"]["body"]["n"], 2,
        "{unkeyed}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 2);
    let history = s.get("/v1/tenants/acme/steps", &t).await;
    assert_eq!(
        history.body["steps"].as_array().unwrap().len(),
        2,
        "{}",
        history.text
    );

    // The key is the API's too: POST …/steps with it replays the MCP call.
    let api = s
        .send(
            Method::POST,
            "/v1/tenants/acme/steps",
            Some(&t),
            Some(&json!({"plugin": "http-request", "call": "request",
                         "input": {"url": "/once"}, "connections": ["crm"]})),
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.text);
    assert_eq!(api.headers["idempotent-replayed"], "true");
    assert_eq!(api.body, first["structuredContent"]);
    assert_eq!(count.load(Ordering::SeqCst), 2);

    // A key that is none is refused before anything runs.
    let bad = mcp_calls(&s, "acme", &t, &[call("/once", Some(""))]).await;
    assert!(!bad.ok, "{}", bad.report);
    assert!(
        bad.report["error"]
            .as_str()
            .unwrap()
            .contains("idempotency-key"),
        "{}",
        bad.report
    );
    assert_eq!(count.load(Ordering::SeqCst), 2);
}
