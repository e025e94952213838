//! Every error says what to fix: the messages a newcomer met (issue 14),
//! each checked on its key facts, through the real server or binary.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::idp::TestIdp;
use crate::support::{JWT_BEARER, TestApp, message};

/// `fedgate <args>` with `vars`, in a temp folder; (success, stderr).
async fn fedgate(vars: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedgate"))
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("HOME", dir.path())
        .env("RUST_LOG", "warn")
        .envs(vars.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn a_missing_sqlite_folder_and_an_unreachable_postgres_are_named_once() {
    let (ok, _, err) = fedgate(
        &[],
        &[
            "serve",
            "--database-url",
            "sqlite:///no/such/folder/fedgate.db",
        ],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains("/no/such/folder/fedgate.db")
            && err.contains("the folder /no/such/folder does not exist")
            && err.contains("FEDGATE_DATABASE_URL"),
        "{err}"
    );
    assert_eq!(err.matches("does not exist").count(), 1, "once: {err}");

    // Nothing listens on port 1.
    let (ok, _, err) = fedgate(
        &[(
            "FEDGATE_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/fedgate",
        )],
        &["serve"],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains("PostgreSQL at 127.0.0.1:1")
            && err.contains("\"fedgate\"")
            && err.contains("check that the server is running"),
        "{err}"
    );
    assert!(!err.contains("pool timed out"), "{err}");
    assert_eq!(err.matches("cannot connect").count(), 1, "once: {err}");
}

#[tokio::test]
async fn config_errors_name_the_flag_the_variable_or_the_file_key() {
    let (ok, _, err) = fedgate(&[], &["serve", "--token-ttl", "5"]).await;
    assert!(
        !ok && err.contains("--token-ttl must be between 60 and 43200"),
        "{err}"
    );
    let (ok, _, err) = fedgate(&[("FEDGATE_TOKEN_TTL", "5")], &["serve"]).await;
    assert!(
        !ok && err.contains("FEDGATE_TOKEN_TTL must be between"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fedgate.toml");
    std::fs::write(&file, "token_ttl = 5\nsigning_alg = \"ES256\"\n").unwrap();
    let (ok, _, err) = fedgate(&[], &["serve", "--config", file.to_str().unwrap()]).await;
    assert!(!ok);
    assert!(
        err.contains(&format!("token_ttl in config file {}", file.display()))
            && err.contains("got 5"),
        "{err}"
    );
    assert!(!err.contains("--token-ttl"), "{err}");
    let (ok, _, err) = fedgate(&[("FEDGATE_SIGNING_ALG", "RS256")], &["serve"]).await;
    assert!(
        !ok && err.contains("FEDGATE_SIGNING_ALG must be ES256 or EdDSA"),
        "{err}"
    );

    let (_, help, _) = fedgate(&[], &["serve", "--help"]).await;
    assert!(help.contains("60 to 43200"), "{help}");
    assert!(help.contains("ES256 or EdDSA"), "{help}");
}

async fn federated() -> (TestApp, TestIdp) {
    let app = TestApp::start().await;
    app.team("vision").await;
    let idp = TestIdp::start().await;
    let issuer = app.trust(&idp).await;
    app.external_sa(
        "vision",
        "gh-train",
        json!({"issuer": issuer, "subject": "repo:acme/vision-train:ref:refs/heads/main"}),
    )
    .await;
    (app, idp)
}

fn gh(idp: &TestIdp, overrides: Value) -> String {
    idp.mint(TestIdp::fixture_with(
        "github-actions",
        crate::support::idp::merge(json!({"aud": "default"}), overrides),
    ))
}

#[tokio::test]
async fn token_refusals_say_what_to_do() {
    let (app, idp) = federated().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    // Expired: times people read, and what to do.
    let (s, b) = app
        .exchange(&gh(&idp, json!({"iat": now - 900, "exp": now - 600})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let d = b["error_description"].as_str().unwrap();
    assert!(
        d.contains("expired at 20") && d.contains("Z (now 20"),
        "{d}"
    );
    assert!(d.contains("request a new token"), "{d}");
    assert!(!d.contains(&(now - 600).to_string()), "{d}");

    // A token whose iss has a trailing slash the registered issuer lacks.
    let (_, b) = app
        .exchange(&gh(&idp, json!({"iss": format!("{}/", idp.issuer())})))
        .await;
    let d = b["error_description"].as_str().unwrap();
    assert!(
        d.contains("not a trusted issuer")
            && d.contains("nearly matches")
            && d.contains(&format!("{:?}", idp.issuer())),
        "{d}"
    );

    // audience that is not an account name; comma-separated scopes.
    let token = gh(&idp, json!({}));
    let (s, b) = app
        .form(
            "/oidc/token",
            &[
                ("grant_type", JWT_BEARER),
                ("assertion", &token),
                ("audience", "http://127.0.0.1:8080"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"], "invalid_target");
    let d = b["error_description"].as_str().unwrap();
    assert!(
        d.contains("sa:<org>/<team>/<name>") && d.contains("http://127.0.0.1:8080"),
        "{d}"
    );
    let (_, b) = app
        .form(
            "/oidc/token",
            &[
                ("grant_type", JWT_BEARER),
                ("assertion", &token),
                ("scope", "read,write"),
            ],
        )
        .await;
    assert_eq!(b["error"], "invalid_scope");
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("space-separated"),
        "{b}"
    );

    // An API key where a JWT belongs.
    let (_, b) = app.exchange(&app.admin_key).await;
    let d = b["error_description"].as_str().unwrap();
    assert!(
        d.contains("fedgate API key, not a JWT") && d.contains("WANDB_API_KEY"),
        "{d}"
    );
    assert!(!d.contains(&app.admin_key), "never echoed: {d}");

    // Explain speaks plain words, not Rust's Debug.
    let (s, b) = app
        .post(
            "/api/v1/orgs/default/federation/explain",
            Some(&app.admin_key),
            json!({"token": gh(&idp, json!({}))}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let text = b.to_string();
    assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
    let header = b["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "header")
        .unwrap()
        .to_string();
    assert!(header.contains(r#"kid \"rsa-a\", typ \"JWT\""#), "{header}");
    app.stop().await;
}

#[tokio::test]
async fn a_binding_issuer_that_nearly_matches_says_so() {
    let (app, idp) = federated().await;
    let (s, b) = app
        .post(
            "/api/v1/teams/vision/service-accounts",
            Some(&app.admin_key),
            json!({"name": "slash", "auth": "external", "issuer": format!("{}/", idp.issuer()),
                   "subject": "repo:acme/x:ref:refs/heads/main"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let m = message(&b);
    assert!(
        m.contains("nearly matches") && m.contains(&format!("{:?}", idp.issuer())),
        "{m}"
    );
    // No near match: the plain advice.
    let (_, b) = app
        .post(
            "/api/v1/teams/vision/service-accounts",
            Some(&app.admin_key),
            json!({"name": "other", "auth": "external", "issuer": "https://gitlab.example.com",
                   "subject": "x:y:z"}),
        )
        .await;
    let m = message(&b);
    assert!(
        m.contains("register it first") && !m.contains("nearly"),
        "{m}"
    );
    app.stop().await;
}

#[tokio::test]
async fn project_members_take_a_service_account_id_or_name() {
    let app = TestApp::start().await;
    app.team("vision").await;
    app.project("vision", "detector", "restricted").await;
    app.project("vision", "tracker", "restricted").await;
    let (id, _) = app.team_sa("vision", "ci-bot").await;
    for (project, who) in [("detector", id.as_str()), ("tracker", "ci-bot")] {
        let (s, b) = app
            .post(
                &format!("/api/v1/projects/vision/{project}/members"),
                Some(&app.admin_key),
                json!({"service_account": who}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{who}: {b}");
    }
    // An id of another organization's account is as unknown as a bad name.
    let (s, b) = app
        .post(
            "/api/v1/projects/vision/detector/members",
            Some(&app.admin_key),
            json!({"service_account": "sa_doesnotexist"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(message(&b).contains("name or its id"), "{b}");
    app.stop().await;
}

#[tokio::test]
async fn client_messages_are_sentences_said_once() {
    let (app, idp) = federated().await;
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("token");
    let creds = home.path().join("credentials.json");
    std::fs::write(&token_file, gh(&idp, json!({}))).unwrap();
    std::fs::write(&creds, "not json at all").unwrap();
    let tf = token_file.to_str().unwrap();
    let cf = creds.to_str().unwrap();
    let vars = [
        ("WANDB_BASE_URL", app.base.as_str()),
        ("WANDB_IDENTITY_TOKEN_FILE", tf),
        ("WANDB_CREDENTIALS_FILE", cf),
    ];
    let out = crate::client::fedgate(home.path(), &vars, &["whoami"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout["name"], "gh-train");
    assert_eq!(
        out.stderr
            .matches("fedgate: warning: the credentials file")
            .count(),
        1,
        "one sentence, once: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("WARN") && !out.stderr.contains("error="),
        "no log lines: {}",
        out.stderr
    );

    // An API key where the identity token belongs.
    std::fs::write(&token_file, &app.admin_key).unwrap();
    let out = crate::client::fedgate(home.path(), &vars, &["login"]).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("holds a fedgate API key") && out.stderr.contains("WANDB_API_KEY"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(&app.admin_key), "{}", out.stderr);

    // A base URL with the API's path.
    let api = format!("{}/api/v1", app.base);
    let out = crate::client::fedgate(
        home.path(),
        &[
            ("WANDB_BASE_URL", api.as_str()),
            ("WANDB_IDENTITY_TOKEN_FILE", tf),
        ],
        &["login"],
    )
    .await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("use the server's root URL")
            && out.stderr.contains(&format!("{:?}", app.base)),
        "{}",
        out.stderr
    );
    app.stop().await;
}
