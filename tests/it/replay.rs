//! Issue 10, "Replay": a single-use `jti` is remembered until the token can
//! no longer be accepted anywhere (its `exp` plus the largest leeway an
//! issuer may be given), not until its `exp`.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::TestApp;
use crate::support::idp::TestIdp;

const SUB: &str = "repo:acme/vision-train:ref:refs/heads/main";

async fn single_use_world() -> (TestApp, TestIdp, String) {
    let app = TestApp::start().await;
    app.team("vision").await;
    let idp = TestIdp::start().await;
    let issuer = app
        .trust_with(json!({"issuer": idp.issuer(), "single_use_jti": true}))
        .await;
    app.external_sa(
        "vision",
        "gh-train",
        json!({"issuer": issuer, "subject": SUB}),
    )
    .await;
    (app, idp, issuer)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn assert_replay_refused(app: &TestApp, token: &str, attempt: &str) {
    let (s, b) = app.exchange(token).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{attempt}: {b}");
    assert_eq!(
        b,
        json!({"error": "invalid_grant", "error_description": "this token was already exchanged: its \"jti\" is single-use"}),
        "{attempt}"
    );
}

/// Reported: `exp = now-10` (inside the 60 s leeway) was exchanged three times.
#[tokio::test]
async fn expired_within_leeway_is_still_single_use() {
    let (app, idp, _) = single_use_world().await;
    let t = now();
    let token = idp.mint(json!({"sub": SUB, "aud": "default", "iat": t - 100, "exp": t - 10}));
    app.exchange_ok(&token).await;
    assert_replay_refused(&app, &token, "second use").await;
    assert_replay_refused(&app, &token, "third use").await;
    app.stop().await;
}

/// Reported: `exp = now+3` refused on its second use, then accepted on the
/// third and fourth after 5 s (the record had expired at `exp`).
#[tokio::test]
async fn replay_after_exp_inside_the_leeway_is_refused() {
    let (app, idp, issuer) = single_use_world().await;
    let t = now();
    let token = idp.mint(json!({"sub": SUB, "aud": "default", "iat": t, "exp": t + 3}));
    app.exchange_ok(&token).await;
    assert_replay_refused(&app, &token, "second use").await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_replay_refused(&app, &token, "third use, after exp").await;
    // Raising the issuer's leeway afterwards does not reopen the window.
    let (s, b) = app
        .patch(
            &format!("/api/v1/orgs/default/issuers/{issuer}"),
            Some(&app.admin_key),
            json!({"leeway_s": 300}),
        )
        .await;
    assert!(s.is_success(), "{b}");
    assert_replay_refused(&app, &token, "fourth use, larger leeway").await;
    app.stop().await;
}

/// What the exchange wrote: keyed by the issuer's `iss` URL (so a new
/// registration of the same issuer, in this org or another, finds it), and
/// kept until `exp` + 300 s, the largest leeway any issuer may have.
#[tokio::test]
async fn the_record_is_keyed_by_issuer_url_and_outlives_every_leeway() {
    let (app, idp, _) = single_use_world().await;
    let t = now();
    let claims =
        json!({"sub": SUB, "aud": "default", "iat": t, "exp": t + 60, "jti": "jti-horizon"});
    app.exchange_ok(&idp.mint(claims)).await;
    let store = &app.state.store;
    let iss = idp.issuer();
    // At exp + 300 the record is still there: a second use is a replay.
    assert!(
        !store
            .use_jti(&iss, "jti-horizon", 0, t + 60 + 300)
            .await
            .unwrap()
    );
    // One second later nothing can accept the token any more; the row is purged.
    assert!(
        store
            .use_jti(&iss, "jti-horizon", 0, t + 60 + 301)
            .await
            .unwrap()
    );
    app.stop().await;
}
