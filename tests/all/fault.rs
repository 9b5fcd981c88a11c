//! The fault run (issue 14 item 8): the real host and `http-request` plugin
//! send through a loopback fault proxy to a recording upstream.
//!
//! The proxy takes one request per connection and injects, per connection:
//! a reset before the request is read, a reset after it was forwarded to
//! the upstream (the effect happened, the answer is lost), a 503, a 429
//! with `Retry-After`, a blackhole (the request is read, nothing answers),
//! a trickled response; and 5xx storms: for 150 ms of every 3 s (from 1 s
//! on) every connection gets a 503, which opens the origin's circuit
//! breaker for a while. The host's resolver fails some lookups of
//! the upstream's name (through the `Resolve` seam). Steps mix creates with an
//! idempotency key (the step's own, or one the host generates), creates
//! without a key, and data reads, all with retries.
//!
//! It checks: every step ends with a classified result (0 lost), no create
//! takes effect twice (the upstream counts effects per step: a keyed create
//! once per key it has not seen, an unkeyed one on every arrival), every
//! step ends by its deadline + 1 s; and it reports the share of steps that
//! succeeded although a fault hit them. `COURIER_FAULT_STEPS` sets the
//! number of steps (default 300, the test suite's short run);
//! `COURIER_FAULT_REPORT` names a file the figures are written to
//! (`./dev fault` runs 10,000 steps and writes `RELIABILITY.md`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use courier_host::{CircuitSettings, Limits, Outcome, Resolve, StepRequest, StepResult};
use courier_tests::{Reply, TestServer, host_builder, host_with};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The upstream's name, resolved by [`FlakyResolver`].
const UPSTREAM_NAME: &str = "upstream.fault.test";
const STEP_DEADLINE: Duration = Duration::from_secs(3);

/// A small deterministic generator (xorshift64*), shared by the proxy and
/// the resolver.
struct Dice(AtomicU64);

impl Dice {
    fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed | 1))
    }

    /// A number in `0..100`.
    fn percent(&self) -> u64 {
        let mut x = self.0.load(Ordering::Relaxed);
        loop {
            let mut next = x;
            next ^= next >> 12;
            next ^= next << 25;
            next ^= next >> 27;
            match self
                .0
                .compare_exchange_weak(x, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next.wrapping_mul(0x2545_f491_4f6c_dd1d) % 100,
                Err(seen) => x = seen,
            }
        }
    }
}

/// What the proxy does to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Fault {
    None,
    ResetBeforeRequest,
    ResetAfterForwarding,
    Status503,
    Status429,
    Blackhole,
    Trickle,
    Dns,
    Storm503,
}

/// Within a storm every connection gets a 503.
const STORM_EVERY: Duration = Duration::from_secs(3);
const STORM_STARTS: Duration = Duration::from_secs(1);
const STORM_LASTS: Duration = Duration::from_millis(150);

impl Fault {
    /// The fault of one connection, by these shares in percent.
    fn draw(dice: &Dice) -> Self {
        match dice.percent() {
            0..5 => Fault::ResetBeforeRequest,
            5..10 => Fault::ResetAfterForwarding,
            10..18 => Fault::Status503,
            18..22 => Fault::Status429,
            22..24 => Fault::Blackhole,
            24..27 => Fault::Trickle,
            _ => Fault::None,
        }
    }
}

type Counts = Arc<Mutex<BTreeMap<Fault, u64>>>;

/// The fault proxy on 127.0.0.1: one request per connection, then closed.
async fn start_proxy(upstream: SocketAddr, dice: Arc<Dice>, counts: Counts) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let started = Instant::now();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let into_period = started.elapsed().as_nanos() % STORM_EVERY.as_nanos();
            let storm = STORM_STARTS.as_nanos()..(STORM_STARTS + STORM_LASTS).as_nanos();
            let fault = if storm.contains(&into_period) {
                Fault::Storm503
            } else {
                Fault::draw(&dice)
            };
            *counts.lock().unwrap().entry(fault).or_default() += 1;
            tokio::spawn(async move {
                let _ = proxy_one(client, upstream, fault).await;
            });
        }
    });
    addr
}

async fn proxy_one(mut client: TcpStream, upstream: SocketAddr, fault: Fault) -> io::Result<()> {
    if fault == Fault::ResetBeforeRequest {
        return client.set_zero_linger();
    }
    let request = read_message(&mut client).await?;
    let answer = |status: &str, extra: &str| {
        format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n{extra}\r\n")
    };
    match fault {
        Fault::ResetAfterForwarding => {
            forward(&request, upstream).await?;
            client.set_zero_linger()
        }
        Fault::Status503 | Fault::Storm503 => {
            client
                .write_all(answer("503 Service Unavailable", "").as_bytes())
                .await
        }
        Fault::Status429 => {
            client
                .write_all(answer("429 Too Many Requests", "retry-after: 1\r\n").as_bytes())
                .await
        }
        Fault::Blackhole => {
            // Hold the connection, silent, until the host gives up on it.
            let mut sink = [0u8; 64];
            let _ = tokio::time::timeout(Duration::from_secs(10), client.read(&mut sink)).await;
            Ok(())
        }
        Fault::Trickle => {
            let response = forward(&request, upstream).await?;
            for chunk in response.chunks(16) {
                client.write_all(chunk).await?;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            Ok(())
        }
        Fault::None | Fault::ResetBeforeRequest | Fault::Dns => {
            let response = forward(&request, upstream).await?;
            client.write_all(&response).await
        }
    }
}

/// One HTTP/1.1 message (head and a `content-length` body) from `stream`.
async fn read_message(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                data.truncate(end + 4 + length);
                return Ok(data);
            }
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        data.extend_from_slice(&buf[..n]);
    }
}

/// Sends `request` to the upstream and returns its response, marked
/// `connection: close` (the proxy carries one request per connection).
async fn forward(request: &[u8], upstream: SocketAddr) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    stream.write_all(request).await?;
    let mut response = read_message(&mut stream).await?;
    let line_end = response.windows(2).position(|w| w == b"\r\n").unwrap_or(0) + 2;
    response.splice(line_end..line_end, b"connection: close\r\n".iter().copied());
    Ok(response)
}

/// Resolves the upstream's name to 127.0.0.1, failing the share of
/// lookups the dice say.
struct FlakyResolver {
    dice: Arc<Dice>,
    counts: Counts,
}

impl Resolve for FlakyResolver {
    fn resolve(
        &self,
        host: &str,
    ) -> Pin<Box<dyn std::future::Future<Output = io::Result<Vec<IpAddr>>> + Send + '_>> {
        let fails = host != UPSTREAM_NAME || self.dice.percent() < 3;
        if fails {
            *self.counts.lock().unwrap().entry(Fault::Dns).or_default() += 1;
        }
        Box::pin(async move {
            if fails {
                Err(io::Error::other("injected lookup failure"))
            } else {
                Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)])
            }
        })
    }
}

/// What the upstream saw take effect, per step.
#[derive(Default)]
struct Effects {
    /// Idempotency keys already processed.
    keys: HashSet<String>,
    /// Keyed creates that took effect, per step.
    keyed: HashMap<u64, u32>,
    /// Unkeyed creates that took effect, per step.
    unkeyed: HashMap<u64, u32>,
}

/// The recording upstream: `POST /orders` with a key takes effect once per
/// key (a replay answers the same), `POST /notes` on every arrival, `GET`
/// reads.
async fn start_upstream(effects: Arc<Mutex<Effects>>) -> TestServer {
    TestServer::start(move |r| {
        let step = || {
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["step"]
                .as_u64()
                .unwrap()
        };
        let mut e = effects.lock().unwrap();
        match (r.method.as_str(), r.uri.as_str()) {
            ("POST", "/orders") => {
                let key = r.header("idempotency-key").unwrap_or_default().to_owned();
                if e.keys.insert(key.clone()) {
                    *e.keyed.entry(step()).or_default() += 1;
                }
                Reply::json(201, json!({"order": key}))
            }
            ("POST", "/notes") => {
                *e.unkeyed.entry(step()).or_default() += 1;
                Reply::json(201, json!({"note": step()}))
            }
            _ => Reply::json(200, json!({"item": r.uri})),
        }
    })
    .await
}

/// The input of step `i`: half creates with the step's own key, a tenth
/// with a host-generated key, a tenth unkeyed creates, the rest reads.
fn input(i: u64, proxy: SocketAddr) -> serde_json::Value {
    let base = format!("http://{UPSTREAM_NAME}:{}", proxy.port());
    let retry = json!({
        "attempts": 5,
        "backoff": {"initial": 0.05, "max": 0.2},
        "statuses": [429, 502, 503, 504],
    });
    let create = |path: &str| {
        json!({
            "url": format!("{base}{path}"), "method": "POST", "body": {"step": i},
            "retry": retry, "timeout": 1.0,
        })
    };
    let mut input = match i % 10 {
        0..=5 => create("/orders"),
        6 => create("/notes"),
        _ => json!({"url": format!("{base}/items/{i}"), "retry": retry, "timeout": 1.0}),
    };
    match i % 10 {
        0..5 => input["idempotency_key"] = json!(format!("create-{i}")),
        5 => input["idempotency_key"] = json!(true),
        _ => {}
    }
    input
}

/// The figures of one run.
struct Figures {
    steps: u64,
    outcomes: BTreeMap<String, u64>,
    lost: u64,
    duplicated: u64,
    late: u64,
    slowest: Duration,
    hit: u64,
    hit_succeeded: u64,
    succeeded: u64,
    attempts: u64,
    faults: BTreeMap<Fault, u64>,
    wall: Duration,
}

impl Figures {
    fn markdown(&self) -> String {
        let pct = |a: u64, b: u64| 100.0 * a as f64 / b.max(1) as f64;
        let mut out = String::from(
            "Host settings: step deadline 3 s, request timeout 1 s, first-byte timeout 500 ms; \
             circuit breaker on (8 failures in a row, open 200 ms up to 1 s); 32 steps in \
             flight. Retries: 5 attempts, backoff 50-200 ms, statuses 429/502/503/504. Faults per \
             connection: 5 % reset before, 5 % reset after forwarding, 8 % 503, 4 % 429 \
             (`Retry-After: 1`), 2 % blackhole, 3 % trickle; 3 % of lookups fail; a 503 storm \
             150 ms every 3 s. A circuit-open step is one the breaker refused during a storm.\n\n",
        );
        out.push_str("| figure | value |\n|---|---|\n");
        let rows = [
            ("steps", self.steps.to_string()),
            ("lost steps (no classified result)", self.lost.to_string()),
            (
                "duplicated effects (per step, counted at the upstream)",
                self.duplicated.to_string(),
            ),
            (
                "steps ended by deadline + 1 s",
                format!(
                    "{:.2} % (slowest {} ms, deadline {} ms)",
                    pct(self.steps - self.late, self.steps),
                    self.slowest.as_millis(),
                    STEP_DEADLINE.as_millis()
                ),
            ),
            (
                "steps succeeded",
                format!("{:.2} %", pct(self.succeeded, self.steps)),
            ),
            (
                "steps a fault hit",
                format!("{} ({:.2} %)", self.hit, pct(self.hit, self.steps)),
            ),
            (
                "of those, succeeded despite it",
                format!("{:.2} %", pct(self.hit_succeeded, self.hit)),
            ),
            (
                "request records (every attempt, circuit refusals included)",
                self.attempts.to_string(),
            ),
            ("wall time", format!("{:.1} s", self.wall.as_secs_f64())),
        ];
        for (k, v) in rows {
            out.push_str(&format!("| {k} | {v} |\n"));
        }
        out.push_str("\n| outcome | steps |\n|---|---|\n");
        for (k, v) in &self.outcomes {
            out.push_str(&format!("| {k} | {v} |\n"));
        }
        out.push_str("\n| injected fault | count |\n|---|---|\n");
        for (k, v) in &self.faults {
            out.push_str(&format!("| {k:?} | {v} |\n"));
        }
        out
    }
}

/// Whether a fault touched the step: an attempt failed or met a status the
/// proxy injects.
fn hit_by_fault(r: &StepResult) -> bool {
    r.requests
        .iter()
        .any(|q| q.error.is_some() || matches!(q.status, Some(429 | 503)))
}

/// `outcome` or `outcome (failure kind)`.
fn outcome_text(r: &StepResult) -> String {
    let outcome = serde_json::to_value(r.outcome).unwrap();
    let outcome = outcome.as_str().unwrap();
    match r.failure_kind() {
        Some(kind) => format!("{outcome} ({})", kind.as_str()),
        None => outcome.to_owned(),
    }
}

async fn run(steps: u64) -> Figures {
    let dice = Arc::new(Dice::new(0x5eed_cafe));
    let counts = Counts::default();
    let effects = Arc::new(Mutex::new(Effects::default()));
    let upstream = start_upstream(effects.clone()).await;
    let proxy = start_proxy(upstream.addr, dice.clone(), counts.clone()).await;
    let limits = Limits {
        step_deadline: STEP_DEADLINE,
        request_timeout: Duration::from_secs(1),
        first_byte_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    // The breaker on, but opening briefly: the run's faults are spread
    // evenly, not an origin that is down.
    let circuits = CircuitSettings {
        consecutive_failures: 8,
        open_for: Duration::from_millis(200),
        max_open_for: Duration::from_secs(1),
        ..CircuitSettings::default()
    };
    let builder = host_builder()
        .limits(limits)
        .circuit_breaker(circuits)
        .resolver(Arc::new(FlakyResolver {
            dice: dice.clone(),
            counts: counts.clone(),
        }));
    let host = host_with(builder, &["http-request"]).await;
    let started = Instant::now();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..steps {
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let host = host.clone();
        tasks.spawn(async move {
            let began = Instant::now();
            let result = host
                .run_step(StepRequest {
                    tenant: "fault".into(),
                    plugin: "http-request".into(),
                    call: "request".into(),
                    input: input(i, proxy),
                    connections: vec![],
                })
                .await;
            drop(permit);
            (result, began.elapsed())
        });
    }
    let mut figures = Figures {
        steps,
        outcomes: BTreeMap::new(),
        lost: 0,
        duplicated: 0,
        late: 0,
        slowest: Duration::ZERO,
        hit: 0,
        hit_succeeded: 0,
        succeeded: 0,
        attempts: 0,
        faults: BTreeMap::new(),
        wall: Duration::ZERO,
    };
    let mut ended = 0;
    while let Some(joined) = tasks.join_next().await {
        let Ok((result, took)) = joined else {
            figures.lost += 1;
            continue;
        };
        ended += 1;
        let classified = result.outcome == Outcome::Success || result.failure_kind().is_some();
        if !classified {
            figures.lost += 1;
        }
        *figures.outcomes.entry(outcome_text(&result)).or_default() += 1;
        figures.slowest = figures.slowest.max(took);
        if took > STEP_DEADLINE + Duration::from_secs(1) {
            figures.late += 1;
        }
        figures.attempts += result.requests.len() as u64;
        let success = result.outcome == Outcome::Success;
        figures.succeeded += u64::from(success);
        if hit_by_fault(&result) {
            figures.hit += 1;
            figures.hit_succeeded += u64::from(success);
        }
    }
    figures.lost += steps - ended;
    figures.wall = started.elapsed();
    let e = effects.lock().unwrap();
    figures.duplicated = e
        .keyed
        .values()
        .chain(e.unkeyed.values())
        .map(|n| u64::from(n.saturating_sub(1)))
        .sum();
    figures.faults = counts.lock().unwrap().clone();
    figures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_lose_no_step_duplicate_no_effect_and_keep_deadlines() {
    let steps = std::env::var("COURIER_FAULT_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let figures = run(steps).await;
    let table = figures.markdown();
    println!("{table}");
    if let Ok(path) = std::env::var("COURIER_FAULT_REPORT") {
        std::fs::write(path, &table).unwrap();
    }
    assert_eq!(figures.lost, 0, "{table}");
    assert_eq!(figures.duplicated, 0, "{table}");
    assert_eq!(figures.late, 0, "{table}");
    let injected: u64 = figures.faults.values().sum::<u64>()
        - figures.faults.get(&Fault::None).copied().unwrap_or(0);
    assert!(
        injected > 0 && figures.hit > 0,
        "faults were injected: {table}"
    );
    assert!(
        figures.hit_succeeded > 0,
        "retries saved some steps: {table}"
    );
}
