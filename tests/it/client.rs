//! The client side end to end: the real `fedgate` binary (`login`, `whoami`,
//! `log-run`, `log-trace`) with a clean environment and the W&B SDK's variables, against
//! the real server and a real test IdP; and `POST /graphql` as the SDK asks it.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::seed_rules::world;
use crate::support::TestApp;
use crate::support::idp::TestIdp;

const GH_SUB: &str = "repo:acme/vision-train:ref:refs/heads/main";

/// One run of the binary.
pub(crate) struct Out {
    pub ok: bool,
    pub stdout: Value,
    pub stderr: String,
}

/// Runs `fedgate <args>` with only `vars` (plus `HOME`) in its environment.
pub(crate) async fn fedgate(home: &Path, vars: &[(&str, &str)], args: &[&str]) -> Out {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedgate"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("RUST_LOG", "warn")
        .envs(vars.iter().copied())
        .output()
        .await
        .expect("run fedgate");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    Out {
        ok: out.status.success(),
        stdout: serde_json::from_str(&stdout).unwrap_or(Value::String(stdout)),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// Successful `token.exchange` audit events so far.
async fn exchanges(app: &TestApp) -> usize {
    app.audit()
        .await
        .iter()
        .filter(|e| e["action"] == "token.exchange" && e["outcome"] == "success")
        .count()
}

/// The world of the seed rules plus: alice (vision member), bob (nlp
/// member only), the test IdP trusted, and the external account `gh-train`
/// of team vision bound to the GitHub fixture's repository.
async fn federated_world() -> (TestApp, TestIdp) {
    let app = world().await;
    app.user("alice", "member").await;
    app.member("vision", "alice", "member").await;
    app.user("bob", "member").await;
    app.member("nlp", "bob", "member").await;
    let idp = TestIdp::start().await;
    let issuer = app.trust(&idp).await;
    app.external_sa(
        "vision",
        "gh-train",
        json!({"issuer": issuer, "subject": GH_SUB, "claims": {"repository_id": "703518824"}}),
    )
    .await;
    (app, idp)
}

/// A GitHub Actions token for `gh-train`, written where a workflow would put it.
fn write_github_token(idp: &TestIdp, dir: &Path) -> PathBuf {
    let path = dir.join("gh-oidc-token");
    let claims = TestIdp::fixture_with("github-actions", json!({"aud": "default"}));
    std::fs::write(&path, format!("{}\n", idp.mint(claims))).unwrap();
    path
}

#[tokio::test]
async fn login_caches_one_exchange_that_whoami_and_log_run_reuse() {
    let (app, idp) = federated_world().await;
    let home = tempfile::tempdir().unwrap();
    let token_file = write_github_token(&idp, home.path());
    // A folder that does not exist yet: login creates it.
    let creds = home.path().join("cfg/wandb/credentials.json");
    let token_file_s = token_file.to_str().unwrap();
    let creds_s = creds.to_str().unwrap();
    // A trailing slash on the base URL is not part of the cache key.
    let base_slash = format!("{}/", app.base);
    let base: &[(&str, &str)] = &[
        ("WANDB_BASE_URL", &base_slash),
        ("WANDB_IDENTITY_TOKEN_FILE", token_file_s),
        ("WANDB_CREDENTIALS_FILE", creds_s),
    ];

    let out = fedgate(home.path(), base, &["login"]).await;
    assert!(out.ok, "login: {}", out.stderr);
    assert_eq!(out.stdout["credential"], "access_token");
    assert_eq!(out.stdout["base_url"], app.base);
    assert_eq!(out.stdout["viewer"]["name"], "gh-train");
    assert_eq!(out.stdout["viewer"]["kind"], "service_account");
    assert_eq!(out.stdout["viewer"]["default_entity"], "vision");
    assert_eq!(out.stdout["credentials_file"], creds_s);
    assert_eq!(exchanges(&app).await, 1);

    // The credentials file: the SDK's format, keyed by the base URL, 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "credentials file mode {mode:o}");
    }
    let file: Value = serde_json::from_slice(&std::fs::read(&creds).unwrap()).unwrap();
    let entries = file["credentials"].as_object().unwrap();
    assert_eq!(entries.len(), 1, "{file}");
    let entry = &file["credentials"][app.base.as_str()];
    assert_eq!(entry.as_object().unwrap().len(), 2, "{entry}");
    assert!(entry["access_token"].as_str().unwrap().starts_with("eyJ"));
    let expires_at = entry["expires_at"].as_str().unwrap();
    assert_eq!(out.stdout["expires_at"], expires_at);
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let exp = time::PrimitiveDateTime::parse(expires_at, fmt)
        .unwrap()
        .assume_utc();
    let left = (exp - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((3500..=3600).contains(&left), "expires in {left} s");

    // whoami and log-run reuse the cached token: no second exchange, even
    // though the identity token file now holds garbage.
    std::fs::write(&token_file, "not-a-jwt").unwrap();
    let out = fedgate(home.path(), base, &["whoami"]).await;
    assert!(out.ok, "whoami: {}", out.stderr);
    assert_eq!(out.stdout["name"], "gh-train");
    assert_eq!(out.stdout["credential"], "access_token");
    assert_eq!(out.stdout["teams"], json!(["vision"]));

    // No entity: the parent team; --config lands in the run.
    let out = fedgate(
        home.path(),
        base,
        &[
            "log-run",
            "--project",
            "v-team",
            "--name",
            "r1",
            "--config",
            r#"{"lr":0.001}"#,
        ],
    )
    .await;
    assert!(out.ok, "log-run: {}", out.stderr);
    assert_eq!(out.stdout["entity"], "vision");
    assert_eq!(out.stdout["name"], "r1");
    assert_eq!(out.stdout["config"]["lr"], 0.001);
    assert_eq!(out.stdout["created_by"]["name"], "gh-train");

    // WANDB_ENTITY + WANDB_PROJECT: an open project of another team is writable…
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v: Vec<(&str, &str)> = base.to_vec();
        v.extend_from_slice(extra);
        v
    };
    let out = fedgate(
        home.path(),
        &with(&[("WANDB_ENTITY", "nlp"), ("WANDB_PROJECT", "n-open")]),
        &["log-run"],
    )
    .await;
    assert!(out.ok, "log-run nlp/n-open: {}", out.stderr);
    assert_eq!(out.stdout["entity"], "nlp");
    assert_eq!(out.stdout["project"], "n-open");

    // …its team-visibility project is not, and the reason is shown.
    let out = fedgate(
        home.path(),
        &with(&[("WANDB_ENTITY", "nlp")]),
        &["log-run", "--project", "n-team"],
    )
    .await;
    assert!(!out.ok, "log-run nlp/n-team succeeded: {}", out.stdout);
    assert!(
        out.stderr.contains("403 forbidden")
            && out.stderr.contains(
                "service account \"gh-train\" (team-scoped to \"vision\") cannot write to \"nlp/n-team\": project visibility is \"team\" and \"nlp\" is not its parent team"
            ),
        "{}",
        out.stderr
    );

    // --entity beats WANDB_ENTITY.
    let out = fedgate(
        home.path(),
        &with(&[("WANDB_ENTITY", "nlp")]),
        &["log-run", "--entity", "vision", "--project", "v-open"],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout["entity"], "vision");

    // WANDB_USERNAME: a member of the parent team is credited…
    let out = fedgate(
        home.path(),
        &with(&[("WANDB_USERNAME", "alice")]),
        &["log-run", "--project", "v-team"],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout["attribution"]["applied"], true, "{}", out.stdout);
    assert_eq!(out.stdout["attributed_to"]["name"], "alice");
    assert_eq!(out.stdout["created_by"]["name"], "gh-train");
    // …a non-member is not, and the run is still logged.
    let out = fedgate(
        home.path(),
        &with(&[("WANDB_USERNAME", "bob")]),
        &["log-run", "--project", "v-team"],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        out.stdout["attribution"]["applied"], false,
        "{}",
        out.stdout
    );
    assert!(
        out.stdout["attribution"]["reason"]
            .as_str()
            .unwrap()
            .contains("not a member of team \"vision\""),
        "{}",
        out.stdout
    );
    assert_eq!(out.stdout["attributed_to"]["name"], "gh-train");
    // WANDB_USER_EMAIL works the same way.
    let out = fedgate(
        home.path(),
        &with(&[("WANDB_USER_EMAIL", "alice@example.com")]),
        &["log-run", "--project", "v-team"],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout["attribution"]["applied"], true, "{}", out.stdout);

    // Still the one exchange of `login`.
    assert_eq!(exchanges(&app).await, 1);
    let (s, b) = app
        .get("/api/v1/projects/vision/v-team/runs", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["runs"].as_array().unwrap().len(), 4, "{b}");
}

#[tokio::test]
async fn both_an_api_key_and_an_identity_token_file_is_an_error() {
    let home = tempfile::tempdir().unwrap();
    let out = fedgate(
        home.path(),
        &[
            ("WANDB_BASE_URL", "http://127.0.0.1:9"),
            ("WANDB_API_KEY", "fgk_whatever"),
            ("WANDB_IDENTITY_TOKEN_FILE", "/nonexistent/token"),
        ],
        &["whoami"],
    )
    .await;
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("both WANDB_API_KEY and WANDB_IDENTITY_TOKEN_FILE are set"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stdout,
        Value::String(String::new()),
        "nothing on stdout"
    );

    // And neither: says what to set.
    let out = fedgate(home.path(), &[], &["login"]).await;
    assert!(!out.ok);
    assert!(out.stderr.contains("no credential"), "{}", out.stderr);
}

#[tokio::test]
async fn an_expiring_or_refused_cached_token_is_replaced_by_a_fresh_exchange() {
    let (app, idp) = federated_world().await;
    let home = tempfile::tempdir().unwrap();
    let token_file = write_github_token(&idp, home.path());
    // The SDK's default location under HOME.
    let creds = home.path().join(".config/wandb/credentials.json");
    std::fs::create_dir_all(creds.parent().unwrap()).unwrap();
    let in_4_min = time::OffsetDateTime::now_utc() + time::Duration::minutes(4);
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let expiring = time::PrimitiveDateTime::new(in_4_min.date(), in_4_min.time())
        .format(fmt)
        .unwrap();
    std::fs::write(
        &creds,
        serde_json::to_vec(&json!({"credentials": {
            app.base.as_str(): {"access_token": "eyJ.stale.token", "expires_at": expiring},
            "https://other.example.com": {"access_token": "keep-me", "expires_at": "2099-01-01 00:00:00"},
        }}))
        .unwrap(),
    )
    .unwrap();
    let vars: &[(&str, &str)] = &[
        ("WANDB_BASE_URL", &app.base),
        ("WANDB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
    ];

    // Under 5 minutes left: exchanged again, the file rewritten, the other entry kept.
    let out = fedgate(home.path(), vars, &["whoami"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout["name"], "gh-train");
    assert_eq!(exchanges(&app).await, 1);
    let file: Value = serde_json::from_slice(&std::fs::read(&creds).unwrap()).unwrap();
    let entry = &file["credentials"][app.base.as_str()];
    assert_ne!(entry["access_token"], "eyJ.stale.token");
    assert_ne!(entry["expires_at"], expiring.as_str());
    assert_eq!(
        file["credentials"]["https://other.example.com"]["access_token"],
        "keep-me"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // A cached token that fedgate refuses (here: not one of its tokens) is
    // exchanged once more and the command goes through.
    let mut file = file;
    file["credentials"][app.base.as_str()]["access_token"] = json!("eyJ.bogus.token");
    std::fs::write(&creds, serde_json::to_vec(&file).unwrap()).unwrap();
    let out = fedgate(home.path(), vars, &["log-run", "--project", "v-team"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(exchanges(&app).await, 2);

    // The identity token file is read at each exchange: a token of another
    // repository is refused with fedgate's description, and not retried.
    let other = TestIdp::fixture_with(
        "github-actions",
        json!({"aud": "default", "repository_id": "1", "sub": "repo:evil/fork:ref:refs/heads/main"}),
    );
    std::fs::write(&token_file, idp.mint(other)).unwrap();
    let out = fedgate(home.path(), vars, &["login"]).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("token exchange refused"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("400 invalid_grant"), "{}", out.stderr);
    let denied = app
        .audit()
        .await
        .iter()
        .filter(|e| e["action"] == "token.exchange" && e["outcome"] != "success")
        .count();
    assert_eq!(denied, 1, "a 4xx is not retried");
}

#[tokio::test]
async fn a_wrong_audience_shows_fedgates_error_description() {
    let (app, idp) = federated_world().await;
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("token");
    let claims = TestIdp::fixture_with("github-actions", json!({"aud": "https://github.com/acme"}));
    std::fs::write(&path, idp.mint(claims)).unwrap();
    let out = fedgate(
        home.path(),
        &[
            ("WANDB_BASE_URL", &app.base),
            ("WANDB_IDENTITY_TOKEN_FILE", path.to_str().unwrap()),
        ],
        &["login"],
    )
    .await;
    assert!(!out.ok);
    // The description names the failed check and the accepted audience.
    assert!(out.stderr.contains("aud"), "{}", out.stderr);
    assert!(out.stderr.contains("default"), "{}", out.stderr);
    assert!(!home.path().join(".config/wandb/credentials.json").exists());
}

#[tokio::test]
async fn api_key_login_checks_the_key_and_caches_nothing() {
    let app = world().await;
    let (_, key) = app.team_sa("vision", "ci-bot").await;
    let home = tempfile::tempdir().unwrap();
    let vars: &[(&str, &str)] = &[("WANDB_BASE_URL", &app.base), ("WANDB_API_KEY", &key)];
    let out = fedgate(home.path(), vars, &["login"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout["credential"], "api_key");
    assert_eq!(out.stdout["viewer"]["name"], "ci-bot");
    assert_eq!(out.stdout["viewer"]["credential"], "api_key");
    assert!(!home.path().join(".config").exists());
    let out = fedgate(
        home.path(),
        &[
            ("WANDB_BASE_URL", &app.base),
            ("WANDB_API_KEY", "fgk_wrong"),
        ],
        &["whoami"],
    )
    .await;
    assert!(!out.ok);
    assert!(out.stderr.contains("401"), "{}", out.stderr);
    assert!(out.stderr.contains("invalid API key"), "{}", out.stderr);
}

#[tokio::test]
async fn log_trace_takes_the_same_variables_as_log_run() {
    let (app, idp) = federated_world().await;
    let home = tempfile::tempdir().unwrap();
    let token_file = write_github_token(&idp, home.path());
    let creds = home.path().join("credentials.json");
    let env: &[(&str, &str)] = &[
        ("WANDB_BASE_URL", &app.base),
        ("WANDB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
        ("WANDB_CREDENTIALS_FILE", creds.to_str().unwrap()),
        ("WANDB_ENTITY", "vision"),
        ("WANDB_PROJECT", "chat"),
        ("WANDB_USERNAME", "alice"),
    ];
    let out = fedgate(
        home.path(),
        env,
        &[
            "log-trace",
            "--op-name",
            "agent.run",
            "--inputs",
            r#"{"q": "hi"}"#,
        ],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    let root = out.stdout;
    assert_eq!(root["entity"], "vision", "{root}");
    assert_eq!(root["project"], "chat");
    assert_eq!(root["op_name"], "agent.run");
    assert_eq!(root["inputs"], json!({"q": "hi"}));
    assert_eq!(root["created_by"]["name"], "gh-train");
    assert_eq!(root["attributed_to"]["name"], "alice");
    assert_eq!(root["attribution"]["applied"], true);

    // A nested call: same trace, the token cached by the first call reused.
    let out = fedgate(
        home.path(),
        env,
        &[
            "log-trace",
            "--op-name",
            "llm.complete",
            "--parent-id",
            root["id"].as_str().unwrap(),
            "--output",
            r#""hello""#,
            "--started-at",
            "2026-12-01T21:30:00Z",
            "--ended-at",
            "2026-12-01T21:30:02Z",
        ],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout["trace_id"], root["trace_id"]);
    assert_eq!(out.stdout["parent_id"], root["id"]);
    assert_eq!(out.stdout["output"], "hello");
    assert_eq!(out.stdout["ended_at"], "2026-12-01T21:30:02Z");
    assert_eq!(exchanges(&app).await, 1);

    // An API key works the same; flags win over WANDB_ENTITY / WANDB_PROJECT.
    let (_, key) = app.team_sa("vision", "ci-bot").await;
    let out = fedgate(
        home.path(),
        &[
            ("WANDB_BASE_URL", &app.base),
            ("WANDB_API_KEY", &key),
            ("WANDB_ENTITY", "vision"),
            ("WANDB_PROJECT", "chat"),
        ],
        &[
            "log-trace",
            "--op-name",
            "x",
            "--entity",
            "nlp",
            "--project",
            "n-open",
        ],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout["entity"], "nlp");
    assert_eq!(out.stdout["created_by"]["name"], "ci-bot");
    let (s, b) = app
        .get("/api/v1/projects/vision/chat/traces", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["traces"].as_array().unwrap().len(), 2, "{b}");

    // What the server refuses is reported, and bad flags before any call.
    let key_env = [
        ("WANDB_BASE_URL", app.base.as_str()),
        ("WANDB_API_KEY", &key),
    ];
    for (args, needle) in [
        (&["--entity", "nlp", "--project", "n-team"][..], "403"),
        (&[][..], "no project"),
        (
            &["--project", "p", "--inputs", "[1]"][..],
            "--inputs must be a JSON object",
        ),
    ] {
        let mut all = vec!["log-trace", "--op-name", "x"];
        all.extend_from_slice(args);
        let out = fedgate(home.path(), &key_env, &all).await;
        assert!(!out.ok, "{args:?}");
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
}

// ------------------------------------------------------------------ GraphQL

/// The W&B SDK's `Viewer` query (wandb/sdk/internal/internal_api.py).
const SDK_VIEWER: &str =
    "query Viewer { viewer { id entity username email flags teams { edges { node { name } } } } }";

async fn graphql(app: &TestApp, auth: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut req = app.client.post(app.url("/graphql")).json(&body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

fn basic(key: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("api:{key}"))
    )
}

#[tokio::test]
async fn graphql_viewer_answers_what_the_sdk_asks() {
    let (app, idp) = federated_world().await;
    let carol_key = app.user("carol", "member").await;
    app.member("nlp", "carol", "member").await;
    app.member("vision", "carol", "admin").await;
    let (sa_id, sa_key) = app.team_sa("nlp", "nlp-bot").await;

    // A user's API key over HTTP Basic, as the SDK sends it.
    let (s, b) = graphql(
        &app,
        Some(&basic(&carol_key)),
        json!({"query": SDK_VIEWER, "operationName": "Viewer", "variables": {}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let v = &b["data"]["viewer"];
    let (_, me) = app.get("/api/v1/viewer", Some(&carol_key)).await;
    assert_eq!(v["id"], me["id"], "{b}");
    assert_eq!(v["username"], "carol");
    assert_eq!(v["email"], "carol@example.com");
    assert_eq!(
        v["entity"], "nlp",
        "the first team joined is the default entity"
    );
    assert_eq!(v["flags"], Value::Null);
    assert_eq!(
        v["teams"],
        json!({"edges": [{"node": {"name": "nlp"}}, {"node": {"name": "vision"}}]})
    );
    assert!(b.get("errors").is_none(), "{b}");

    // A service account: username is its name, email null, entity its team.
    let (s, b) = graphql(&app, Some(&basic(&sa_key)), json!({"query": SDK_VIEWER})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b,
        json!({"data": {"viewer": {"id": sa_id, "entity": "nlp", "username": "nlp-bot",
            "email": null, "flags": null, "teams": {"edges": [{"node": {"name": "nlp"}}]}}}})
    );

    // An exchanged access token as Bearer; GetDefaultEntity selects only entity.
    let token = app
        .exchange_ok(&idp.mint(TestIdp::fixture_with(
            "github-actions",
            json!({"aud": "default"}),
        )))
        .await;
    let (s, b) = graphql(
        &app,
        Some(&format!("Bearer {token}")),
        json!({"query": "query GetDefaultEntity { viewer { entity } }", "operationName": "GetDefaultEntity"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b, json!({"data": {"viewer": {"entity": "vision"}}}));

    // A bad or missing credential: viewer null, still 200, as W&B answers.
    for auth in [
        Some(basic("fgk_garbage")),
        Some("Bearer eyJ.garbage.token".to_string()),
        Some("Basic !!!".to_string()),
        Some("Negotiate abc".to_string()),
        None,
    ] {
        let (s, b) = graphql(&app, auth.as_deref(), json!({"query": SDK_VIEWER})).await;
        assert_eq!(s, StatusCode::OK, "{auth:?}");
        assert_eq!(b, json!({"data": {"viewer": null}}), "{auth:?}");
    }

    // A disabled account is no viewer either.
    let (s, _) = app
        .post(
            &format!("/api/v1/service-accounts/{sa_id}/disable"),
            Some(&app.admin_key),
            json!({}),
        )
        .await;
    assert!(s.is_success());
    let (_, b) = graphql(&app, Some(&basic(&sa_key)), json!({"query": SDK_VIEWER})).await;
    assert_eq!(b, json!({"data": {"viewer": null}}));

    // Any other operation is a GraphQL error.
    let (s, b) = graphql(
        &app,
        Some(&basic(&carol_key)),
        json!({"query": "query Project($name: String!) { project(name: $name) { id } }", "operationName": "Project"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.get("data").is_none(), "{b}");
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Viewer and GetDefaultEntity"),
        "{b}"
    );
    let (_, b) = graphql(
        &app,
        Some(&basic(&carol_key)),
        json!({"query": "mutation UpsertBucket { upsertBucket(input: {}) { bucket { id } } }"}),
    )
    .await;
    assert!(
        b["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("mutation"),
        "{b}"
    );

    // Malformed requests: 400 with a GraphQL error, never a 500.
    for body in [
        json!({"nope": 1}),
        json!({"query": "query Viewer { viewer { id "}),
    ] {
        let (s, b) = graphql(&app, None, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(b["errors"][0]["message"].is_string(), "{b}");
    }
    let resp = app
        .client
        .post(app.url("/graphql"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}
