//! shopper-bench as a user runs it: with no store to reach, it says so and fails, and a plot
//! file name it cannot write is refused before anything starts.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_shopper-bench");

/// A local port nothing listens on (it was free a moment ago).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn a_run_in_which_nobody_joined_fails_with_a_clear_message() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let output = Command::new(BIN)
        .args([
            "--url",
            &url,
            "-n",
            "20",
            "--ramp-rate",
            "1000",
            "--sources",
            "1",
        ])
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("running shopper-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no shopper joined: 0 of 20"),
        "the reason: {stderr}"
    );
    assert!(stderr.contains(&url), "names the store it tried: {stderr}");
    assert!(stderr.contains("is the store running"), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
    // The summary was still printed, without an all-zero churn row.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("shoppers joined         0"), "{stdout}");
    assert!(!stdout.contains("churn"), "{stdout}");
}

#[test]
fn a_plot_name_without_png_or_svg_is_refused_before_the_run() {
    let output = Command::new(BIN)
        .args([
            "--url",
            "http://127.0.0.1:1",
            "-n",
            "1",
            "--plot",
            "run.jpg",
        ])
        .output()
        .expect("running shopper-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains(".png or .svg"), "{stderr}");
}
