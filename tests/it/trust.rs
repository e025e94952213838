//! Issue 10, "Over-broad trust": a subject pattern reaches at most one
//! owner; wider only by an org admin's explicit, audited opt-in.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::idp::TestIdp;
use crate::support::{TestApp, message};

async fn create(app: &TestApp, key: &str, body: Value) -> (StatusCode, Value) {
    app.post("/api/v1/teams/vision/service-accounts", Some(key), body)
        .await
}

fn external(name: &str, issuer: &str, pattern: &str) -> Value {
    json!({"name": name, "auth": "external", "issuer": issuer,
           "subject": "repo:acme/app:ref:refs/heads/main", "subject_pattern": pattern})
}

#[tokio::test]
async fn a_pattern_cannot_reach_beyond_one_owner() {
    let app = TestApp::start().await;
    app.team("vision").await;
    let lead = app.user("lead", "member").await;
    app.member("vision", "lead", "admin").await;
    let idp = TestIdp::start().await;
    let issuer = app.trust(&idp).await;

    // The reported case: a team admin's `repo:*` (was 201).
    let (s, b) = create(&app, &lead, external("wide", &issuer, "repo:*")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(
        message(&b),
        "binding refused: subject_pattern \"repo:*\" is too broad: after \"repo:\" the owner and its '/' must be written out. \
         A shared issuer such as GitHub Actions signs tokens for every repository in the world, so the literal text before \
         the first wildcard must name one owner whole, with its delimiter (e.g. \"repo:acme/*\"); an org admin may opt in \
         to a wider pattern with \"allow_broad_subject_pattern\": true"
    );
    for p in [
        "repo:ac*",
        "repo:acme*",
        "project_path:*",
        "project_path:acme*",
        "system:serviceaccount:*",
    ] {
        for key in [&lead, &app.admin_key] {
            let (s, b) = create(&app, key, external("wide", &issuer, p)).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{p}: {b}");
            assert!(message(&b).contains("is too broad"), "{p}: {b}");
        }
    }
    for (i, p) in [
        "repo:acme/*",
        "project_path:acme/*",
        "system:serviceaccount:ci:*",
    ]
    .iter()
    .enumerate()
    {
        let (s, b) = create(&app, &lead, external(&format!("ok-{i}"), &issuer, p)).await;
        assert_eq!(s, StatusCode::CREATED, "{p}: {b}");
    }

    // `repo:acme/*` takes acme's repositories and nobody else's.
    let mint = |sub: &str| idp.mint(json!({"sub": sub, "aud": "default"}));
    let token = app
        .exchange_ok(&mint("repo:acme/other:ref:refs/heads/main"))
        .await;
    let (_, me) = app.get("/api/v1/viewer", Some(&token)).await;
    assert_eq!(me["name"], "ok-0");
    for sub in [
        "repo:acme-evil/app:ref:refs/heads/main",
        "repo:someone-else/anything:ref:refs/heads/evil",
    ] {
        let (s, b) = app.exchange(&mint(sub)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{sub}");
        assert_eq!(b["error"], "invalid_grant", "{b}");
        assert_eq!(
            b["error_description"],
            format!("no service account of this issuer is bound to subject {sub:?}"),
            "{sub}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn broad_patterns_are_an_audited_org_admin_opt_in() {
    let app = TestApp::start().await;
    app.team("vision").await;
    let lead = app.user("lead", "member").await;
    app.member("vision", "lead", "admin").await;
    let idp = TestIdp::start().await;
    let issuer = app.trust(&idp).await;
    let mut body = external("wide", &issuer, "repo:*");
    body["allow_broad_subject_pattern"] = json!(true);

    // A team admin may not opt in.
    let (s, b) = create(&app, &lead, body.clone()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(
        message(&b),
        "binding refused: allow_broad_subject_pattern is an org admin's decision: a team admin cannot trust subjects beyond one owner"
    );
    // An org admin may, and it is recorded.
    let (s, b) = create(&app, &app.admin_key, body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["binding"]["allow_broad_subject_pattern"], true);
    let token = app
        .exchange_ok(&idp.mint(json!({"sub": "repo:anyone/x:ref:y", "aud": "default"})))
        .await;
    let (_, me) = app.get("/api/v1/viewer", Some(&token)).await;
    assert_eq!(me["name"], "wide");
    let audit = app.audit().await;
    let created = audit
        .iter()
        .find(|e| e["action"] == "service_account.create" && e["target"] == "service_account:wide")
        .unwrap_or_else(|| panic!("{audit:?}"));
    assert_eq!(created["details"]["allow_broad_subject_pattern"], true);
    assert_eq!(created["details"]["subject_pattern"], "repo:*");
    // A built-in account cannot carry the flag.
    let (s, b) = create(
        &app,
        &app.admin_key,
        json!({"name": "b", "auth": "builtin", "allow_broad_subject_pattern": true}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    app.stop().await;
}
