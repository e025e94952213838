//! Scale-out (DESIGN §5): several real `fedgate serve` processes on one
//! PostgreSQL schema agree with each other, and survive losing the database.
//!
//! **Where these run.** They need PostgreSQL, so they are `#[ignore]`d: a
//! plain `cargo test` lists them as ignored (never as passed), and the
//! PostgreSQL pass of `scripts/test.sh` (which CI runs through `.ci/run`)
//! runs them with `--include-ignored`. Run without a `postgres://`
//! `FEDGATE_TEST_DATABASE_URL` they fail and say so. On their own:
//!
//! ```text
//! FEDGATE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo test --test it replicas -- --include-ignored --nocapture
//! ```
//!
//! (`--nocapture` shows the measured propagation latencies.)
//!
//! Each test bootstraps a fresh schema with `fedgate bootstrap`, starts the
//! binary (`CARGO_BIN_EXE_fedgate`) on `127.0.0.1:0` and reads the port from
//! its "fedgate listening" log line. Every replica's connections carry an
//! `application_name` unique to the test, so the fault test terminates only
//! its own replicas' connections. Processes are killed when the test ends
//! (`kill_on_drop`); a failing test prints the tail of each replica's log.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use crate::support::JWT_BEARER;
use crate::support::idp::TestIdp;

/// All replicas share this `--public-url`: it is the `iss` and `aud` of the
/// tokens they mint, so it must be the load balancer's URL, not each one's.
const PUBLIC_URL: &str = "http://fedgate.test";
const GH_SUB: &str = "repo:acme/vision-train:ref:refs/heads/main";
const DEPLOY_SUB: &str = "repo:acme/vision-train:environment:production";
/// How fast a change must reach every replica (DESIGN §5).
const PROPAGATION: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(50);

/// The PostgreSQL pass's URL; a failure, not a silent pass, without one.
fn postgres_pass() -> String {
    crate::support::require_postgres()
}

/// A fresh schema for one test, and the `application_name` its replicas use.
async fn fresh_schema() -> (String, String) {
    let (url, _) = crate::support::fresh_database().await;
    let app_name = format!(
        "fedgate_t_{}",
        fedgate::secrets::random_base62(10).to_ascii_lowercase()
    );
    (format!("{url}&application_name={app_name}"), app_name)
}

// ------------------------------------------------------------------ processes

/// What a replica wrote to stderr: the last lines, and whether it panicked.
#[derive(Default)]
pub(crate) struct Log {
    pub(crate) tail: Mutex<VecDeque<String>>,
    pub(crate) panics: AtomicUsize,
    lines: Mutex<Vec<String>>,
}

const TAIL: usize = 200;

impl Log {
    fn push(&self, line: String) {
        if line.contains("panicked") {
            self.panics.fetch_add(1, Ordering::Relaxed);
        }
        if line.contains("fedgate::replication") || line.contains("changes") {
            self.lines.lock().unwrap().push(line.clone());
        }
        let mut tail = self.tail.lock().unwrap();
        if tail.len() == TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    fn contains(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }
}

/// One `fedgate serve` process (also used by `crate::ops`).
pub(crate) struct Replica {
    pub(crate) name: &'static str,
    pub(crate) base: String,
    pub(crate) child: Child,
    pub(crate) log: Arc<Log>,
    pub(crate) http: reqwest::Client,
}

/// Removes ANSI colour sequences from a log line.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Replica {
    /// Starts `fedgate serve` on `database_url` and waits until it listens.
    async fn start(name: &'static str, database_url: &str) -> Replica {
        Self::start_with(name, database_url, &[]).await
    }

    /// [`Replica::start`] with more `serve` flags (later ones win).
    pub(crate) async fn start_with(
        name: &'static str,
        database_url: &str,
        extra: &[&str],
    ) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fedgate"))
            .args([
                "serve",
                "--database-url",
                database_url,
                "--listen",
                "127.0.0.1:0",
                "--public-url",
                PUBLIC_URL,
                "--allow-insecure-issuers",
                "--no-bootstrap",
                "--jwks-refresh-cooldown",
                "0",
            ])
            .args(extra)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,sqlx=warn,fedgate::replication=debug")
            // All load comes from 127.0.0.1: do not rate-limit it.
            .env("FEDGATE_EXCHANGE_RATE_LIMIT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn fedgate serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let log = Arc::new(Log::default());
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                let line = strip_ansi(&line);
                let addr = line
                    .contains("fedgate listening")
                    .then(|| line.split("addr=").nth(1))
                    .flatten()
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|a| a.parse::<SocketAddr>().ok());
                log.push(line);
                if let Some(addr) = addr {
                    return addr;
                }
            }
            panic!(
                "replica {name} exited before listening:\n{}",
                log.tail
                    .lock()
                    .unwrap()
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        })
        .await
        .unwrap_or_else(|_| panic!("replica {name} did not listen within 60 s"));
        // Keep draining stderr, or the process blocks once the pipe is full.
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.push(strip_ansi(&line));
            }
        });
        Replica {
            name,
            base: format!("http://{addr}"),
            child,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request; `Err` when no HTTP answer came back at all.
    pub(crate) async fn try_send(
        &self,
        req: reqwest::RequestBuilder,
        key: Option<&str>,
    ) -> Result<(StatusCode, Value), String> {
        let req = match key {
            Some(k) => req.bearer_auth(k),
            None => req,
        };
        let resp = req.send().await.map_err(|e| format!("{e:?}"))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| format!("body: {e:?}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    pub(crate) async fn send(
        &self,
        req: reqwest::RequestBuilder,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        self.try_send(req, key)
            .await
            .unwrap_or_else(|e| panic!("replica {}: no answer: {e}", self.name))
    }

    pub(crate) async fn get(&self, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        self.send(self.http.get(self.url(path)), key).await
    }
    pub(crate) async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.post(self.url(path)).json(&body), Some(key))
            .await
    }
    async fn delete(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.send(self.http.delete(self.url(path)), Some(key)).await
    }
    pub(crate) async fn try_exchange(
        &self,
        assertion: &str,
    ) -> Result<(StatusCode, Value), String> {
        let form = [("grant_type", JWT_BEARER), ("assertion", assertion)];
        self.try_send(self.http.post(self.url("/oidc/token")).form(&form), None)
            .await
    }
    pub(crate) async fn exchange(&self, assertion: &str) -> (StatusCode, Value) {
        self.try_exchange(assertion)
            .await
            .unwrap_or_else(|e| panic!("replica {}: no answer: {e}", self.name))
    }
    pub(crate) async fn exchange_ok(&self, assertion: &str) -> String {
        let (s, b) = self.exchange(assertion).await;
        assert_eq!(s, StatusCode::OK, "exchange on {}: {b}", self.name);
        b["access_token"].as_str().unwrap().to_string()
    }
    /// `GET /api/v1/viewer` with `credential`: its status.
    async fn viewer(&self, credential: &str) -> StatusCode {
        self.get("/api/v1/viewer", Some(credential)).await.0
    }

    fn assert_healthy(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "replica {} exited",
            self.name
        );
        assert_eq!(
            self.log.panics.load(Ordering::Relaxed),
            0,
            "replica {} panicked",
            self.name
        );
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let tail = self.log.tail.lock().unwrap();
            eprintln!(
                "---- last {} log lines of replica {}",
                tail.len(),
                self.name
            );
            for l in tail.iter() {
                eprintln!("[{}] {l}", self.name);
            }
        }
    }
}

/// `fedgate bootstrap` on `database_url`: org `default`, admin `admin`; the admin's key.
pub(crate) async fn bootstrap(database_url: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fedgate"))
        .args([
            "bootstrap",
            "--database-url",
            database_url,
            "--org",
            "default",
            "--admin",
            "admin",
            "--email",
            "admin@example.com",
        ])
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("run fedgate bootstrap");
    assert!(
        out.status.success(),
        "bootstrap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("bootstrap prints JSON");
    v["api_key"].as_str().unwrap().to_string()
}

/// `fedgate keys rotate`: the new kid.
pub(crate) async fn rotate_keys(database_url: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fedgate"))
        .args(["keys", "rotate", "--database-url", database_url])
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("run fedgate keys rotate");
    assert!(
        out.status.success(),
        "keys rotate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("keys rotate prints JSON");
    v["kid"].as_str().unwrap().to_string()
}

/// The `kid` in a compact JWS header.
pub(crate) fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_string()
}

/// Evaluates `$check` (an expression that may `.await`) every 50 ms until it
/// holds; the time that took, or a panic naming `$what` once `$limit` passed.
macro_rules! within {
    ($limit:expr, $what:expr, $check:expr) => {{
        let limit: Duration = $limit;
        let what = $what;
        let start = Instant::now();
        loop {
            if $check {
                let took = start.elapsed();
                eprintln!("replicas: {}: {} ms", what, took.as_millis());
                break took;
            }
            assert!(
                start.elapsed() < limit,
                "{}: not within {} ms",
                what,
                limit.as_millis()
            );
            tokio::time::sleep(POLL).await;
        }
    }};
}

// ------------------------------------------------------------------ the world

/// Org `default` with team `vision`, the test IdP trusted (single-use `jti`
/// when asked) and two external accounts bound to it; set up through `r`.
struct World {
    admin: String,
    idp: TestIdp,
    train_id: String,
}

impl World {
    async fn build(r: &Replica, admin: String, single_use_jti: bool) -> World {
        let (s, b) = r
            .post(
                "/api/v1/orgs/default/teams",
                &admin,
                json!({"name": "vision"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let idp = TestIdp::start().await;
        let (s, b) = r
            .post(
                "/api/v1/orgs/default/issuers",
                &admin,
                json!({"issuer": idp.issuer(), "single_use_jti": single_use_jti}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let issuer = b["id"].as_str().unwrap().to_string();
        let mut ids = Vec::new();
        for (name, sub) in [("gh-train", GH_SUB), ("gh-deploy", DEPLOY_SUB)] {
            let (s, b) = r
                .post(
                    "/api/v1/teams/vision/service-accounts",
                    &admin,
                    json!({"name": name, "auth": "external", "issuer": issuer, "subject": sub}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            ids.push(b["id"].as_str().unwrap().to_string());
        }
        World {
            admin,
            idp,
            train_id: ids.remove(0),
        }
    }

    /// A fresh IdP token for `sub` (new `jti` each time).
    fn assertion(&self, sub: &str) -> String {
        self.idp.mint(TestIdp::fixture_with(
            "github-actions",
            json!({"aud": "default", "sub": sub}),
        ))
    }

    /// A built-in account of team `vision` with two keys: (id, key, (key id, key)).
    async fn bot(&self, r: &Replica, name: &str) -> (String, String, (String, String)) {
        let (s, b) = r
            .post(
                "/api/v1/teams/vision/service-accounts",
                &self.admin,
                json!({"name": name, "auth": "builtin"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let id = b["id"].as_str().unwrap().to_string();
        let first = b["api_key"].as_str().unwrap().to_string();
        let (s, b) = r
            .post(
                &format!("/api/v1/service-accounts/{id}/api-keys"),
                &self.admin,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let second = (
            b["id"].as_str().unwrap().to_string(),
            b["api_key"].as_str().unwrap().to_string(),
        );
        (id, first, second)
    }
}

// ------------------------------------------------------------------ agreement

#[tokio::test]
#[ignore = "needs PostgreSQL: FEDGATE_TEST_DATABASE_URL=postgres://… and --include-ignored (scripts/test.sh)"]
async fn three_replicas_agree_on_revocations_keys_and_single_use_tokens() {
    postgres_pass();
    let (url, _) = fresh_schema().await;
    let admin = bootstrap(&url).await;
    let mut a = Replica::start("A", &url).await;
    let mut b = Replica::start("B", &url).await;
    let mut c = Replica::start("C", &url).await;
    let w = World::build(&a, admin, true).await;

    // Exchange on A. The issuer and bindings created on A reach B and C.
    let token = a.exchange_ok(&w.assertion(GH_SUB)).await;
    let first_kid = kid_of(&token);
    for r in [&b, &c] {
        within!(
            PROPAGATION,
            format!("new issuer and binding usable on {}", r.name),
            r.exchange(&w.assertion(GH_SUB)).await.0 == StatusCode::OK
        );
    }

    // ... use the token on B.
    let (s, v) = b.get("/api/v1/viewer", Some(&token)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["name"], "gh-train");
    let (s, v) = b
        .post("/api/v1/runs", &token, json!({"project": "v-train"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // Disable the account on C: B refuses the token, and new exchanges, within 1 s.
    let (s, v) = c
        .post(
            &format!("/api/v1/service-accounts/{}/disable", w.train_id),
            &w.admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    within!(
        PROPAGATION,
        "disable on C -> token refused on B",
        b.viewer(&token).await == StatusCode::UNAUTHORIZED
    );
    within!(
        PROPAGATION,
        "disable on C -> exchange refused on B",
        b.exchange(&w.assertion(GH_SUB)).await.0 == StatusCode::BAD_REQUEST
    );
    assert_eq!(a.viewer(&token).await, StatusCode::UNAUTHORIZED);

    // Rotate the signing keys (another process): tokens minted on B after
    // that carry the new kid and verify on C; older tokens keep verifying.
    let before = a.exchange_ok(&w.assertion(DEPLOY_SUB)).await;
    assert_eq!(kid_of(&before), first_kid);
    let new_kid = rotate_keys(&url).await;
    assert_ne!(new_kid, first_kid);
    let mut minted;
    within!(PROPAGATION, "key rotation -> B signs with the new key", {
        minted = b.exchange_ok(&w.assertion(DEPLOY_SUB)).await;
        kid_of(&minted) == new_kid
    });
    let (s, v) = c.get("/api/v1/viewer", Some(&minted)).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "token minted on B after rotation, on C: {v}"
    );
    assert_eq!(v["name"], "gh-deploy");
    assert_eq!(
        c.viewer(&before).await,
        StatusCode::OK,
        "pre-rotation token"
    );
    for r in [&a, &c] {
        let (_, jwks) = r.get("/.well-known/jwks.json", None).await;
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|k| k["kid"].as_str())
            .collect();
        assert!(
            kids.contains(&new_kid.as_str()) && kids.contains(&first_kid.as_str()),
            "{}: {kids:?}",
            r.name
        );
    }

    // Replay a single-use token on A, then B and C: refused.
    let once = w.assertion(DEPLOY_SUB);
    a.exchange_ok(&once).await;
    for r in [&b, &c, &a] {
        let (s, v) = r.exchange(&once).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "replay on {}: {v}", r.name);
        assert_eq!(v["error"], "invalid_grant");
        let d = v["error_description"].as_str().unwrap();
        assert!(d.contains("single-use"), "replay on {}: {d}", r.name);
    }

    // Revoke an API key on A: refused on B and C within 1 s (their caches are warm).
    let (bot, other_key, (key_id, key)) = w.bot(&a, "ci-bot").await;
    for r in [&b, &c] {
        assert_eq!(r.viewer(&key).await, StatusCode::OK, "{}", r.name);
        assert_eq!(r.viewer(&key).await, StatusCode::OK, "{}", r.name);
    }
    let (s, v) = a
        .delete(
            &format!("/api/v1/service-accounts/{bot}/api-keys/{key_id}"),
            &w.admin,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    for r in [&b, &c] {
        within!(
            PROPAGATION,
            format!("key revoked on A -> refused on {}", r.name),
            r.viewer(&key).await == StatusCode::UNAUTHORIZED
        );
        assert_eq!(r.viewer(&other_key).await, StatusCode::OK, "{}", r.name);
    }

    for r in [&mut a, &mut b, &mut c] {
        r.assert_healthy();
    }
}

// ------------------------------------------------------------------ faults

/// What the load saw.
#[derive(Default)]
struct Tally {
    /// (request kind, status) → count.
    by_status: HashMap<(&'static str, u16), usize>,
    /// Requests answered with something other than 2xx, 429 or 503
    /// `temporarily_unavailable`, or not answered at all.
    bad: Vec<String>,
    /// sha256 of each assertion whose exchange was acknowledged (200).
    exchanged: Vec<String>,
    /// (project, run id) of each run acknowledged (201).
    runs: Vec<(String, String)>,
}

impl Tally {
    fn count(&mut self, what: &'static str, answer: Result<(StatusCode, Value), String>) -> bool {
        match answer {
            Err(e) => {
                self.bad.push(format!("{what}: no answer: {e}"));
                false
            }
            Ok((s, body)) => {
                *self.by_status.entry((what, s.as_u16())).or_default() += 1;
                let unavailable = body["error"] == "temporarily_unavailable"
                    || body["error"]["code"] == "temporarily_unavailable";
                match s {
                    s if s.is_success() => return true,
                    StatusCode::TOO_MANY_REQUESTS => {}
                    StatusCode::SERVICE_UNAVAILABLE if unavailable => {}
                    s => self.bad.push(format!("{what}: {s} {body}")),
                }
                false
            }
        }
    }
    fn merge(&mut self, other: Tally) {
        for (k, v) in other.by_status {
            *self.by_status.entry(k).or_default() += v;
        }
        self.bad.extend(other.bad);
        self.exchanged.extend(other.exchanged);
        self.runs.extend(other.runs);
    }
}

/// Exchanges (and a use of each minted token) or run writes, until `until`.
async fn load(
    r: Arc<Replica>,
    w: Arc<World>,
    key: String,
    task: usize,
    until: Instant,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut t = Tally::default();
    let mut n = 0usize;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        if task.is_multiple_of(2) {
            let assertion = w.assertion(DEPLOY_SUB);
            let answer = r.try_exchange(&assertion).await;
            let token = answer
                .as_ref()
                .ok()
                .and_then(|(_, b)| b["access_token"].as_str().map(str::to_string));
            if t.count("exchange", answer) {
                t.exchanged
                    .push(fedgate::secrets::sha256_hex(assertion.as_bytes()));
            }
            if let Some(token) = token {
                let req = r.http.get(r.url("/api/v1/viewer"));
                let answer = r.try_send(req, Some(&token)).await;
                t.count("viewer", answer);
            }
        } else {
            // At most 500 runs a project: the runs listing shows 1000.
            let project = format!("load-{task}-{}", n / 500);
            let req = r
                .http
                .post(r.url("/api/v1/runs"))
                .json(&json!({"project": project, "name": format!("run-{task}-{n}")}));
            let answer = r.try_send(req, Some(&key)).await;
            let id = answer
                .as_ref()
                .ok()
                .and_then(|(_, b)| b["id"].as_str().map(str::to_string));
            if t.count("run", answer)
                && let Some(id) = id
            {
                t.runs.push((project, id));
            }
        }
        n += 1;
    }
    t
}

/// Runs `tasks` load tasks against `r` for `dur`.
async fn run_load(
    r: &Arc<Replica>,
    w: &Arc<World>,
    key: &str,
    tasks: usize,
    dur: Duration,
) -> tokio::task::JoinSet<Tally> {
    let until = Instant::now() + dur;
    let stop = Arc::new(AtomicBool::new(false));
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        set.spawn(load(
            r.clone(),
            w.clone(),
            key.to_string(),
            task,
            until,
            stop.clone(),
        ));
    }
    set
}

async fn collect(mut set: tokio::task::JoinSet<Tally>) -> Tally {
    let mut all = Tally::default();
    while let Some(t) = set.join_next().await {
        all.merge(t.unwrap());
    }
    all
}

/// Every acknowledged run is listed, and every acknowledged exchange audited.
async fn assert_nothing_acknowledged_was_lost(r: &Replica, w: &World, key: &str, t: &Tally) {
    let mut by_project: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (p, id) in &t.runs {
        by_project.entry(p).or_default().insert(id);
    }
    for (project, ids) in by_project {
        let (s, v) = r
            .get(
                &format!("/api/v1/projects/vision/{project}/runs"),
                Some(key),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let listed: HashSet<&str> = v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["id"].as_str())
            .collect();
        let lost: Vec<_> = ids.iter().filter(|id| !listed.contains(*id)).collect();
        assert!(
            lost.is_empty(),
            "acknowledged runs lost in {project}: {lost:?}"
        );
    }
    let mut audited = HashSet::new();
    let mut after = 0;
    loop {
        let (s, v) = r
            .get(
                &format!("/api/v1/orgs/default/audit?after={after}&limit=1000"),
                Some(&w.admin),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let events = v["events"].as_array().unwrap();
        for e in events {
            after = e["seq"].as_i64().unwrap();
            if e["action"] == "token.exchange" && e["outcome"] == "success" {
                audited.insert(e["details"]["token_sha256"].as_str().unwrap().to_string());
            }
        }
        if events.len() < 1000 {
            break;
        }
    }
    let lost = t.exchanged.iter().filter(|h| !audited.contains(*h)).count();
    assert_eq!(lost, 0, "{lost} acknowledged exchanges have no audit event");
}

fn summary(t: &Tally) -> String {
    let mut s: Vec<_> = t.by_status.iter().collect();
    s.sort();
    format!(
        "{s:?}, {} exchanges and {} runs acknowledged",
        t.exchanged.len(),
        t.runs.len()
    )
}

#[tokio::test]
#[ignore = "needs PostgreSQL: FEDGATE_TEST_DATABASE_URL=postgres://… and --include-ignored (scripts/test.sh)"]
async fn killed_database_connections_cost_503s_never_errors_or_acknowledged_data() {
    let pg = postgres_pass();
    let (url, app_name) = fresh_schema().await;
    let admin = bootstrap(&url).await;
    let r = Replica::start("R", &url).await;
    let mut s = Replica::start("S", &url).await;
    let w = World::build(&r, admin, false).await;
    let (_, loader_key, _) = w.bot(&r, "loader").await;
    let (probe, _, (probe_key_id, probe_key)) = w.bot(&r, "probe").await;
    r.exchange_ok(&w.assertion(DEPLOY_SUB)).await;

    // 20 concurrent clients for 3 s; meanwhile kill fedgate's connections
    // (both replicas', the change listeners' included) six times.
    let r = Arc::new(r);
    let w = Arc::new(w);
    let set = run_load(&r, &w, &loader_key, 20, Duration::from_secs(3)).await;
    let killer = sqlx::PgPool::connect(&pg).await.unwrap();
    let mut killed = 0i64;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND application_name = $1",
        )
        .bind(&app_name)
        .fetch_one(&killer)
        .await
        .unwrap();
        killed += n;
    }
    killer.close().await;
    let tally = collect(set).await;
    eprintln!(
        "replicas: faults: {killed} connections terminated; {}",
        summary(&tally)
    );
    assert!(
        killed >= 6,
        "the killer found fedgate's connections: {killed}"
    );
    assert!(tally.bad.is_empty(), "bad answers: {:#?}", tally.bad);
    assert!(
        !tally.exchanged.is_empty() && !tally.runs.is_empty(),
        "the load made progress"
    );

    // Still serving, without a restart.
    within!(
        Duration::from_secs(10),
        "R ready again",
        r.get("/readyz", None).await.0 == StatusCode::OK
    );
    let (st, v) = r
        .post("/api/v1/runs", &loader_key, json!({"project": "after"}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    r.exchange_ok(&w.assertion(DEPLOY_SUB)).await;
    assert_nothing_acknowledged_was_lost(&r, &w, &loader_key, &tally).await;

    // The change listeners came back: a revocation on S reaches R within 1 s.
    assert_eq!(r.viewer(&probe_key).await, StatusCode::OK);
    let (st, v) = s
        .delete(
            &format!("/api/v1/service-accounts/{probe}/api-keys/{probe_key_id}"),
            &w.admin,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    within!(
        PROPAGATION,
        "after the faults: key revoked on S -> refused on R",
        r.viewer(&probe_key).await == StatusCode::UNAUTHORIZED
    );

    s.assert_healthy();
    let mut r = Arc::into_inner(r).expect("load tasks are done");
    r.assert_healthy();
}

/// A TCP proxy to PostgreSQL that can be cut: existing connections are
/// closed and new ones are closed as soon as they are accepted.
struct Proxy {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (d, c) = (down.clone(), conns.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let upstream = upstream.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                c.lock().unwrap().push(h.abort_handle());
            }
        });
        Proxy {
            addr,
            down,
            conns,
            task,
        }
    }
    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }
    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: FEDGATE_TEST_DATABASE_URL=postgres://… and --include-ignored (scripts/test.sh)"]
async fn exchanges_keep_working_while_the_database_is_gone() {
    postgres_pass();
    let (url, _) = fresh_schema().await;
    let admin = bootstrap(&url).await;
    // R reaches PostgreSQL through a proxy the test can cut; S directly.
    let mut parsed = url::Url::parse(&url).unwrap();
    let upstream = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(upstream).await;
    parsed.set_host(Some("127.0.0.1")).unwrap();
    parsed.set_port(Some(proxy.addr.port())).unwrap();
    let mut r = Replica::start("R", parsed.as_str()).await;
    let mut s = Replica::start("S", &url).await;
    let w = World::build(&r, admin, false).await;
    let (bot, key, (key_id, other_key)) = w.bot(&r, "ci-bot").await;
    // Warm R's caches: the IdP's keys, the principals, the API keys. (Using a
    // minted token reads its account's principal, cached from then on.)
    let token = r.exchange_ok(&w.assertion(DEPLOY_SUB)).await;
    assert_eq!(r.viewer(&token).await, StatusCode::OK);
    assert_eq!(r.viewer(&key).await, StatusCode::OK);
    assert_eq!(r.viewer(&other_key).await, StatusCode::OK);

    proxy.cut();
    let outage = Instant::now();
    let (st, _) = r.get("/readyz", None).await;
    assert_eq!(
        st,
        StatusCode::SERVICE_UNAVAILABLE,
        "readyz while the database is gone"
    );
    // A write needs the database: 503 temporarily_unavailable, after the pool gives up.
    let write = {
        let req = r
            .http
            .post(r.url("/api/v1/runs"))
            .json(&json!({"project": "during"}));
        r.try_send(req, Some(&key))
    };
    // Exchanges need no database: they keep working, and are audited later.
    let exchanges = async {
        let mut acked = Vec::new();
        while outage.elapsed() < Duration::from_secs(2) {
            let assertion = w.assertion(DEPLOY_SUB);
            let (st, v) = r.exchange(&assertion).await;
            assert_eq!(
                st,
                StatusCode::OK,
                "exchange while the database is gone: {v}"
            );
            let token = v["access_token"].as_str().unwrap().to_string();
            assert_eq!(r.viewer(&token).await, StatusCode::OK);
            acked.push(fedgate::secrets::sha256_hex(assertion.as_bytes()));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        acked
    };
    let (write, acked) = tokio::join!(write, exchanges);
    let (st, v) = write.expect("an answer, not a dropped connection");
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "temporarily_unavailable", "{v}");
    assert_eq!(r.viewer(&key).await, StatusCode::OK, "cached API key");
    eprintln!(
        "replicas: outage: {} exchanges served from memory in {} ms",
        acked.len(),
        outage.elapsed().as_millis()
    );

    proxy.restore();
    let back = Instant::now();
    within!(
        Duration::from_secs(10),
        "R writes again after the outage",
        r.post("/api/v1/runs", &key, json!({"project": "after"}))
            .await
            .0
            == StatusCode::CREATED
    );
    let tally = Tally {
        exchanged: acked,
        ..Tally::default()
    };
    assert_nothing_acknowledged_was_lost(&r, &w, &key, &tally).await;

    // R's change listener resubscribed (and resynchronised); then a
    // revocation on S reaches R within 1 s again.
    within!(
        Duration::from_secs(10),
        "R listens for changes again",
        r.log.contains("listening for changes again")
    );
    eprintln!(
        "replicas: outage: listener back {} ms after the database",
        back.elapsed().as_millis()
    );
    let (st, v) = s
        .delete(
            &format!("/api/v1/service-accounts/{bot}/api-keys/{key_id}"),
            &w.admin,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    within!(
        PROPAGATION,
        "after the outage: key revoked on S -> refused on R",
        r.viewer(&other_key).await == StatusCode::UNAUTHORIZED
    );
    assert_eq!(r.viewer(&key).await, StatusCode::OK);

    r.assert_healthy();
    s.assert_healthy();
}
