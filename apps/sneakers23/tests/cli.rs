//! The operator CLI as a new user meets it: a node started with `PORT` in one folder is reached by
//! `sneakers23 release` run with the same `PORT` from another folder, with no secret given (the
//! development secret is kept per user, not per folder); `--help` of an operator command lists
//! only what it uses; an error is one line, never a backtrace, even with `RUST_BACKTRACE=1`.

mod common;

use std::process::Output;

use common::process::{BIN, StoreProcess};
use tokio::process::Command;

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `sneakers23 args…` run in `dir` with `envs` (and no inherited settings of the store).
async fn cli(dir: &std::path::Path, envs: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir);
    for name in [
        "NODE_URL",
        "SECRET_KEY_BASE",
        "SECRET_KEY_FILE",
        "DATABASE_URL",
        "XDG_DATA_HOME",
    ] {
        command.env_remove(name);
    }
    command.envs(envs.iter().copied());
    command.output().await.expect("running the CLI")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_reaches_a_node_started_with_port_from_another_folder() {
    let home = tempfile::tempdir().expect("a home folder");
    let node_dir = tempfile::tempdir().expect("the node's folder");
    let elsewhere = tempfile::tempdir().expect("another folder");
    let port = free_port().to_string();
    let home_path = home.path().to_str().expect("a UTF-8 path");

    let mut serve = Command::new(BIN);
    serve
        .arg("serve")
        .current_dir(node_dir.path())
        .env("HOME", home_path)
        .env("PORT", &port)
        .env("RUST_LOG", "warn")
        .env_remove("SECRET_KEY_BASE")
        .env_remove("SECRET_KEY_FILE")
        .env_remove("XDG_DATA_HOME")
        .env_remove("DATABASE_URL");
    let node = StoreProcess::spawn(serve).await;
    assert_eq!(node.addr.port().to_string(), port);

    let env = [("HOME", home_path), ("PORT", port.as_str())];
    let released = cli(elsewhere.path(), &env, &["release", "1"]).await;
    assert!(
        released.status.success(),
        "release failed: {}\n{}",
        String::from_utf8_lossy(&released.stderr),
        node.log()
    );
    assert_eq!(
        String::from_utf8_lossy(&released.stdout).trim(),
        "product 1 released"
    );
    let inventory = cli(elsewhere.path(), &env, &["inventory", "--json"]).await;
    assert!(inventory.status.success());
    let inventory: serde_json::Value =
        serde_json::from_slice(&inventory.stdout).expect("the inventory is JSON");
    assert_eq!(inventory["products"][0]["released"], true, "{inventory}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_help_lists_only_what_the_command_uses() {
    let dir = tempfile::tempdir().expect("a folder");
    let help = cli(dir.path(), &[], &["release", "--help"]).await;
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--node-url"), "{text}");
    for unused in [
        "--database-url",
        "--pool-size",
        "--env",
        "required with --env prod",
    ] {
        assert!(!text.contains(unused), "{unused} in:\n{text}");
    }
    let serve = cli(dir.path(), &[], &["serve", "--help"]).await;
    assert!(String::from_utf8_lossy(&serve.stdout).contains("--database-url"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_error_is_one_clear_line_even_with_rust_backtrace() {
    let dir = tempfile::tempdir().expect("a folder");
    let port = free_port().to_string();
    let secret = "a secret key base long enough for the control token signer";
    let failed = cli(
        dir.path(),
        &[
            ("RUST_BACKTRACE", "1"),
            ("PORT", port.as_str()),
            ("SECRET_KEY_BASE", secret),
        ],
        &["release", "1"],
    )
    .await;
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.starts_with("sneakers23: "), "{stderr}");
    assert!(stderr.contains(&port), "names the node it tried: {stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
