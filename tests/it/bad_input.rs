//! Bad input gets a clear 4xx and loses nothing; none of it panics.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestApp, message};

#[tokio::test]
async fn malformed_bodies_are_clear_400s() {
    let app = TestApp::start().await;
    app.team("vision").await;
    let admin = app.admin_key.clone();
    let raw = |body: &'static str, ctype: &'static str| {
        app.client
            .post(app.url("/api/v1/orgs/default/teams"))
            .bearer_auth(&admin)
            .header("content-type", ctype)
            .body(body)
    };
    for (body, ctype, needle) in [
        ("{not json", "application/json", "not valid JSON"),
        ("{\"name\": 5}", "application/json", "invalid type"),
        (
            "{\"name\": \"x\", \"extra\": 1}",
            "application/json",
            "unknown field",
        ),
        ("{}", "application/json", "missing field"),
        (
            "name=x",
            "application/x-www-form-urlencoded",
            "Content-Type: application/json",
        ),
        ("[1,2]", "application/json", "invalid type"),
    ] {
        let resp = raw(body, ctype).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        let b: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(b["error"]["code"], "bad_request", "{body}: {b}");
        assert!(message(&b).contains(needle), "{body}: {b}");
    }
    // Bad names.
    for name in ["", "-x", "a/b", "has space", &"x".repeat(65)] {
        let (s, b) = app
            .post(
                "/api/v1/orgs/default/teams",
                Some(&admin),
                json!({ "name": name }),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{name:?}: {b}");
        assert!(message(&b).contains("invalid"), "{b}");
    }
    // Wrong enum values.
    let (s, b) = app
        .post(
            "/api/v1/teams/vision/projects",
            Some(&admin),
            json!({"name": "p", "visibility": "secret"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("unknown variant"), "{b}");
    let (s, b) = app
        .post(
            "/api/v1/teams/vision/service-accounts",
            Some(&admin),
            json!({"name": "x", "auth": "magic"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = app
        .post(
            "/api/v1/runs",
            Some(&admin),
            json!({"entity": "vision", "project": "p", "config": [1]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = app
        .get("/api/v1/orgs/default/audit?limit=abc", Some(&admin))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = app
        .get("/api/v1/orgs/default/audit?limit=0", Some(&admin))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    // Conflicts are 409.
    let (s, b) = app
        .post(
            "/api/v1/orgs/default/teams",
            Some(&admin),
            json!({"name": "vision"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(message(&b).contains("already exists"), "{b}");
    // Unknown routes and methods are JSON errors too.
    let (s, b) = app.get("/api/v1/nope", Some(&admin)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["error"]["code"], "not_found");
    let (s, _) = app.delete("/api/v1/viewer", Some(&admin)).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = TestApp::start().await;
    let big = "x".repeat(1024 * 1024);
    let (s, b) = app
        .post(
            "/api/v1/orgs/default/teams",
            Some(&app.admin_key),
            json!({ "name": big }),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert_eq!(b["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn missing_and_garbage_credentials_are_401() {
    let app = TestApp::start().await;
    let (s, b) = app.get("/api/v1/viewer", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(message(&b).contains("credential is required"), "{b}");
    for header in [
        "Bearer fgk_notarealkeynotarealkeynotarealkey0",
        "Bearer eyJhbGciOiJFUzI1NiJ9.e30.AAAA",
        "Bearer eyJ.broken",
        "Basic !!!notbase64",
        "Basic YXBpOg==",
        "Digest abc",
        "Bearer",
    ] {
        let resp = app
            .client
            .get(app.url("/api/v1/viewer"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{header}");
        assert!(resp.headers().contains_key("www-authenticate"), "{header}");
        let b: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(b["error"]["code"], "unauthenticated", "{header}: {b}");
    }
    // Non-UTF-8 header bytes.
    let resp = app
        .client
        .get(app.url("/api/v1/viewer"))
        .header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The server is still fine.
    let (s, _) = app.get("/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = app.get("/readyz", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[tokio::test]
async fn bootstrap_refuses_an_existing_org() {
    let app = TestApp::start().await;
    let err = fedgate::service::admin::bootstrap(&app.state, "default", "other", "o@x.io")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}
