//! A third-party client nobody here wrote: `phxsocket` from PyPI (installed by
//! `scripts/setup.sh`) joins a channel and gets its replies. It sends V1 frames with integer refs
//! and waits for a reply whose ref equals the integer it sent.

mod common;

use std::process::Stdio;
use std::time::Duration;

use channels::server::EndpointConfig;
use common::start;

#[tokio::test]
async fn phxsocket_joins_and_gets_its_replies() {
    let server = start(EndpointConfig::default()).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/phxsocket_echo.py"
    );
    let url = format!("ws://{}/socket/websocket", server.addr);
    let child = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (scripts/setup.sh installs it and phxsocket)");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the Python client finishes within 60 s")
        .expect("the Python client's output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'phxsocket'"),
        "phxsocket is not installed: run scripts/setup.sh"
    );
    assert!(
        output.status.success() && stdout.starts_with("OK"),
        "phxsocket failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}
