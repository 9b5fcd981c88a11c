//! Each timeout phase, triggered by a server that stalls in that phase; the
//! error names the phase.

use std::time::Duration;

use courier_host::{ClientSettings, HostBuilder, Limits, Outcome, StepResult};
use courier_tests::{Stall, host_builder, host_with, stalling_server};
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};

use crate::step;

const SHORT: Duration = Duration::from_millis(300);

async fn run(builder: HostBuilder, url: String, timeout_s: f64) -> StepResult {
    let host = host_with(builder, &["http-request"]).await;
    step(
        &host,
        "http-request",
        "request",
        json!({"url": url, "timeout": timeout_s}),
        &[],
    )
    .await
}

fn assert_timeout(r: &StepResult, phase: &str) {
    assert_eq!(r.outcome, Outcome::Timeout, "{r:?}");
    let error = r.error.as_ref().unwrap();
    assert_eq!(
        (error.kind.as_str(), error.message.as_str()),
        ("timeout", phase),
        "{r:?}"
    );
}

#[tokio::test]
async fn connect_phase() {
    // A listener that never accepts, with its accept queue filled: further
    // SYNs go unanswered and the connect stalls.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    while let Ok(Ok(stream)) =
        tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
    {
        fillers.push(stream);
    }
    let settings = ClientSettings {
        connect_timeout: SHORT,
        ..ClientSettings::default()
    };
    let builder = host_builder().client_settings(settings);
    let r = run(builder, format!("http://{addr}/"), 10.0).await;
    assert_timeout(&r, "connect");
    drop(listener);
}

#[tokio::test]
async fn tls_handshake_phase() {
    let server = stalling_server(Stall::Silent).await;
    let addr = server.addr;
    let settings = ClientSettings {
        tls_handshake_timeout: SHORT,
        ..ClientSettings::default()
    };
    let builder = host_builder().client_settings(settings);
    let r = run(builder, format!("https://{addr}/"), 10.0).await;
    assert_timeout(&r, "tls-handshake");
}

#[tokio::test]
async fn first_byte_phase() {
    let server = stalling_server(Stall::AfterRequest).await;
    let addr = server.addr;
    let limits = Limits {
        first_byte_timeout: SHORT,
        ..Limits::default()
    };
    let r = run(
        host_builder().limits(limits),
        format!("http://{addr}/"),
        10.0,
    )
    .await;
    assert_timeout(&r, "first-byte");
}

#[tokio::test]
async fn total_phase_while_the_body_stalls() {
    let server = stalling_server(Stall::InBody).await;
    let addr = server.addr;
    let r = run(host_builder(), format!("http://{addr}/"), 0.3).await;
    assert_timeout(&r, "total");
}

#[tokio::test]
async fn the_request_total_bounds_the_phases() {
    let server = stalling_server(Stall::AfterRequest).await;
    let addr = server.addr;
    // First byte would allow 30 s; the request's own 0.3 s ends it first.
    let r = run(host_builder(), format!("http://{addr}/"), 0.3).await;
    assert_timeout(&r, "total");
}
