//! The vendor plugins end to end: the real host runs each compiled plugin
//! against its vendor's real address (`https://api.stripe.com`, …), policy
//! and credentials included; a test transport ([`LocalTransport`]) delivers what
//! leaves the host to **Prism** (`@stoplight/prism-cli`, npm) in proxy mode
//! with `--errors`, serving the vendor's own published OpenAPI document:
//! a request that violates the document is answered 422 with the violation
//! and never reaches the upstream, so a passing test proves the plugin sent
//! what the vendor documents. Behind Prism a small upstream written from
//! the vendor's docs (cited in each module) holds the data and answers.
//!
//! The documents come from npm at test time (`./dev prism` installs them
//! under `target/prism`), cut to the operations under test
//! ([`openapi_subset`]): Prism takes minutes to start on a whole vendor
//! document (Stripe's schemas are deeply recursive). One Prism per vendor
//! per test run.

mod github;
mod hubspot;
mod shopify;
mod slack;
mod stripe;

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use courier_host::{Host, HostBuilder};
use courier_tests::{LocalTransport, Received, Reply, TestServer, host_with, target_dir};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value};

/// A vendor's published OpenAPI document under `target/prism/node_modules`.
pub(crate) fn vendor_document(path: &str) -> Value {
    let file = target_dir().join("prism/node_modules").join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; `./dev test` installs the vendors' documents (or run `./dev prism`)",
            file.display()
        )
    });
    serde_json::from_str(&text).expect("the vendor document is JSON")
}

/// `document` with only the operations `ops` (`(method, path)`). Their
/// parameters, request bodies and the components those use are kept as the
/// vendor wrote them (what Prism validates requests against); response
/// schemas are inlined two `$ref`s deep, deeper references left open (`{}`),
/// so that Prism starts in seconds.
pub(crate) fn openapi_subset(document: &Value, ops: &[(&str, &str)]) -> Value {
    let components = &document["components"];
    let mut kept = Map::new();
    let mut paths = Map::new();
    for (method, path) in ops {
        let item = &document["paths"][path];
        let mut op = item[method].clone();
        assert!(op.is_object(), "{method} {path} is in the document");
        op["responses"] = shallow(components, &op["responses"], 2);
        keep_refs(components, &op, &mut kept);
        let entry = paths.entry(path.to_string()).or_insert_with(|| {
            let mut shared = Map::new();
            if let Some(parameters) = item.get("parameters") {
                shared.insert("parameters".into(), parameters.clone());
            }
            Value::Object(shared)
        });
        keep_refs(components, entry, &mut kept);
        entry[method] = op;
    }
    if let Some(schemes) = components.get("securitySchemes") {
        kept.insert("securitySchemes".into(), schemes.clone());
    }
    // Webhooks and other extensions refer to components not kept.
    let mut subset: Map<String, Value> = ["openapi", "info", "servers", "security"]
        .into_iter()
        .filter_map(|key| Some((key.to_owned(), document.get(key)?.clone())))
        .collect();
    subset.insert("paths".into(), Value::Object(paths));
    subset.insert("components".into(), Value::Object(kept));
    Value::Object(subset)
}

/// The component a local `$ref` names: `(kind, name)`.
fn component_ref(value: &Value) -> Option<(&str, &str)> {
    let reference = value.get("$ref")?.as_str()?;
    reference.strip_prefix("#/components/")?.split_once('/')
}

/// Copies every component `value` refers to, transitively, into `kept`.
fn keep_refs(components: &Value, value: &Value, kept: &mut Map<String, Value>) {
    if let Some((kind, name)) = component_ref(value) {
        let kind_map = kept
            .entry(kind)
            .or_insert_with(|| Value::Object(Map::new()));
        if kind_map.get(name).is_none() {
            let target = components[kind][name].clone();
            kind_map[name] = target.clone();
            keep_refs(components, &target, kept);
        }
    }
    match value {
        Value::Object(map) => map.values().for_each(|v| keep_refs(components, v, kept)),
        Value::Array(list) => list.iter().for_each(|v| keep_refs(components, v, kept)),
        _ => {}
    }
}

/// `value` with `$ref`s inlined `depth` deep and open (`{}`) below.
fn shallow(components: &Value, value: &Value, depth: u32) -> Value {
    if let Some((kind, name)) = component_ref(value) {
        return match depth {
            0 => Value::Object(Map::new()),
            _ => shallow(components, &components[kind][name], depth - 1),
        };
    }
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), shallow(components, v, depth)))
                .collect(),
        ),
        Value::Array(list) => list.iter().map(|v| shallow(components, v, depth)).collect(),
        other => other.clone(),
    }
}

/// Prism in proxy mode in front of an upstream, for the whole test run.
pub(crate) struct Prism {
    /// Prism's address.
    pub(crate) addr: SocketAddr,
    /// The upstream behind it.
    pub(crate) upstream: TestServer,
    // Holds the launcher's stdin: Prism is stopped when it closes.
    _child: Mutex<Child>,
}

impl Prism {
    /// Serves `document` (written to `target/prism/run/NAME.json`) in front
    /// of an upstream answering with `handler`. Fails loudly when Prism is
    /// not installed or does not start within two minutes.
    pub(crate) fn start(
        name: &str,
        document: &Value,
        handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let prism = target_dir().join("prism/node_modules/.bin/prism");
        assert!(
            prism.exists(),
            "{} is missing: `./dev test` installs Prism (or run `./dev prism`)",
            prism.display()
        );
        let run = target_dir().join("prism/run");
        std::fs::create_dir_all(&run).unwrap();
        let doc = run.join(format!("{name}.json"));
        std::fs::write(&doc, document.to_string()).unwrap();
        let log = run.join(format!("{name}.log"));
        let upstream = serve_in_background(handler);
        let port = free_port();
        // Prism runs until the test process's end closes the launcher's stdin.
        let launcher = r#"
            "$1" proxy --errors -h 127.0.0.1 -p "$2" "$3" "$4" >"$5" 2>&1 &
            prism=$!
            cat >/dev/null
            kill "$prism""#;
        let child = Command::new("sh")
            .args(["-c", launcher, "sh"])
            .arg(&prism)
            .arg(port.to_string())
            .arg(&doc)
            .arg(upstream.url(""))
            .arg(&log)
            .stdin(Stdio::piped())
            .spawn()
            .expect("start sh");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                started.elapsed() < Duration::from_secs(120) && !log_text.contains("Error"),
                "Prism did not start for {name}: {log_text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            addr,
            upstream,
            _child: Mutex::new(child),
        }
    }

    /// What reached the upstream (what Prism let through), oldest first.
    pub(crate) fn received(&self) -> Vec<Received> {
        self.upstream.received()
    }

    /// The status Prism answers `method path` with (no host involved): the
    /// tests' check of the oracle itself.
    pub(crate) async fn status_of(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &'static str,
    ) -> u16 {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        client.request(request).await.unwrap().status().as_u16()
    }
}

/// The value of query parameter `name` of a received request.
pub(crate) fn query(r: &Received, name: &str) -> Option<String> {
    r.query()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A [`TestServer`] that outlives every test: it runs on a thread of its own.
fn serve_in_background(handler: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> TestServer {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            tx.send(TestServer::start(handler).await).unwrap();
            std::future::pending::<()>().await
        });
    });
    rx.recv().expect("the upstream starts")
}

/// A host with `plugin` loaded whose requests under `base` reach `local`.
pub(crate) async fn host_for(plugin: &str, base: &'static str, local: SocketAddr) -> Host {
    host_with(vendor_builder(base, local), &[plugin]).await
}

/// A host builder whose requests under `base` reach `local`.
pub(crate) fn vendor_builder(base: &'static str, local: SocketAddr) -> HostBuilder {
    Host::builder()
        .cache_dir(target_dir().join("courier-test-cache"))
        .allow_host(format!("{base}/*").parse().unwrap())
        .transport(Arc::new(LocalTransport::new(base, local)))
}
