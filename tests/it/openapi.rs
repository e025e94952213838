//! The OpenAPI document describes exactly what is served: every route of
//! DESIGN §4 is in it, and every operation in it is answered by the router
//! (not by the "no such endpoint" fallback or a 405).

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::TestApp;

/// DESIGN §4, written out by hand.
const SURFACE: &[(&str, &str)] = &[
    ("post", "/oidc/token"),
    ("get", "/.well-known/openid-configuration"),
    ("get", "/.well-known/jwks.json"),
    ("post", "/oauth/introspect"),
    ("post", "/graphql"),
    ("get", "/api/v1/viewer"),
    ("post", "/api/v1/authz/check"),
    ("post", "/api/v1/runs"),
    ("get", "/api/v1/projects/{entity}/{project}"),
    ("get", "/api/v1/projects/{entity}/{project}/runs"),
    ("post", "/api/v1/traces"),
    ("get", "/api/v1/projects/{entity}/{project}/traces"),
    ("patch", "/api/v1/projects/{entity}/{project}"),
    ("post", "/api/v1/projects/{entity}/{project}/members"),
    ("post", "/api/v1/orgs/{org}/users"),
    ("post", "/api/v1/users/{username}/api-keys"),
    ("post", "/api/v1/orgs/{org}/teams"),
    ("post", "/api/v1/teams/{team}/members"),
    ("post", "/api/v1/teams/{team}/projects"),
    ("post", "/api/v1/orgs/{org}/issuers"),
    ("get", "/api/v1/orgs/{org}/issuers"),
    ("delete", "/api/v1/orgs/{org}/issuers/{id}"),
    ("patch", "/api/v1/orgs/{org}/issuers/{id}"),
    ("post", "/api/v1/orgs/{org}/issuers/{id}/refresh"),
    ("post", "/api/v1/orgs/{org}/service-accounts"),
    ("post", "/api/v1/teams/{team}/service-accounts"),
    ("get", "/api/v1/orgs/{org}/service-accounts"),
    ("get", "/api/v1/teams/{team}/service-accounts"),
    ("post", "/api/v1/service-accounts/{id}/api-keys"),
    ("delete", "/api/v1/service-accounts/{id}/api-keys/{key_id}"),
    ("post", "/api/v1/service-accounts/{id}/disable"),
    ("post", "/api/v1/service-accounts/{id}/enable"),
    ("get", "/api/v1/orgs/{org}/audit"),
    ("post", "/api/v1/orgs/{org}/federation/explain"),
    // The lifecycle (issue 12) and revocable people (issue 10).
    ("get", "/api/v1/service-accounts/{id}"),
    ("patch", "/api/v1/service-accounts/{id}"),
    ("delete", "/api/v1/service-accounts/{id}"),
    ("get", "/api/v1/orgs/{org}/users"),
    ("get", "/api/v1/users/{username}"),
    ("patch", "/api/v1/users/{username}"),
    ("delete", "/api/v1/users/{username}"),
    ("post", "/api/v1/users/{username}/disable"),
    ("post", "/api/v1/users/{username}/enable"),
    ("get", "/api/v1/teams/{team}"),
    ("delete", "/api/v1/teams/{team}"),
    ("delete", "/api/v1/teams/{team}/members/{username}"),
    ("get", "/api/v1/teams/{team}/projects"),
    ("delete", "/api/v1/projects/{entity}/{project}"),
    (
        "delete",
        "/api/v1/projects/{entity}/{project}/members/{member}",
    ),
    ("get", "/api/v1/orgs/{org}/issuers/{id}"),
    // Every list paged (issue 12).
    ("get", "/api/v1/orgs/{org}/teams"),
    ("get", "/api/v1/teams/{team}/members"),
    ("get", "/api/v1/projects/{entity}/{project}/members"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let app = TestApp::start().await;
    let (s, doc) = app.get("/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");

    let missing: Vec<_> = SURFACE
        .iter()
        .filter(|(m, p)| paths.get(*p).and_then(|item| item.get(*m)).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:?}"
    );

    let mut not_served = Vec::new();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            assert!(
                op.get("summary").is_some(),
                "{method} {path} has no summary"
            );
            assert!(
                op.get("responses").is_some(),
                "{method} {path} has no responses"
            );
            let url = app.url(&path.replace(['{', '}'], ""));
            let req = match method.as_str() {
                "get" => app.client.get(&url),
                "post" => app.client.post(&url),
                "patch" => app.client.patch(&url),
                "put" => app.client.put(&url),
                "delete" => app.client.delete(&url),
                other => panic!("unexpected method {other}"),
            };
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let fallback = body["error"]["message"] == "no such endpoint";
            if status == StatusCode::METHOD_NOT_ALLOWED || fallback {
                not_served.push(format!("{method} {path} → {status}"));
            }
        }
    }
    assert!(
        not_served.is_empty(),
        "documented but not served: {not_served:?}"
    );
    assert!(operations >= SURFACE.len());
    // Schemas of the main bodies are described.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "TokenResponse",
        "NewRun",
        "RunOut",
        "NewTrace",
        "TraceOut",
        "TracePage",
        "NewTeamSa",
        "SaOut",
        "NewIssuer",
        "ErrorBody",
        "OAuthErrorBody",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
}

/// Every admin list is paged the same way, and the document says so.
#[tokio::test]
async fn every_list_documents_limit_after_and_next_after() {
    let app = TestApp::start().await;
    let (_, doc) = app.get("/openapi.json", None).await;
    for (path, page) in [
        ("/api/v1/orgs/{org}/service-accounts", "SaPage"),
        ("/api/v1/teams/{team}/service-accounts", "SaPage"),
        ("/api/v1/orgs/{org}/users", "UserPage"),
        ("/api/v1/teams/{team}/projects", "ProjectPage"),
        ("/api/v1/orgs/{org}/teams", "TeamPage"),
        ("/api/v1/teams/{team}/members", "MemberPage"),
        (
            "/api/v1/projects/{entity}/{project}/members",
            "ProjectMemberPage",
        ),
        ("/api/v1/orgs/{org}/issuers", "IssuerPage"),
    ] {
        let op = &doc["paths"][path]["get"];
        let params: Vec<&str> = op["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: no parameters"))
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(
            params.contains(&"limit") && params.contains(&"after"),
            "{path}: {params:?}"
        );
        let body = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_default();
        assert!(body.ends_with(&format!("/{page}")), "{path}: {body}");
        let schema = &doc["components"]["schemas"][page]["properties"];
        assert!(schema.get("next_after").is_some(), "{page}: {schema}");
    }
}
