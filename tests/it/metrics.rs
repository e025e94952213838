//! `GET /metrics`: the Prometheus series exist and count what happened.
//! The recorder is process-wide and other tests run beside this one, so
//! shared series are compared before/after; per-issuer series are exact.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::TestApp;
use crate::support::idp::TestIdp;

async fn scrape(app: &TestApp) -> String {
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("text/plain"), "content-type {ct}");
    resp.text().await.unwrap()
}

/// The value of the sample `series` (name and labels exactly as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_exchanges_fetches_caches_and_latency() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    app.team("vision").await;
    let issuer = app.trust(&idp).await;
    let claims = TestIdp::fixture_with("github-actions", json!({"aud": "default"}));
    app.external_sa(
        "vision",
        "ci-bot",
        json!({"issuer": issuer, "subject": claims["sub"]}),
    )
    .await;

    let ok = "fedgate_exchanges_total{outcome=\"success\",error=\"none\"}";
    let bad = "fedgate_exchanges_total{outcome=\"denied\",error=\"invalid_request\"}";
    let token_latency = "fedgate_http_request_duration_seconds_count{route=\"/oidc/token\",method=\"POST\",status=\"2xx\"}";
    let exchange_latency = "fedgate_exchange_duration_seconds_count{outcome=\"success\"}";
    // Labelled by issuer id, never by URL.
    let fetches = format!("fedgate_jwks_fetches_total{{issuer_id=\"{issuer}\",result=\"ok\"}}");
    let jwks_hit = "fedgate_cache_lookups_total{cache=\"jwks_keys\",result=\"hit\"}";
    let tok_miss = "fedgate_cache_lookups_total{cache=\"verified_tokens\",result=\"miss\"}";
    let tok_hit = "fedgate_cache_lookups_total{cache=\"verified_tokens\",result=\"hit\"}";
    let key_hit = "fedgate_cache_lookups_total{cache=\"api_keys\",result=\"hit\"}";

    // The registration's lint fetch is not counted (a refused registration
    // must leave no series); an admin refresh of a registered issuer is.
    let (s, b) = app
        .post(
            &format!("/api/v1/orgs/default/issuers/{issuer}/refresh"),
            Some(&app.admin_key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let before = scrape(&app).await;
    let access = app.exchange_ok(&idp.mint(claims.clone())).await;
    app.exchange_ok(&idp.mint(claims.clone())).await;
    let (s, _) = app.exchange("not-a-jwt").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    for _ in 0..2 {
        let (s, b) = app.get("/api/v1/viewer", Some(&access)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, _) = app.get("/api/v1/viewer", Some(&app.admin_key)).await;
    assert_eq!(s, StatusCode::OK);
    let after = scrape(&app).await;

    assert!(value(&after, ok) - value(&before, ok) >= 2.0, "{after}");
    assert!(value(&after, bad) - value(&before, bad) >= 1.0, "{after}");
    assert!(value(&after, exchange_latency) - value(&before, exchange_latency) >= 2.0);
    assert!(value(&after, token_latency) - value(&before, token_latency) >= 2.0);
    assert!(
        after.contains("fedgate_http_request_duration_seconds_bucket{route=\"/api/v1/viewer\",method=\"GET\",status=\"2xx\",le=\"0.001\"}"),
        "{after}"
    );
    // One counted fetch (the refresh: discovery + JWKS); the exchanges hit the cache.
    assert_eq!(sample(&after, &fetches), Some(1.0), "{after}");
    assert!(
        !after.contains(&idp.issuer()),
        "an issuer URL became a label: {after}"
    );
    assert!(value(&after, jwks_hit) - value(&before, jwks_hit) >= 1.0);
    // The access token's signature is checked once, then it is a cache hit.
    assert!(value(&after, tok_miss) - value(&before, tok_miss) >= 1.0);
    assert!(value(&after, tok_hit) - value(&before, tok_hit) >= 1.0);
    assert!(value(&after, key_hit) - value(&before, key_hit) >= 1.0);
    assert!(
        sample(&after, "fedgate_audit_queue_depth").is_some(),
        "{after}"
    );
    assert!(sample(&after, "fedgate_trusted_issuers").is_some_and(|v| v >= 1.0));
    assert!(sample(&after, "fedgate_external_accounts").is_some_and(|v| v >= 1.0));
    app.stop().await;
}
