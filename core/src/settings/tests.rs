//! Loading and checking settings: layers, profiles, errors, every default.

use super::*;
use secrecy::{ExposeSecret, SecretString};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    Settings::load_from(&config_dir(), None, vars)
}

#[test]
fn defaults_load() {
    let settings = load(&[]).expect("default config loads");
    assert_eq!(settings.api.port, 8080);
}

/// The user and database a URL setting names.
fn login(url: &SecretString) -> (String, Option<String>) {
    let options: sqlx::postgres::PgConnectOptions = url.expose_secret().parse().expect("a PostgreSQL URL");
    (options.get_username().to_owned(), options.get_database().map(str::to_owned))
}

#[test]
fn the_run_profile_logs_in_as_the_service_role_and_migrates_as_the_owner() {
    let database = load(&[]).expect("defaults").database;
    assert_eq!(login(&database.url), (crate::roles::SERVICE_LOGIN.to_owned(), Some("xentri".to_owned())));
    let owner = database.migrate_url.as_ref().expect("the run profile has an owner URL for migrations");
    assert_eq!(login(owner), ("postgres".to_owned(), Some("xentri".to_owned())));
    assert!(!database.test_allow_privileged_login);

    let production = |vars: &[(&str, &str)]| {
        let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Settings::load_from(&config_dir(), Some("production"), vars)
    };
    let database = production(&[("DATABASE_URL", "postgres://xentri_service:pw@db.internal/xentri")])
        .expect("production loads")
        .database;
    assert!(database.migrate_url.is_none(), "production migrates only with DATABASE_MIGRATE_URL");
    assert_eq!(login(database.owner_url()).0, "xentri_service");
    assert!(!database.test_allow_privileged_login);
    let database = production(&[
        ("DATABASE_URL", "postgres://xentri_service:pw@db.internal/xentri"),
        ("DATABASE_MIGRATE_URL", "postgres://owner:hunter2@db.internal/xentri"),
    ])
    .expect("production loads");
    assert_eq!(login(database.database.owner_url()).0, "owner");
    assert!(!format!("{database:?}").contains("hunter2"));

    let test = Settings::load_from(&config_dir(), Some("test"), Vec::new()).expect("test profile").database;
    assert!(test.test_allow_privileged_login, "tests reach their databases as postgres");
    assert!(test.migrate_url.is_none(), "tests migrate with DATABASE_URL");
}

#[test]
fn a_role_name_is_not_a_setting() {
    let err = load(&[("XENTRI_DATABASE__API_ROLE", "postgres")]).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "configuration error: unknown key `database.api_role` (from XENTRI_DATABASE__API_ROLE)"
    );
}

#[test]
fn a_privileged_login_is_allowed_only_to_tests_on_loopback() {
    load(&[("XENTRI_DATABASE__TEST_ALLOW_PRIVILEGED_LOGIN", "true")]).expect("on loopback");
    for host in ["XENTRI_API__HOST", "XENTRI_WORKER__HOST"] {
        let err = load(&[("XENTRI_DATABASE__TEST_ALLOW_PRIVILEGED_LOGIN", "true"), (host, "0.0.0.0")])
            .expect_err("must fail");
        assert!(err.to_string().contains("`database.test_allow_privileged_login`"), "{err}");
    }
}

#[test]
fn environment_overrides_files() {
    let settings =
        load(&[("XENTRI_API__PORT", "9123"), ("DATABASE_URL", "postgres://u@h/db"), ("REDIS_URL", "redis://h:1/2")])
            .expect("overrides load");
    assert_eq!(settings.api.port, 9123);
    assert_eq!(settings.database.url.expose_secret(), "postgres://u@h/db");
    assert_eq!(settings.redis.url.expose_secret(), "redis://h:1/2");
}

#[test]
fn invalid_value_names_key_and_origin() {
    let err = load(&[("XENTRI_API__PORT", "eighty")]).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "configuration error: invalid value for `api.port` (from XENTRI_API__PORT): \
         invalid type: found string \"eighty\", expected u16"
    );
}

#[test]
fn missing_key_is_named() {
    let dir = std::env::temp_dir().join(format!("xentri-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let default = std::fs::read_to_string(config_dir().join("default.toml")).expect("default.toml");
    let without_url: String =
        default.lines().filter(|line| !line.starts_with("url = \"postgres")).map(|line| format!("{line}\n")).collect();
    std::fs::write(dir.join("default.toml"), without_url).expect("write");
    let err = Settings::load_from(&dir, None, Vec::new()).expect_err("must fail");
    assert_eq!(err.to_string(), "configuration error: missing key `database.url`");
}

#[test]
fn unknown_keys_are_refused() {
    let err = load(&[("XENTRI_API__PROT", "1")]).expect_err("must fail");
    assert_eq!(err.to_string(), "configuration error: unknown key `api.prot` (from XENTRI_API__PROT)");
    let err = load(&[("XENTRI_PORT", "1")]).expect_err("must fail");
    assert!(err.to_string().starts_with("configuration error: unknown key `port`"), "{err}");
}

#[test]
fn semantic_checks_name_their_key() {
    let err = load(&[("XENTRI_AUTH__LEEWAY_SECS", "120")]).expect_err("must fail");
    assert_eq!(err.to_string(), "configuration error: invalid value for `auth.leeway_secs`: must be at most 60");
}

#[test]
fn purges_are_bounded_and_keep_processed_records_past_any_redelivery() {
    let settings = load(&[]).expect("default config loads");
    assert_eq!(settings.worker.jobs.processed_retention_secs, 7 * 86_400);
    assert!(settings.worker.jobs.processed_retention() > settings.worker.redelivery_window());
    let err = load(&[("XENTRI_WORKER__JOBS__PURGE_CHUNK_ROWS", "0")]).expect_err("must fail");
    assert!(err.to_string().contains("`worker.jobs.purge_chunk_rows`: must be from 1 to 10000"), "{err}");
    let err = load(&[("XENTRI_WORKER__JOBS__PURGE_CHUNK_ROWS", "100000")]).expect_err("must fail");
    assert!(err.to_string().contains("`worker.jobs.purge_chunk_rows`"), "{err}");
    let err = load(&[("XENTRI_WORKER__JOBS__PROCESSED_RETENTION_SECS", "3600")]).expect_err("must fail");
    assert!(err.to_string().contains("`worker.jobs.processed_retention_secs`: must be at least 86400"), "{err}");
    // Two days of retention against deliveries that can go on for longer.
    let err = load(&[
        ("XENTRI_WORKER__JOBS__PROCESSED_RETENTION_SECS", "172800"),
        ("XENTRI_WORKER__VISIBILITY_TIMEOUT_MS", "86400000"),
    ])
    .expect_err("must fail");
    assert!(err.to_string().contains("longer than the redelivery window (432055 s"), "{err}");
}

#[test]
fn secrets_never_print() {
    let settings = load(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).expect("loads");
    let debug = format!("{settings:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains("dev-secret"), "{debug}");
}

#[test]
fn only_the_local_and_test_profiles_set_a_dev_secret() {
    assert!(load(&[]).expect("defaults").auth.dev_secret().is_none(), "default.toml sets no dev secret");
    let profile = |name: &str| {
        Settings::load_from(&config_dir(), Some(name), Vec::new()).expect("profile loads").auth.dev_secret().is_some()
    };
    assert!(profile(LOCAL_PROFILE));
    assert!(profile("test"));
    assert!(!profile("production"));
}

#[test]
fn a_jwks_without_an_issuer_is_refused() {
    let err =
        load(&[("XENTRI_AUTH__JWKS_URL", "https://clerk.example.com/.well-known/jwks.json")]).expect_err("must fail");
    assert!(err.to_string().starts_with("configuration error: invalid value for `auth.issuer`: is required"), "{err}");
    let err = load(&[("XENTRI_AUTH__JWKS_PATH", "config/jwks.json"), ("XENTRI_AUTH__ISSUER", "")])
        .expect_err("an empty issuer is no issuer");
    assert!(err.to_string().contains("`auth.issuer`"), "{err}");
    let settings = load(&[
        ("XENTRI_AUTH__JWKS_URL", "https://clerk.example.com/.well-known/jwks.json"),
        ("XENTRI_AUTH__ISSUER", "https://clerk.example.com"),
    ])
    .expect("with an issuer");
    assert_eq!(settings.auth.issuer.as_deref(), Some("https://clerk.example.com"));
}

#[test]
fn authorized_parties_are_a_list_or_comma_separated() {
    let settings =
        load(&[("XENTRI_AUTH__AUTHORIZED_PARTIES", "https://a.example, https://b.example")]).expect("comma-separated");
    assert_eq!(settings.auth.authorized_parties, ["https://a.example", "https://b.example"]);
    let settings = load(&[("XENTRI_AUTH__AUTHORIZED_PARTIES", r#"["https://a.example"]"#)]).expect("a TOML array");
    assert_eq!(settings.auth.authorized_parties, ["https://a.example"]);
    assert!(load(&[]).expect("defaults").auth.authorized_parties.is_empty());
}

#[test]
fn slow_client_timeouts_and_the_connection_cap_refuse_zero() {
    let api = load(&[]).expect("defaults").api;
    assert_eq!(api.header_read_timeout(), Duration::from_secs(10));
    assert_eq!(api.max_connections, 1024);
    for key in [
        "XENTRI_API__HEADER_READ_TIMEOUT_MS",
        "XENTRI_API__BODY_READ_TIMEOUT_MS",
        "XENTRI_API__KEEP_ALIVE_TIMEOUT_MS",
        "XENTRI_API__MAX_CONNECTIONS",
    ] {
        let err = load(&[(key, "0")]).expect_err("zero is refused");
        assert!(err.to_string().contains("api."), "{key}: {err}");
    }
}
