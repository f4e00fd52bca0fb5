//! End-to-end: the built `api` binary as an operator runs it.
//!
//! `./scripts/test` builds the binaries first; these tests look for them in the
//! workspace's target directory (or `$CARGO_TARGET_DIR`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug").join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace --bins` first", path.display());
    path
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn api() -> Command {
    let mut command = Command::new(binary("api"));
    command
        .current_dir(workspace())
        .env("XENTRI_ENV", "test")
        .env("XENTRI_API__PORT", "0")
        .env("XENTRI_DATABASE__MIGRATE_ON_START", "false")
        .env("XENTRI_TELEMETRY__LOG_FILTER", "info")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Starts the api and returns it with the address it logged.
fn start_api() -> (Child, String, mpsc::Receiver<String>) {
    let mut child = api().spawn().expect("api starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let address = rx
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(&line).ok())
        .find(|json| json["message"] == "api listening")
        .and_then(|json| json["address"].as_str().map(str::to_owned));
    match address {
        Some(address) => (child, address, rx),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("api exited without logging its address");
        }
    }
}

#[tokio::test]
async fn sigterm_stops_the_api_gracefully_with_exit_0() {
    let (mut child, address, logs) = start_api();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::get(format!("http://{address}/health")).await.expect("health");
    assert_eq!(response.status(), 200);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    assert_eq!(exit.code(), Some(0));
    let lines: Vec<String> = logs.try_iter().collect();
    assert!(lines.iter().any(|l| l.contains("\"signal\":\"SIGTERM\"")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("api stopped")), "{lines:#?}");
}

#[test]
fn an_invalid_setting_stops_start_up_with_one_line() {
    let output = api().env("XENTRI_API__PORT", "eighty").output().expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim_end(),
        "configuration error: invalid value for `api.port` (from XENTRI_API__PORT): \
         invalid type: found string \"eighty\", expected u16"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_missing_profile_stops_start_up_with_one_line() {
    let output = api().env("XENTRI_ENV", "nosuchenv").output().expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end(), "configuration error: XENTRI_ENV=nosuchenv but config/nosuchenv.toml does not exist");
}
