//! Shared pieces of the end-to-end tests and benchmarks: real HTTP servers on
//! 127.0.0.1 and the compiled plugins under `target/plugins`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use courier_host::{Host, HostBuilder};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// A request as the test server received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Whether the client presented a certificate (TLS servers only).
    pub client_cert: bool,
    /// The HTTP version the request came with.
    pub version: http::Version,
}

impl Received {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Query pairs, decoded, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        let q = self.uri.split_once('?').map(|(_, q)| q).unwrap_or("");
        form_pairs(q.as_bytes())
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs.
pub fn form_pairs(data: &[u8]) -> Vec<(String, String)> {
    url_decode_pairs(std::str::from_utf8(data).expect("form data is UTF-8"))
}

fn url_decode_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("valid percent escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("decoded text is UTF-8")
}

/// A response the test server gives.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: u16, value: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: value.to_string().into_bytes(),
        }
    }
}

type Handler = dyn Fn(&Received) -> Reply + Send + Sync;

/// A real HTTP/1.1 server on 127.0.0.1 that records what it receives.
pub struct TestServer {
    /// Its address.
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts a server answering with `handler`.
    pub async fn start(handler: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(None, handler).await
    }

    /// Starts an HTTPS server (HTTP/1.1 and HTTP/2 by ALPN) answering with `handler`.
    pub async fn start_tls(
        config: rustls::ServerConfig,
        handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_with(
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
            handler,
        )
        .await
    }

    async fn start_with(
        tls: Option<tokio_rustls::TlsAcceptor>,
        handler: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (conns, recv) = (connections.clone(), received.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                conns.fetch_add(1, Ordering::SeqCst);
                let (handler, recv, tls) = (handler.clone(), recv.clone(), tls.clone());
                tokio::spawn(async move {
                    let (stream, client_cert) = match tls {
                        None => (Io::Plain(stream), false),
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(stream).await else {
                                return;
                            };
                            let client_cert = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .is_some_and(|c| !c.is_empty());
                            (Io::Tls(Box::new(tls)), client_cert)
                        }
                    };
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (handler, recv) = (handler.clone(), recv.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let got = Received {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.to_string(),
                                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                        )
                                    })
                                    .collect(),
                                body,
                                client_cert,
                                version: parts.version,
                            };
                            let reply = handler(&got);
                            recv.lock().unwrap().push(got);
                            let mut resp = hyper::Response::builder().status(reply.status);
                            for (k, v) in &reply.headers {
                                resp = resp.header(k, v);
                            }
                            Ok::<_, Infallible>(
                                resp.body(Full::new(Bytes::from(reply.body))).unwrap(),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            connections,
            received,
            task,
        }
    }

    /// A server that echoes every request back as JSON, and echoes the
    /// `Authorization` header in a response header too.
    pub async fn echo() -> Self {
        Self::start(echo_reply).await
    }

    /// `http://127.0.0.1:PORT` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `https://localhost:PORT` + path (the name the test certificates carry).
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A server-side stream, plain or TLS.
enum Io {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}

impl tokio::io::AsyncRead for Io {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Io {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Io::Tls(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The echo server's answer: [`echo_json`], and the `Authorization` header
/// echoed in `x-echo-authorization`.
pub fn echo_reply(r: &Received) -> Reply {
    let mut reply = Reply::json(200, echo_json(r));
    if let Some(auth) = r.header("authorization") {
        reply
            .headers
            .push(("x-echo-authorization".into(), auth.into()));
    }
    reply
}

/// The echo server's JSON view of a request.
pub fn echo_json(r: &Received) -> serde_json::Value {
    serde_json::json!({
        "method": r.method,
        "uri": r.uri,
        "headers": r.headers.iter().map(|(k, v)| serde_json::json!([k, v])).collect::<Vec<_>>(),
        "body": String::from_utf8_lossy(&r.body),
    })
}

/// The base URL `courier serve` prints on its first line
/// (`listening on http://ADDR`), read from `child`'s piped stdout; `None` if
/// the line is not that.
pub fn serve_address(child: &mut std::process::Child) -> Option<String> {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take()?)
        .read_line(&mut line)
        .ok()?;
    Some(line.trim_end().strip_prefix("listening on ")?.to_owned())
}

/// The repository's `target/` directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A compiled plugin under `target/plugins`.
pub fn plugin(name: &str) -> PathBuf {
    let path = target_dir().join("plugins").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the plugins first (./dev build-plugins)",
        path.display()
    );
    path
}

/// A host as the tests configure it: compiled-component cache under target/,
/// loopback allowed explicitly by the operator (never by default).
pub fn host_builder() -> HostBuilder {
    Host::builder()
        .cache_dir(target_dir().join("courier-test-cache"))
        .allow_host("http://*:*".parse().unwrap())
        .allow_host("https://*:*".parse().unwrap())
        .allow_network("127.0.0.1/32".parse().unwrap())
}

/// A built host with these plugins loaded.
pub async fn host_with(builder: HostBuilder, plugins: &[&str]) -> Host {
    let host = builder.build().expect("host builds");
    for p in plugins {
        host.load_plugin_file(&plugin(p))
            .await
            .expect("plugin loads");
    }
    host
}

/// One part of a `multipart/form-data` body as a server parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPart {
    /// The `name` parameter of `Content-Disposition`.
    pub name: String,
    /// The `filename` parameter, if any.
    pub filename: Option<String>,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The part's bytes.
    pub data: Vec<u8>,
}

/// Parses a `multipart/form-data` body (RFC 7578) with the boundary taken from
/// its `Content-Type`; panics on anything malformed.
pub fn multipart_parts(content_type: &str, body: &[u8]) -> Vec<ReceivedPart> {
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap_or_else(|| panic!("not a multipart content type: {content_type}"));
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    // A leading CRLF makes the first delimiter look like the others.
    let body = [b"\r\n".as_slice(), body].concat();
    let mut chunks = split(&body, &delimiter);
    assert!(
        chunks.remove(0).is_empty(),
        "nothing before the first boundary"
    );
    let last = chunks.pop().expect("a closing boundary");
    assert_eq!(last, b"--\r\n", "the body ends with the closing boundary");
    chunks
        .into_iter()
        .map(|chunk| {
            let chunk = chunk
                .strip_prefix(b"\r\n")
                .expect("CRLF after the boundary");
            let end = find(chunk, b"\r\n\r\n").expect("a blank line after the part headers");
            let head = std::str::from_utf8(&chunk[..end]).expect("part headers are UTF-8");
            let mut part = ReceivedPart {
                name: String::new(),
                filename: None,
                content_type: None,
                data: chunk[end + 4..].to_vec(),
            };
            for line in head.split("\r\n") {
                let (key, value) = line.split_once(": ").expect("a part header line");
                match key.to_ascii_lowercase().as_str() {
                    "content-disposition" => {
                        for param in value.split("; ").skip(1) {
                            let (k, v) = param.split_once('=').expect("a disposition parameter");
                            let v = v.trim_matches('"').to_owned();
                            match k {
                                "name" => part.name = v,
                                "filename" => part.filename = Some(v),
                                other => panic!("unexpected disposition parameter {other}"),
                            }
                        }
                    }
                    "content-type" => part.content_type = Some(value.to_owned()),
                    other => panic!("unexpected part header {other}"),
                }
            }
            part
        })
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split<'a>(mut data: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(at) = find(data, delimiter) {
        out.push(&data[..at]);
        data = &data[at + delimiter.len()..];
    }
    out.push(data);
    out
}

/// A test PKI made with rcgen: a CA, a server certificate for `localhost`
/// and 127.0.0.1, and a client certificate, all signed by the CA.
pub struct TestPki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    server_cert: rcgen::Certificate,
    server_key: rcgen::KeyPair,
    /// The client certificate (PEM).
    pub client_cert_pem: String,
    client_key: rcgen::KeyPair,
}

impl TestPki {
    /// A fresh PKI whose CA is named `name`.
    pub fn new(name: &str) -> Self {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        let server_cert = server_params.signed_by(&server_key, &ca).unwrap();
        let client_key = rcgen::KeyPair::generate().unwrap();
        let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} client"));
        let client_cert_pem = client_params.signed_by(&client_key, &ca).unwrap().pem();
        Self {
            ca,
            server_cert,
            server_key,
            client_cert_pem,
            client_key,
        }
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A client configuration trusting only this CA (for clients other than the host's).
    pub fn client_config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
    }

    /// The client key as unencrypted PKCS#8 PEM.
    pub fn client_key_pem(&self) -> String {
        self.client_key.serialize_pem()
    }

    /// The client key as PKCS#8 DER.
    pub fn client_key_der(&self) -> Vec<u8> {
        self.client_key.serialize_der()
    }

    /// A server configuration with the server certificate; with
    /// `require_client_cert`, only clients with a certificate from this CA are accepted.
    pub fn server_config(&self, require_client_cert: bool) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca.der().clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key =
            rustls::pki_types::PrivatePkcs8KeyDer::from(self.server_key.serialize_der()).into();
        let mut config = builder
            .with_single_cert(vec![self.server_cert.der().clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }
}

/// A fresh directory under `target/tmp` for files a test writes.
pub fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = target_dir().join("tmp").join(format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}

/// What a [`stalling_server`] does with each connection it accepts.
#[derive(Debug, Clone, Copy)]
pub enum Stall {
    /// Holds the socket and says nothing (no TLS, no HTTP).
    Silent,
    /// Reads the request head, then says nothing.
    AfterRequest,
    /// Sends a response head announcing a body, then stalls.
    InBody,
}

/// A server that stalls; its connections stay open while it runs.
pub struct StallingServer {
    /// Its address.
    pub addr: SocketAddr,
    requests: Arc<tokio::sync::Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl StallingServer {
    /// Waits until the server has read one more request head.
    pub async fn request_arrived(&self) {
        self.requests
            .acquire()
            .await
            .expect("the semaphore stays open")
            .forget();
    }
}

impl Drop for StallingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a server on 127.0.0.1 that stalls as `stall` says.
pub async fn stalling_server(stall: Stall) -> StallingServer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(tokio::sync::Semaphore::new(0));
    let arrived = requests.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            if !matches!(stall, Stall::Silent) {
                let mut buf = vec![0; 8192];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n @ 1..) = stream.read(&mut buf).await else {
                        break;
                    };
                    head.extend_from_slice(&buf[..n]);
                }
                arrived.add_permits(1);
            }
            if matches!(stall, Stall::InBody) {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
                    .await;
            }
            held.push(stream);
        }
    });
    StallingServer {
        addr,
        requests,
        task,
    }
}

/// A server in a child process that prints its port on its first line and
/// exits when its stdin closes (when the test process ends, however it ends).
pub struct ChildServer {
    /// Its address.
    pub addr: SocketAddr,
    // Holds the child's stdin.
    _child: Mutex<std::process::Child>,
}

impl ChildServer {
    /// Starts `program args…` and reads the port it prints.
    pub fn start(program: &std::path::Path, args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the server prints its port");
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{} did not start: {line:?}", program.display()));
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _child: Mutex::new(child),
        }
    }

    /// `http://127.0.0.1:PORT` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// httpbin (from PyPI), the third-party peer: one process per test binary,
/// served by waitress on 127.0.0.1, installed by `./dev test` into
/// `target/httpbin-venv`.
pub struct Httpbin;

/// Serves httpbin on a free loopback port, prints the port, and exits when
/// its stdin closes.
const HTTPBIN_LAUNCHER: &str = "\
import os, sys, threading
import httpbin, waitress
server = waitress.create_server(httpbin.app, host='127.0.0.1', port=0)
print(server.effective_port, flush=True)
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
server.run()
";

impl Httpbin {
    /// The shared instance, started on first use.
    pub fn get() -> &'static ChildServer {
        static HTTPBIN: std::sync::OnceLock<ChildServer> = std::sync::OnceLock::new();
        HTTPBIN.get_or_init(|| {
            let python = target_dir().join("httpbin-venv/bin/python");
            assert!(
                python.exists(),
                "{} is missing: `./dev test` installs httpbin (or run `./dev httpbin`)",
                python.display()
            );
            ChildServer::start(&python, &["-c", HTTPBIN_LAUNCHER])
        })
    }
}

/// `tests/support/encoding_echo.py` on the machine's `python3` (standard
/// library only): an upstream echoing the bearer token it receives in every
/// encoding real encoders write, in every part of a response. One per test
/// binary.
pub fn encoding_echo() -> &'static ChildServer {
    static ECHO: std::sync::OnceLock<ChildServer> = std::sync::OnceLock::new();
    ECHO.get_or_init(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/encoding_echo.py");
        ChildServer::start(std::path::Path::new("python3"), &[script.to_str().unwrap()])
    })
}

/// A component wrapping one core module with one function of straight-line
/// arithmetic, `ops` additions long (about 6 bytes each): something to
/// compile, for load bounds. It exports nothing, so it compiles but does not
/// link as a plugin.
pub fn component_with_function(ops: u32) -> Vec<u8> {
    use wasm_encoder::{
        CodeSection, Component, Function, FunctionSection, Instruction, Module, ModuleSection,
        TypeSection, ValType,
    };
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    let mut functions = FunctionSection::new();
    functions.function(0);
    let mut body = Function::new([]);
    for i in 0..ops {
        body.instruction(&Instruction::LocalGet(0));
        body.instruction(&Instruction::I32Const(i as i32));
        body.instruction(&Instruction::I32Add);
        body.instruction(&Instruction::LocalSet(0));
    }
    body.instruction(&Instruction::LocalGet(0));
    body.instruction(&Instruction::End);
    let mut code = CodeSection::new();
    code.function(&body);
    let mut module = Module::new();
    module.section(&types).section(&functions).section(&code);
    let mut component = Component::new();
    component.section(&ModuleSection(&module));
    component.finish()
}

/// A [`courier_host::Transport`] that delivers requests under `base` (a
/// vendor's base URL, as its plugin declares it) to a local server over
/// plain HTTP, the rest of the path and the query unchanged, and refuses
/// any other URL: vendor plugins run with their real base URLs and allowed
/// hosts against a local peer.
pub struct LocalTransport {
    base: &'static str,
    local: SocketAddr,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
}

impl LocalTransport {
    /// Requests under `base` go to `local`.
    pub fn new(base: &'static str, local: SocketAddr) -> Self {
        Self {
            base,
            local,
            client: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl courier_host::Transport for LocalTransport {
    fn send(
        &self,
        request: courier_host::TransportRequest,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<courier_host::TransportResponse, courier_host::TransportError>,
                > + Send
                + '_,
        >,
    > {
        use courier_host::{TransportBody, TransportError};
        Box::pin(async move {
            let url = request.url();
            let rest = url
                .strip_prefix(self.base)
                .ok_or_else(|| TransportError::denied(format!("not under {}: {url}", self.base)))?;
            let mut outgoing = hyper::Request::builder()
                .method(request.method())
                .uri(format!("http://{}{rest}", self.local));
            for (name, value) in request.headers() {
                outgoing = outgoing.header(name, value);
            }
            let outgoing = outgoing
                .body(Full::new(request.body().clone()))
                .map_err(|e| TransportError::other(e.to_string()))?;
            let response = self
                .client
                .request(outgoing)
                .await
                .map_err(|e| TransportError::connect(e.to_string()))?;
            Ok(response.map(TransportBody::streaming))
        })
    }
}

/// A component that imports the instance `name` (with one function,
/// `handle: func()`) and nothing else: what a toolchain emits for an
/// interface Courier does not provide.
pub fn component_importing(name: &str) -> Vec<u8> {
    use wasm_encoder::{
        Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType,
    };
    let mut types = ComponentTypeSection::new();
    let mut instance = InstanceType::new();
    instance
        .ty()
        .function()
        .params([] as [(&str, wasm_encoder::ComponentValType); 0])
        .result(None);
    instance.export("handle", ComponentTypeRef::Func(0));
    types.instance(&instance);
    let mut imports = ComponentImportSection::new();
    imports.import(name, ComponentTypeRef::Instance(0));
    let mut component = Component::new();
    component.section(&types).section(&imports);
    component.finish()
}

/// A [`courier_host::Clock`] that moves only when told to (its `sleep` moves it).
pub struct ManualClock {
    start: std::time::Instant,
    wall_start: std::time::SystemTime,
    elapsed: Mutex<std::time::Duration>,
}

impl ManualClock {
    /// A clock at the machine's time.
    pub fn new() -> Arc<Self> {
        Self::starting_at(std::time::SystemTime::now())
    }

    /// A clock whose wall time starts at `wall`.
    pub fn starting_at(wall: std::time::SystemTime) -> Arc<Self> {
        Arc::new(Self {
            start: std::time::Instant::now(),
            wall_start: wall,
            elapsed: Mutex::new(std::time::Duration::ZERO),
        })
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        *self.elapsed.lock().unwrap() += by;
    }
}

impl courier_host::Clock for ManualClock {
    fn now(&self) -> std::time::Instant {
        self.start + *self.elapsed.lock().unwrap()
    }

    fn wall(&self) -> std::time::SystemTime {
        self.wall_start + *self.elapsed.lock().unwrap()
    }

    fn sleep(
        &self,
        duration: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        self.advance(duration);
        Box::pin(std::future::ready(()))
    }
}
