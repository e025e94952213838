//! The whole lifecycle over HTTP (issue 12): service accounts, users, teams,
//! projects and issuers read, changed and deleted with the rules of their
//! creation; shadow bindings; people disabled (issue 10). Each test runs on
//! SQLite, and on PostgreSQL in the PostgreSQL pass; the replica test needs
//! PostgreSQL (two servers on one schema, each with its own caches).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::seed_rules::world;
use crate::support::idp::TestIdp;
use crate::support::{Options, TestApp, message};

const GH_SUB: &str = "repo:acme/vision-train:ref:refs/heads/main";
const DEPLOY_SUB: &str = "repo:acme/vision-train:environment:production";

/// A second organization with its own admin; returns that admin's key.
async fn other_org(app: &TestApp) -> String {
    fedgate::service::admin::bootstrap(&app.state, "rival", "eve", "eve@rival.io")
        .await
        .unwrap()
        .api_key
}

/// The audit events of `action` that were not denials.
fn events<'a>(audit: &'a [Value], action: &str) -> Vec<&'a Value> {
    audit
        .iter()
        .filter(|e| e["action"] == action && e["outcome"] != "denied")
        .collect()
}

#[tokio::test]
async fn a_service_account_is_read_changed_and_deleted_with_the_rules_of_its_creation() {
    let app = world().await;
    let (id, key) = app.team_sa("vision", "trainer").await;
    let lead = app.user("lead", "member").await;
    app.member("nlp", "lead", "admin").await;
    let dev = app.user("dev", "member").await;
    app.member("vision", "dev", "member").await;
    let eve = other_org(&app).await;
    let path = format!("/api/v1/service-accounts/{id}");

    let (s, b) = app.get(&path, Some(&app.admin_key)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["name"], "trainer");
    assert_eq!(b["team"], "vision");
    assert_eq!(b["description"], "");
    assert!(
        b.get("api_key").is_none(),
        "never a secret after creation: {b}"
    );
    // A team admin of another team, a plain member, another org.
    let (s, b) = app.get(&path, Some(&lead)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(b["error"]["rule"].is_string(), "{b}");
    let (s, _) = app
        .patch(&path, Some(&dev), json!({"description": "x"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.delete(&path, Some(&dev)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = app.get(&path, Some(&eve)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, _) = app.delete(&path, Some(&eve)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // PATCH: display fields and lifetime; bad input named; unknown fields refused.
    let (s, b) = app
        .patch(
            &path,
            Some(&app.admin_key),
            json!({"name": "trainer-2", "description": "nightly training", "max_token_lifetime_s": 900}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["name"], "trainer-2");
    assert_eq!(b["description"], "nightly training");
    assert_eq!(b["max_token_lifetime_s"], 900);
    for (body, needle) in [
        (json!({"max_token_lifetime_s": 5}), "max_token_lifetime_s"),
        (json!({"name": "a/b"}), "invalid"),
        (json!({"default_team": "nlp"}), "team-scoped"),
        (json!({"subject": "x"}), "built-in"),
        (json!({"mode": "shadow"}), "built-in"),
        (json!({"colour": "red"}), "unknown field"),
    ] {
        let (s, b) = app.patch(&path, Some(&app.admin_key), body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert!(message(&b).contains(needle), "{body}: {b}");
    }
    app.team_sa("vision", "taken").await;
    let (s, b) = app
        .patch(&path, Some(&app.admin_key), json!({"name": "taken"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");

    // The key still works after the rename; a run is logged.
    let (s, b) = app.run(&key, json!({"project": "v-team"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    // DELETE: its key refused at once, GET 404, its run keeps its name, the name is free again.
    let (s, b) = app.delete(&path, Some(&app.admin_key)).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, b) = app.get("/api/v1/viewer", Some(&key)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let (s, _) = app.get(&path, Some(&app.admin_key)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = app
        .get("/api/v1/projects/vision/v-team/runs", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let run = &b["runs"][0];
    assert_eq!(run["created_by"]["name"], "trainer-2", "{b}");
    assert_eq!(run["created_by"]["deleted"], true, "{b}");
    app.team_sa("vision", "trainer-2").await;

    let audit = app.audit().await;
    let upd = events(&audit, "service_account.update");
    assert_eq!(upd.len(), 1, "only the successful PATCH: {upd:?}");
    assert_eq!(upd[0]["details"]["changes"]["name"]["to"], "trainer-2");
    assert_eq!(events(&audit, "service_account.delete").len(), 1);
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "service_account.update" && e["outcome"] == "denied"),
        "denials are audited"
    );
}

#[tokio::test]
async fn an_org_account_moves_to_another_default_team_only_by_an_org_admin() {
    let app = world().await;
    let (id, key) = app.org_sa("org-bot", "vision").await;
    let lead = app.user("lead", "member").await;
    app.member("vision", "lead", "admin").await;
    let path = format!("/api/v1/service-accounts/{id}");
    let (s, b) = app
        .patch(&path, Some(&lead), json!({"default_team": "nlp"}))
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a team admin never manages an org account: {b}"
    );
    let (s, b) = app
        .patch(&path, Some(&app.admin_key), json!({"default_team": "nope"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = app
        .patch(&path, Some(&app.admin_key), json!({"default_team": "nlp"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["default_team"], "nlp");
    // Its next write without an entity goes to the new default team.
    let (s, b) = app.run(&key, json!({"project": "n-team"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["entity"], "nlp");
}

#[tokio::test]
async fn an_edited_binding_applies_to_the_next_exchange_and_a_deleted_accounts_token_dies() {
    let app = world().await;
    let idp = TestIdp::start().await;
    let issuer = app.trust(&idp).await;
    let id = app
        .external_sa(
            "vision",
            "gh-train",
            json!({"issuer": issuer, "subject": GH_SUB}),
        )
        .await;
    let path = format!("/api/v1/service-accounts/{id}");
    let main = || idp.mint(json!({"sub": GH_SUB, "aud": "default"}));
    let deploy =
        || idp.mint(json!({"sub": DEPLOY_SUB, "aud": "default", "environment": "production"}));
    let token = app.exchange_ok(&main()).await;

    let (s, b) = app.get(&path, Some(&app.admin_key)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["binding"]["issuer_id"], issuer);
    assert_eq!(b["binding"]["issuer"], idp.issuer());
    assert_eq!(b["binding"]["subject"], GH_SUB);
    assert_eq!(b["binding"]["mode"], "enforce");

    // The Kubernetes/GitHub case: the workload's subject changed.
    let (s, b) = app
        .patch(
            &path,
            Some(&app.admin_key),
            json!({"subject": DEPLOY_SUB, "claims": {"environment": "production"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["binding"]["subject"], DEPLOY_SUB);
    assert_eq!(b["binding"]["claims"]["environment"], "production");
    let (s, b) = app.exchange(&main()).await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "the old subject no longer matches: {b}"
    );
    assert_eq!(b["error"], "invalid_grant");
    app.exchange_ok(&deploy()).await;
    // A claim condition that does not hold, then removed.
    let (s, _) = app
        .patch(
            &path,
            Some(&app.admin_key),
            json!({"claims": {"environment": "staging"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = app.exchange(&deploy()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _) = app
        .patch(&path, Some(&app.admin_key), json!({"claims": {}}))
        .await;
    assert_eq!(s, StatusCode::OK);
    app.exchange_ok(&deploy()).await;
    // A pattern the creation would refuse is refused by PATCH too; null removes one.
    let (s, b) = app
        .patch(&path, Some(&app.admin_key), json!({"subject_pattern": "*"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("binding refused"), "{b}");
    let (s, b) = app
        .patch(
            &path,
            Some(&app.admin_key),
            json!({"subject_pattern": "repo:acme/vision-train:*"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    app.exchange_ok(&main()).await;
    let (s, b) = app
        .patch(
            &path,
            Some(&app.admin_key),
            json!({"subject_pattern": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["binding"].get("subject_pattern").is_none(), "{b}");
    let (s, _) = app.exchange(&main()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, b) = app
        .patch(
            &path,
            Some(&app.admin_key),
            json!({"issuer": "https://unknown.example"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

    // The token exchanged before the edits still works (same account) ...
    let (s, b) = app.get("/api/v1/viewer", Some(&token)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // ... until the account is deleted: then it is refused at once.
    let (s, _) = app.delete(&path, Some(&app.admin_key)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = app.get("/api/v1/viewer", Some(&token)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let (s, b) = app.exchange(&deploy()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    // The issuer can go now that nothing is bound to it.
    let (s, b) = app
        .delete(
            &format!("/api/v1/orgs/default/issuers/{issuer}"),
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
}

/// docs/guides/kubernetes.md, troubleshooting: a re-created Kubernetes
/// service account fails on its uid with the row's message, and the PATCH
/// the guide shows (every claim condition, the new uid) fixes it.
#[tokio::test]
async fn the_kubernetes_guides_recreated_service_account_row_works_as_written() {
    let app = world().await;
    let idp = TestIdp::start().await;
    let issuer = app.trust(&idp).await;
    let old_uid = "a3f1c8e2-6b4d-4e9a-9c7b-5d2e1f0a8b36";
    let new_uid = "0f9d7c1b-2e3a-4b5c-8d6e-7f8091a2b3c4";
    app.external_sa(
        "nlp",
        "k8s-trainer",
        json!({"issuer": issuer, "subject": "system:serviceaccount:ml:trainer",
               "claims": {"kubernetes.io.namespace": "ml", "kubernetes.io.serviceaccount.uid": old_uid}}),
    )
    .await;
    let mut claims = TestIdp::fixture_with("kubernetes", json!({"aud": "default"}));
    claims["kubernetes.io"]["serviceaccount"]["uid"] = json!(new_uid);
    let (s, b) = app.exchange(&idp.mint(claims.clone())).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .ends_with("(the condition on \"kubernetes.io.serviceaccount.uid\" does not hold)"),
        "{b}"
    );
    // The guide: find the id in the team's listing, PATCH every claim condition.
    let (_, list) = app
        .get("/api/v1/teams/nlp/service-accounts", Some(&app.admin_key))
        .await;
    let id = list["service_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "k8s-trainer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, b) = app
        .patch(
            &format!("/api/v1/service-accounts/{id}"),
            Some(&app.admin_key),
            json!({"claims": {"kubernetes.io.namespace": "ml", "kubernetes.io.serviceaccount.uid": new_uid}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["binding"]["claims"]["kubernetes.io.serviceaccount.uid"],
        new_uid
    );
    assert_eq!(b["binding"]["mode"], "enforce");
    app.exchange_ok(&idp.mint(claims)).await;
}

#[tokio::test]
async fn a_shadow_binding_mints_nothing_is_audited_and_explained_until_enforced() {
    let app = world().await;
    let idp = TestIdp::start().await;
    let issuer = app.trust(&idp).await;
    let shadow = app
        .external_sa(
            "vision",
            "gh-new",
            json!({"issuer": issuer, "subject": GH_SUB, "mode": "shadow"}),
        )
        .await;
    let jwt = || idp.mint(json!({"sub": GH_SUB, "aud": "default"}));

    // Only the shadow binding matches: nothing is minted.
    let (s, b) = app.exchange(&jwt()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"], "invalid_grant");
    assert!(b.get("access_token").is_none());
    // Naming it is refused with the reason.
    let (s, b) = app
        .form(
            "/oidc/token",
            &[
                ("grant_type", crate::support::JWT_BEARER),
                ("assertion", &jwt()),
                ("audience", "sa:default/vision/gh-new"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("shadow mode"),
        "{b}"
    );
    let audit = app.audit().await;
    let shadows = events(&audit, "token.exchange.shadow");
    assert_eq!(shadows.len(), 2, "{shadows:?}");
    assert_eq!(shadows[0]["target"], "service_account:gh-new");
    assert_eq!(shadows[0]["details"]["account_id"], shadow);
    assert_eq!(shadows[0]["details"]["subject"], GH_SUB);
    assert_eq!(shadows[0]["details"]["exchange_outcome"], "denied");

    // Beside an enforced account: the exchange mints for that one, and the shadow match is audited.
    app.external_sa(
        "vision",
        "gh-old",
        json!({"issuer": issuer, "subject": GH_SUB}),
    )
    .await;
    let token = app.exchange_ok(&jwt()).await;
    let (_, viewer) = app.get("/api/v1/viewer", Some(&token)).await;
    assert_eq!(viewer["name"], "gh-old", "{viewer}");
    let audit = app.audit().await;
    let last = *events(&audit, "token.exchange.shadow").last().unwrap();
    assert_eq!(last["details"]["exchange_outcome"], "success");
    assert_eq!(last["details"]["account"], "sa:default/vision/gh-new");

    // Explain shows the shadow match.
    let (s, b) = app
        .post(
            "/api/v1/orgs/default/federation/explain",
            Some(&app.admin_key),
            json!({"token": jwt()}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["matched"]["name"], "sa:default/vision/gh-old", "{b}");
    assert_eq!(
        b["shadow_matches"][0]["name"], "sa:default/vision/gh-new",
        "{b}"
    );
    assert!(
        b["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["account"] == "sa:default/vision/gh-new" && c["mode"] == "shadow"),
        "{b}"
    );

    // Enforced: it now competes like any binding (two match: name one).
    let (s, b) = app
        .patch(
            &format!("/api/v1/service-accounts/{shadow}"),
            Some(&app.admin_key),
            json!({"mode": "enforce"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["binding"]["mode"], "enforce");
    let (s, b) = app
        .form(
            "/oidc/token",
            &[
                ("grant_type", crate::support::JWT_BEARER),
                ("assertion", &jwt()),
                ("audience", "sa:default/vision/gh-new"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .patch(
            &format!("/api/v1/service-accounts/{shadow}"),
            Some(&app.admin_key),
            json!({"mode": "loud"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
}

#[tokio::test]
async fn users_are_listed_a_page_at_a_time_read_changed_and_deleted() {
    let app = world().await;
    let alice = app.user("alice", "member").await;
    app.member("vision", "alice", "member").await;
    app.user("bob", "member").await;
    app.user("carol", "member").await;

    let (s, b) = app
        .get("/api/v1/orgs/default/users?limit=2", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let names: Vec<&str> = b["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "alice"]);
    assert_eq!(b["next_after"], "alice");
    let (_, b) = app
        .get(
            "/api/v1/orgs/default/users?limit=2&after=alice",
            Some(&app.admin_key),
        )
        .await;
    let names: Vec<&str> = b["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bob", "carol"]);
    let (_, b) = app
        .get(
            "/api/v1/orgs/default/users?limit=2&after=carol",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(b["users"], json!([]));
    assert_eq!(b["next_after"], Value::Null);
    let (s, _) = app
        .get("/api/v1/orgs/default/users?limit=0", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app.get("/api/v1/orgs/default/users", Some(&alice)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // GET: oneself, or an org admin.
    let (s, b) = app.get("/api/v1/users/alice", Some(&alice)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["teams"][0]["team"], "vision");
    assert_eq!(b["disabled"], false);
    let (s, _) = app.get("/api/v1/users/bob", Some(&alice)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.get("/api/v1/users/nobody", Some(&app.admin_key)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // PATCH: email and role (org admins); the last admin stays one.
    let (s, _) = app
        .patch(
            "/api/v1/users/alice",
            Some(&alice),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = app
        .patch(
            "/api/v1/users/alice",
            Some(&app.admin_key),
            json!({"email": "Alice@Example.org", "role": "admin"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["email"], "alice@example.org");
    assert_eq!(b["role"], "admin");
    // Her existing key now carries the new role at once.
    let (s, b) = app.get("/api/v1/orgs/default/users", Some(&alice)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .patch(
            "/api/v1/users/bob",
            Some(&app.admin_key),
            json!({"email": "alice@example.org"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (s, _) = app
        .patch(
            "/api/v1/users/alice",
            Some(&app.admin_key),
            json!({"email": "nope"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app
        .patch(
            "/api/v1/users/alice",
            Some(&alice),
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "another admin remains");
    let (s, b) = app
        .patch(
            "/api/v1/users/admin",
            Some(&app.admin_key),
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(message(&b).contains("last enabled admin"), "{b}");
    let (s, _) = app
        .delete("/api/v1/users/admin", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // DELETE: her key refused at once; her run keeps her name; the name is free again.
    let (s, b) = app.run(&alice, json!({"project": "v-team"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = app
        .delete("/api/v1/users/alice", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get("/api/v1/viewer", Some(&alice)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (_, b) = app
        .get("/api/v1/projects/vision/v-team/runs", Some(&app.admin_key))
        .await;
    assert_eq!(b["runs"][0]["created_by"]["name"], "alice", "{b}");
    assert_eq!(b["runs"][0]["created_by"]["deleted"], true, "{b}");
    let (_, b) = app
        .get("/api/v1/teams/vision/members", Some(&app.admin_key))
        .await;
    assert!(!b.to_string().contains("alice"), "{b}");
    app.user("alice", "member").await;
    let audit = app.audit().await;
    assert_eq!(events(&audit, "user.delete").len(), 1);
    assert_eq!(events(&audit, "user.update").len(), 2);
}

#[tokio::test]
async fn disabling_a_person_refuses_every_credential_issued_before_even_after_enable() {
    let app = world().await;
    let idp = TestIdp::start().await;
    app.trust_with(json!({"issuer": idp.issuer(), "users": true}))
        .await;
    let key = app.user("alice", "member").await;
    app.member("vision", "alice", "member").await;
    let person = || idp.mint(json!({"sub": "alice@example.com", "aud": "default"}));
    let token = app.exchange_ok(&person()).await;
    for cred in [&key, &token] {
        let (s, _) = app.get("/api/v1/viewer", Some(cred)).await;
        assert_eq!(s, StatusCode::OK);
    }
    let lead = app.user("lead", "member").await;
    app.member("vision", "lead", "admin").await;
    let (s, _) = app
        .post("/api/v1/users/alice/disable", Some(&lead), json!({}))
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a team admin cannot cut a person off"
    );
    let (s, b) = app
        .post(
            "/api/v1/users/alice/disable",
            Some(&app.admin_key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["disabled"], true);
    for cred in [&key, &token] {
        let (s, b) = app.get("/api/v1/viewer", Some(cred)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        assert!(message(&b).contains("disabled"), "{b}");
    }
    let (s, b) = app.exchange(&person()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("disabled"),
        "{b}"
    );
    let (s, b) = app
        .post(
            "/api/v1/users/alice/enable",
            Some(&app.admin_key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["disabled"], false);
    for cred in [&key, &token] {
        let (s, b) = app.get("/api/v1/viewer", Some(cred)).await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "still refused after enable: {b}"
        );
        assert!(message(&b).contains("revoked"), "{b}");
    }
    // New credentials work.
    let token = app.exchange_ok(&person()).await;
    let (s, _) = app.get("/api/v1/viewer", Some(&token)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = app
        .post(
            "/api/v1/users/alice/api-keys",
            Some(&app.admin_key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = app
        .get("/api/v1/viewer", Some(b["api_key"].as_str().unwrap()))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = app
        .post(
            "/api/v1/users/admin/disable",
            Some(&app.admin_key),
            json!({}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "the last admin cannot lock the org out: {b}"
    );
    let audit = app.audit().await;
    assert_eq!(events(&audit, "user.disable").len(), 1);
    assert_eq!(events(&audit, "user.enable").len(), 1);
}

#[tokio::test]
async fn a_team_is_read_loses_members_and_is_deleted_only_when_asked_to_take_everything() {
    let app = world().await;
    let dev = app.user("dev", "member").await;
    app.member("vision", "dev", "member").await;
    let (_, sa_key) = app.team_sa("vision", "bot").await;
    let (s, b) = app.get("/api/v1/teams/vision", Some(&dev)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["name"], "vision");
    let eve = other_org(&app).await;
    let (s, _) = app.get("/api/v1/teams/vision", Some(&eve)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Removing a member ends their access through the team at once.
    let (s, _) = app.get("/api/v1/projects/vision/v-team", Some(&dev)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .delete("/api/v1/teams/vision/members/dev", Some(&dev))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = app
        .delete("/api/v1/teams/vision/members/dev", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, _) = app.get("/api/v1/projects/vision/v-team", Some(&dev)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .delete("/api/v1/teams/vision/members/dev", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Delete: refused with the list, then taken with everything in it.
    let (s, b) = app
        .delete("/api/v1/teams/vision", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    for name in ["v-team", "v-restricted", "bot", "delete_contents=true"] {
        assert!(message(&b).contains(name), "{name}: {b}");
    }
    let (org_sa, _) = app.org_sa("org-bot", "vision").await;
    let (s, b) = app
        .delete(
            "/api/v1/teams/vision?delete_contents=true",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "an org account defaults here: {b}");
    assert!(message(&b).contains("org-bot"), "{b}");
    let (s, _) = app
        .patch(
            &format!("/api/v1/service-accounts/{org_sa}"),
            Some(&app.admin_key),
            json!({"default_team": "nlp"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = app
        .post(
            "/api/v1/traces",
            Some(&app.admin_key),
            json!({"entity": "vision", "project": "v-open", "op_name": "llm"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = app
        .delete(
            "/api/v1/teams/vision?delete_contents=true",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["service_accounts"], json!(["bot"]));
    assert_eq!(b["projects"].as_array().unwrap().len(), 4, "{b}");
    let (s, _) = app.get("/api/v1/teams/vision", Some(&app.admin_key)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.get("/api/v1/viewer", Some(&sa_key)).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "its accounts' keys die with it"
    );
    // An empty team goes without being asked.
    app.team("empty").await;
    let (s, _) = app.delete("/api/v1/teams/empty", Some(&dev)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = app
        .delete("/api/v1/teams/empty", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    app.team("vision").await;
    assert_eq!(events(&app.audit().await, "team.delete").len(), 2);
}

#[tokio::test]
async fn a_teams_projects_are_listed_as_readable_members_removed_and_projects_deleted() {
    let app = world().await;
    let dev = app.user("dev", "member").await;
    app.member("vision", "dev", "member").await;
    let outsider = app.user("outsider", "member").await;

    let list = |b: &Value| -> Vec<String> {
        b["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, b) = app.get("/api/v1/teams/vision/projects", Some(&dev)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        list(&b),
        ["v-open", "v-public", "v-team"],
        "restricted needs a membership"
    );
    let (_, b) = app
        .get("/api/v1/teams/vision/projects", Some(&outsider))
        .await;
    assert_eq!(list(&b), ["v-open", "v-public"]);
    let (_, b) = app
        .get(
            "/api/v1/teams/vision/projects?limit=2",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(list(&b), ["v-open", "v-public"]);
    assert_eq!(b["next_after"], "v-public");
    let (_, b) = app
        .get(
            "/api/v1/teams/vision/projects?limit=2&after=v-public",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(list(&b), ["v-restricted", "v-team"]);

    // An explicit member of the restricted project sees it; removed, not any more.
    let (s, b) = app
        .post(
            "/api/v1/projects/vision/v-restricted/members",
            Some(&app.admin_key),
            json!({"username": "dev"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (_, b) = app.get("/api/v1/teams/vision/projects", Some(&dev)).await;
    assert!(list(&b).contains(&"v-restricted".to_string()), "{b}");
    let (s, _) = app
        .delete(
            "/api/v1/projects/vision/v-restricted/members/dev",
            Some(&dev),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = app
        .delete(
            "/api/v1/projects/vision/v-restricted/members/dev",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["members"].as_array().unwrap().len(),
        1,
        "only its creator left: {b}"
    );
    let (s, _) = app
        .get("/api/v1/projects/vision/v-restricted", Some(&dev))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .delete(
            "/api/v1/projects/vision/v-restricted/members/dev",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Delete: a member may not, an admin may; its runs and traces go with it.
    let (s, _) = app.run(&dev, json!({"project": "v-team"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, b) = app
        .post(
            "/api/v1/traces",
            Some(&dev),
            json!({"entity": "vision", "project": "v-team", "op_name": "llm"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = app
        .delete("/api/v1/projects/vision/v-team", Some(&dev))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .delete("/api/v1/projects/vision/v-team", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .get("/api/v1/projects/vision/v-team", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A write re-creates it empty.
    let (s, _) = app.run(&dev, json!({"project": "v-team"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let audit = app.audit().await;
    assert_eq!(events(&audit, "project.delete").len(), 1);
    assert_eq!(events(&audit, "project.member.remove").len(), 1);
}

#[tokio::test]
async fn an_issuer_is_read_by_id_and_a_duplicate_names_the_existing_one() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    let id = app.trust(&idp).await;
    let (s, b) = app
        .get(
            &format!("/api/v1/orgs/default/issuers/{id}"),
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["id"], id);
    assert_eq!(b["issuer"], idp.issuer());
    assert!(
        b["keys"]["kids"].as_array().is_some_and(|k| !k.is_empty()),
        "{b}"
    );
    let (s, b) = app
        .post(
            "/api/v1/orgs/default/issuers",
            Some(&app.admin_key),
            json!({"issuer": idp.issuer(), "audiences": ["other"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "conflict");
    assert_eq!(b["error"]["existing_id"], id);
    assert_eq!(
        b["error"]["update"],
        format!("PATCH /api/v1/orgs/default/issuers/{id}")
    );
    assert!(message(&b).contains(&id), "{b}");
    let eve = other_org(&app).await;
    let (s, _) = app
        .get(&format!("/api/v1/orgs/rival/issuers/{id}"), Some(&eve))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .get(&format!("/api/v1/orgs/default/issuers/{id}"), Some(&eve))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn service_account_lists_are_pages_by_name() {
    let app = world().await;
    for n in ["a1", "a2", "a3"] {
        app.team_sa("vision", n).await;
    }
    app.org_sa("o1", "nlp").await;
    let names = |b: &Value| -> Vec<String> {
        b["service_accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, b) = app
        .get(
            "/api/v1/orgs/default/service-accounts?limit=3",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(names(&b), ["a1", "a2", "a3"]);
    assert_eq!(b["next_after"], "a3");
    let (_, b) = app
        .get(
            "/api/v1/orgs/default/service-accounts?limit=3&after=a3",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(names(&b), ["o1"]);
    assert_eq!(b["service_accounts"][0]["default_team"], "nlp");
    assert_eq!(b["next_after"], Value::Null);
    let (_, b) = app
        .get(
            "/api/v1/teams/vision/service-accounts?after=a1",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(names(&b), ["a2", "a3"]);
    let (s, b) = app
        .get(
            "/api/v1/teams/vision/service-accounts?limit=10001",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _) = app
        .get(
            "/api/v1/teams/vision/service-accounts?page=2",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// Polls `f` until it returns true (PostgreSQL NOTIFY is asynchronous);
/// the bound is generous for a loaded machine, and not a timing assert.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: not seen by the other replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: FEDGATE_TEST_DATABASE_URL=postgres://… and --include-ignored (scripts/test.sh)"]
async fn every_lifecycle_change_reaches_the_other_replica() {
    crate::support::require_postgres();
    let a = world().await;
    let b = TestApp::start_with(Options {
        database_url: Some(a.database_url.clone()),
        ..Options::default()
    })
    .await;
    let admin = a.admin_key.clone();
    let idp = TestIdp::start().await;
    let issuer = a.trust(&idp).await;
    let id = a
        .external_sa(
            "vision",
            "gh-train",
            json!({"issuer": issuer, "subject": GH_SUB}),
        )
        .await;
    let main = || idp.mint(json!({"sub": GH_SUB, "aud": "default"}));
    let deploy = || idp.mint(json!({"sub": DEPLOY_SUB, "aud": "default"}));
    eventually("new account", || async {
        b.exchange(&main()).await.0 == StatusCode::OK
    })
    .await;
    let token = b.exchange_ok(&main()).await;
    let (s, _) = b.get("/api/v1/viewer", Some(&token)).await;
    assert_eq!(s, StatusCode::OK);

    // An edited binding applies to the next exchange on the other replica.
    let (s, r) = a
        .patch(
            &format!("/api/v1/service-accounts/{id}"),
            Some(&admin),
            json!({"subject": DEPLOY_SUB}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    eventually("edited binding", || async {
        b.exchange(&deploy()).await.0 == StatusCode::OK
            && b.exchange(&main()).await.0 == StatusCode::BAD_REQUEST
    })
    .await;
    // Shadow mode too.
    a.patch(
        &format!("/api/v1/service-accounts/{id}"),
        Some(&admin),
        json!({"mode": "shadow"}),
    )
    .await;
    eventually("shadow mode", || async {
        b.exchange(&deploy()).await.0 == StatusCode::BAD_REQUEST
    })
    .await;
    a.patch(
        &format!("/api/v1/service-accounts/{id}"),
        Some(&admin),
        json!({"mode": "enforce"}),
    )
    .await;
    eventually("enforce mode", || async {
        b.exchange(&deploy()).await.0 == StatusCode::OK
    })
    .await;

    // A deleted account's live token is refused there too.
    let (s, _) = a
        .delete(&format!("/api/v1/service-accounts/{id}"), Some(&admin))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    eventually("deleted account", || async {
        b.get("/api/v1/viewer", Some(&token)).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;

    // A disabled person's key, cached on the other replica, is refused there.
    let alice = a.user("alice", "member").await;
    let (s, _) = b.get("/api/v1/viewer", Some(&alice)).await;
    assert_eq!(s, StatusCode::OK, "now cached on b");
    a.post("/api/v1/users/alice/disable", Some(&admin), json!({}))
        .await;
    eventually("disabled person", || async {
        b.get("/api/v1/viewer", Some(&alice)).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    // A role change and a removed membership are seen there too.
    let bob = a.user("bob", "member").await;
    a.member("vision", "bob", "member").await;
    let (s, _) = b.get("/api/v1/projects/vision/v-team", Some(&bob)).await;
    assert_eq!(s, StatusCode::OK);
    a.delete("/api/v1/teams/vision/members/bob", Some(&admin))
        .await;
    eventually("removed member", || async {
        b.get("/api/v1/projects/vision/v-team", Some(&bob)).await.0 == StatusCode::FORBIDDEN
    })
    .await;
    b.stop().await;
    a.stop().await;
}

/// Follows `next_after` from the first page of `path` with `?limit=`, as a
/// client would; returns every item's `key` in order, and checks each page
/// but the last is full and the last says so with `next_after: null`.
async fn page_through(
    app: &TestApp,
    path: &str,
    field: &str,
    key: &str,
    limit: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..100 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &after {
            None => format!("{path}{sep}limit={limit}"),
            Some(a) => format!(
                "{path}{sep}limit={limit}&after={}",
                url::form_urlencoded::byte_serialize(a.as_bytes()).collect::<String>()
            ),
        };
        let (s, b) = app.get(&url, Some(&app.admin_key)).await;
        assert_eq!(s, StatusCode::OK, "{url}: {b}");
        let items = b[field]
            .as_array()
            .unwrap_or_else(|| panic!("{url}: no {field}: {b}"));
        assert!(items.len() <= limit, "{url}: more than {limit}: {b}");
        out.extend(items.iter().map(|i| i[key].as_str().unwrap().to_string()));
        match b["next_after"].as_str() {
            Some(next) => {
                assert_eq!(
                    items.len(),
                    limit,
                    "{url}: a short page has a next page: {b}"
                );
                assert_eq!(
                    Some(next),
                    out.last().map(String::as_str),
                    "{url}: cursor is the last key"
                );
                after = Some(next.to_string());
            }
            None => {
                assert!(
                    b.get("next_after").is_some(),
                    "{url}: next_after is always present: {b}"
                );
                return out;
            }
        }
    }
    panic!("{path}: more than 100 pages");
}

#[tokio::test]
async fn teams_members_and_issuers_are_listed_a_page_at_a_time() {
    let app = world().await;
    let idp = TestIdp::start().await;
    // Teams: vision, nlp and five more, paged 3 at a time.
    for t in ["t-e", "t-a", "t-d", "t-b", "t-c"] {
        app.team(t).await;
    }
    let mut teams = page_through(&app, "/api/v1/orgs/default/teams", "teams", "name", 3).await;
    assert_eq!(
        teams,
        ["nlp", "t-a", "t-b", "t-c", "t-d", "t-e", "vision"],
        "every team once, by name"
    );
    // The whole list in one page says it is the last.
    let (_, b) = app
        .get("/api/v1/orgs/default/teams", Some(&app.admin_key))
        .await;
    assert_eq!(b["teams"].as_array().map(Vec::len), Some(7), "{b}");
    assert_eq!(b["next_after"], Value::Null);
    teams.clear();

    // A team's members, by username.
    let mut people = Vec::new();
    for u in ["mia", "bob", "zoe", "ann", "kim"] {
        app.user(u, "member").await;
        app.member("t-a", u, "member").await;
        people.push(u.to_string());
    }
    people.sort();
    assert_eq!(
        page_through(&app, "/api/v1/teams/t-a/members", "members", "username", 2).await,
        people
    );

    // A project's explicit members, by principal id, with their names.
    app.project("t-a", "p-many", "restricted").await;
    let mut ids = Vec::new();
    for u in &people {
        let (s, b) = app
            .post(
                "/api/v1/projects/t-a/p-many/members",
                Some(&app.admin_key),
                json!({"username": u, "role": "member"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (sa_id, _) = app.team_sa("t-a", "p-bot").await;
    let (s, b) = app
        .post(
            "/api/v1/projects/t-a/p-many/members",
            Some(&app.admin_key),
            json!({"service_account": "p-bot", "role": "member"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (_, b) = app
        .get("/api/v1/projects/t-a/p-many/members", Some(&app.admin_key))
        .await;
    for m in b["members"].as_array().unwrap() {
        ids.push(m["principal_id"].as_str().unwrap().to_string());
    }
    // Five people, the account and the project's creator (an explicit admin).
    assert_eq!(ids.len(), 7, "{b}");
    let bot = b["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["principal_id"] == sa_id.as_str())
        .unwrap_or_else(|| panic!("{b}"));
    assert_eq!(bot["name"], "p-bot");
    assert_eq!(bot["kind"], "service_account");
    // Paging visits the very list one page shows, in its order (by
    // principal id, in the database's collation).
    assert_eq!(
        page_through(
            &app,
            "/api/v1/projects/t-a/p-many/members",
            "members",
            "principal_id",
            3
        )
        .await,
        ids
    );
    // Someone who may not read the restricted project cannot list its members.
    let outsider = app.user("out", "member").await;
    let (s, b) = app
        .get("/api/v1/projects/t-a/p-many/members", Some(&outsider))
        .await;
    assert!(
        s == StatusCode::FORBIDDEN || s == StatusCode::NOT_FOUND,
        "{s} {b}"
    );

    // Issuers, by URL.
    let mut urls = Vec::new();
    for n in ["c", "a", "e", "b", "d"] {
        let url = format!("https://k8s-{n}.internal");
        app.trust_with(json!({"issuer": url, "jwks": idp.jwks_json(), "audiences": ["fedgate"]}))
            .await;
        urls.push(url);
    }
    urls.sort();
    assert_eq!(
        page_through(&app, "/api/v1/orgs/default/issuers", "issuers", "issuer", 2).await,
        urls
    );
    // Bad pages are the client's error, never a 500.
    for bad in [
        "/api/v1/orgs/default/teams?limit=0",
        "/api/v1/orgs/default/issuers?limit=10001",
        "/api/v1/teams/t-a/members?page=2",
        "/api/v1/projects/t-a/p-many/members?limit=x",
    ] {
        let (s, b) = app.get(bad, Some(&app.admin_key)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
    }
    idp.stop();
}

#[tokio::test]
async fn runs_are_listed_with_their_authors_names_live_or_deleted() {
    let app = world().await;
    let alice = app.user("alice", "member").await;
    app.member("vision", "alice", "member").await;
    app.user("bob", "member").await;
    app.member("vision", "bob", "member").await;
    let (sa_id, sa_key) = app.team_sa("vision", "bot").await;
    for (key, body) in [
        (
            &alice,
            json!({"entity": "vision", "project": "v-team", "name": "a1"}),
        ),
        (
            &sa_key,
            json!({"entity": "vision", "project": "v-team", "name": "b1"}),
        ),
        (
            &sa_key,
            json!({"entity": "vision", "project": "v-team", "name": "b2", "attribute_to": {"username": "bob"}}),
        ),
        (
            &alice,
            json!({"entity": "vision", "project": "v-team", "name": "a2"}),
        ),
    ] {
        let (s, b) = app.run(key, body).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, b) = app.delete("/api/v1/users/bob", Some(&app.admin_key)).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, b) = app
        .delete(
            &format!("/api/v1/service-accounts/{sa_id}"),
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");

    let (s, b) = app
        .get("/api/v1/projects/vision/v-team/runs", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let seen: Vec<(String, String, bool, String, String, bool)> = b["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let p = |who: &str| {
                (
                    r[who]["kind"].as_str().unwrap().to_string(),
                    r[who]["name"].as_str().unwrap().to_string(),
                    r[who]["deleted"].as_bool().unwrap_or(false),
                )
            };
            let (_, c_name, c_del) = p("created_by");
            let (a_kind, a_name, a_del) = p("attributed_to");
            (
                r["name"].as_str().unwrap().to_string(),
                c_name,
                c_del,
                a_kind,
                a_name,
                a_del,
            )
        })
        .collect();
    let row = |n: &str, c: &str, cd: bool, ak: &str, a: &str, ad: bool| {
        (
            n.to_string(),
            c.to_string(),
            cd,
            ak.to_string(),
            a.to_string(),
            ad,
        )
    };
    assert_eq!(
        seen,
        [
            row("a1", "alice", false, "user", "alice", false),
            row("b1", "bot", true, "service_account", "bot", true),
            row("b2", "bot", true, "user", "bob", true),
            row("a2", "alice", false, "user", "alice", false),
        ],
        "{b}"
    );
    // Ids are kept too: a deleted author is still told apart from another.
    assert_eq!(b["runs"][1]["created_by"]["id"], sa_id.as_str());
}
