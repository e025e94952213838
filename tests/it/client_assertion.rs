//! RFC 7523 §2.2 client authentication at `/oidc/token`: the form MSAL and
//! azure-identity send for a federated credential. The assertion is checked
//! and bound exactly as a jwt-bearer assertion; `client_id` names the
//! account as `audience` does.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::seed_rules::world;
use crate::support::idp::TestIdp;
use crate::support::{JWT_BEARER, TestApp};

const CLIENT_ASSERTION_JWT: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const SUBJECT: &str = "repo:acme/trainer:ref:refs/heads/main";

/// The seed world, the test IdP trusted, and external account `ci-bot` of
/// team vision bound to [`SUBJECT`]; returns its id.
async fn federated() -> (TestApp, TestIdp, String) {
    let app = world().await;
    let idp = TestIdp::start().await;
    let issuer = app.trust(&idp).await;
    let id = app
        .external_sa(
            "vision",
            "ci-bot",
            json!({"issuer": issuer, "subject": SUBJECT}),
        )
        .await;
    (app, idp, id)
}

fn assertion(idp: &TestIdp) -> String {
    idp.mint(json!({"sub": SUBJECT, "aud": "default"}))
}

/// `application/x-www-form-urlencoded` as Python's `urllib.parse.urlencode`
/// (what `requests` uses for a dict body) writes it: `quote_plus`.
fn urlencode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc = |s: &str| {
                s.bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                            char::from(b).to_string()
                        }
                        b' ' => "+".to_string(),
                        _ => format!("%{b:02X}"),
                    })
                    .collect::<String>()
            };
            format!("{}={}", enc(k), enc(v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Byte for byte what MSAL for Python 1.39.0 sends for
/// `ConfidentialClientApplication(client_id, client_credential={"client_assertion": jwt},
/// oidc_authority=…).acquire_token_for_client(scopes)` (msal/oauth2cli/oauth2.py
/// `_obtain_token`, msal/application.py `_build_client` and
/// `_acquire_token_for_client`, msal/telemetry.py; captured from the
/// library with a stub HTTP client): the body keys in its order, with its
/// `client_info=1`, and every header it and `requests` add.
async fn msal_request(
    app: &TestApp,
    client_id: &str,
    jwt: &str,
    scopes: &[&str],
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let scope = scopes.join(" ");
    let body = urlencode(&[
        ("client_id", client_id),
        ("grant_type", "client_credentials"),
        ("client_assertion", jwt),
        ("client_info", "1"),
        ("client_assertion_type", CLIENT_ASSERTION_JWT),
        ("scope", &scope),
    ]);
    let resp = app
        .client
        .post(app.url("/oidc/token"))
        .header("User-Agent", "python-requests/2.34.2")
        .header("Accept-Encoding", "gzip, deflate")
        .header("Accept", "application/json")
        .header("Connection", "keep-alive")
        .header("x-client-sku", "MSAL.Python")
        .header("x-client-ver", "1.39.0")
        .header("x-client-os", "linux")
        .header("x-ms-lib-capability", "retry-after, h429")
        .header("client-request-id", "f87c2075-d5d7-42b2-b31b-be28fc74c2ef")
        .header("x-client-current-telemetry", "4|730,2|")
        .header("x-client-last-telemetry", "4|0|||")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap(), headers)
}

#[tokio::test]
async fn msal_acquire_token_for_client_gets_a_token_that_logs_a_run() {
    let (app, idp, id) = federated().await;
    let scope = format!("{}/.default", app.base);
    let (s, b, headers) = msal_request(
        &app,
        "sa:default/vision/ci-bot",
        &assertion(&idp),
        &[&scope],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(headers["cache-control"], "no-store");
    // What MSAL needs of the answer: access_token, token_type, expires_in.
    assert_eq!(b["token_type"], "Bearer");
    assert!(b["expires_in"].as_i64().unwrap() > 0);
    assert_eq!(b["scope"], "read write", "{b}");
    assert!(b.get("issued_token_type").is_none());
    let token = b["access_token"].as_str().unwrap().to_string();

    let (s, run) = app.run(&token, json!({"project": "v-team"})).await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    assert_eq!(run["created_by"]["id"], id.as_str());
    assert_eq!(run["entity"], "vision");

    // The same account as the jwt-bearer grant gives, with the same claims.
    let (s, jb) = app
        .form(
            "/oidc/token",
            &[("grant_type", JWT_BEARER), ("assertion", &assertion(&idp))],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{jb}");
    let (_, v1) = app.get("/api/v1/viewer", Some(&token)).await;
    let (_, v2) = app
        .get("/api/v1/viewer", Some(jb["access_token"].as_str().unwrap()))
        .await;
    assert_eq!(v1, v2);
    // The exchange is audited with its grant.
    let audit = app.audit().await;
    assert!(
        audit.iter().any(|e| e["action"] == "token.exchange"
            && e["outcome"] == "success"
            && e["details"].to_string().contains("client_credentials")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn client_id_names_the_account_by_name_or_id_and_scopes_down() {
    let (app, idp, id) = federated().await;
    // By id, down-scoped to read.
    let (s, b, _) = msal_request(&app, &id, &assertion(&idp), &["read"]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["scope"], "read");
    let token = b["access_token"].as_str().unwrap();
    let (s, e) = app.run(token, json!({"project": "v-team"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "read-only token: {e}");
    // Both scopes by name; no scope at all: full scope.
    let (s, b, _) = msal_request(&app, &id, &assertion(&idp), &["read", "write"]).await;
    assert_eq!(
        (s, b["scope"].clone()),
        (StatusCode::OK, json!("read write"))
    );
    let (s, b) = app
        .form(
            "/oidc/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", CLIENT_ASSERTION_JWT),
                ("client_assertion", &assertion(&idp)),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "no client_id: the binding decides: {b}");
    assert_eq!(b["scope"], "read write");
}

#[tokio::test]
async fn a_failing_assertion_is_invalid_client_with_the_jwt_bearer_reason() {
    let (app, idp, _) = federated().await;
    // A token for another subject: not bound to the account client_id
    // names. The jwt-bearer grant naming it as audience says the same.
    let stranger = idp.mint(json!({"sub": "repo:evil/x:ref:refs/heads/main", "aud": "default"}));
    let (_, jb) = app
        .form(
            "/oidc/token",
            &[
                ("grant_type", JWT_BEARER),
                ("assertion", &stranger),
                ("audience", "sa:default/vision/ci-bot"),
            ],
        )
        .await;
    let (s, b, headers) =
        msal_request(&app, "sa:default/vision/ci-bot", &stranger, &["read"]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(headers["cache-control"], "no-store");
    // RFC 7523 §3.2: a client assertion that fails is invalid_client.
    assert_eq!(b["error"], "invalid_client", "{b}");
    assert_eq!(jb["error"], "invalid_target");
    assert_eq!(b["error_description"], jb["error_description"]);

    // An expired assertion, a wrong audience: refused with the same checks.
    let expired =
        idp.mint(json!({"sub": SUBJECT, "aud": "default", "iat": 1_000_000, "exp": 1_000_100}));
    let (s, b, _) = msal_request(&app, "sa:default/vision/ci-bot", &expired, &["read"]).await;
    assert_eq!(
        (s, b["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_client")),
        "{b}"
    );
    let wrong_aud = idp.mint(json!({"sub": SUBJECT, "aud": "someone-else"}));
    let (s, b, _) = msal_request(&app, "sa:default/vision/ci-bot", &wrong_aud, &["read"]).await;
    assert_eq!(
        (s, b["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_client")),
        "{b}"
    );

    // A client_id naming an account the token is not bound to.
    let (s, b, _) = msal_request(&app, "sa:default/nlp/other", &assertion(&idp), &["read"]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"], "invalid_client", "{b}");
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("does not name a service account this token is bound to"),
        "{b}"
    );
}

#[tokio::test]
async fn malformed_client_credentials_requests_say_what_is_wrong() {
    let (app, idp, _) = federated().await;
    let jwt = assertion(&idp);
    let base = [
        ("grant_type", "client_credentials"),
        ("client_id", "sa:default/vision/ci-bot"),
    ];
    let with = |extra: &[(&'static str, &str)]| {
        let mut v: Vec<(&str, String)> = base.iter().map(|(k, v)| (*k, v.to_string())).collect();
        v.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        v
    };
    // (form, expected error, what the description says)
    type Case<'a> = (Vec<(&'a str, String)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            with(&[("client_assertion", &jwt)]),
            "invalid_request",
            "missing client_assertion_type",
        ),
        (
            with(&[("client_assertion_type", CLIENT_ASSERTION_JWT)]),
            "invalid_request",
            "missing client_assertion",
        ),
        (
            with(&[
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                ),
                ("client_assertion", &jwt),
            ]),
            "invalid_request",
            "not supported",
        ),
        (
            with(&[("client_secret", "hunter2")]),
            "invalid_request",
            "client_secret is not accepted",
        ),
        (
            with(&[
                ("client_assertion_type", CLIENT_ASSERTION_JWT),
                ("client_assertion", &jwt),
                ("audience", "sa:default/nlp/other"),
            ]),
            "invalid_target",
            "different service accounts",
        ),
        (
            with(&[
                ("client_assertion_type", CLIENT_ASSERTION_JWT),
                ("client_assertion", &jwt),
                ("scope", "https://graph.microsoft.com/.default"),
            ]),
            "invalid_scope",
            "not this fedgate",
        ),
        (
            with(&[
                ("client_assertion_type", CLIENT_ASSERTION_JWT),
                ("client_assertion", &jwt),
                ("scope", "admin"),
            ]),
            "invalid_scope",
            "read write",
        ),
        (
            with(&[
                ("client_assertion_type", CLIENT_ASSERTION_JWT),
                ("client_assertion", "not-a-jwt"),
            ]),
            "invalid_client",
            "compact JWS",
        ),
    ];
    for (form, code, needle) in cases {
        let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, b) = app.form("/oidc/token", &fields).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{form:?}: {b}");
        assert_eq!(b["error"], code, "{form:?}: {b}");
        let d = b["error_description"].as_str().unwrap();
        assert!(d.contains(needle), "{form:?}: {d}");
        assert!(!d.contains("hunter2"), "never echoes a secret: {d}");
    }
}

#[tokio::test]
async fn metadata_advertises_the_grant() {
    let app = TestApp::start().await;
    let (_, meta) = app.get("/.well-known/openid-configuration", None).await;
    let grants = meta["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&json!("client_credentials")), "{meta}");
    let auth = meta["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(auth.contains(&json!("private_key_jwt")), "{meta}");
}
