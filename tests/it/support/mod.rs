//! The test application: the real router served on 127.0.0.1:0 against a real
//! store — a temporary SQLite file, or (with `FEDGATE_TEST_DATABASE_URL` set
//! to a PostgreSQL URL) a fresh schema of that database per test — plus small
//! HTTP helpers.

// Helpers are shared by many test modules; not every one uses each.
#![allow(dead_code)]

pub mod idp;

use std::sync::atomic::{AtomicU64, Ordering};

use fedgate::config::ServeConfig;
use fedgate::state::AppState;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running fedgate with its bootstrap admin.
pub struct TestApp {
    pub base: String,
    /// Where `/metrics` is served with [`Options::metrics_listener`].
    pub metrics_base: Option<String>,
    pub client: reqwest::Client,
    /// API key of `admin`, org admin of org `default`.
    pub admin_key: String,
    pub state: AppState,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

static SCHEMA_SEQ: AtomicU64 = AtomicU64::new(0);

/// `FEDGATE_TEST_DATABASE_URL`: unset (or empty) is the SQLite pass, a
/// `postgres://` / `postgresql://` URL the PostgreSQL pass; anything else
/// is a mistake that would quietly test SQLite instead, so it stops the test.
pub fn postgres_url() -> Option<String> {
    match std::env::var("FEDGATE_TEST_DATABASE_URL") {
        Err(std::env::VarError::NotPresent) => None,
        Ok(u) if u.is_empty() => None,
        Ok(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => Some(u),
        Ok(u) => panic!(
            "FEDGATE_TEST_DATABASE_URL={u:?} is not a postgres:// URL; unset it for SQLite, \
             or set e.g. postgres://postgres@127.0.0.1:5432/test"
        ),
        Err(e) => panic!("FEDGATE_TEST_DATABASE_URL: {e}"),
    }
}

/// For the tests that need PostgreSQL (they are `#[ignore]`d, so a plain
/// `cargo test` lists them as ignored, not passed): its URL, or a failure
/// that says how to run them.
pub fn require_postgres() -> String {
    postgres_url().unwrap_or_else(|| {
        panic!(
            "this test needs PostgreSQL: FEDGATE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
             cargo test --test it -- --include-ignored (scripts/test.sh does)"
        )
    })
}

/// A database URL for one test: a temp SQLite file or a new PostgreSQL schema.
pub async fn fresh_database() -> (String, Option<tempfile::TempDir>) {
    match postgres_url() {
        Some(pg) => {
            let schema = format!(
                "t_{}_{}_{}",
                std::process::id(),
                SCHEMA_SEQ.fetch_add(1, Ordering::Relaxed),
                fedgate::secrets::random_base62(6).to_ascii_lowercase()
            );
            let pool = sqlx::PgPool::connect(&pg)
                .await
                .expect("connect to test PostgreSQL");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&pool)
                .await
                .expect("create schema");
            pool.close().await;
            let sep = if pg.contains('?') { '&' } else { '?' };
            (
                format!("{pg}{sep}options=-c%20search_path%3D{schema}"),
                None,
            )
        }
        None => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}", dir.path().join("fedgate.db").display());
            (url, Some(dir))
        }
    }
}

/// Options for [`TestApp::start_with`].
#[derive(Clone, Debug)]
pub struct Options {
    pub database_url: Option<String>,
    pub signing_alg: &'static str,
    pub token_ttl_s: i64,
    pub exchange_rate_limit: u32,
    pub request_timeout_s: u64,
    /// `--allow-insecure-issuers`: http:// issuers on loopback hosts (the test IdP).
    pub insecure_issuers: bool,
    /// `--allow-private-issuers`: the test IdP listens on 127.0.0.1, which
    /// fedgate refuses to fetch from unless allowed explicitly.
    pub private_issuers: &'static str,
    /// Serve `/metrics` on a separate listener (`--metrics-listen`), at
    /// [`TestApp::metrics_base`].
    pub metrics_listener: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            database_url: None,
            signing_alg: "ES256",
            token_ttl_s: 3600,
            exchange_rate_limit: 1000,
            request_timeout_s: 30,
            insecure_issuers: true,
            private_issuers: "127.0.0.1/32",
            metrics_listener: false,
        }
    }
}

impl TestApp {
    /// Starts fedgate on a fresh store.
    pub async fn start() -> TestApp {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> TestApp {
        let (database_url, dir) = match opts.database_url.clone() {
            Some(u) => (u, None),
            None => fresh_database().await,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let metrics_listener = match opts.metrics_listener {
            true => Some(TcpListener::bind("127.0.0.1:0").await.expect("bind")),
            false => None,
        };
        let metrics_listen = metrics_listener
            .as_ref()
            .map(|l| l.local_addr().expect("addr"));
        let config = ServeConfig {
            database_url: database_url.clone(),
            listen: addr,
            public_url: format!("http://{addr}"),
            token_ttl_s: opts.token_ttl_s,
            allow_insecure_issuers: opts.insecure_issuers,
            allow_private_issuers: fedgate::federation::netguard::parse_cidrs(opts.private_issuers)
                .expect("private issuer CIDRs"),
            metrics_listen,
            signing_alg: opts.signing_alg.into(),
            // Tests rotate IdP keys right after registering them.
            jwks_refresh_cooldown_s: 0,
            exchange_rate_limit: opts.exchange_rate_limit,
            bootstrap: true,
            trusted_proxies: Default::default(),
            key_encryption_key_file: None,
            shutdown_timeout_s: 10,
            request_timeout_s: opts.request_timeout_s,
        };
        let built = fedgate::build(config).await.expect("build app");
        let admin_key = built
            .bootstrapped
            .as_ref()
            .map(|b| b.api_key.clone())
            .unwrap_or_default();
        let state = built.state.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            built
                .serve_with(listener, metrics_listener, async {
                    let _ = rx.await;
                })
                .await
                .expect("serve");
        });
        TestApp {
            base: format!("http://{addr}"),
            metrics_base: metrics_listen.map(|a| format!("http://{a}")),
            client: reqwest::Client::new(),
            admin_key,
            state,
            database_url,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Stops the server and waits for the audit log to be flushed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn send(&self, req: reqwest::RequestBuilder, key: Option<&str>) -> (StatusCode, Value) {
        let req = match key {
            Some(k) => req.bearer_auth(k),
            None => req,
        };
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        self.send(self.client.get(self.url(path)), key).await
    }
    pub async fn post(&self, path: &str, key: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.send(self.client.post(self.url(path)).json(&body), key)
            .await
    }
    pub async fn patch(&self, path: &str, key: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.send(self.client.patch(self.url(path)).json(&body), key)
            .await
    }
    pub async fn put(&self, path: &str, key: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.send(self.client.put(self.url(path)).json(&body), key)
            .await
    }
    pub async fn delete(&self, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        self.send(self.client.delete(self.url(path)), key).await
    }
    /// A form POST (the token endpoint).
    pub async fn form(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, Value) {
        self.send(self.client.post(self.url(path)).form(fields), None)
            .await
    }

    // ------------------------------------------------------------ world building

    /// Creates a team in org `default` (as the admin).
    pub async fn team(&self, name: &str) {
        let (s, b) = self
            .post(
                "/api/v1/orgs/default/teams",
                Some(&self.admin_key),
                json!({"name": name}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "create team {name}: {b}");
    }

    /// Creates a user of org `default` and returns its API key.
    pub async fn user(&self, username: &str, role: &str) -> String {
        let (s, b) = self
            .post(
                "/api/v1/orgs/default/users",
                Some(&self.admin_key),
                json!({"username": username, "email": format!("{username}@example.com"), "role": role}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "create user {username}: {b}");
        let (s, b) = self
            .post(
                &format!("/api/v1/users/{username}/api-keys"),
                Some(&self.admin_key),
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "key for {username}: {b}");
        b["api_key"].as_str().expect("api_key").to_string()
    }

    /// Adds a user to a team.
    pub async fn member(&self, team: &str, username: &str, role: &str) {
        let (s, b) = self
            .post(
                &format!("/api/v1/teams/{team}/members"),
                Some(&self.admin_key),
                json!({"username": username, "role": role}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "add {username} to {team}: {b}");
    }

    /// Creates a project (as the admin).
    pub async fn project(&self, team: &str, name: &str, visibility: &str) {
        let (s, b) = self
            .post(
                &format!("/api/v1/teams/{team}/projects"),
                Some(&self.admin_key),
                json!({"name": name, "visibility": visibility}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "create project {team}/{name}: {b}");
    }

    /// Creates a built-in team-scoped account; returns (id, api key).
    pub async fn team_sa(&self, team: &str, name: &str) -> (String, String) {
        let (s, b) = self
            .post(
                &format!("/api/v1/teams/{team}/service-accounts"),
                Some(&self.admin_key),
                json!({"name": name, "auth": "builtin"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "create team sa {name}: {b}");
        (
            b["id"].as_str().expect("id").into(),
            b["api_key"].as_str().expect("key").into(),
        )
    }

    /// Creates an org-scoped account; returns (id, api key).
    pub async fn org_sa(&self, name: &str, default_team: &str) -> (String, String) {
        let (s, b) = self
            .post(
                "/api/v1/orgs/default/service-accounts",
                Some(&self.admin_key),
                json!({"name": name, "default_team": default_team}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "create org sa {name}: {b}");
        (
            b["id"].as_str().expect("id").into(),
            b["api_key"].as_str().expect("key").into(),
        )
    }

    /// Logs a run with `key`.
    pub async fn run(&self, key: &str, body: Value) -> (StatusCode, Value) {
        self.post("/api/v1/runs", Some(key), body).await
    }

    /// The audit events of org `default`.
    pub async fn audit(&self) -> Vec<Value> {
        let (s, b) = self
            .get(
                "/api/v1/orgs/default/audit?limit=1000",
                Some(&self.admin_key),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "audit: {b}");
        b["events"].as_array().cloned().unwrap_or_default()
    }
}

/// The error message of an error answer.
pub fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

// ------------------------------------------------------------ federation helpers

/// Token endpoint grant names.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

impl TestApp {
    /// Registers `issuer` in org `default` with extra settings; returns the issuer id.
    pub async fn trust_with(&self, body: Value) -> String {
        let (s, b) = self
            .post("/api/v1/orgs/default/issuers", Some(&self.admin_key), body)
            .await;
        assert_eq!(s, StatusCode::CREATED, "register issuer: {b}");
        b["id"].as_str().expect("issuer id").to_string()
    }

    /// Registers the test IdP (discovery) in org `default`; returns the issuer id.
    pub async fn trust(&self, idp: &idp::TestIdp) -> String {
        self.trust_with(json!({"issuer": idp.issuer()})).await
    }

    /// Creates an external team-scoped account; returns its id.
    pub async fn external_sa(&self, team: &str, name: &str, binding: Value) -> String {
        let mut body = json!({"name": name, "auth": "external"});
        if let (Some(obj), Some(b)) = (body.as_object_mut(), binding.as_object()) {
            obj.extend(b.clone());
        }
        let (s, b) = self
            .post(
                &format!("/api/v1/teams/{team}/service-accounts"),
                Some(&self.admin_key),
                body,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "create external sa {name}: {b}");
        assert!(
            b.get("api_key").is_none(),
            "external accounts never get keys: {b}"
        );
        b["id"].as_str().expect("id").to_string()
    }

    /// RFC 7523 exchange, as the W&B SDK sends it.
    pub async fn exchange(&self, assertion: &str) -> (StatusCode, Value) {
        self.form(
            "/oidc/token",
            &[("grant_type", JWT_BEARER), ("assertion", assertion)],
        )
        .await
    }

    /// RFC 7523 exchange that must succeed; returns the access token.
    pub async fn exchange_ok(&self, assertion: &str) -> String {
        let (s, b) = self.exchange(assertion).await;
        assert_eq!(s, StatusCode::OK, "exchange: {b}");
        b["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }
}
