//! Issue 10, "the suite's blind spots": fedgate's own access tokens attacked
//! as Bearer credentials (each refusal's code and reason pinned), the
//! minted token's claim values, the per-account lifetime cap, and
//! introspection of what must come back `{"active": false}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::idp::{KeyId, TestIdp};
use crate::support::{Options, TestApp};

const SUB: &str = "repo:acme/vision-train:ref:refs/heads/main";

/// An app with team "vision", the test IdP trusted and external account
/// "gh-train" bound to [`SUB`]; returns the account and issuer ids too.
async fn federated(opts: Options) -> (TestApp, TestIdp, String, String) {
    let app = TestApp::start_with(opts).await;
    app.team("vision").await;
    let idp = TestIdp::start().await;
    let issuer = app.trust(&idp).await;
    let id = app
        .external_sa(
            "vision",
            "gh-train",
            json!({"issuer": issuer, "subject": SUB}),
        )
        .await;
    (app, idp, id, issuer)
}

fn assertion(idp: &TestIdp) -> String {
    idp.mint(json!({"sub": SUB, "aud": "default"}))
}

fn part(token: &str, i: usize) -> Value {
    let seg = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).unwrap()).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// `GET /api/v1/viewer` with `token` must be exactly this 401.
async fn refused(app: &TestApp, name: &str, token: &str, reason: &str) {
    let (s, b) = app.get("/api/v1/viewer", Some(token)).await;
    assert_eq!(
        (s, &b),
        (
            StatusCode::UNAUTHORIZED,
            &json!({"error": {"code": "unauthenticated", "message": reason}})
        ),
        "{name}"
    );
}

#[tokio::test]
async fn forged_and_foreign_access_tokens_are_refused_for_what_they_are() {
    let (app, idp, sa_id, _) = federated(Options::default()).await;
    let token = app.exchange_ok(&assertion(&idp)).await;
    let (s, me) = app.get("/api/v1/viewer", Some(&token)).await;
    assert_eq!(s, StatusCode::OK, "the genuine token works: {me}");
    let (header, payload) = (part(&token, 0), part(&token, 1));
    let sig = token.split('.').nth(2).unwrap();

    // Tampered: the admin's id as `sub`, the original signature kept.
    let (_, admin) = app.get("/api/v1/viewer", Some(&app.admin_key)).await;
    let mut evil = payload.clone();
    evil["sub"] = admin["id"].clone();
    evil["client_id"] = admin["id"].clone();
    let tampered = format!("{}.{}.{sig}", b64(&header), b64(&evil));
    refused(&app, "tampered sub", &tampered, "invalid access token").await;
    // Tampered scope only.
    let mut wider = payload.clone();
    wider["scope"] = json!("read write admin");
    let tampered = format!("{}.{}.{sig}", b64(&header), b64(&wider));
    refused(&app, "tampered scope", &tampered, "invalid access token").await;

    // Re-signed with another P-256 key under fedgate's kid.
    let resigned = idp.sign_raw(KeyId::EcA, &header, &serde_json::to_vec(&evil).unwrap());
    refused(&app, "re-signed", &resigned, "invalid access token").await;

    // `alg` swapped: HS256 keyed with a public key, EdDSA, none.
    let mut hs = header.clone();
    hs["alg"] = json!("HS256");
    let swapped = idp.sign_raw(KeyId::RsaA, &hs, &serde_json::to_vec(&payload).unwrap());
    refused(
        &app,
        "alg HS256",
        &swapped,
        "access token algorithm does not match its key",
    )
    .await;
    let mut ed = header.clone();
    ed["alg"] = json!("EdDSA");
    let swapped = idp.sign_raw(KeyId::Ed25519A, &ed, &serde_json::to_vec(&payload).unwrap());
    refused(
        &app,
        "alg EdDSA",
        &swapped,
        "access token algorithm does not match its key",
    )
    .await;
    let mut none = header.clone();
    none["alg"] = json!("none");
    let unsigned = format!("{}.{}.", b64(&none), b64(&payload));
    refused(&app, "alg none", &unsigned, "malformed access token").await;

    // Not an access token of fedgate's shape at all.
    let mut typ = header.clone();
    typ["typ"] = json!("JWT");
    let plain = idp.sign_raw(KeyId::EcA, &typ, &serde_json::to_vec(&payload).unwrap());
    refused(
        &app,
        "typ JWT",
        &plain,
        "not a fedgate access token (typ must be at+jwt)",
    )
    .await;
    let mut kid = header.clone();
    kid["kid"] = json!("no-such-kid");
    let unknown = idp.sign_raw(KeyId::EcA, &kid, &serde_json::to_vec(&payload).unwrap());
    refused(
        &app,
        "unknown kid",
        &unknown,
        "access token signed by an unknown key",
    )
    .await;

    // Minted by another fedgate (another issuer, other keys).
    let (other, other_idp, _, _) = federated(Options::default()).await;
    let foreign = other.exchange_ok(&assertion(&other_idp)).await;
    refused(
        &app,
        "other issuer",
        &foreign,
        "access token signed by an unknown key",
    )
    .await;
    other.stop().await;

    // Signed with fedgate's own key but naming another issuer or audience
    // (what a bug in minting would produce).
    let signer = &app.state.signer;
    let mut claims: fedgate::tokens::AccessClaims =
        serde_json::from_value(payload.clone()).unwrap();
    claims.jti = "at_other_iss".into();
    claims.iss = "https://evil.example".into();
    refused(
        &app,
        "own key, other iss",
        &signer.mint(&claims).unwrap(),
        "invalid access token",
    )
    .await;
    let mut claims: fedgate::tokens::AccessClaims =
        serde_json::from_value(payload.clone()).unwrap();
    claims.jti = "at_other_aud".into();
    claims.aud = "https://other-service.example".into();
    refused(
        &app,
        "own key, other aud",
        &signer.mint(&claims).unwrap(),
        "invalid access token",
    )
    .await;

    // Minted for org "acme" but naming org "default": the org claim must
    // match the principal's org.
    let acme = fedgate::service::admin::bootstrap(&app.state, "acme", "acme-admin", "root@acme.io")
        .await
        .unwrap();
    let (_, acme_admin) = app.get("/api/v1/viewer", Some(&acme.api_key)).await;
    let mut claims: fedgate::tokens::AccessClaims =
        serde_json::from_value(payload.clone()).unwrap();
    claims.jti = "at_other_org".into();
    claims.sub = acme_admin["id"].as_str().unwrap().into();
    claims.client_id = claims.sub.clone();
    claims.act = None;
    refused(
        &app,
        "other org minted",
        &signer.mint(&claims).unwrap(),
        "invalid access token",
    )
    .await;
    // A genuine acme token reaches nothing of org default.
    claims.org = "acme".into();
    claims.jti = "at_acme".into();
    let acme_token = signer.mint(&claims).unwrap();
    let (s, b) = app
        .get("/api/v1/projects/vision/nothing", Some(&acme_token))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, _) = app
        .get("/api/v1/orgs/default/audit", Some(&acme_token))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The genuine token still works after all that, and is the account's.
    let (s, me) = app.get("/api/v1/viewer", Some(&token)).await;
    assert_eq!(
        (s, me["id"].as_str()),
        (StatusCode::OK, Some(sa_id.as_str()))
    );
    app.stop().await;
}

#[tokio::test]
async fn an_access_token_expires_with_a_short_token_ttl() {
    let (app, idp, _, _) = federated(Options {
        token_ttl_s: 1,
        ..Options::default()
    })
    .await;
    let (s, b) = app.exchange(&assertion(&idp)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["expires_in"], 1);
    let token = b["access_token"].as_str().unwrap().to_string();
    let payload = part(&token, 1);
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(),
        1
    );
    // Past exp (no leeway for fedgate's own tokens), whatever the cache holds.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    refused(&app, "expired", &token, "access token has expired").await;
    let (s, b) = app
        .post(
            "/api/v1/runs",
            Some(&token),
            json!({"entity": "vision", "project": "p"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    // And introspection says it is not active.
    let (s, b) = introspect(&app, &token).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"active": false})));
    app.stop().await;
}

async fn introspect(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(app.url("/oauth/introspect"))
        .bearer_auth(&app.admin_key)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let s = resp.status();
    (s, resp.json().await.unwrap())
}

#[tokio::test]
async fn minted_values_lifetime_cap_and_introspection() {
    let (app, idp, sa_id, issuer_id) = federated(Options::default()).await;
    // An account capped at 120 s gets 120 s, whatever --token-ttl says.
    let capped = app
        .external_sa(
            "vision",
            "gh-short",
            json!({"issuer": issuer_id, "subject": "repo:acme/short:ref:refs/heads/main", "max_token_lifetime_s": 120}),
        )
        .await;
    let (s, b) = app
        .exchange(
            &idp.mint(json!({"sub": "repo:acme/short:ref:refs/heads/main", "aud": "default"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["expires_in"], 120);
    let short = b["access_token"].as_str().unwrap().to_string();
    let p = part(&short, 1);
    assert_eq!(p["exp"].as_i64().unwrap() - p["iat"].as_i64().unwrap(), 120);
    assert_eq!(
        (p["sub"].as_str(), p["client_id"].as_str()),
        (Some(capped.as_str()), Some(capped.as_str()))
    );

    // The minted token's values, not just their presence.
    let token = app.exchange_ok(&assertion(&idp)).await;
    let p = part(&token, 1);
    assert_eq!(p["sub"], sa_id.as_str());
    assert_eq!(p["client_id"], sa_id.as_str());
    assert_eq!(p["aud"], app.base.as_str());
    assert_eq!(p["iss"], app.base.as_str());
    assert_eq!(p["org"], "default");
    assert_eq!(p["scope"], "read write");
    assert_eq!(p["act"], json!({"iss": idp.issuer(), "sub": SUB}));
    assert_eq!(
        p["exp"].as_i64().unwrap() - p["iat"].as_i64().unwrap(),
        3600
    );

    // Introspection of the genuine token: its values.
    let (s, b) = introspect(&app, &token).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["active"], true, "{b}");
    assert_eq!(b["sub"], sa_id.as_str());
    assert_eq!(b["client_id"], sa_id.as_str());
    assert_eq!(b["aud"], app.base.as_str());
    assert_eq!(b["username"], "gh-train");
    assert_eq!(b["principal_kind"], "service_account");
    assert_eq!(b["token_type"], "Bearer");

    // Another org's token: inactive to this org (active to its own).
    let acme = fedgate::service::admin::bootstrap(&app.state, "acme", "acme-admin", "root@acme.io")
        .await
        .unwrap();
    let (s, b) = introspect(&app, &acme.api_key).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"active": false})));
    let mut claims: fedgate::tokens::AccessClaims = serde_json::from_value(p.clone()).unwrap();
    let (_, acme_admin) = app.get("/api/v1/viewer", Some(&acme.api_key)).await;
    claims.sub = acme_admin["id"].as_str().unwrap().into();
    claims.client_id = claims.sub.clone();
    claims.org = "acme".into();
    claims.jti = "at_acme_introspect".into();
    let acme_token = app.state.signer.mint(&claims).unwrap();
    let (s, b) = introspect(&app, &acme_token).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"active": false})));
    let resp = app
        .client
        .post(app.url("/oauth/introspect"))
        .bearer_auth(&acme.api_key)
        .form(&[("token", acme_token.as_str())])
        .send()
        .await
        .unwrap();
    let b: Value = resp.json().await.unwrap();
    assert_eq!(
        (b["active"].as_bool(), b["org"].as_str()),
        (Some(true), Some("acme")),
        "{b}"
    );

    // An API key of this org is described as one (never as a token).
    let carol = app.user("carol", "member").await;
    let (s, b) = introspect(&app, &carol).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (
            b["active"].as_bool(),
            b["token_type"].as_str(),
            b["username"].as_str()
        ),
        (Some(true), Some("api_key"), Some("carol")),
        "{b}"
    );
    assert!(
        b.get("client_id").is_none() && b.get("exp").is_none(),
        "{b}"
    );
    // An unknown key, garbage, nothing: inactive.
    for t in ["fgk_nope", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln", ""] {
        let (s, b) = introspect(&app, t).await;
        assert_eq!((s, b), (StatusCode::OK, json!({"active": false})), "{t:?}");
    }
    app.stop().await;
}

/// Issue 15: a token whose payload already says it is no good is refused
/// before its signature is checked (a flood of stale or garbled tokens
/// costs no verification), with the reason the full check gives; a
/// payload changed to a future `exp` still meets the signature.
#[tokio::test]
async fn stale_and_garbled_tokens_are_refused_before_the_signature_with_the_same_reason() {
    let (app, idp, _, _) = federated(Options::default()).await;
    let token = app.exchange_ok(&assertion(&idp)).await;
    let (header, payload) = (part(&token, 0), part(&token, 1));
    let sig = token.split('.').nth(2).unwrap();
    let now = payload["iat"].as_i64().unwrap();

    // Genuinely expired: minted by fedgate's own key an hour ago.
    let mut claims: fedgate::tokens::AccessClaims =
        serde_json::from_value(payload.clone()).unwrap();
    claims.jti = "at_expired".into();
    claims.iat = now - 7200;
    claims.iat_ms = 0;
    claims.exp = now - 3600;
    let expired = app.state.signer.mint(&claims).unwrap();
    refused(&app, "expired", &expired, "access token has expired").await;
    // The same payload with a garbage signature under a kid nobody has:
    // refused as expired, which only a check before the signature (and
    // before the key lookup) can say.
    let mut kid = header.clone();
    kid["kid"] = json!("no-such-kid");
    let forged = format!(
        "{}.{}.{}",
        b64(&kid),
        expired.split('.').nth(1).unwrap(),
        "A".repeat(86)
    );
    refused(&app, "expired, forged", &forged, "access token has expired").await;
    let (s, b) = app
        .post("/api/v1/runs", Some(&forged), json!({"project": "p"}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");

    // Payloads the claim checks refuse: no `exp`, a string `exp`, not JSON.
    for (name, p) in [
        ("no exp", {
            let mut p = payload.clone();
            p.as_object_mut().unwrap().remove("exp");
            b64(&p)
        }),
        ("string exp", {
            let mut p = payload.clone();
            p["exp"] = json!((now + 3600).to_string());
            b64(&p)
        }),
        ("payload not JSON", URL_SAFE_NO_PAD.encode(b"not json")),
        ("payload not base64", "!!".to_string()),
    ] {
        let t = format!("{}.{p}.{sig}", b64(&header));
        refused(&app, name, &t, "invalid access token").await;
    }
    // Four parts.
    refused(
        &app,
        "four parts",
        &format!("{token}.x"),
        "malformed access token",
    )
    .await;

    // Tampered to a later `exp` (and a wider scope): the cheap check lets
    // it through, and the signature refuses it.
    let mut later = payload.clone();
    later["exp"] = json!(now + 86_400);
    later["scope"] = json!("read write admin");
    let tampered = format!("{}.{}.{sig}", b64(&header), b64(&later));
    refused(
        &app,
        "tampered, future exp",
        &tampered,
        "invalid access token",
    )
    .await;

    // Far too long to be one of fedgate's.
    let huge = format!("{}.{}.{sig}", b64(&header), "A".repeat(9000));
    refused(&app, "oversized", &huge, "malformed access token").await;

    // The genuine token is untouched by all of that.
    let (s, _) = app.get("/api/v1/viewer", Some(&token)).await;
    assert_eq!(s, StatusCode::OK);
    app.stop().await;
}
