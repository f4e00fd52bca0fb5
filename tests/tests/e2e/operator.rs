//! The built `api` binary as an operator runs it.
//!
//! `./scripts/test` builds the binaries first; these tests look for them in the
//! workspace's target directory (or `$CARGO_TARGET_DIR`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use xentri_e2e::{binary, workspace};

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

/// The built binary runs on jemalloc and reports its counters: live bytes,
/// within what it holds, within what is mapped.
#[tokio::test]
async fn the_api_reports_its_heap_on_metrics() {
    let (mut child, address, _logs) = start_api();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let text =
        reqwest::get(format!("http://{address}/api/v1/metrics")).await.expect("metrics").text().await.expect("body");
    let _ = child.kill();
    let _ = child.wait();
    let gauge = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    let (allocated, active, resident) =
        (gauge("heap_allocated_bytes"), gauge("heap_active_bytes"), gauge("heap_resident_bytes"));
    assert!(allocated > 0.0, "{allocated}");
    assert!(allocated <= active && active <= resident, "allocated {allocated}, active {active}, resident {resident}");
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

#[test]
fn dev_token_works_as_the_readme_shows_and_only_in_a_profile_with_a_dev_secret() {
    let dev_token = |profile: Option<&str>| {
        let mut command = Command::new(binary("api"));
        command.current_dir(workspace()).env_remove("RUST_LOG").args([
            "dev-token",
            "--org",
            "0193a5e4-7b1c-7d2e-9f00-000000000001",
            "--sub",
            "user_dev",
            "--ttl",
            "1h",
        ]);
        match profile {
            Some(profile) => command.env("XENTRI_ENV", profile),
            None => command.env_remove("XENTRI_ENV"),
        };
        command.output().expect("runs")
    };
    // No XENTRI_ENV: the local profile, as `./scripts/run` and the README.
    let output = dev_token(None);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8_lossy(&output.stdout);
    assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token}");

    let output = dev_token(Some("production"));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("auth.dev_secret is not configured"));
}

#[test]
fn the_api_refuses_to_start_with_a_dev_secret_on_a_non_loopback_address() {
    let output = api().env_remove("XENTRI_ENV").env("XENTRI_API__HOST", "0.0.0.0").output().expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("auth.dev_secret is set but api.host 0.0.0.0 is not a loopback address"), "{stderr}");
}

#[test]
fn org_id_prints_the_internal_id_of_a_clerk_organisation() {
    let output = Command::new(binary("api")).args(["org-id", "org_2abcDEF123"]).output().expect("runs");
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    let expected = uuid::Uuid::new_v5(
        &uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"https://xentri.io/ns/clerk-organization"),
        b"org_2abcDEF123",
    );
    assert_eq!(printed.trim(), expected.to_string());
    let output = Command::new(binary("api")).args(["org-id", "acme"]).output().expect("runs");
    assert_eq!(output.status.code(), Some(2));
}

/// Runs the `api` or `worker` binary as `./scripts/run` does (the run profile:
/// no `XENTRI_ENV`) with `env` on top, expecting it to refuse to start: its
/// exit code and stderr.
async fn refused_start(name: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = tokio::process::Command::new(binary(name));
    command
        .current_dir(workspace())
        .env_remove("XENTRI_ENV")
        .env_remove("RUST_LOG")
        .env("XENTRI_API__PORT", "0")
        .env("XENTRI_WORKER__PORT", "0")
        .env("XENTRI_DATABASE__MIGRATE_ON_START", "false")
        .env("XENTRI_TELEMETRY__LOG_FILTER", "error")
        .env("REDIS_URL", xentri_e2e::redis_url())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), command.output())
        .await
        .unwrap_or_else(|_| panic!("expected the {name} to refuse to start, it kept running"))
        .expect("the binary runs");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).trim_end().to_owned())
}

/// The URL of `url`'s database, logged in as the service login instead.
fn as_service_login(url: &str) -> String {
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("a PostgreSQL URL");
    format!(
        "postgres://{}@{}:{}/{}",
        xentri_core::roles::SERVICE_LOGIN,
        options.get_host(),
        options.get_port(),
        options.get_database().expect("a database")
    )
}

#[tokio::test]
async fn the_api_and_the_worker_refuse_a_superuser_login_with_one_line() {
    let database = xentri_e2e::processes::Database::create("superuser").await;
    let user = database.url.parse::<sqlx::postgres::PgConnectOptions>().expect("URL").get_username().to_owned();
    for name in ["api", "worker"] {
        let (code, stderr) =
            refused_start(name, &[("DATABASE_URL", &database.url), ("DATABASE_MIGRATE_URL", &database.url)]).await;
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "refusing to run: the database login `{user}` bypasses row-level security (superuser or BYPASSRLS: "
            )),
            "{name}: {stderr}"
        );
    }
    database.remove().await;
}

/// On a cluster of its own: the service roles are cluster-wide, and this test
/// gives them the power to bypass row-level security.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_the_worker_refuse_to_run_when_a_service_role_can_bypass_row_level_security() {
    let cluster = xentri_e2e::services::PrivatePostgres::start().await;
    let database = xentri_e2e::processes::Database::create_on(&cluster.url("postgres"), "bypass").await;
    let service = as_service_login(&database.url);
    let env = [("DATABASE_URL", service.as_str()), ("DATABASE_MIGRATE_URL", database.url.as_str())];

    // As the migrations leave it, the api runs as the service login.
    let (mut api, _) = xentri_e2e::processes::start_api(
        &service,
        &xentri_e2e::redis_url(),
        &xentri_e2e::unique_key_prefix(),
        &[("XENTRI_DATABASE__TEST_ALLOW_PRIVILEGED_LOGIN", "false")],
        std::sync::Arc::default(),
    )
    .await;
    api.signal("-TERM").await;

    let pool = database.pool().await;
    // The test profile on the superuser login: its leave skips the login's
    // check, never the service roles'.
    let tests = [("XENTRI_ENV", "test"), ("DATABASE_URL", database.url.as_str())];
    let refuses = |name: &'static str, env: Vec<(&'static str, String)>, expected: String| async move {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, stderr) = refused_start(name, &env).await;
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert_eq!(stderr, expected, "{name}");
    };
    let owned = |env: &[(&'static str, &str)]| env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect::<Vec<_>>();
    // What a start refuses with when service role `role` can bypass RLS through `through`.
    let role_bypasses = |role: &str, through: &str| {
        format!(
            "refusing to run: the service role `{role}` can bypass row-level security (superuser or \
             BYPASSRLS: {through}); revoke it (ALTER ROLE … NOBYPASSRLS, REVOKE … FROM {role})"
        )
    };

    // A service role that is a member of a role with BYPASSRLS.
    sqlx::query("CREATE ROLE t_bypass NOLOGIN BYPASSRLS").execute(&pool).await.expect("role");
    sqlx::query("GRANT t_bypass TO xentri_worker").execute(&pool).await.expect("grant");
    for name in ["api", "worker"] {
        refuses(name, owned(&tests), role_bypasses("xentri_worker", "t_bypass")).await;
        // The service login, a member of xentri_worker, could become t_bypass too.
        refuses(
            name,
            owned(&env),
            "refusing to run: the database login `xentri_service` bypasses row-level security (superuser or \
             BYPASSRLS: t_bypass); log in as xentri_service (database.url)"
                .to_owned(),
        )
        .await;
    }

    // A service role with BYPASSRLS itself.
    sqlx::query("REVOKE t_bypass FROM xentri_worker").execute(&pool).await.expect("revoke");
    sqlx::query("ALTER ROLE xentri_relay BYPASSRLS").execute(&pool).await.expect("alter");
    for name in ["api", "worker"] {
        refuses(name, owned(&tests), role_bypasses("xentri_relay", "xentri_relay")).await;
    }
    pool.close().await;
}
