//! The attack suite: forged, tampered, misdirected and malformed tokens and
//! token requests against `POST /oidc/token` (DESIGN §3). Every attack must be
//! refused with the right HTTP status, the right RFC 6749 §5.2 `error` code
//! and an `error_description` that names the failed check. Each table also
//! carries positive controls from the same setup, so a refusal can never be
//! an artefact of a broken setup.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::{Value, json};

use crate::support::idp::{ENC_KID, KeyId, Mode, TestIdp};
use crate::support::{JWT_BEARER, Options, TOKEN_EXCHANGE, TestApp};

/// The subject the `vision-train` account is bound to.
const SUB: &str = "repo:acme/vision-train:ref:refs/heads/main";
/// Its claim condition: GitHub's immutable repository id.
const REPO_ID: &str = "703518824";
/// Bound to two accounts (`twin-a`, `twin-b`).
const SUB_SHARED: &str = "repo:acme/shared:ref:refs/heads/main";
/// Bound to the disabled account `retired` only.
const SUB_RETIRED: &str = "repo:acme/retired:ref:refs/heads/main";
const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const TOKEN_TYPE_ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const TOKEN_TYPE_REFRESH: &str = "urn:ietf:params:oauth:token-type:refresh_token";
/// The order n of the P-256 group: (r, s) = (n, n) is as invalid as (0, 0).
#[rustfmt::skip]
const P256_ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

// ------------------------------------------------------------------ helpers

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_json(v: &Value) -> String {
    b64(&serde_json::to_vec(v).unwrap())
}

/// Claims the `vision-train` account accepts (`aud` default, its `sub` and
/// `repository_id`), with `over` on top. A `null` member is kept, so that
/// `TestIdp::mint`/`complete_claims` remove that claim (even `exp`, `iat`).
fn claims(over: Value) -> Value {
    let mut base = json!({
        "aud": "default",
        "sub": SUB,
        "repository": "acme/vision-train",
        "repository_id": REPO_ID,
        "ref": "refs/heads/main",
    });
    if let (Some(b), Value::Object(o)) = (base.as_object_mut(), over) {
        b.extend(o);
    }
    base
}

/// The three segments of a compact JWS.
fn segments(token: &str) -> (String, String, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token}");
    (parts[0].into(), parts[1].into(), parts[2].into())
}

/// One request to the token endpoint.
enum Req {
    /// RFC 7523: `grant_type=jwt-bearer&assertion=<token>`.
    Jwt(String),
    /// Any form.
    Form(Vec<(&'static str, String)>),
    /// A raw body with this Content-Type.
    Raw(&'static str, String),
}

fn jwt(token: &str) -> Req {
    Req::Jwt(token.to_owned())
}

fn form(fields: &[(&'static str, &str)]) -> Req {
    Req::Form(fields.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
}

/// RFC 8693 with the JWT token type and extra fields.
fn rfc8693(token: &str, extra: &[(&'static str, &str)]) -> Req {
    let mut f = vec![
        ("grant_type", TOKEN_EXCHANGE.to_owned()),
        ("subject_token", token.to_owned()),
        ("subject_token_type", TOKEN_TYPE_JWT.to_owned()),
    ];
    f.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Req::Form(f)
}

/// jwt-bearer with extra fields (`audience`, `scope`...).
fn jwt_with(token: &str, extra: &[(&'static str, &str)]) -> Req {
    let mut f = vec![
        ("grant_type", JWT_BEARER.to_owned()),
        ("assertion", token.to_owned()),
    ];
    f.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Req::Form(f)
}

struct Answer {
    status: StatusCode,
    body: Value,
    headers: HeaderMap,
}

async fn send(app: &TestApp, req: &Req) -> Answer {
    let url = app.url("/oidc/token");
    let builder = match req {
        Req::Jwt(t) => app
            .client
            .post(url)
            .form(&[("grant_type", JWT_BEARER), ("assertion", t.as_str())]),
        Req::Form(f) => app.client.post(url).form(f),
        Req::Raw(ctype, body) => app
            .client
            .post(url)
            .header("content-type", *ctype)
            .body(body.clone()),
    };
    let resp = builder.send().await.expect("token request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("token response body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        body,
        headers,
    }
}

/// An attack: name, request, expected status, `error` code, and a substring
/// the `error_description` must contain (case-insensitive).
type Attack = (&'static str, Req, StatusCode, &'static str, &'static str);

const BAD: StatusCode = StatusCode::BAD_REQUEST;

/// Every way `answer` differs from the expected refusal, as one line.
fn mismatch(
    name: &str,
    req: &Req,
    a: &Answer,
    status: StatusCode,
    code: &str,
    needle: &str,
) -> Option<String> {
    let desc = a.body["error_description"].as_str().unwrap_or_default();
    let mut wrong = Vec::new();
    if a.status != status {
        wrong.push(format!("status {} (want {status})", a.status));
    }
    if a.body["error"] != code {
        wrong.push(format!("error {} (want {code:?})", a.body["error"]));
    }
    if !desc.to_lowercase().contains(&needle.to_lowercase()) {
        wrong.push(format!("error_description lacks {needle:?}"));
    }
    if a.body.get("access_token").is_some() {
        wrong.push("an access token was minted".to_owned());
    }
    // error_description never echoes the presented token (its signature).
    if let Req::Jwt(t) = req
        && let Some(sig) = t.rsplit('.').next()
        && sig.len() >= 16
        && t.split('.').count() == 3
        && desc.contains(sig)
    {
        wrong.push("error_description echoes the token".to_owned());
    }
    if wrong.is_empty() {
        None
    } else {
        Some(format!(
            "[{name}] {}; got {} {}",
            wrong.join(", "),
            a.status,
            a.body
        ))
    }
}

/// Runs every attack and fails once, listing every mismatching row.
async fn run_attacks(app: &TestApp, attacks: Vec<Attack>) {
    let total = attacks.len();
    let mut failures = Vec::new();
    for (name, req, status, code, needle) in &attacks {
        let a = send(app, req).await;
        if let Some(m) = mismatch(name, req, &a, *status, code, needle) {
            failures.push(m);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} attacks were not refused as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs every positive control; returns the access tokens by name.
async fn run_controls(app: &TestApp, controls: Vec<(&'static str, Req)>) -> Vec<(String, Value)> {
    let mut failures = Vec::new();
    let mut out = Vec::new();
    for (name, req) in &controls {
        let a = send(app, req).await;
        if a.status == StatusCode::OK && a.body["access_token"].is_string() {
            out.push(((*name).to_owned(), a.body));
        } else {
            failures.push(format!(
                "[{name}] want 200 + access_token, got {} {}",
                a.status, a.body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "positive controls failed (the setup, not the attacks, is broken):\n{}",
        failures.join("\n")
    );
    out
}

fn body_of<'a>(answers: &'a [(String, Value)], name: &str) -> &'a Value {
    &answers
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no answer {name}"))
        .1
}

/// `GET /api/v1/viewer` with an access token.
async fn viewer(app: &TestApp, access_token: &str) -> Value {
    let (s, b) = app.get("/api/v1/viewer", Some(access_token)).await;
    assert_eq!(s, StatusCode::OK, "viewer: {b}");
    b
}

async fn assert_healthy(app: &TestApp) {
    let resp = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(resp.status(), StatusCode::OK, "healthz after the attacks");
}

async fn disable(app: &TestApp, sa_id: &str) {
    let (s, b) = app
        .post(
            &format!("/api/v1/service-accounts/{sa_id}/disable"),
            Some(&app.admin_key),
            json!({}),
        )
        .await;
    assert!(s.is_success(), "disable {sa_id}: {s} {b}");
}

// ------------------------------------------------------------------ the table

/// One org, one team `vision`, and:
/// - `idp` (max token age 600 s; also publishes the 1024-bit key and a
///   `use: enc` key, which fedgate must both drop): accounts `vision-train`
///   (SUB + repository_id), `twin-a`/`twin-b` (SUB_SHARED), `retired`
///   (SUB_RETIRED, disabled);
/// - `strict` (RS256 only, leeway 0, single-use jti): account `strict-ci` (SUB);
/// - `attacker`: a real IdP fedgate never registered, with the SAME key
///   material as `idp` (every TestIdp shares the fixture keys) and rsa-b
///   published: it must never be contacted.
#[tokio::test]
async fn forged_and_misdirected_tokens_are_refused() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    idp.publish_weak_key();
    let strict = TestIdp::start().await;
    let attacker = TestIdp::start().await;
    attacker.publish(KeyId::RsaB);
    app.team("vision").await;
    let issuer_id = app
        .trust_with(json!({"issuer": idp.issuer(), "max_token_age_s": 600}))
        .await;
    let strict_id = app
        .trust_with(json!({
            "issuer": strict.issuer(),
            "allowed_algs": ["RS256"],
            "leeway_s": 0,
            "single_use_jti": true,
        }))
        .await;
    app.external_sa(
        "vision",
        "vision-train",
        json!({"issuer": issuer_id, "subject": SUB, "claims": {"repository_id": REPO_ID}}),
    )
    .await;
    for twin in ["twin-a", "twin-b"] {
        app.external_sa(
            "vision",
            twin,
            json!({"issuer": issuer_id, "subject": SUB_SHARED}),
        )
        .await;
    }
    let retired = app
        .external_sa(
            "vision",
            "retired",
            json!({"issuer": issuer_id, "subject": SUB_RETIRED}),
        )
        .await;
    disable(&app, &retired).await;
    app.external_sa(
        "vision",
        "strict-ci",
        json!({"issuer": strict_id, "subject": SUB}),
    )
    .await;

    // The setup works: a valid token exchanges, and the strict issuer's
    // single-use token is consumed once.
    let minted = app.exchange_ok(&idp.mint(claims(json!({})))).await;
    let consumed = strict.mint(claims(json!({"jti": "strict-jti-1"})));
    app.exchange_ok(&consumed).await;

    let t = now();
    let iss = idp.issuer();
    let valid = idp.mint(claims(json!({})));
    let (h, p, s) = segments(&valid);
    let (_, _, s_other) = segments(&idp.mint(claims(json!({"sub": SUB_SHARED}))));
    let payload = |over: Value| b64_json(&idp.complete_claims(claims(over)));
    let none_header = b64_json(&json!({"alg": "none", "typ": "JWT"}));
    let es_header = b64_json(&json!({"alg": "ES256", "typ": "JWT", "kid": "ec-a"}));
    let rs_header = |extra: Value| {
        let mut h = json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-a"});
        if let (Some(o), Value::Object(e)) = (h.as_object_mut(), extra) {
            o.extend(e);
        }
        h
    };
    let sign_header = |header: Value| {
        idp.sign_raw(
            KeyId::RsaA,
            &header,
            &serde_json::to_vec(&idp.complete_claims(claims(json!({})))).unwrap(),
        )
    };
    let raw_payload = |bytes: &[u8]| {
        idp.sign_bytes(
            KeyId::RsaA,
            "RS256",
            br#"{"alg":"RS256","typ":"JWT","kid":"rsa-a"}"#,
            bytes,
        )
    };
    let mut r_s_n = P256_ORDER.to_vec();
    r_s_n.extend_from_slice(&P256_ORDER);
    let dup_sub = format!(
        r#"{{"iss":"{iss}","aud":"default","sub":"repo:evil/x:ref:refs/heads/main","repository_id":"{REPO_ID}","iat":{t},"exp":{},"jti":"dup-1","sub":"{SUB}"}}"#,
        t + 300
    );
    let jwe = format!(
        "{}.{}.{}.{}.{}",
        b64_json(&json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "rsa-a"})),
        b64(&[7u8; 256]),
        b64(&[1u8; 12]),
        b64(b"ciphertext"),
        b64(&[2u8; 16])
    );
    let big = idp.mint(claims(json!({"pad": "A".repeat(17 * 1024)})));
    assert!(big.len() > 16 * 1024);
    let aud_twin_a = "sa:default/vision/twin-a";
    let v = valid.as_str();

    let attacks: Vec<Attack> = vec![
        // --- unsecured and symmetric algorithms (RFC 8725 §3.1, §2.1)
        (
            "alg none, empty signature",
            jwt(&idp.mint_with(
                KeyId::RsaA,
                json!({"alg": "none", "kid": null}),
                claims(json!({})),
            )),
            BAD,
            "invalid_grant",
            "none",
        ),
        (
            "alg NONE (case), kid rsa-a",
            jwt(&idp.mint_with(KeyId::RsaA, json!({"alg": "NONE"}), claims(json!({})))),
            BAD,
            "invalid_grant",
            "none",
        ),
        (
            "alg none, rsa-a's real signature kept",
            jwt(&format!("{none_header}.{p}.{s}")),
            BAD,
            "invalid_grant",
            "none",
        ),
        (
            "alg none, no signature segment at all (2 parts)",
            jwt(&format!("{none_header}.{p}")),
            BAD,
            "invalid_request",
            "compact JWS",
        ),
        (
            "HS256 keyed with the RSA public PEM, kid rsa-a",
            jwt(&idp.mint_with(KeyId::RsaA, json!({"alg": "HS256"}), claims(json!({})))),
            BAD,
            "invalid_grant",
            "symmetric",
        ),
        (
            "HS256 keyed with the RSA public PEM, no kid",
            jwt(&idp.mint_with(
                KeyId::RsaA,
                json!({"alg": "HS256", "kid": null}),
                claims(json!({})),
            )),
            BAD,
            "invalid_grant",
            "symmetric",
        ),
        (
            "HS512 keyed with the EC public PEM, kid ec-a",
            jwt(&idp.mint_with(KeyId::EcA, json!({"alg": "HS512"}), claims(json!({})))),
            BAD,
            "invalid_grant",
            "symmetric",
        ),
        (
            "alg rs256 (lower case) is not an algorithm",
            jwt(&idp.mint_with(KeyId::RsaA, json!({"alg": "rs256"}), claims(json!({})))),
            BAD,
            "invalid_grant",
            "not supported",
        ),
        (
            "header without alg",
            jwt(&sign_header(json!({"typ": "JWT", "kid": "rsa-a"}))),
            BAD,
            "invalid_request",
            "\"alg\"",
        ),
        // --- keys: only the registered issuer's JWKS, by kid (RFC 8725 §3.10)
        (
            "unknown kid (unpublished rsa-b)",
            jwt(&idp.mint_with(KeyId::RsaB, json!({}), claims(json!({})))),
            BAD,
            "invalid_grant",
            "no key",
        ),
        (
            "no kid, signed by unpublished rsa-b",
            jwt(&idp.mint_with(KeyId::RsaB, json!({"kid": null}), claims(json!({})))),
            BAD,
            "invalid_grant",
            "signature",
        ),
        (
            "jku pointing at the attacker's JWKS",
            jwt(&idp.mint_with(
                KeyId::RsaB,
                json!({"jku": attacker.jwks_uri()}),
                claims(json!({})),
            )),
            BAD,
            "invalid_grant",
            "\"jku\"",
        ),
        (
            "jku on an otherwise valid rsa-a token",
            jwt(&idp.mint_with(
                KeyId::RsaA,
                json!({"jku": attacker.jwks_uri()}),
                claims(json!({})),
            )),
            BAD,
            "invalid_grant",
            "\"jku\"",
        ),
        (
            "x5u pointing at the attacker",
            jwt(&idp.mint_with(
                KeyId::RsaB,
                json!({"x5u": format!("{}/cert.pem", attacker.issuer())}),
                claims(json!({})),
            )),
            BAD,
            "invalid_grant",
            "\"x5u\"",
        ),
        (
            "jwk embedding the attacker's public key",
            jwt(&idp.mint_with(
                KeyId::RsaB,
                json!({"jwk": KeyId::RsaB.public_jwk(), "kid": null}),
                claims(json!({})),
            )),
            BAD,
            "invalid_grant",
            "\"jwk\"",
        ),
        (
            "RSA use:enc key (kid rsa-enc)",
            jwt(&idp.mint_with(KeyId::RsaB, json!({"kid": ENC_KID}), claims(json!({})))),
            BAD,
            "invalid_grant",
            "no key",
        ),
        (
            "1024-bit RSA key (kid rsa-weak)",
            jwt(&idp.mint_with(KeyId::RsaWeak, json!({}), claims(json!({})))),
            BAD,
            "invalid_grant",
            "no key",
        ),
        (
            "ES256 header naming the RSA key rsa-a",
            jwt(&idp.mint_with(KeyId::EcA, json!({"kid": "rsa-a"}), claims(json!({})))),
            BAD,
            "invalid_grant",
            "cannot verify",
        ),
        (
            "RS256 header naming the EC key ec-a",
            jwt(&idp.mint_with(KeyId::RsaA, json!({"kid": "ec-a"}), claims(json!({})))),
            BAD,
            "invalid_grant",
            "cannot verify",
        ),
        // --- signatures
        (
            "signature stripped (header.payload.)",
            jwt(&format!("{h}.{p}.")),
            BAD,
            "invalid_grant",
            "no signature",
        ),
        (
            "signature of rsa-b under kid rsa-a",
            jwt(&idp.mint_with(KeyId::RsaB, json!({"kid": "rsa-a"}), claims(json!({})))),
            BAD,
            "invalid_grant",
            "signature",
        ),
        (
            "tampered payload (sub swapped)",
            jwt(&format!("{h}.{}.{s}", payload(json!({"sub": SUB_SHARED})))),
            BAD,
            "invalid_grant",
            "signature",
        ),
        (
            "signature transplanted from another valid token",
            jwt(&format!("{h}.{p}.{s_other}")),
            BAD,
            "invalid_grant",
            "signature",
        ),
        (
            "ECDSA r = s = 0 (psychic signature)",
            jwt(&format!("{es_header}.{p}.{}", b64(&[0u8; 64]))),
            BAD,
            "invalid_grant",
            "signature",
        ),
        (
            "ECDSA r = s = n (group order)",
            jwt(&format!("{es_header}.{p}.{}", b64(&r_s_n))),
            BAD,
            "invalid_grant",
            "signature",
        ),
        // --- malformed tokens (invalid_request)
        ("JWE (5 parts)", jwt(&jwe), BAD, "invalid_request", "JWE"),
        (
            "oversized token (> 16 KiB)",
            jwt(&big),
            BAD,
            "invalid_request",
            "bytes",
        ),
        (
            "empty assertion",
            jwt(""),
            BAD,
            "invalid_request",
            "compact JWS",
        ),
        (
            "non-JSON header",
            jwt(&idp.sign_bytes(
                KeyId::RsaA,
                "RS256",
                b"not json",
                &serde_json::to_vec(&idp.complete_claims(claims(json!({})))).unwrap(),
            )),
            BAD,
            "invalid_request",
            "not a JSON object",
        ),
        (
            "payload is a JSON array",
            jwt(&raw_payload(br#"["iss","sub"]"#)),
            BAD,
            "invalid_request",
            "not a JSON object",
        ),
        (
            "non-UTF-8 payload",
            jwt(&raw_payload(b"{\"sub\":\"\xff\xfe\"}")),
            BAD,
            "invalid_request",
            "UTF-8",
        ),
        (
            "padded base64 header",
            jwt(&format!("{h}==.{p}.{s}")),
            BAD,
            "invalid_request",
            "base64url",
        ),
        (
            "duplicate claim names (sub twice)",
            jwt(&raw_payload(dup_sub.as_bytes())),
            BAD,
            "invalid_request",
            "duplicate",
        ),
        (
            "duplicate header names (alg twice)",
            jwt(&idp.sign_bytes(
                KeyId::RsaA,
                "RS256",
                br#"{"alg":"HS256","kid":"rsa-a","alg":"RS256"}"#,
                &serde_json::to_vec(&idp.complete_claims(claims(json!({})))).unwrap(),
            )),
            BAD,
            "invalid_request",
            "duplicate",
        ),
        (
            "kid is not a string",
            jwt(&sign_header(rs_header(json!({"kid": 42})))),
            BAD,
            "invalid_request",
            "kid",
        ),
        // --- header extensions
        (
            "unknown crit extension",
            jwt(&sign_header(rs_header(
                json!({"crit": ["x-evil"], "x-evil": true}),
            ))),
            BAD,
            "invalid_grant",
            "crit",
        ),
        (
            "crit naming a registered claim",
            jwt(&sign_header(rs_header(
                json!({"crit": ["exp"], "exp": t + 300}),
            ))),
            BAD,
            "invalid_grant",
            "crit",
        ),
        (
            "b64:false (RFC 7797 unencoded payload)",
            jwt(&sign_header(rs_header(json!({"b64": false})))),
            BAD,
            "invalid_grant",
            "b64",
        ),
        // --- time
        (
            "expired beyond the 60 s leeway",
            jwt(&idp.mint(claims(json!({"iat": t - 400, "exp": t - 120})))),
            BAD,
            "invalid_grant",
            "expired",
        ),
        (
            "nbf in the future",
            jwt(&idp.mint(claims(json!({"nbf": t + 120})))),
            BAD,
            "invalid_grant",
            "not valid before",
        ),
        (
            "iat in the future",
            jwt(&idp.mint(claims(json!({"iat": t + 120, "exp": t + 400})))),
            BAD,
            "invalid_grant",
            "future",
        ),
        (
            "no exp",
            jwt(&idp.mint(claims(json!({"exp": null})))),
            BAD,
            "invalid_grant",
            "\"exp\"",
        ),
        (
            "exp as a string",
            jwt(&idp.mint(claims(json!({"exp": (t + 300).to_string()})))),
            BAD,
            "invalid_grant",
            "NumericDate",
        ),
        (
            "nbf as a boolean",
            jwt(&idp.mint(claims(json!({"nbf": true})))),
            BAD,
            "invalid_grant",
            "NumericDate",
        ),
        (
            "lifetime 3600 s over the issuer's 600 s",
            jwt(&idp.mint(claims(json!({"iat": t, "exp": t + 3600})))),
            BAD,
            "invalid_grant",
            "at most 600",
        ),
        (
            "lifetime over max with iat dropped",
            jwt(&idp.mint(claims(json!({"iat": null, "exp": t + 3600})))),
            BAD,
            "invalid_grant",
            "at most 600",
        ),
        // --- audience
        (
            "wrong aud (string)",
            jwt(&idp.mint(claims(json!({"aud": "other"})))),
            BAD,
            "invalid_grant",
            "not accepted",
        ),
        (
            "wrong aud (array)",
            jwt(&idp.mint(claims(json!({"aud": ["other", "https://fedgate.example"]})))),
            BAD,
            "invalid_grant",
            "not accepted",
        ),
        (
            "aud differing by case",
            jwt(&idp.mint(claims(json!({"aud": "Default"})))),
            BAD,
            "invalid_grant",
            "not accepted",
        ),
        (
            "missing aud",
            jwt(&idp.mint(claims(json!({"aud": null})))),
            BAD,
            "invalid_grant",
            "\"aud\"",
        ),
        (
            "aud as an empty array",
            jwt(&idp.mint(claims(json!({"aud": []})))),
            BAD,
            "invalid_grant",
            "\"aud\"",
        ),
        // --- issuer: exact string match, never contact an unknown one
        (
            "iss with a trailing slash",
            jwt(&idp.mint(claims(json!({"iss": format!("{iss}/")})))),
            BAD,
            "invalid_grant",
            "not a trusted issuer",
        ),
        (
            "iss differing by case",
            jwt(&idp.mint(claims(
                json!({"iss": iss.replacen("http://", "HTTP://", 1)}),
            ))),
            BAD,
            "invalid_grant",
            "not a trusted issuer",
        ),
        (
            "iss host alias (localhost)",
            jwt(&idp.mint(claims(
                json!({"iss": iss.replacen("127.0.0.1", "localhost", 1)}),
            ))),
            BAD,
            "invalid_grant",
            "not a trusted issuer",
        ),
        (
            "iss of an unregistered IdP with the same keys",
            jwt(&attacker.mint(claims(json!({})))),
            BAD,
            "invalid_grant",
            "not a trusted issuer",
        ),
        (
            "no iss",
            jwt(&idp.mint(claims(json!({"iss": null})))),
            BAD,
            "invalid_grant",
            "\"iss\"",
        ),
        (
            "iss as an array",
            jwt(&idp.mint(claims(json!({"iss": [iss]})))),
            BAD,
            "invalid_grant",
            "\"iss\"",
        ),
        (
            "fedgate's own access token presented back",
            jwt(&minted),
            BAD,
            "invalid_grant",
            "not a trusted issuer",
        ),
        // --- subject and binding
        (
            "no sub",
            jwt(&idp.mint(claims(json!({"sub": null})))),
            BAD,
            "invalid_grant",
            "\"sub\"",
        ),
        (
            "sub not a string",
            jwt(&idp.mint(claims(json!({"sub": 703_518_824})))),
            BAD,
            "invalid_grant",
            "\"sub\"",
        ),
        (
            "sub empty",
            jwt(&idp.mint(claims(json!({"sub": ""})))),
            BAD,
            "invalid_grant",
            "\"sub\"",
        ),
        (
            "sub differing by case",
            jwt(&idp.mint(claims(json!({"sub": SUB.replace("main", "Main")})))),
            BAD,
            "invalid_grant",
            "no service account",
        ),
        (
            "sub with a trailing space",
            jwt(&idp.mint(claims(json!({"sub": format!("{SUB} ")})))),
            BAD,
            "invalid_grant",
            "no service account",
        ),
        (
            "renamed-repo: same sub, other repository_id",
            jwt(&idp.mint(claims(json!({"repository_id": "999999999"})))),
            BAD,
            "invalid_grant",
            "repository_id",
        ),
        (
            "claim condition: repository_id missing",
            jwt(&idp.mint(claims(json!({"repository_id": null})))),
            BAD,
            "invalid_grant",
            "repository_id",
        ),
        (
            "subject of a disabled account",
            jwt(&idp.mint(claims(json!({"sub": SUB_RETIRED})))),
            BAD,
            "invalid_grant",
            "disabled",
        ),
        (
            "disabled account named by audience",
            jwt_with(
                &idp.mint(claims(json!({"sub": SUB_RETIRED}))),
                &[("audience", "sa:default/vision/retired")],
            ),
            BAD,
            "invalid_grant",
            "disabled",
        ),
        (
            "two accounts match, no audience",
            jwt(&idp.mint(claims(json!({"sub": SUB_SHARED})))),
            BAD,
            "invalid_target",
            "2 service accounts",
        ),
        (
            "audience names an account not bound to the token",
            jwt_with(&valid, &[("audience", aud_twin_a)]),
            BAD,
            "invalid_target",
            "does not name",
        ),
        (
            "audience names no account at all",
            jwt_with(&valid, &[("audience", "sa:default/vision/nobody")]),
            BAD,
            "invalid_target",
            "does not name",
        ),
        (
            "audience and resource name different accounts",
            jwt_with(
                &idp.mint(claims(json!({"sub": SUB_SHARED}))),
                &[
                    ("audience", aud_twin_a),
                    ("resource", "sa:default/vision/twin-b"),
                ],
            ),
            BAD,
            "invalid_target",
            "different",
        ),
        // --- issuer policies (strict: RS256 only, leeway 0, single-use jti)
        (
            "alg outside the issuer's allow-list (ES256)",
            jwt(&strict.mint_with(KeyId::EcA, json!({}), claims(json!({})))),
            BAD,
            "invalid_grant",
            "not allowed",
        ),
        (
            "expired 5 s ago with leeway 0",
            jwt(&strict.mint(claims(json!({"iat": t - 100, "exp": t - 5})))),
            BAD,
            "invalid_grant",
            "expired",
        ),
        (
            "replay of a single-use jti",
            jwt(&consumed),
            BAD,
            "invalid_grant",
            "already",
        ),
        (
            "replay of a single-use jti via RFC 8693",
            rfc8693(&consumed, &[]),
            BAD,
            "invalid_grant",
            "already",
        ),
        (
            "fresh token reusing a consumed jti",
            jwt(&strict.mint(claims(json!({"jti": "strict-jti-1"})))),
            BAD,
            "invalid_grant",
            "already",
        ),
        (
            "no jti on a single-use issuer",
            jwt(&strict.mint(claims(json!({"jti": null})))),
            BAD,
            "invalid_grant",
            "jti",
        ),
        // --- the request itself
        (
            "unknown grant_type",
            form(&[("grant_type", "password"), ("assertion", v)]),
            BAD,
            "unsupported_grant_type",
            "grant_type",
        ),
        (
            "client_credentials with a jwt-bearer assertion instead of a client assertion",
            form(&[("grant_type", "client_credentials"), ("assertion", v)]),
            BAD,
            "invalid_request",
            "client_assertion_type",
        ),
        (
            "SAML bearer grant_type",
            form(&[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:saml2-bearer",
                ),
                ("assertion", v),
            ]),
            BAD,
            "unsupported_grant_type",
            "grant_type",
        ),
        (
            "missing grant_type",
            form(&[("assertion", v)]),
            BAD,
            "invalid_request",
            "grant_type",
        ),
        (
            "missing assertion",
            form(&[("grant_type", JWT_BEARER)]),
            BAD,
            "invalid_request",
            "assertion",
        ),
        (
            "repeated assertion",
            form(&[
                ("grant_type", JWT_BEARER),
                ("assertion", v),
                ("assertion", v),
            ]),
            BAD,
            "invalid_request",
            "repeated",
        ),
        (
            "repeated grant_type",
            form(&[
                ("grant_type", JWT_BEARER),
                ("grant_type", "client_credentials"),
                ("assertion", v),
            ]),
            BAD,
            "invalid_request",
            "repeated",
        ),
        (
            "JSON body instead of a form",
            Req::Raw(
                "application/json",
                json!({"grant_type": JWT_BEARER, "assertion": valid}).to_string(),
            ),
            BAD,
            "invalid_request",
            "x-www-form-urlencoded",
        ),
        (
            "form body sent as text/plain",
            Req::Raw(
                "text/plain",
                format!("grant_type={JWT_BEARER}&assertion={valid}"),
            ),
            BAD,
            "invalid_request",
            "x-www-form-urlencoded",
        ),
        (
            "RFC 8693: subject_token_type access_token",
            rfc8693(&valid, &[]).retype(TOKEN_TYPE_ACCESS),
            BAD,
            "invalid_request",
            "subject_token_type",
        ),
        (
            "RFC 8693: no subject_token_type",
            form(&[("grant_type", TOKEN_EXCHANGE), ("subject_token", v)]),
            BAD,
            "invalid_request",
            "subject_token_type",
        ),
        (
            "RFC 8693: no subject_token (assertion instead)",
            form(&[
                ("grant_type", TOKEN_EXCHANGE),
                ("assertion", v),
                ("subject_token_type", TOKEN_TYPE_JWT),
            ]),
            BAD,
            "invalid_request",
            "subject_token",
        ),
        (
            "RFC 8693: requested_token_type refresh_token",
            rfc8693(&valid, &[("requested_token_type", TOKEN_TYPE_REFRESH)]),
            BAD,
            "invalid_request",
            "requested_token_type",
        ),
        (
            "RFC 8693: actor_token (delegation)",
            rfc8693(
                &valid,
                &[("actor_token", v), ("actor_token_type", TOKEN_TYPE_JWT)],
            ),
            BAD,
            "invalid_request",
            "actor_token",
        ),
        (
            "RFC 8693: alg none subject_token",
            rfc8693(&format!("{none_header}.{p}."), &[]),
            BAD,
            "invalid_grant",
            "none",
        ),
        (
            "scope=admin",
            jwt_with(&valid, &[("scope", "admin")]),
            BAD,
            "invalid_scope",
            "scope",
        ),
        (
            "scope=read admin",
            jwt_with(&valid, &[("scope", "read admin")]),
            BAD,
            "invalid_scope",
            "scope",
        ),
        (
            "empty scope",
            jwt_with(&valid, &[("scope", "")]),
            BAD,
            "invalid_scope",
            "scope",
        ),
    ];
    assert!(attacks.len() >= 30);
    run_attacks(&app, attacks).await;

    // fedgate never contacted the unregistered IdP, whatever the token said
    // (its iss, jku, x5u).
    assert_eq!(
        attacker.discovery_hits(),
        0,
        "the unregistered IdP's discovery was fetched"
    );
    assert_eq!(
        attacker.jwks_hits(),
        0,
        "the unregistered IdP's JWKS was fetched"
    );

    // Positive controls, after every attack, from the same setup.
    let t = now();
    let shared = idp.mint(claims(json!({"sub": SUB_SHARED})));
    let answers = run_controls(
        &app,
        vec![
            ("valid", jwt(&idp.mint(claims(json!({}))))),
            ("the very token the attacks were cut from", jwt(&valid)),
            (
                "whitespace around the assertion",
                jwt(&format!("  \n{}\t ", idp.mint(claims(json!({}))))),
            ),
            (
                "expired 30 s ago, within the 60 s leeway",
                jwt(&idp.mint(claims(json!({"iat": t - 300, "exp": t - 30})))),
            ),
            (
                "nbf 30 s ahead, within leeway",
                jwt(&idp.mint(claims(json!({"nbf": t + 30})))),
            ),
            (
                "iat 30 s ahead, within leeway",
                jwt(&idp.mint(claims(json!({"iat": t + 30, "exp": t + 330})))),
            ),
            (
                "lifetime exactly 600 s",
                jwt(&idp.mint(claims(json!({"iat": t, "exp": t + 600})))),
            ),
            (
                "aud array containing the org",
                jwt(&idp.mint(claims(json!({"aud": ["other", "default"]})))),
            ),
            (
                "ES256 by ec-a",
                jwt(&idp.mint_with(KeyId::EcA, json!({}), claims(json!({})))),
            ),
            ("RFC 8693", rfc8693(&idp.mint(claims(json!({}))), &[])),
            (
                "scope=read",
                jwt_with(&idp.mint(claims(json!({}))), &[("scope", "read")]),
            ),
            (
                "twins: audience twin-a",
                jwt_with(&shared, &[("audience", aud_twin_a)]),
            ),
            (
                "twins: resource twin-b",
                jwt_with(&shared, &[("resource", "sa:default/vision/twin-b")]),
            ),
            (
                "strict: a fresh single-use token",
                jwt(&strict.mint(claims(json!({})))),
            ),
        ],
    )
    .await;
    assert_eq!(body_of(&answers, "scope=read")["scope"], "read");
    assert_eq!(
        body_of(&answers, "RFC 8693")["issued_token_type"],
        TOKEN_TYPE_ACCESS
    );
    for (control, name) in [
        ("valid", "vision-train"),
        ("twins: audience twin-a", "twin-a"),
        ("twins: resource twin-b", "twin-b"),
        ("strict: a fresh single-use token", "strict-ci"),
    ] {
        let token = body_of(&answers, control)["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let v = viewer(&app, &token).await;
        assert_eq!(v["name"], name, "{control}: {v}");
        assert_eq!(v["org"], "default", "{control}: {v}");
    }
    assert_healthy(&app).await;
}

impl Req {
    /// The same RFC 8693 form with another `subject_token_type`.
    fn retype(self, token_type: &str) -> Req {
        match self {
            Req::Form(mut f) => {
                for (k, v) in &mut f {
                    if *k == "subject_token_type" {
                        *v = token_type.to_owned();
                    }
                }
                Req::Form(f)
            }
            other => other,
        }
    }
}

// ------------------------------------------------------------------ tenants

/// The same IdP trusted by two orgs, and an IdP trusted by `acme` only: a
/// token reaches exactly the org its audience names, and never an account of
/// another org.
#[tokio::test]
async fn tokens_never_cross_organizations() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    let acme_only = TestIdp::start().await;
    app.team("vision").await;
    let issuer_id = app.trust(&idp).await;
    app.external_sa(
        "vision",
        "vision-train",
        json!({"issuer": issuer_id, "subject": SUB, "claims": {"repository_id": REPO_ID}}),
    )
    .await;

    let acme_key =
        fedgate::service::admin::bootstrap(&app.state, "acme", "acme-admin", "root@acme.io")
            .await
            .unwrap()
            .api_key;
    let (s, b) = app
        .post(
            "/api/v1/orgs/acme/teams",
            Some(&acme_key),
            json!({"name": "acme-ml"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "acme team: {b}");
    for issuer in [idp.issuer(), acme_only.issuer()] {
        let (s, b) = app
            .post(
                "/api/v1/orgs/acme/issuers",
                Some(&acme_key),
                json!({"issuer": issuer, "audiences": ["acme"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "acme issuer {issuer}: {b}");
    }
    let (s, b) = app.get("/api/v1/orgs/acme/issuers", Some(&acme_key)).await;
    assert_eq!(s, StatusCode::OK, "acme issuers: {b}");
    let list = b
        .as_array()
        .cloned()
        .or_else(|| b["issuers"].as_array().cloned())
        .unwrap_or_default();
    let acme_only_id = list
        .iter()
        .find(|i| i["issuer"] == acme_only.issuer())
        .and_then(|i| i["id"].as_str())
        .unwrap_or_else(|| panic!("acme-only issuer in {b}"))
        .to_owned();
    let (s, b) = app
        .post(
            "/api/v1/teams/acme-ml/service-accounts",
            Some(&acme_key),
            json!({"name": "acme-ci", "auth": "external", "issuer": acme_only_id, "subject": SUB}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "acme account: {b}");

    let to_default = "sa:default/vision/vision-train";
    let attacks: Vec<Attack> = vec![
        (
            "shared IdP, aud acme: default's account unreachable, acme binds nothing",
            jwt(&idp.mint(claims(json!({"aud": "acme"})))),
            BAD,
            "invalid_grant",
            "no service account",
        ),
        (
            "shared IdP, aud acme, audience naming default's account",
            jwt_with(
                &idp.mint(claims(json!({"aud": "acme"}))),
                &[("audience", to_default)],
            ),
            BAD,
            "invalid_grant",
            "not accepted",
        ),
        (
            "shared IdP, aud default, audience naming acme's account",
            jwt_with(
                &idp.mint(claims(json!({}))),
                &[("audience", "sa:acme/acme-ml/acme-ci")],
            ),
            BAD,
            "invalid_grant",
            "not accepted",
        ),
        (
            "acme-only IdP, aud default",
            jwt(&acme_only.mint(claims(json!({})))),
            BAD,
            "invalid_grant",
            "not accepted",
        ),
        (
            "acme-only IdP, aud default, audience naming default's account",
            jwt_with(
                &acme_only.mint(claims(json!({}))),
                &[("audience", to_default)],
            ),
            BAD,
            "invalid_grant",
            "not a trusted issuer",
        ),
        (
            "acme-only IdP, aud acme, audience naming default's account",
            jwt_with(
                &acme_only.mint(claims(json!({"aud": "acme"}))),
                &[("audience", to_default)],
            ),
            BAD,
            "invalid_grant",
            "not a trusted issuer",
        ),
        (
            "acme-only IdP, aud [acme, default], audience naming default's account",
            jwt_with(
                &acme_only.mint(claims(json!({"aud": ["acme", "default"]}))),
                &[("audience", to_default)],
            ),
            BAD,
            "invalid_grant",
            "not a trusted issuer",
        ),
    ];
    run_attacks(&app, attacks).await;

    let answers = run_controls(
        &app,
        vec![
            ("default", jwt(&idp.mint(claims(json!({}))))),
            ("acme", jwt(&acme_only.mint(claims(json!({"aud": "acme"}))))),
        ],
    )
    .await;
    for (control, org, name) in [
        ("default", "default", "vision-train"),
        ("acme", "acme", "acme-ci"),
    ] {
        let token = body_of(&answers, control)["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let v = viewer(&app, &token).await;
        assert_eq!(
            (v["org"].as_str(), v["name"].as_str()),
            (Some(org), Some(name)),
            "{control}: {v}"
        );
    }
    assert_healthy(&app).await;
}

// ------------------------------------------------------------------ IdP outage

/// The IdP goes down: the last good keys keep serving, an unknown kid is a
/// plain refusal (not a 500), and a fedgate that never had the keys answers
/// 503 `temporarily_unavailable` with `Retry-After`.
#[tokio::test]
async fn idp_outage_serves_cached_keys_and_never_500s() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    app.team("vision").await;
    let issuer_id = app.trust(&idp).await;
    app.external_sa(
        "vision",
        "vision-train",
        json!({"issuer": issuer_id, "subject": SUB, "claims": {"repository_id": REPO_ID}}),
    )
    .await;
    app.exchange_ok(&idp.mint(claims(json!({})))).await;

    idp.set_mode(Mode::Down);
    // An admin refresh while the IdP is down reports the failure but must
    // not drop the cached keys.
    let (s, b) = app
        .post(
            &format!("/api/v1/orgs/default/issuers/{issuer_id}/refresh"),
            Some(&app.admin_key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "refresh while down: {b}");
    assert_eq!(
        b["refresh_error"],
        format!(
            "the issuer's signing keys are unavailable: {}/.well-known/openid-configuration answered HTTP 503",
            idp.issuer()
        ),
        "{b}"
    );
    assert!(
        b["keys"]["kids"]
            .as_array()
            .is_some_and(|k| k.contains(&json!("rsa-a"))),
        "the cached keys are kept: {b}"
    );
    app.exchange_ok(&idp.mint(claims(json!({})))).await;
    run_attacks(
        &app,
        vec![
            (
                "IdP down: unknown kid",
                jwt(&idp.mint_with(KeyId::RsaB, json!({}), claims(json!({})))),
                BAD,
                "invalid_grant",
                "no key",
            ),
            (
                "IdP down: forged signature under a cached kid",
                jwt(&idp.mint_with(KeyId::RsaB, json!({"kid": "rsa-a"}), claims(json!({})))),
                BAD,
                "invalid_grant",
                "signature",
            ),
        ],
    )
    .await;
    idp.set_mode(Mode::Garbage);
    app.exchange_ok(&idp.mint(claims(json!({})))).await;

    // A second fedgate on the same store never fetched the keys: with the
    // IdP down (then serving garbage) it cannot verify anything.
    for mode in [Mode::Down, Mode::Garbage] {
        idp.set_mode(mode.clone());
        let cold = TestApp::start_with(Options {
            database_url: Some(app.database_url.clone()),
            ..Options::default()
        })
        .await;
        let req = jwt(&idp.mint(claims(json!({}))));
        let a = send(&cold, &req).await;
        let name = format!("cold cache, IdP {mode:?}");
        if let Some(m) = mismatch(
            &name,
            &req,
            &a,
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "unavailable",
        ) {
            panic!("{m}");
        }
        assert!(
            a.headers.contains_key(RETRY_AFTER),
            "{name}: no Retry-After: {:?}",
            a.headers
        );
        // A forgery is still refused first for what it is, never minted.
        let forged = jwt(&idp.mint_with(KeyId::RsaA, json!({"alg": "none"}), claims(json!({}))));
        let a = send(&cold, &forged).await;
        if let Some(m) = mismatch(&name, &forged, &a, BAD, "invalid_grant", "none") {
            panic!("{m}");
        }
        assert_healthy(&cold).await;
        drop(cold);
    }
    idp.set_mode(Mode::Normal);
    app.exchange_ok(&idp.mint(claims(json!({})))).await;
    assert_healthy(&app).await;
}
