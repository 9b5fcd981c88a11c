//! Plugins in `courier serve`: uploads (content-addressed, checked, capped,
//! stored whole or not at all), per-tenant access, upgrades held for an
//! admin's approval of their permission diff, steps in flight finishing on
//! their version, a restart keeping all of it, and the metrics steps leave.
//! The components are the two versions of the `relay` fixture
//! (`target/plugin-versions`, built by `./dev build-plugins`).

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// The component of `relay` version `n`.
pub(super) fn relay(n: u8) -> Vec<u8> {
    let path = target_dir().join(format!("plugin-versions/relay-v{n}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run ./dev build-plugins)", path.display()))
}

/// The SHA-256 of `bytes` as coreutils' `sha256sum` computes it.
fn sha256sum(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// The files in the service's component store.
fn stored(s: &Service) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(s.dir.join("data/plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

impl Service {
    /// Uploads `bytes` as a component with this token and content type.
    async fn upload_as(&self, token: &str, bytes: Vec<u8>, content_type: &str) -> Answer {
        let request = http::Request::post(format!("{}/v1/plugins", self.base))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(bytes)))
            .unwrap();
        self.raw(request).await
    }

    /// Uploads `bytes` as the admin.
    async fn upload(&self, bytes: Vec<u8>) -> Answer {
        self.upload_as(ADMIN, bytes, "application/wasm").await
    }

    /// Enables or disables `plugin` for `tenant` (admin).
    async fn allow(&self, tenant: &str, plugin: &str, enabled: bool) -> Answer {
        self.put(
            &format!("/v1/tenants/{tenant}/plugins/{plugin}"),
            ADMIN,
            &json!({"enabled": enabled}),
        )
        .await
    }

    /// Runs `relay` `fetch` of `url` for `tenant`.
    async fn fetch(&self, tenant: &str, token: &str, url: &str) -> Answer {
        self.post(
            &format!("/v1/tenants/{tenant}/steps"),
            token,
            &json!({"plugin": "relay", "call": "fetch", "input": {"url": url}}),
        )
        .await
    }

    /// The version of `relay` a fetch of `url` ran on (the step must succeed).
    async fn fetched_by(&self, tenant: &str, token: &str, url: &str) -> Value {
        let a = self.fetch(tenant, token, url).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["outcome"], "success", "{}", a.text);
        a.body["output"]["version"].clone()
    }

    /// Every installed version, as the admin lists them: (version, status).
    async fn versions(&self, name: &str) -> Vec<(String, String)> {
        let list = self.get("/v1/plugins", ADMIN).await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.text);
        let mut found: Vec<(String, String)> = list.body["versions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["name"] == name)
            .map(|v| {
                (
                    v["version"].as_str().unwrap().to_owned(),
                    v["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        found.sort();
        found
    }
}

/// An upstream that answers each request only when `release` is sent; its
/// sender learns when a request has arrived.
async fn gated_upstream() -> (
    String,
    tokio::sync::mpsc::Receiver<()>,
    tokio::sync::watch::Sender<bool>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/slow", listener.local_addr().unwrap());
    let (arrived_tx, arrived) = tokio::sync::mpsc::channel(8);
    let (release, released) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (arrived_tx, mut released) = (arrived_tx.clone(), released.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n @ 1..) = stream.read(&mut buf).await else {
                        return;
                    };
                    head.extend_from_slice(&buf[..n]);
                }
                let _ = arrived_tx.send(()).await;
                let _ = released.wait_for(|r| *r).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                    .await;
            });
        }
    });
    (url, arrived, release)
}

#[tokio::test]
async fn uploads_are_content_addressed_checked_and_capped() {
    let v1 = relay(1);
    // Exactly the component's size is in.
    let s = Service::start(&format!("max_plugin_bytes = {}\n", v1.len()));
    let t = s.tenant("acme").await;
    let before = stored(&s);

    // Only the admin installs.
    s.upload_as(&t, v1.clone(), "application/wasm")
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    // (An answer sent before the body is read gets a small body here: a
    // server that closes a connection with unread data resets it.)
    let anonymous = http::Request::post(format!("{}/v1/plugins", s.base))
        .header("content-type", "application/wasm")
        .body(Full::new(Bytes::from_static(b"\0asm")))
        .unwrap();
    s.raw(anonymous)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    s.get("/v1/plugins", &t)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    assert_eq!(stored(&s), before);

    let first = s.upload(v1.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let digest = sha256sum(&v1);
    assert_eq!(first.body["digest"], digest.as_str());
    assert_eq!(first.body["name"], "relay");
    assert_eq!(first.body["version"], "1.0.0");
    assert_eq!(first.body["status"], "current");
    let file = s.dir.join(format!("data/plugins/{digest}.wasm"));
    assert_eq!(std::fs::read(&file).unwrap(), v1);

    // The same bytes again: the same version, nothing new stored.
    let again = s.upload(v1.clone()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body, first.body);
    assert_eq!(
        s.versions("relay").await,
        [("1.0.0".into(), "current".into())]
    );
    let after_first = stored(&s);

    // Not a component, a truncated one, the wrong media type, over the cap:
    // refused, and nothing stored.
    for junk in [b"not wasm at all".to_vec(), v1[..v1.len() / 2].to_vec()] {
        let bad = s.upload(junk).await;
        bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            bad.body["detail"]
                .as_str()
                .unwrap()
                .starts_with("not an installable plugin: "),
            "{}",
            bad.text
        );
    }
    s.upload_as(ADMIN, v1.clone(), "application/json")
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(stored(&s), after_first);
    let small = Service::start("max_plugin_bytes = 1000\n");
    let small_before = stored(&small);
    small
        .upload(vec![0; 1001])
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(stored(&small), small_before);
    assert_eq!(s.versions("relay").await.len(), 1);

    // The admin reads the manifest of a version.
    let described = s.get(&format!("/v1/plugins/{digest}"), ADMIN).await;
    assert_eq!(described.status, StatusCode::OK, "{}", described.text);
    assert_eq!(described.body["digest"], digest.as_str());
    assert_eq!(
        described.body["manifest"]["allowed_hosts"],
        json!(["http://127.0.0.1:*"])
    );
    assert_eq!(
        described.body["manifest"]["connections"][0]["auth"]["scheme"],
        "bearer"
    );
    assert!(described.body["manifest"]["calls"][0]["input_schema"].is_object());
    s.get(&format!("/v1/plugins/{}", "0".repeat(64)), ADMIN)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn plugins_are_enabled_per_tenant() {
    let upstream = TestServer::start(|_| Reply::json(200, json!({}))).await;
    let url = upstream.url("/x");
    let s = Service::start("");
    let acme = s.tenant("acme").await;
    let beta = s.tenant("beta").await;
    assert_eq!(s.upload(relay(1)).await.status, StatusCode::CREATED);

    // Uploaded: enabled for no tenant, and then as if it did not exist.
    let not_found = |a: Answer| a.assert_problem(StatusCode::NOT_FOUND);
    not_found(s.fetch("acme", &acme, &url).await);
    not_found(s.get("/v1/tenants/acme/plugins/relay", &acme).await);
    not_found(
        s.put("/v1/tenants/acme/connections/r", &acme, &json!({"plugin": "relay", "connection": {"connection": "api", "base_url": upstream.url(""), "secrets": {"token": CANARY}}}))
            .await,
    );
    let listed = s.get("/v1/tenants/acme/plugins", &acme).await;
    assert!(!listed.text.contains("relay"), "{}", listed.text);

    // Only the admin enables, and only what is installed.
    s.put(
        "/v1/tenants/acme/plugins/relay",
        &acme,
        &json!({"enabled": true}),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN);
    not_found(s.allow("acme", "absent", true).await);
    not_found(s.allow("nobody", "relay", true).await);
    let on = s.allow("acme", "relay", true).await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.text);

    assert_eq!(s.fetched_by("acme", &acme, &url).await, "1.0.0");
    let listed = s.get("/v1/tenants/acme/plugins", &acme).await;
    let relay_entry = listed.body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "relay")
        .unwrap_or_else(|| panic!("{}", listed.text))
        .clone();
    assert_eq!(relay_entry["digest"], sha256sum(&relay(1)).as_str());
    assert_eq!(relay_entry["calls"], json!(["fetch"]));
    let stored = s
        .put("/v1/tenants/acme/connections/r", &acme, &json!({"plugin": "relay", "connection": {"connection": "api", "base_url": upstream.url(""), "secrets": {"token": CANARY}}}))
        .await;
    assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.text);
    // Another tenant still cannot see it.
    not_found(s.fetch("beta", &beta, &url).await);
    not_found(s.get("/v1/tenants/beta/plugins/relay", &beta).await);

    // Bundled plugins start enabled; disabling one hides it from that tenant only.
    let http_step = |tenant: &'static str, token: String| {
        let s = &s;
        let url = url.clone();
        async move {
            s.post(
                &format!("/v1/tenants/{tenant}/steps"),
                &token,
                &json!({"plugin": "http-request", "call": "request", "input": {"url": url}}),
            )
            .await
        }
    };
    assert_eq!(http_step("beta", beta.clone()).await.status, StatusCode::OK);
    assert_eq!(
        s.allow("beta", "http-request", false).await.status,
        StatusCode::OK
    );
    not_found(http_step("beta", beta.clone()).await);
    let beta_list = s.get("/v1/tenants/beta/plugins", &beta).await;
    assert!(
        !beta_list.body["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "http-request"),
        "{}",
        beta_list.text
    );
    assert_eq!(http_step("acme", acme.clone()).await.status, StatusCode::OK);
    // Disabling relay for acme: its stored connection cannot be tested.
    assert_eq!(s.allow("acme", "relay", false).await.status, StatusCode::OK);
    not_found(
        s.post(
            "/v1/tenants/acme/connections/r/test",
            &acme,
            &json!({"call": "fetch", "input": {"url": url}}),
        )
        .await,
    );
    not_found(s.fetch("acme", &acme, &url).await);

    // A step whose output departs from its declared schema (a bundled fixture).
    let drifted = s
        .post(
            "/v1/tenants/acme/steps",
            &acme,
            &json!({"plugin": "misbehave", "call": "drift", "input": {"id": 7}}),
        )
        .await;
    assert!(
        drifted.body["contract_drift"].is_array(),
        "{}",
        drifted.text
    );

    // The metrics the steps left: outbound latency, circuit states, drift, pool slots.
    let m = s.get("/metrics", ADMIN).await.text;
    let origin = url.trim_end_matches("/x");
    for line in [
        r#"courier_outbound_request_duration_seconds_count{plugin="relay"} 1"#.to_owned(),
        r#"courier_outbound_request_duration_seconds_count{plugin="http-request"} 2"#.into(),
        format!(r#"courier_circuit_state{{origin="{origin}",state="closed"}} 1"#),
        format!(r#"courier_circuit_state{{origin="{origin}",state="open"}} 0"#),
        r#"courier_contract_drift_total{plugin="misbehave",call="drift"} 1"#.into(),
        "courier_steps_running 0".into(),
    ] {
        assert!(m.contains(&line), "{line} missing from:\n{m}");
    }
}

#[tokio::test]
async fn upgrades_wait_for_approval_and_steps_in_flight_keep_their_version() {
    let upstream = TestServer::start(|_| Reply::json(200, json!({}))).await;
    let url = upstream.url("/x");
    let dir = scratch_dir("service-upgrade");
    let s = Service::start_in(dir.clone(), "", Some(ADMIN));
    let t = s.tenant("acme").await;
    assert_eq!(s.upload(relay(1)).await.status, StatusCode::CREATED);
    assert_eq!(s.allow("acme", "relay", true).await.status, StatusCode::OK);

    // Version 2 asks for a host, a connection and an auth scheme more: pending.
    let v2 = s.upload(relay(2)).await;
    assert_eq!(v2.status, StatusCode::CREATED, "{}", v2.text);
    assert_eq!(v2.body["status"], "pending");
    let digest = v2.body["digest"].as_str().unwrap().to_owned();
    let diff_path = format!("/v1/plugins/{digest}/diff");
    let diff = s.get(&diff_path, ADMIN).await;
    assert_eq!(diff.status, StatusCode::OK, "{}", diff.text);
    assert_eq!(diff.body["from"]["version"], "1.0.0");
    assert_eq!(diff.body["to"]["version"], "2.0.0");
    assert_eq!(
        diff.body["added"],
        json!({"hosts": ["https://audit.example.com"], "connections": ["audit"],
               "auth_schemes": ["api-key"], "credential_origins": []})
    );
    assert_eq!(
        diff.body["removed"],
        json!({"hosts": [], "connections": [], "auth_schemes": [], "credential_origins": []})
    );

    // Not used until approved; tenants cannot see the diff or approve.
    assert_eq!(s.fetched_by("acme", &t, &url).await, "1.0.0");
    let described = s.get("/v1/tenants/acme/plugins/relay", &t).await;
    assert_eq!(described.body["version"], "1.0.0");
    s.get(&diff_path, &t)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    let approve_path = format!("/v1/plugins/{digest}/approve");
    s.send(Method::POST, &approve_path, Some(&t), None, &[])
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    assert_eq!(s.fetched_by("acme", &t, &url).await, "1.0.0");

    // A step starts on version 1 and waits on its upstream; version 2 is
    // approved meanwhile: new steps run it, the waiting one ends on 1.
    let (slow_url, mut arrived, release) = gated_upstream().await;
    let in_flight = s.fetch("acme", &t, &slow_url);
    let meanwhile = async {
        arrived.recv().await.unwrap();
        let m = s.get("/metrics", ADMIN).await.text;
        assert!(m.contains("\ncourier_steps_running 1\n"), "{m}");
        let approved = s
            .send(Method::POST, &approve_path, Some(ADMIN), None, &[])
            .await;
        assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
        assert_eq!(approved.body["status"], "current");
        let newer = s.fetched_by("acme", &t, &url).await;
        release.send(true).unwrap();
        newer
    };
    let (first, newer) = tokio::join!(in_flight, meanwhile);
    assert_eq!(newer, "2.0.0");
    assert_eq!(first.body["outcome"], "success", "{}", first.text);
    assert_eq!(first.body["output"]["version"], "1.0.0", "{}", first.text);
    assert_eq!(
        s.versions("relay").await,
        [
            ("1.0.0".into(), "superseded".into()),
            ("2.0.0".into(), "current".into())
        ]
    );

    // A restart (after a kill) keeps the versions, the approval and the access.
    drop(s);
    let s = Service::start_in(dir, "", Some(ADMIN));
    assert_eq!(s.fetched_by("acme", &t, &url).await, "2.0.0");
    assert_eq!(
        s.versions("relay").await,
        [
            ("1.0.0".into(), "superseded".into()),
            ("2.0.0".into(), "current".into())
        ]
    );
    // Bundled plugins are not installed twice.
    assert_eq!(s.versions("http-request").await.len(), 1);

    // A stored component altered behind the service's back is not loaded:
    // its plugin is gone, the others stay.
    let dir = s.dir.clone();
    drop(s);
    std::fs::write(dir.join(format!("data/plugins/{digest}.wasm")), b"altered").unwrap();
    let s = Service::start_in(dir, "", Some(ADMIN));
    s.fetch("acme", &t, &url)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    assert!(
        s.logs().contains("does not match its digest"),
        "{}",
        s.logs()
    );
    let http = s
        .post(
            "/v1/tenants/acme/steps",
            &t,
            &json!({"plugin": "http-request", "call": "request", "input": {"url": url}}),
        )
        .await;
    assert_eq!(http.body["outcome"], "success", "{}", http.text);
}

#[tokio::test]
async fn a_version_asking_for_nothing_new_is_current_at_once() {
    let upstream = TestServer::start(|_| Reply::json(200, json!({}))).await;
    let url = upstream.url("/x");
    let s = Service::start("");
    let t = s.tenant("acme").await;
    assert_eq!(s.upload(relay(2)).await.body["status"], "current");
    assert_eq!(s.allow("acme", "relay", true).await.status, StatusCode::OK);
    assert_eq!(s.fetched_by("acme", &t, &url).await, "2.0.0");
    // Version 1 asks for less than version 2.
    let v1 = s.upload(relay(1)).await;
    assert_eq!(v1.status, StatusCode::CREATED, "{}", v1.text);
    assert_eq!(v1.body["status"], "current");
    assert_eq!(s.fetched_by("acme", &t, &url).await, "1.0.0");
    let diff = s
        .get(
            &format!("/v1/plugins/{}/diff", v1.body["digest"].as_str().unwrap()),
            ADMIN,
        )
        .await;
    assert_eq!(diff.body["added"]["hosts"], json!([]), "{}", diff.text);
    assert_eq!(diff.body["removed"]["hosts"], json!([]), "{}", diff.text);
}

#[tokio::test]
async fn the_upload_is_documented_as_a_component() {
    let s = Service::start("");
    let doc = s.send(Method::GET, "/openapi.json", None, None, &[]).await;
    let upload = &doc.body["paths"]["/v1/plugins"]["post"];
    let body = &upload["requestBody"]["content"]["application/wasm"]["schema"];
    assert_eq!(body["type"], "string", "{upload}");
    assert_eq!(body["contentMediaType"], "application/wasm", "{upload}");
    for status in ["201", "200", "401", "403", "413", "415", "422"] {
        assert!(
            upload["responses"][status].is_object(),
            "{status} undocumented"
        );
    }
}
