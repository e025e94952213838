//! Tenants stay apart (issue 10, "Tenants"): which organization a token is
//! for, what anonymous callers can learn, what reaches a tenant's audit
//! log, what `/metrics` shows, and whose request id the audit log keeps.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::idp::{KeyId, TestIdp};
use crate::support::{Options, TestApp, message};

const SUB: &str = "system:serviceaccount:ml:trainer";
const K8S: &str = "https://kubernetes.default.svc";

/// A second organization with its own admin; returns the admin's key.
async fn org(app: &TestApp, name: &str) -> String {
    fedgate::service::admin::bootstrap(
        &app.state,
        name,
        &format!("{name}-admin"),
        &format!("root@{name}.io"),
    )
    .await
    .unwrap()
    .api_key
}

/// Registers `issuer` in `org`; returns (status, body).
async fn register(app: &TestApp, key: &str, org: &str, body: Value) -> (StatusCode, Value) {
    app.post(&format!("/api/v1/orgs/{org}/issuers"), Some(key), body)
        .await
}

/// A team and an external account bound to `sub` in `org`.
async fn bind(app: &TestApp, key: &str, org: &str, team: &str, name: &str, issuer_id: &str) {
    let (s, b) = app
        .post(
            &format!("/api/v1/orgs/{org}/teams"),
            Some(key),
            json!({"name": team}),
        )
        .await;
    assert!(
        s == StatusCode::CREATED || s == StatusCode::CONFLICT,
        "team {team}: {b}"
    );
    let (s, b) = app
        .post(
            &format!("/api/v1/teams/{team}/service-accounts"),
            Some(key),
            json!({"name": name, "auth": "external", "issuer": issuer_id, "subject": SUB}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "account {name}: {b}");
}

/// Exchanges `token` and returns the `org/name` of the principal it became.
async fn becomes(app: &TestApp, token: &str) -> Result<String, (StatusCode, Value)> {
    let (s, b) = app.exchange(token).await;
    if s != StatusCode::OK {
        return Err((s, b));
    }
    let (s, v) = app.get("/api/v1/viewer", b["access_token"].as_str()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    Ok(format!(
        "{}/{}",
        v["org"].as_str().unwrap_or_default(),
        v["name"].as_str().unwrap_or_default()
    ))
}

/// The finding and its variants: org B registering the issuer org A
/// trusts, with any audience it may register, neither breaks nor captures
/// A's exchange; B cannot register A's reserved audiences at all.
#[tokio::test]
async fn another_org_cannot_break_or_capture_an_exchange() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    let a_issuer = app.trust(&idp).await; // audience: "default", the org's name
    bind(
        &app,
        &app.admin_key,
        "default",
        "vision",
        "trainer",
        &a_issuer,
    )
    .await;
    let a_token = || idp.mint(json!({"sub": SUB, "aud": ["default", K8S]}));
    assert_eq!(becomes(&app, &a_token()).await.unwrap(), "default/trainer");

    let beta = org(&app, "beta").await;
    // A's reserved audiences are refused to B: the name and its URL form.
    for aud in [
        "default".to_owned(),
        format!("{}/org/default", app.base),
        format!("{}/org/default/", app.base),
    ] {
        let (s, b) = register(
            &app,
            &beta,
            "beta",
            json!({"issuer": idp.issuer(), "audiences": [aud.clone()]}),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{aud}: {b}");
        assert!(
            message(&b).contains("reserved for another organization"),
            "{b}"
        );
    }
    // The other audience of A's tokens is B's to take (201) ...
    let (s, b) = register(
        &app,
        &beta,
        "beta",
        json!({"issuer": idp.issuer(), "audiences": [K8S]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let b_issuer = b["id"].as_str().unwrap().to_owned();
    // ... and A's exchange still works, even once B binds the same subject.
    assert_eq!(becomes(&app, &a_token()).await.unwrap(), "default/trainer");
    bind(&app, &beta, "beta", "beta-ml", "thief", &b_issuer).await;
    assert_eq!(becomes(&app, &a_token()).await.unwrap(), "default/trainer");
    // Order of the aud array does not matter.
    let swapped = idp.mint(json!({"sub": SUB, "aud": [K8S, "default"]}));
    assert_eq!(becomes(&app, &swapped).await.unwrap(), "default/trainer");
    // B's own tokens (only the shared audience) are B's.
    let b_token = idp.mint(json!({"sub": SUB, "aud": K8S}));
    assert_eq!(becomes(&app, &b_token).await.unwrap(), "beta/thief");
    // B may not patch a reserved audience in either.
    let (s, b) = app
        .patch(
            &format!("/api/v1/orgs/beta/issuers/{b_issuer}"),
            Some(&beta),
            json!({"audiences": [K8S, "default"]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    // A token that names both organizations by their own names is refused:
    // it says itself that it is for two tenants.
    let (s, b) = app
        .patch(
            &format!("/api/v1/orgs/beta/issuers/{b_issuer}"),
            Some(&beta),
            json!({"audiences": [K8S, "beta"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let both = idp.mint(json!({"sub": SUB, "aud": ["default", "beta"]}));
    let (s, b) = becomes(&app, &both).await.unwrap_err();
    assert_eq!(
        (s, b["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target")),
        "{b}"
    );
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("several organizations"),
        "{b}"
    );
    assert_eq!(becomes(&app, &a_token()).await.unwrap(), "default/trainer");
}

/// An organization cannot be created under a name another organization
/// already accepts as an audience: the name would become reserved to it and
/// take that organization's tokens.
#[tokio::test]
async fn a_new_organization_cannot_take_an_audience_in_use() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    app.trust_with(json!({"issuer": idp.issuer(), "audiences": ["gamma"]}))
        .await;
    let err = fedgate::service::admin::bootstrap(&app.state, "gamma", "g-admin", "g@gamma.io")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, fedgate::service::ServiceError::Conflict(m) if m.contains("already an audience")),
        "{err}"
    );
    org(&app, "delta").await;
}

/// Shared (non-reserved) audiences: the organization that registered the
/// issuer first keeps a token several accept; the URL form of an
/// organization's name works like the name.
#[tokio::test]
async fn shared_audiences_stay_with_the_first_registration() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    let a_issuer = app
        .trust_with(json!({"issuer": idp.issuer(), "audiences": [K8S]}))
        .await;
    bind(
        &app,
        &app.admin_key,
        "default",
        "vision",
        "trainer",
        &a_issuer,
    )
    .await;
    let a_token = || idp.mint(json!({"sub": SUB, "aud": [K8S, "vault"]}));
    assert_eq!(becomes(&app, &a_token()).await.unwrap(), "default/trainer");
    let beta = org(&app, "beta").await;
    // The audience A accepts is A's for this issuer (409) ...
    let (s, b) = register(
        &app,
        &beta,
        "beta",
        json!({"issuer": idp.issuer(), "audiences": [K8S]}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    // ... another one of A's tokens is not, but A keeps its exchange.
    let (s, b) = register(
        &app,
        &beta,
        "beta",
        json!({"issuer": idp.issuer(), "audiences": ["vault"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    bind(
        &app,
        &beta,
        "beta",
        "beta-ml",
        "thief",
        b["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(becomes(&app, &a_token()).await.unwrap(), "default/trainer");
    let b_token = idp.mint(json!({"sub": SUB, "aud": "vault"}));
    assert_eq!(becomes(&app, &b_token).await.unwrap(), "beta/thief");

    // The URL form of an organization's name is reserved to it and picks it.
    let idp2 = TestIdp::start().await;
    let url_form = format!("{}/org/default", app.base);
    let a2 = app
        .trust_with(json!({"issuer": idp2.issuer(), "audiences": [url_form.clone()]}))
        .await;
    let (s, b) = app
        .post(
            "/api/v1/teams/vision/service-accounts",
            Some(&app.admin_key),
            json!({"name": "trainer2", "auth": "external", "issuer": a2, "subject": SUB}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = register(
        &app,
        &beta,
        "beta",
        json!({"issuer": idp2.issuer(), "audiences": [K8S]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let token = idp2.mint(json!({"sub": SUB, "aud": [K8S, url_form]}));
    assert_eq!(becomes(&app, &token).await.unwrap(), "default/trainer2");
}

/// Anonymous callers get one answer for a project that exists but is not
/// public, one that does not exist, and an entity that does not exist.
#[tokio::test]
async fn anonymous_probes_cannot_tell_which_projects_exist() {
    let app = TestApp::start().await;
    app.team("nlp").await;
    app.project("nlp", "secret-merger", "team").await;
    app.project("nlp", "locked", "restricted").await;
    app.project("nlp", "open-one", "open").await;
    app.project("nlp", "showcase", "public").await;
    let normalise = |path: &str, b: &Value| message(b).replace(path, "<path>");
    let mut answers = Vec::new();
    for path in [
        "nlp/secret-merger",
        "nlp/locked",
        "nlp/open-one",
        "nlp/no-such-project",
        "no-such-team/secret-merger",
    ] {
        for suffix in ["", "/runs", "/traces"] {
            let (s, b) = app
                .get(&format!("/api/v1/projects/{path}{suffix}"), None)
                .await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}{suffix}: {b}");
            answers.push((b["error"]["code"].clone(), normalise(path, &b)));
        }
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert!(
        answers[0].1.contains("credential is required"),
        "{answers:?}"
    );
    // A public project is still readable anonymously.
    let (s, b) = app.get("/api/v1/projects/nlp/showcase", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // With a credential, a missing project is a plain 404.
    let (s, _) = app
        .get("/api/v1/projects/nlp/no-such-project", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// The value of one Prometheus series (0 when absent).
fn series(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Nothing reaches a tenant's audit log before the token's signature
/// verifies: unsigned tokens, unknown kids, forged signatures and unknown
/// issuers with attacker-chosen text are counted and logged instead. A
/// refusal after verification is audited with iss, sub, aud, kid and check.
#[tokio::test]
async fn only_verified_tokens_reach_the_audit_log() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    let issuer_id = app.trust(&idp).await;
    bind(
        &app,
        &app.admin_key,
        "default",
        "vision",
        "trainer",
        &issuer_id,
    )
    .await;
    let metric =
        |check: &str| format!("fedgate_exchange_unverified_refusals_total{{check=\"{check}\"}}");
    let (_, before) = app.get("/metrics", None).await;
    let before = before.as_str().unwrap_or_default().to_owned();

    let evil = json!({"sub": "ATTACKER-TEXT", "aud": "default", "note": "ATTACKER-TEXT"});
    let forged: Vec<(&str, String)> = vec![
        (
            "alg",
            idp.mint_with(KeyId::RsaA, json!({"alg": "none"}), evil.clone()),
        ),
        (
            "key",
            idp.mint_with(KeyId::RsaA, json!({"kid": "ATTACKER-TEXT-1"}), evil.clone()),
        ),
        (
            "key",
            idp.mint_with(KeyId::RsaA, json!({"kid": "ATTACKER-TEXT-2"}), evil.clone()),
        ),
        // Signed by a key the IdP never published, under a published kid.
        (
            "signature",
            idp.mint_with(KeyId::RsaB, json!({"kid": "rsa-a"}), evil.clone()),
        ),
        (
            "iss",
            idp.mint(json!({"iss": "https://ATTACKER-TEXT.example", "sub": "x", "aud": "default"})),
        ),
        ("format", "ATTACKER-TEXT.not.a-jwt".to_owned()),
    ];
    for (check, token) in &forged {
        let (s, b) = app.exchange(token).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{check}: {b}");
    }
    let (_, after) = app.get("/metrics", None).await;
    let after = after.as_str().unwrap_or_default().to_owned();
    for (check, n) in [("alg", 1.0), ("key", 2.0), ("signature", 1.0), ("iss", 1.0)] {
        assert!(
            series(&after, &metric(check)) - series(&before, &metric(check)) >= n,
            "{check} not counted:\n{after}"
        );
    }
    let audit = app.audit().await;
    assert!(
        !serde_json::to_string(&audit)
            .unwrap()
            .contains("ATTACKER-TEXT"),
        "unverified text reached the audit log: {audit:?}"
    );
    assert!(
        audit.iter().all(|e| e["action"] != "token.exchange"),
        "{audit:?}"
    );

    // Verified, then refused: audited with what the token said.
    for (claims, check) in [
        (
            json!({"sub": "repo:someone/else", "aud": ["default", K8S]}),
            "binding",
        ),
        (
            json!({"sub": SUB, "aud": "default", "iat": 1_000, "exp": 1_300}),
            "exp",
        ),
        (json!({"sub": SUB, "aud": "someone-else"}), "aud"),
    ] {
        let (s, b) = app.exchange(&idp.mint(claims)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{check}: {b}");
    }
    let audit = app.audit().await;
    let denied: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "token.exchange" && e["outcome"] == "denied")
        .collect();
    assert_eq!(denied.len(), 3, "{audit:?}");
    let d = &denied[0]["details"];
    assert_eq!(d["check"], "binding", "{d}");
    assert_eq!(d["iss"], idp.issuer().as_str(), "{d}");
    assert_eq!(d["sub"], "repo:someone/else", "{d}");
    assert_eq!(d["aud"], json!(["default", K8S]), "{d}");
    assert_eq!(d["kid"], "rsa-a", "{d}");
    assert_eq!(d["error"], "invalid_grant", "{d}");
    assert_eq!(denied[1]["details"]["check"], "exp");
    assert_eq!(denied[1]["details"]["sub"], SUB);
    assert_eq!(denied[2]["details"]["check"], "aud");
    assert_eq!(denied[2]["details"]["aud"], json!(["someone-else"]));
    for e in &denied {
        assert!(!e["reason"].as_str().unwrap().is_empty(), "{e}");
    }
}

/// fedgate's own id is the audit log's request id; the caller's
/// `X-Request-Id` is kept beside it, never instead of it.
#[tokio::test]
async fn audit_keeps_fedgates_request_id_and_the_callers_beside_it() {
    let app = TestApp::start().await;
    let mut ids = Vec::new();
    for (name, header) in [
        ("t-one", "caller-123"),
        ("t-two", "not valid!"),
        ("t-three", ""),
    ] {
        let mut req = app
            .client
            .post(app.url("/api/v1/orgs/default/teams"))
            .bearer_auth(&app.admin_key)
            .json(&json!({"name": name}));
        if !header.is_empty() {
            req = req.header("x-request-id", header);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let own = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(own.starts_with("req_") && own != header, "{own}");
        ids.push((name, own));
    }
    let audit = app.audit().await;
    for ((name, own), want) in ids.iter().zip(["caller-123", "", ""]) {
        let e = audit
            .iter()
            .find(|e| {
                e["action"] == "team.create" && e["target"].as_str().unwrap_or("").contains(name)
            })
            .unwrap_or_else(|| panic!("{name} in {audit:?}"));
        assert_eq!(e["request_id"], own.as_str(), "{e}");
        assert_eq!(e["client_request_id"], want, "{e}");
    }
}

/// `/metrics` labels issuers by id (never by URL) and, with
/// `--metrics-listen`, is served only on that separate address.
#[tokio::test]
async fn metrics_use_issuer_ids_and_a_separate_listener() {
    let app = TestApp::start_with(Options {
        metrics_listener: true,
        ..Options::default()
    })
    .await;
    let idp = TestIdp::start().await;
    let id = app.trust(&idp).await;
    let (s, b) = app
        .post(
            &format!("/api/v1/orgs/default/issuers/{id}/refresh"),
            Some(&app.admin_key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // A registration that fails its lint leaves no series behind.
    let dead = TestIdp::start().await;
    let dead_issuer = dead.issuer();
    dead.stop();
    let (s, b) = register(
        &app,
        &app.admin_key,
        "default",
        json!({"issuer": dead_issuer}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

    let (s, b) = app.get("/metrics", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "main listener: {b}");
    let base = app.metrics_base.clone().unwrap();
    let resp = app
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains(&format!(
            "fedgate_jwks_fetches_total{{issuer_id=\"{id}\",result=\"ok\"}}"
        )),
        "{text}"
    );
    assert!(!text.contains("issuer=\""), "{text}");
    assert!(
        !text.contains(&idp.issuer()) && !text.contains(&dead_issuer),
        "{text}"
    );
    // Only /metrics lives there.
    let resp = app
        .client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// SSRF: by default, fedgate refuses to fetch keys from loopback, private,
/// link-local and cloud-metadata addresses, before connecting and after DNS
/// resolution (`localhost`); the test harness allows 127.0.0.1 explicitly.
#[tokio::test]
async fn issuers_on_non_public_addresses_are_refused_by_default() {
    let app = TestApp::start_with(Options {
        insecure_issuers: false,
        private_issuers: "",
        ..Options::default()
    })
    .await;
    let idp = TestIdp::start().await;
    let port = idp.port();
    for (issuer, want) in [
        (
            format!("https://127.0.0.1:{port}"),
            "127.0.0.1, a loopback address",
        ),
        (format!("https://localhost:{port}"), "localhost resolves to"),
        (
            "https://169.254.169.254".to_owned(),
            "a cloud metadata address",
        ),
        ("https://10.20.30.40".to_owned(), "a private address"),
        (
            "https://[::ffff:169.254.169.254]".to_owned(),
            "cloud metadata",
        ),
        ("https://[fd00::1]".to_owned(), "private (unique local)"),
    ] {
        let (s, b) = app
            .post(
                "/api/v1/orgs/default/issuers",
                Some(&app.admin_key),
                json!({"issuer": issuer}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{issuer}: {b}");
        let m = message(&b);
        assert!(
            m.contains(want) && m.contains("--allow-private-issuers"),
            "{issuer}: {m}"
        );
    }
    // A jwks_uri is held to the same rule.
    let (s, b) = app
        .post(
            "/api/v1/orgs/default/issuers",
            Some(&app.admin_key),
            json!({"issuer": "https://idp.example", "jwks_uri": "https://169.254.169.254/keys"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("cloud metadata"), "{b}");
    app.stop().await;
}
