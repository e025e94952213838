//! Issue 10, "cost per request is bounded, for everyone, before
//! authentication": the GraphQL work budget and body limit, the form
//! parser's parameter cap, and the request timeout. Each quoted finding is
//! replayed as it was reported, then variants of it.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{JWT_BEARER, Options, TestApp};

async fn graphql(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(app.url("/graphql"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

fn gql_message(b: &Value) -> String {
    b["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The reported query: `query Viewer { ...F0 }`, fifteen fragments, each
/// spreading the next three times (3^15 expansions, 931 ms, then 200).
fn fan_out(fragments: usize, width: usize) -> String {
    let mut q = String::from("query Viewer { ...F0 }");
    for i in 0..fragments {
        let next = if i + 1 < fragments {
            format!("...F{} ", i + 1).repeat(width)
        } else {
            "viewer { id }".into()
        };
        q.push_str(&format!(" fragment F{i} on Query {{ {next} }}"));
    }
    q
}

#[tokio::test]
async fn graphql_fragment_fan_out_is_refused_at_once() {
    let app = TestApp::start().await;
    for (fragments, width) in [(15, 3), (12, 8), (40, 2)] {
        let q = fan_out(fragments, width);
        let (s, b) = graphql(&app, json!({"query": q})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert!(b.get("data").is_none(), "{b}");
        // Expansion is depth first: the deepest fragment is the first repeat.
        assert_eq!(
            gql_message(&b),
            format!(
                "fragment \"F{}\" is spread more than once: each fragment may be used once per query",
                fragments - 1
            )
        );
    }
    // A cycle, anonymous and unauthenticated.
    let (s, b) = graphql(
        &app,
        json!({"query": "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        gql_message(&b),
        "fragment \"A\" spreads itself (through A → B): cyclic fragments are refused"
    );
    // Wide but flat: aliases and fields past the budget.
    let wide: String = (0..200).map(|i| format!("f{i}: __typename ")).collect();
    let (s, b) = graphql(&app, json!({"query": format!("query Viewer {{ {wide} }}")})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        gql_message(&b).starts_with("query is too expensive: more than 64 selections"),
        "{b}"
    );
    app.stop().await;
}

#[tokio::test]
async fn graphql_viewer_name_does_not_unlock_other_fields() {
    let app = TestApp::start().await;
    let key = app.admin_key.clone();
    for (q, want) in [
        (
            "query Viewer { project(name: \"secret\") { id } }",
            "cannot query field \"project\" on type \"Query\"",
        ),
        (
            "query Viewer { viewer { id } models { edges { node { name } } } }",
            "cannot query field \"models\" on type \"Query\"",
        ),
        (
            "query GetDefaultEntity { viewer { apiKeys { edges { node { name } } } } }",
            "cannot query field \"apiKeys\" on type \"User\"",
        ),
        (
            "query Viewer { viewer { ... on Run { config } } }",
            "a fragment on \"Run\" cannot be spread where \"User\" is expected",
        ),
    ] {
        let resp = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&key)
            .json(&json!({"query": q}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{q}");
        let b: Value = resp.json().await.unwrap();
        assert!(b.get("data").is_none(), "{q}: {b}");
        assert!(gql_message(&b).contains(want), "{q}: {b}");
    }
    app.stop().await;
}

#[tokio::test]
async fn graphql_body_is_limited_to_16_kib() {
    let app = TestApp::start().await;
    // Padding in a comment: syntactically fine, only the size is wrong.
    let q = format!(
        "query Viewer {{ viewer {{ id }} }} #{}",
        "x".repeat(17 * 1024)
    );
    let (s, b) = graphql(&app, json!({"query": q})).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert_eq!(
        gql_message(&b),
        "request body is too large: /graphql takes at most 16384 bytes"
    );
    let q = format!(
        "query Viewer {{ viewer {{ id }} }} #{}",
        "x".repeat(15 * 1024)
    );
    let (s, b) = graphql(&app, json!({"query": q})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, json!({"data": {"viewer": null}}));
    app.stop().await;
}

async fn raw_form(
    app: &TestApp,
    path: &str,
    key: Option<&str>,
    body: String,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

/// The reported body: 128 KiB of 32,000 distinct parameters (1.4 s, then
/// `400 missing grant_type`). Now refused on the count, before decoding.
#[tokio::test]
async fn form_parameter_count_is_capped_on_both_endpoints() {
    let app = TestApp::start().await;
    // Names of at most 3 characters: 32,000 of them fit in 128 KiB.
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let flood: String = (0..32_000usize)
        .map(|i| {
            let mut name = vec![DIGITS[i % 62]];
            let mut rest = i / 62;
            while rest > 0 {
                name.push(DIGITS[rest % 62]);
                rest /= 62;
            }
            String::from_utf8(name).unwrap()
        })
        .collect::<Vec<_>>()
        .join("&");
    assert!(flood.len() <= 128 * 1024, "{}", flood.len());
    let want = json!({"error": "invalid_request", "error_description": "too many parameters: at most 32 are accepted"});
    let (s, b) = raw_form(&app, "/oidc/token", None, flood.clone()).await;
    assert_eq!((s, &b), (StatusCode::BAD_REQUEST, &want));
    let key = app.admin_key.clone();
    let (s, b) = raw_form(&app, "/oauth/introspect", Some(&key), flood).await;
    assert_eq!((s, &b), (StatusCode::BAD_REQUEST, &want));
    // 33 real-looking parameters: still the count, not "missing grant_type".
    let body: String = (0..33)
        .map(|i| format!("x{i}=1&"))
        .chain([format!("grant_type={JWT_BEARER}")])
        .collect();
    let (s, b) = raw_form(&app, "/oidc/token", None, body).await;
    assert_eq!((s, &b), (StatusCode::BAD_REQUEST, &want));
    // Repeats, decoded first: a set, on both endpoints.
    let (s, b) = raw_form(
        &app,
        "/oauth/introspect",
        Some(&key),
        "token=a&to%6Ben=b".into(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        b,
        json!({"error": "invalid_request", "error_description": "parameter \"token\" is repeated (RFC 6749 §3.2)"})
    );
    let (s, b) = raw_form(
        &app,
        "/oidc/token",
        None,
        format!("grant_type={JWT_BEARER}&assertion=a&grant_type=x"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        b["error_description"],
        "parameter \"grant_type\" is repeated (RFC 6749 §3.2)"
    );
    app.stop().await;
}

/// A client that sends its headers and then never finishes its body (a
/// slow upload) is cut off by the request timeout, on any route.
#[tokio::test]
async fn every_route_has_a_request_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start_with(Options {
        request_timeout_s: 1,
        ..Options::default()
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let key = app.admin_key.clone();
    for (path, content_type) in [
        ("/oidc/token", "application/x-www-form-urlencoded"),
        ("/oauth/introspect", "application/x-www-form-urlencoded"),
        ("/graphql", "application/json"),
        ("/api/v1/runs", "application/json"),
    ] {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\ncontent-type: {content_type}\r\ncontent-length: 100000\r\nconnection: close\r\n\r\n{{"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        // The server answers and closes although the body never came.
        tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut answer))
            .await
            .expect("the server waited for the body")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 503"), "{path}: {answer}");
        assert!(answer.contains("retry-after: 1"), "{answer}");
        assert!(
            answer.contains(r#"{"error":{"code":"request_timeout","message":"the request took longer than 1 s (--request-timeout); retry"}}"#),
            "{path}: {answer}"
        );
        assert!(started.elapsed() < Duration::from_secs(20));
    }
    app.stop().await;
}
