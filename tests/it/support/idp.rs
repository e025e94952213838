//! A real OpenID Connect identity provider for integration tests.
//!
//! [`TestIdp::start`] binds an axum server on `127.0.0.1:0` that serves
//! OIDC discovery (`/.well-known/openid-configuration`, shaped like GitHub
//! Actions': no `authorization_endpoint`) and a JWKS (`/.well-known/jwks`)
//! built from the real PEM keys in `fixtures/keys/`. It mints real signed
//! JWTs and can be told to misbehave ([`Mode`]).
//!
//! ```ignore
//! let idp = TestIdp::start().await;
//! let token = idp.mint(TestIdp::fixture_with("github-actions", json!({"aud": "acme"})));
//! idp.rotate();                       // rsa-b published, mint() now signs with it
//! idp.set_mode(Mode::Down);           // discovery and JWKS answer 503
//! assert_eq!(idp.jwks_hits(), 1);
//! ```
//!
//! Keys (all test-only, see `fixtures/README.md`):
//!
//! | [`KeyId`]   | file                  | kid         | native alg | published at start |
//! |-------------|-----------------------|-------------|------------|--------------------|
//! | `RsaA`      | `rsa2048-a.pem`       | `rsa-a`     | RS256      | yes                |
//! | `EcA`       | `p256-a.pem`          | `ec-a`      | ES256      | yes                |
//! | `RsaB`      | `rsa2048-b.pem`       | `rsa-b`     | RS256      | after `rotate()`   |
//! | `Ed25519A`  | `ed25519-a.pem`       | `ed25519-a` | EdDSA      | after `publish()`  |
//! | `RsaWeak`   | `rsa1024.pem`         | `rsa-weak`  | RS256      | after `publish_weak_key()` |
//!
//! Signing never goes through `jsonwebtoken::encode`: every token is built
//! as a compact JWS by hand over pre-parsed aws-lc-rs keys, so any header
//! (kid, typ, crit, jku, x5u, jwk, duplicate names via [`TestIdp::sign_bytes`],
//! `alg: none`, HS256 key confusion) can be produced. aws-lc-rs refuses RSA
//! keys under 2048 bits, so the 1024-bit key signs with a small Montgomery
//! modular exponentiation below (PKCS#1 v1.5, RS256/384/512).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use aws_lc_rs::{digest, hmac};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

/// A file of `fixtures/keys/`, compiled in.
macro_rules! key_file {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/keys/",
            $name
        ))
    };
}

/// Lifetime of a minted token when the caller does not set `exp`.
pub const DEFAULT_TTL_SECS: u64 = 300;
/// kid of the `use: "enc"` key published by [`TestIdp::publish_weak_key`]:
/// the public half of `rsa-b` (no `alg`), so a token signed with
/// `KeyId::RsaB` and header `{"kid": ENC_KID}` verifies unless the
/// verifier honours `use`.
pub const ENC_KID: &str = "rsa-enc";
/// Size of the body served in [`Mode::Huge`] (well over 1 MiB).
pub const HUGE_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Body served in [`Mode::Garbage`].
pub const GARBAGE_BODY: &str = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>";

/// The keys the test IdP can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyId {
    /// RSA 2048, kid `rsa-a`, RS256; published from the start, mint() default.
    RsaA,
    /// RSA 2048, kid `rsa-b`, RS256; unpublished until `rotate()`/`publish()`.
    RsaB,
    /// P-256, kid `ec-a`, ES256; published from the start.
    EcA,
    /// Ed25519, kid `ed25519-a`, EdDSA; unpublished until `publish()`.
    Ed25519A,
    /// RSA 1024 (too weak: a verifier must drop it), kid `rsa-weak`, RS256.
    RsaWeak,
}

impl KeyId {
    pub const ALL: [KeyId; 5] = [
        KeyId::RsaA,
        KeyId::RsaB,
        KeyId::EcA,
        KeyId::Ed25519A,
        KeyId::RsaWeak,
    ];

    /// The `kid` this key is published under and that tokens carry by default.
    pub fn kid(self) -> &'static str {
        match self {
            KeyId::RsaA => "rsa-a",
            KeyId::RsaB => "rsa-b",
            KeyId::EcA => "ec-a",
            KeyId::Ed25519A => "ed25519-a",
            KeyId::RsaWeak => "rsa-weak",
        }
    }

    /// The key's native JWS `alg`.
    pub fn alg(self) -> &'static str {
        match self {
            KeyId::RsaA | KeyId::RsaB | KeyId::RsaWeak => "RS256",
            KeyId::EcA => "ES256",
            KeyId::Ed25519A => "EdDSA",
        }
    }

    /// The private key, PKCS#8 PEM (`fixtures/keys/<name>.pem`).
    pub fn private_pem(self) -> &'static str {
        match self {
            KeyId::RsaA => key_file!("rsa2048-a.pem"),
            KeyId::RsaB => key_file!("rsa2048-b.pem"),
            KeyId::EcA => key_file!("p256-a.pem"),
            KeyId::Ed25519A => key_file!("ed25519-a.pem"),
            KeyId::RsaWeak => key_file!("rsa1024.pem"),
        }
    }

    /// The public key, SubjectPublicKeyInfo PEM (`fixtures/keys/<name>.pub.pem`,
    /// written by `openssl pkey -pubout`). Also the HMAC secret of the
    /// HS256/384/512 key-confusion tokens.
    pub fn public_pem(self) -> &'static str {
        match self {
            KeyId::RsaA => key_file!("rsa2048-a.pub.pem"),
            KeyId::RsaB => key_file!("rsa2048-b.pub.pem"),
            KeyId::EcA => key_file!("p256-a.pub.pem"),
            KeyId::Ed25519A => key_file!("ed25519-a.pub.pem"),
            KeyId::RsaWeak => key_file!("rsa1024.pub.pem"),
        }
    }

    /// The public JWK `{kty, kid, use: "sig", alg, ...}` (real public half of the PEM).
    pub fn public_jwk(self) -> Value {
        material(self).jwk.clone()
    }
}

/// How an endpoint answers. [`TestIdp::set_mode`] sets both endpoints;
/// [`TestIdp::set_discovery_mode`] / [`TestIdp::set_jwks_mode`] one of them.
/// Request counters count every request, whatever the mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// 200 with the document.
    Normal,
    /// 503 `text/plain`.
    Down,
    /// Sleeps this long, then answers as `Normal`.
    Slow(Duration),
    /// 200 `application/json` whose body is HTML, not JSON ([`GARBAGE_BODY`]).
    Garbage,
    /// 200 `application/json`, the real document padded with an extra string
    /// member to [`HUGE_BODY_BYTES`] (valid JSON, > 1 MiB), sent chunked with
    /// no `Content-Length`, so only a bounded read rejects it.
    Huge,
    /// Discovery says `issuer` is `<issuer>/evil` (a string that has the real
    /// issuer as a prefix). The JWKS endpoint answers normally.
    WrongIssuer,
    /// Discovery says `issuer` is `<issuer>/`. The JWKS endpoint answers normally.
    TrailingSlashIssuer,
    /// 302 with `Location: <this URL>`, e.g. another TestIdp's `jwks_uri`
    /// with `localhost` as host, to check redirects to other hosts are refused.
    Redirect(String),
}

/// A running test IdP. Dropping it stops the server.
pub struct TestIdp {
    shared: Arc<Shared>,
    port: u16,
    shutdown: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestIdp {
    /// Starts the IdP at `http://127.0.0.1:<port>` with `rsa-a` and `ec-a` published.
    pub async fn start() -> TestIdp {
        Self::start_with_path("").await
    }

    /// Like [`TestIdp::start`], with an issuer that has a path, e.g.
    /// `start_with_path("/tenant-1")` → issuer `http://127.0.0.1:PORT/tenant-1`
    /// and discovery at `<issuer>/.well-known/openid-configuration`
    /// (how GitHub Enterprise and self-managed IdPs under a prefix look).
    pub async fn start_with_path(path: &str) -> TestIdp {
        let path = path.trim_end_matches('/');
        assert!(
            path.is_empty() || path.starts_with('/'),
            "TestIdp path must be empty or start with '/': {path:?}"
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("TestIdp: bind 127.0.0.1:0");
        let port = listener.local_addr().expect("TestIdp: local_addr").port();
        let issuer = format!("http://127.0.0.1:{port}{path}");
        let shared = Arc::new(Shared {
            issuer,
            inner: Mutex::new(Inner {
                discovery_mode: Mode::Normal,
                jwks_mode: Mode::Normal,
                cache_control: None,
                published: vec![Published::Key(KeyId::RsaA), Published::Key(KeyId::EcA)],
                signing_key: KeyId::RsaA,
                discovery_override: None,
                jwks_override: None,
                sso: None,
            }),
            discovery_hits: AtomicU64::new(0),
            jwks_hits: AtomicU64::new(0),
        });
        let app = Router::new()
            .route(
                &format!("{path}/.well-known/openid-configuration"),
                get(discovery_handler),
            )
            .route(&format!("{path}/.well-known/jwks"), get(jwks_handler))
            .route(&format!("{path}/authorize"), get(authorize_handler))
            .route(&format!("{path}/token"), axum::routing::post(token_handler))
            .with_state(Arc::clone(&shared));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        TestIdp {
            shared,
            port,
            shutdown: Mutex::new(Some(tx)),
            task,
        }
    }

    /// `http://127.0.0.1:PORT[/path]`, no trailing slash: the `iss` of minted tokens.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The TCP port the IdP listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.shared.issuer)
    }

    /// `<issuer>/.well-known/jwks`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/.well-known/jwks", self.shared.issuer)
    }

    /// The JWKS the endpoint serves in `Mode::Normal` right now (for issuers
    /// registered with a static JWKS).
    pub fn jwks_json(&self) -> Value {
        self.shared.jwks_doc(&self.shared.lock())
    }

    /// The discovery document the endpoint serves in `Mode::Normal` right now.
    pub fn discovery_json(&self) -> Value {
        self.shared
            .discovery_doc(&self.shared.lock(), &Mode::Normal)
    }

    // ---- minting -------------------------------------------------------

    /// Signs `claims` with the current signing key (`rsa-a`; `rsa-b` after
    /// [`TestIdp::rotate`]) and header `{"alg", "typ": "JWT", "kid"}`.
    /// Fills `iss` (this issuer), `iat` (now), `exp` (now + 300 s) and a
    /// random `jti`; the caller's members win, and a caller member set to
    /// `null` removes that claim (`json!({"exp": null})` → no `exp`).
    /// `aud`, `nbf` and `sub` are never filled in.
    pub fn mint(&self, claims: Value) -> String {
        let key = self.signing_key();
        self.mint_with(key, json!({}), claims)
    }

    /// Like [`TestIdp::mint`] with any key, published or not, and header
    /// overrides merged over `{"alg": key.alg(), "typ": "JWT", "kid": key.kid()}`
    /// (a `null` removes a member: `{"kid": null}`). The signature follows
    /// the header's `alg`, see [`TestIdp::sign_raw`].
    pub fn mint_with(&self, key: KeyId, header_overrides: Value, claims: Value) -> String {
        let header = merge(default_header(key), header_overrides);
        let payload = self.complete_claims(claims);
        self.sign_raw(
            key,
            &header,
            &serde_json::to_vec(&payload).expect("claims serialize"),
        )
    }

    /// Signs exactly `header` and `claims`, nothing filled in or removed.
    pub fn mint_exact(&self, key: KeyId, header: &Value, claims: &Value) -> String {
        self.sign_raw(
            key,
            header,
            &serde_json::to_vec(claims).expect("claims serialize"),
        )
    }

    /// The claim set [`TestIdp::mint`] would sign for `claims` (same defaults
    /// and `null` removal), e.g. to assert on what went into a token.
    pub fn complete_claims(&self, claims: Value) -> Value {
        let now = now_secs();
        let defaults = json!({
            "iss": self.shared.issuer,
            "iat": now,
            "exp": now + DEFAULT_TTL_SECS,
            "jti": random_id(),
        });
        merge(defaults, claims)
    }

    /// Compact JWS over `header` (serialized as given) and raw payload bytes
    /// (duplicate claim names, non-UTF-8, non-JSON...). The signature is
    /// chosen by the header's `alg` (the key's native alg when absent):
    /// - `"none"` (any case): empty signature, `header.payload.`;
    /// - `HS256`/`HS384`/`HS512`: HMAC keyed with the key's public PEM
    ///   ([`KeyId::public_pem`]), the RS256→HS256 key-confusion attack;
    /// - RSA keys: `RS256/384/512`, `PS256/384/512` (PS* not for `RsaWeak`);
    /// - any other `alg`: the key's native algorithm, whatever the header says.
    pub fn sign_raw(&self, key: KeyId, header: &Value, payload_bytes: &[u8]) -> String {
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_else(|| key.alg())
            .to_owned();
        let header_bytes = serde_json::to_vec(header).expect("header serialize");
        self.sign_bytes(key, &alg, &header_bytes, payload_bytes)
    }

    /// Lowest level: compact JWS over raw header bytes and raw payload
    /// bytes, signed as `alg` says (same rules as [`TestIdp::sign_raw`]).
    pub fn sign_bytes(
        &self,
        key: KeyId,
        alg: &str,
        header_bytes: &[u8],
        payload_bytes: &[u8],
    ) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header_bytes),
            URL_SAFE_NO_PAD.encode(payload_bytes)
        );
        let sig = sign_input(key, alg, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Loads `fixtures/claims/<name>.json` (no `iss`/`aud`/`exp`/`iat`/`nbf`/`jti`).
    /// Names: `github-actions`, `github-actions-environment`, `gitlab-ci`, `kubernetes`.
    pub fn fixture(name: &str) -> Value {
        let path = format!("{}/fixtures/claims/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("TestIdp::fixture: read {path}: {e}"));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("TestIdp::fixture: parse {path}: {e}"))
    }

    /// [`TestIdp::fixture`] with `overrides` merged on top (`null` removes).
    pub fn fixture_with(name: &str, overrides: Value) -> Value {
        merge(Self::fixture(name), overrides)
    }

    // ---- keys ----------------------------------------------------------

    /// Publishes `rsa-b` as well (keeping `rsa-a`) and makes `mint()` sign
    /// with `rsa-b` from now on. Idempotent.
    pub fn rotate(&self) {
        let mut g = self.shared.lock();
        push_unique(&mut g.published, Published::Key(KeyId::RsaB));
        g.signing_key = KeyId::RsaB;
    }

    /// Adds `key` to the JWKS (no-op if already there).
    pub fn publish(&self, key: KeyId) {
        push_unique(&mut self.shared.lock().published, Published::Key(key));
    }

    /// Removes `key` from the JWKS (e.g. `rsa-a` after a rotation). Does not
    /// change the signing key.
    pub fn unpublish(&self, key: KeyId) {
        self.shared
            .lock()
            .published
            .retain(|p| *p != Published::Key(key));
    }

    /// Also publishes the 1024-bit RSA key (kid `rsa-weak`) and a `use: "enc"`
    /// RSA key (kid [`ENC_KID`], the public half of `rsa-b`, no `alg`).
    /// A verifier must use neither.
    pub fn publish_weak_key(&self) {
        let mut g = self.shared.lock();
        push_unique(&mut g.published, Published::Key(KeyId::RsaWeak));
        push_unique(&mut g.published, Published::Enc);
    }

    /// Appends an arbitrary JWK to the JWKS (unknown `kty`, symmetric `oct`,
    /// duplicate kid, missing members...).
    pub fn publish_raw_jwk(&self, jwk: Value) {
        self.shared.lock().published.push(Published::Raw(jwk));
    }

    /// The key `mint()` signs with now.
    pub fn signing_key(&self) -> KeyId {
        self.shared.lock().signing_key
    }

    /// Makes `mint()` sign with `key` (it is not published by this).
    pub fn set_signing_key(&self, key: KeyId) {
        self.shared.lock().signing_key = key;
    }

    /// Serves exactly this JWKS instead of the published keys (`None`: back to them).
    pub fn override_jwks(&self, jwks: Option<Value>) {
        self.shared.lock().jwks_override = jwks;
    }

    /// Serves exactly this discovery document (`None`: back to the real one),
    /// e.g. one whose `jwks_uri` points at another host.
    pub fn override_discovery(&self, doc: Option<Value>) {
        self.shared.lock().discovery_override = doc;
    }

    // ---- misbehaviour --------------------------------------------------

    /// Sets the mode of both endpoints.
    pub fn set_mode(&self, mode: Mode) {
        let mut g = self.shared.lock();
        g.discovery_mode = mode.clone();
        g.jwks_mode = mode;
    }

    /// Sets the mode of `/.well-known/openid-configuration` only.
    pub fn set_discovery_mode(&self, mode: Mode) {
        self.shared.lock().discovery_mode = mode;
    }

    /// Sets the mode of `/.well-known/jwks` only.
    pub fn set_jwks_mode(&self, mode: Mode) {
        self.shared.lock().jwks_mode = mode;
    }

    /// `Cache-Control: max-age=<secs>` on JWKS responses (`None`: no header).
    pub fn set_max_age(&self, secs: Option<u64>) {
        self.set_cache_control(secs.map(|s| format!("max-age={s}")));
    }

    /// Any `Cache-Control` value on JWKS responses (`no-store`, `private, max-age=5`...).
    pub fn set_cache_control(&self, value: Option<String>) {
        self.shared.lock().cache_control = value;
    }

    /// Requests to the discovery endpoint so far (every mode counts).
    pub fn discovery_hits(&self) -> u64 {
        self.shared.discovery_hits.load(Ordering::SeqCst)
    }

    /// Requests to the JWKS endpoint so far (every mode counts).
    pub fn jwks_hits(&self) -> u64 {
        self.shared.jwks_hits.load(Ordering::SeqCst)
    }

    /// Sets both counters back to 0.
    pub fn reset_hits(&self) {
        self.shared.discovery_hits.store(0, Ordering::SeqCst);
        self.shared.jwks_hits.store(0, Ordering::SeqCst);
    }

    /// Turns on the authorization code flow (for console SSO): discovery then
    /// lists `<issuer>/authorize` and `<issuer>/token`, and the client
    /// `client_id` / `client_secret` may use them. Nobody is signed in until
    /// [`TestIdp::sign_in_as`].
    pub fn enable_sso(&self, client_id: &str, client_secret: &str) {
        self.shared.lock().sso = Some(SsoState {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            login_email: None,
            codes: std::collections::HashMap::new(),
        });
    }

    /// The person the next `/authorize` signs in (a verified email).
    pub fn sign_in_as(&self, email: &str) {
        if let Some(sso) = self.shared.lock().sso.as_mut() {
            sso.login_email = Some(email.into());
        }
    }

    /// Stops accepting connections (then: connection refused) and closes
    /// idle keep-alive connections. One-way. Dropping the IdP also stops it.
    pub fn stop(&self) {
        let tx = self
            .shutdown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.stop();
        self.task.abort();
    }
}

impl std::fmt::Debug for TestIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIdp")
            .field("issuer", &self.shared.issuer)
            .finish_non_exhaustive()
    }
}

/// Shallow merge of two JSON objects: `overrides` members replace `base`'s,
/// a `null` member removes it. A non-object `overrides` replaces `base`
/// whole; `base` must be an object otherwise.
pub fn merge(base: Value, overrides: Value) -> Value {
    let Value::Object(over) = overrides else {
        return overrides;
    };
    let mut out = match base {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => panic!("merge: base must be a JSON object, got {other}"),
    };
    for (k, v) in over {
        if v.is_null() {
            out.remove(&k);
        } else {
            out.insert(k, v);
        }
    }
    Value::Object(out)
}

fn default_header(key: KeyId) -> Value {
    json!({"alg": key.alg(), "typ": "JWT", "kid": key.kid()})
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_id() -> String {
    let mut buf = [0u8; 16];
    SystemRandom::new().fill(&mut buf).expect("system random");
    URL_SAFE_NO_PAD.encode(buf)
}

// ---- server ------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Published {
    Key(KeyId),
    Enc,
    Raw(Value),
}

fn push_unique(list: &mut Vec<Published>, p: Published) {
    if !list.contains(&p) {
        list.push(p);
    }
}

struct Inner {
    discovery_mode: Mode,
    jwks_mode: Mode,
    cache_control: Option<String>,
    published: Vec<Published>,
    signing_key: KeyId,
    discovery_override: Option<Value>,
    jwks_override: Option<Value>,
    /// Set by [`TestIdp::enable_sso`]: the authorization code flow is on.
    sso: Option<SsoState>,
}

/// The IdP's one registered OIDC client, who "signs in" at `/authorize`,
/// and the codes it issued.
struct SsoState {
    client_id: String,
    client_secret: String,
    /// The email the next `/authorize` signs in (no login form: the test
    /// decides who the person is); `None` answers `access_denied`.
    login_email: Option<String>,
    codes: std::collections::HashMap<String, CodeGrant>,
}

struct CodeGrant {
    redirect_uri: String,
    challenge: String,
    nonce: String,
    email: String,
}

struct Shared {
    issuer: String,
    inner: Mutex<Inner>,
    discovery_hits: AtomicU64,
    jwks_hits: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn jwks_doc(&self, g: &Inner) -> Value {
        if let Some(doc) = &g.jwks_override {
            return doc.clone();
        }
        let mut seen = HashSet::new();
        let keys: Vec<Value> = g
            .published
            .iter()
            .filter(|p| match p {
                Published::Key(k) => seen.insert(*k),
                _ => true,
            })
            .map(|p| match p {
                Published::Key(k) => k.public_jwk(),
                Published::Enc => enc_jwk(),
                Published::Raw(v) => v.clone(),
            })
            .collect();
        json!({ "keys": keys })
    }

    fn discovery_doc(&self, g: &Inner, mode: &Mode) -> Value {
        if let Some(doc) = &g.discovery_override {
            return doc.clone();
        }
        let issuer = match mode {
            Mode::WrongIssuer => format!("{}/evil", self.issuer),
            Mode::TrailingSlashIssuer => format!("{}/", self.issuer),
            _ => self.issuer.clone(),
        };
        let mut doc = json!({
            "issuer": issuer,
            "jwks_uri": format!("{}/.well-known/jwks", self.issuer),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        });
        if g.sso.is_some() {
            doc["authorization_endpoint"] = json!(format!("{}/authorize", self.issuer));
            doc["token_endpoint"] = json!(format!("{}/token", self.issuer));
            doc["response_types_supported"] = json!(["code", "id_token"]);
            doc["scopes_supported"] = json!(["openid", "email"]);
            doc["code_challenge_methods_supported"] = json!(["S256"]);
            doc["token_endpoint_auth_methods_supported"] =
                json!(["client_secret_basic", "client_secret_post"]);
        }
        doc
    }
}

fn enc_jwk() -> Value {
    let mut jwk = KeyId::RsaB.public_jwk();
    let obj = jwk.as_object_mut().expect("jwk object");
    obj.remove("alg");
    obj.insert("kid".into(), json!(ENC_KID));
    obj.insert("use".into(), json!("enc"));
    jwk
}

async fn discovery_handler(State(s): State<Arc<Shared>>) -> Response {
    s.discovery_hits.fetch_add(1, Ordering::SeqCst);
    let mode = s.lock().discovery_mode.clone();
    match misbehave(mode).await {
        Ok(resp) => resp,
        Err(mode) => {
            let doc = s.discovery_doc(&s.lock(), &mode);
            json_response(&mode, &doc, None)
        }
    }
}

async fn jwks_handler(State(s): State<Arc<Shared>>) -> Response {
    s.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let mode = s.lock().jwks_mode.clone();
    match misbehave(mode).await {
        Ok(resp) => resp,
        Err(mode) => {
            let (doc, cc) = {
                let g = s.lock();
                (s.jwks_doc(&g), g.cache_control.clone())
            };
            json_response(&mode, &doc, cc)
        }
    }
}

/// Handles the modes that need no document. `Ok(response)` is final;
/// `Err(mode)` means "serve the document" (Normal, after Slow's sleep, Huge,
/// WrongIssuer, TrailingSlashIssuer).
async fn misbehave(mode: Mode) -> Result<Response, Mode> {
    match mode {
        Mode::Down => Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain")],
            "503 Service Unavailable\n",
        )
            .into_response()),
        Mode::Garbage => Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            GARBAGE_BODY,
        )
            .into_response()),
        Mode::Redirect(url) => {
            Ok((StatusCode::FOUND, [(header::LOCATION, url)], "").into_response())
        }
        Mode::Slow(d) => {
            tokio::time::sleep(d).await;
            Err(Mode::Normal)
        }
        other => Err(other),
    }
}

fn json_response(mode: &Mode, doc: &Value, cache_control: Option<String>) -> Response {
    let mut resp = if *mode == Mode::Huge {
        let mut text = serde_json::to_string(doc).expect("doc serialize");
        if text.ends_with('}') && text.len() > 2 {
            text.pop();
            text.push_str(",\"x-padding\":\"");
        } else {
            text = String::from("{\"x-padding\":\"");
        }
        let pad = HUGE_BODY_BYTES.saturating_sub(text.len() + 2);
        text.push_str(&"A".repeat(pad));
        text.push_str("\"}");
        let chunks: Vec<Result<Vec<u8>, Infallible>> = text
            .into_bytes()
            .chunks(64 * 1024)
            .map(|c| Ok(c.to_vec()))
            .collect();
        let body = Body::from_stream(futures::stream::iter(chunks));
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    } else {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(doc).expect("doc serialize"),
        )
            .into_response()
    };
    if let Some(cc) = cache_control
        && let Ok(v) = HeaderValue::from_str(&cc)
    {
        resp.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    resp
}

// ---- key material ------------------------------------------------------

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    /// RSA below aws-lc-rs' 2048-bit floor: signed with [`Montgomery`].
    WeakRsa {
        modulus: Montgomery,
        d: Vec<u8>,
        len: usize,
    },
}

struct Material {
    signer: Signer,
    jwk: Value,
}

fn material(key: KeyId) -> &'static Material {
    static ALL: OnceLock<Vec<Material>> = OnceLock::new();
    let all = ALL.get_or_init(|| KeyId::ALL.iter().map(|k| load_material(*k)).collect());
    let idx = KeyId::ALL
        .iter()
        .position(|k| *k == key)
        .expect("key in ALL");
    &all[idx]
}

fn load_material(key: KeyId) -> Material {
    let der = pem_to_der(key.private_pem());
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    match key {
        KeyId::RsaA | KeyId::RsaB | KeyId::RsaWeak => {
            let rsa = parse_pkcs8_rsa(&der);
            let jwk = json!({
                "kty": "RSA", "kid": key.kid(), "use": "sig", "alg": key.alg(),
                "n": b64(&rsa.n), "e": b64(&rsa.e),
            });
            let signer = if key == KeyId::RsaWeak {
                Signer::WeakRsa {
                    len: rsa.n.len(),
                    modulus: Montgomery::new(&rsa.n),
                    d: rsa.d,
                }
            } else {
                Signer::Rsa(RsaKeyPair::from_pkcs8(&der).expect("RSA PKCS#8 key"))
            };
            Material { signer, jwk }
        }
        KeyId::EcA => {
            let kp = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                .expect("P-256 PKCS#8 key");
            let point = kp.public_key().as_ref().to_vec();
            assert_eq!(point.len(), 65, "uncompressed P-256 point");
            let jwk = json!({
                "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                "kid": key.kid(), "use": "sig", "alg": key.alg(),
            });
            Material {
                signer: Signer::Ec(kp),
                jwk,
            }
        }
        KeyId::Ed25519A => {
            let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).expect("Ed25519 PKCS#8 key");
            let jwk = json!({
                "kty": "OKP", "crv": "Ed25519", "x": b64(kp.public_key().as_ref()),
                "kid": key.kid(), "use": "sig", "alg": key.alg(),
            });
            Material {
                signer: Signer::Ed(kp),
                jwk,
            }
        }
    }
}

fn sign_input(key: KeyId, alg: &str, input: &[u8]) -> Vec<u8> {
    if alg.eq_ignore_ascii_case("none") {
        return Vec::new();
    }
    let hmac_alg = match alg {
        "HS256" => Some(hmac::HMAC_SHA256),
        "HS384" => Some(hmac::HMAC_SHA384),
        "HS512" => Some(hmac::HMAC_SHA512),
        _ => None,
    };
    if let Some(h) = hmac_alg {
        let k = hmac::Key::new(h, key.public_pem().as_bytes());
        return hmac::sign(&k, input).as_ref().to_vec();
    }
    let rng = SystemRandom::new();
    match &material(key).signer {
        Signer::Rsa(kp) => {
            let padding: &'static dyn signature::RsaEncoding = match alg {
                "RS384" => &signature::RSA_PKCS1_SHA384,
                "RS512" => &signature::RSA_PKCS1_SHA512,
                "PS256" => &signature::RSA_PSS_SHA256,
                "PS384" => &signature::RSA_PSS_SHA384,
                "PS512" => &signature::RSA_PSS_SHA512,
                _ => &signature::RSA_PKCS1_SHA256,
            };
            let mut sig = vec![0u8; kp.public_modulus_len()];
            kp.sign(padding, &rng, input, &mut sig).expect("RSA sign");
            sig
        }
        Signer::Ec(kp) => kp.sign(&rng, input).expect("ECDSA sign").as_ref().to_vec(),
        Signer::Ed(kp) => kp.sign(input).as_ref().to_vec(),
        Signer::WeakRsa { modulus, d, len } => {
            let (dalg, prefix): (&'static digest::Algorithm, &[u8]) = match alg {
                "RS384" => (&digest::SHA384, &DIGEST_INFO_SHA384),
                "RS512" => (&digest::SHA512, &DIGEST_INFO_SHA512),
                _ => (&digest::SHA256, &DIGEST_INFO_SHA256),
            };
            let hash = digest::digest(dalg, input);
            // EMSA-PKCS1-v1_5: 00 01 FF..FF 00 DigestInfo
            let t_len = prefix.len() + hash.as_ref().len();
            assert!(*len >= t_len + 11, "modulus too short for PKCS#1 v1.5");
            let mut em = vec![0xFFu8; *len];
            em[0] = 0x00;
            em[1] = 0x01;
            em[*len - t_len - 1] = 0x00;
            em[*len - t_len..*len - hash.as_ref().len()].copy_from_slice(prefix);
            em[*len - hash.as_ref().len()..].copy_from_slice(hash.as_ref());
            modulus.pow_be(&em, d, *len)
        }
    }
}

#[rustfmt::skip]
const DIGEST_INFO_SHA256: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
];
#[rustfmt::skip]
const DIGEST_INFO_SHA384: [u8; 19] = [
    0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30,
];
#[rustfmt::skip]
const DIGEST_INFO_SHA512: [u8; 19] = [
    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40,
];

fn pem_to_der(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    STANDARD.decode(b64).expect("PEM base64")
}

struct RsaParts {
    n: Vec<u8>,
    e: Vec<u8>,
    d: Vec<u8>,
}

/// One DER TLV: (tag, contents, rest).
fn der_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    assert!(input.len() >= 2, "DER: truncated");
    let tag = input[0];
    let (len, hdr) = if input[1] < 0x80 {
        (usize::from(input[1]), 2)
    } else {
        let n = usize::from(input[1] & 0x7f);
        assert!(
            (1..=4).contains(&n) && input.len() >= 2 + n,
            "DER: bad length"
        );
        let len = input[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    assert!(input.len() >= hdr + len, "DER: truncated contents");
    (tag, &input[hdr..hdr + len], &input[hdr + len..])
}

fn der_uint(input: &[u8]) -> (Vec<u8>, &[u8]) {
    let (tag, content, rest) = der_tlv(input);
    assert_eq!(tag, 0x02, "DER: expected INTEGER");
    let start = content
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(content.len());
    (content[start..].to_vec(), rest)
}

/// PKCS#8 PrivateKeyInfo holding an RFC 8017 RSAPrivateKey → n, e, d.
fn parse_pkcs8_rsa(der: &[u8]) -> RsaParts {
    let (tag, pki, _) = der_tlv(der);
    assert_eq!(tag, 0x30, "PKCS#8: expected SEQUENCE");
    let (_version, rest) = der_uint(pki);
    let (tag, _alg, rest) = der_tlv(rest);
    assert_eq!(tag, 0x30, "PKCS#8: expected AlgorithmIdentifier");
    let (tag, octets, _) = der_tlv(rest);
    assert_eq!(tag, 0x04, "PKCS#8: expected OCTET STRING");
    let (tag, rsa, _) = der_tlv(octets);
    assert_eq!(tag, 0x30, "RSAPrivateKey: expected SEQUENCE");
    let (_version, rest) = der_uint(rsa);
    let (n, rest) = der_uint(rest);
    let (e, rest) = der_uint(rest);
    let (d, _) = der_uint(rest);
    RsaParts { n, e, d }
}

/// Modular exponentiation mod an odd modulus (Montgomery, 32-bit limbs,
/// little-endian). Only for the weak test key: not constant time.
struct Montgomery {
    n: Vec<u32>,
    n_inv: u32,
    r2: Vec<u32>,
}

impl Montgomery {
    fn new(n_be: &[u8]) -> Montgomery {
        let k = n_be.len().div_ceil(4);
        let n = be_to_limbs(n_be, k);
        assert!(n[0] & 1 == 1, "modulus must be odd");
        // Newton iteration for n[0]^-1 mod 2^32 (3 correct bits → 48).
        let mut inv = n[0];
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n[0].wrapping_mul(inv)));
        }
        // R^2 mod n, R = 2^(32k): double 1 (64k times) mod n.
        let mut r2 = vec![0u32; k];
        r2[0] = 1;
        for _ in 0..64 * k {
            let carry = shl1(&mut r2);
            if carry || geq(&r2, &n) {
                sub_assign(&mut r2, &n);
            }
        }
        Montgomery {
            n,
            n_inv: inv.wrapping_neg(),
            r2,
        }
    }

    fn mul(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        let n = &self.n;
        let k = n.len();
        let mut t = vec![0u32; k + 2];
        for &bi in b.iter().take(k) {
            let mut c: u64 = 0;
            for (tj, aj) in t.iter_mut().zip(a.iter()).take(k) {
                let s = u64::from(*tj) + u64::from(*aj) * u64::from(bi) + c;
                *tj = s as u32;
                c = s >> 32;
            }
            let s = u64::from(t[k]) + c;
            t[k] = s as u32;
            t[k + 1] = (s >> 32) as u32;
            let m = t[0].wrapping_mul(self.n_inv);
            let s = u64::from(t[0]) + u64::from(m) * u64::from(n[0]);
            let mut c = s >> 32;
            for j in 1..k {
                let s = u64::from(t[j]) + u64::from(m) * u64::from(n[j]) + c;
                t[j - 1] = s as u32;
                c = s >> 32;
            }
            let s = u64::from(t[k]) + c;
            t[k - 1] = s as u32;
            t[k] = t[k + 1] + (s >> 32) as u32;
            t[k + 1] = 0;
        }
        let mut r = t[..k].to_vec();
        if t[k] != 0 || geq(&r, n) {
            sub_assign(&mut r, n);
        }
        r
    }

    /// base^exp mod n, big-endian in and out (`out_len` bytes).
    fn pow_be(&self, base_be: &[u8], exp_be: &[u8], out_len: usize) -> Vec<u8> {
        let k = self.n.len();
        let base = be_to_limbs(base_be, k);
        assert!(!geq(&base, &self.n), "base must be below the modulus");
        let mut one = vec![0u32; k];
        one[0] = 1;
        let base_m = self.mul(&base, &self.r2);
        let mut acc = self.mul(&one, &self.r2);
        for byte in exp_be {
            for bit in (0..8).rev() {
                acc = self.mul(&acc, &acc);
                if (byte >> bit) & 1 == 1 {
                    acc = self.mul(&acc, &base_m);
                }
            }
        }
        limbs_to_be(&self.mul(&acc, &one), out_len)
    }
}

fn be_to_limbs(be: &[u8], k: usize) -> Vec<u32> {
    let mut out = vec![0u32; k];
    for (i, byte) in be.iter().rev().enumerate() {
        out[i / 4] |= u32::from(*byte) << (8 * (i % 4));
    }
    out
}

fn limbs_to_be(limbs: &[u32], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for (i, slot) in out.iter_mut().rev().enumerate() {
        *slot = limbs.get(i / 4).map_or(0, |l| (l >> (8 * (i % 4))) as u8);
    }
    out
}

fn geq(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

fn sub_assign(a: &mut [u32], b: &[u32]) {
    let mut borrow = false;
    for (x, y) in a.iter_mut().zip(b.iter()) {
        let (d1, b1) = x.overflowing_sub(*y);
        let (d2, b2) = d1.overflowing_sub(u32::from(borrow));
        *x = d2;
        borrow = b1 || b2;
    }
}

fn shl1(a: &mut [u32]) -> bool {
    let mut carry = 0u32;
    for x in a.iter_mut() {
        let next = *x >> 31;
        *x = (*x << 1) | carry;
        carry = next;
    }
    carry == 1
}

// ---- authorization code flow (console SSO) ---------------------------------

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// `GET /authorize`: checks the request like a real provider (client,
/// response type, PKCE S256, state, nonce) and, with no login form, signs in
/// the person set by `sign_in_as`: 302 back to the client with a code.
async fn authorize_handler(
    State(s): State<Arc<Shared>>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mut g = s.lock();
    let Some(sso) = g.sso.as_mut() else {
        return oauth_error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "SSO is not enabled",
        );
    };
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("client_id") != sso.client_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "unknown client_id",
        );
    }
    let redirect_uri = get("redirect_uri");
    if !redirect_uri.starts_with("http") {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "redirect_uri");
    }
    let state = get("state");
    let back = |params: &[(&str, &str)]| {
        let mut url = url::Url::parse(&redirect_uri).expect("redirect_uri");
        url.query_pairs_mut().extend_pairs(params);
        (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
    };
    let scopes = get("scope");
    let ok = get("response_type") == "code"
        && get("code_challenge_method") == "S256"
        && !get("code_challenge").is_empty()
        && !state.is_empty()
        && !get("nonce").is_empty()
        && scopes.split(' ').any(|x| x == "openid");
    if !ok {
        return back(&[("error", "invalid_request"), ("state", &state)]);
    }
    let Some(email) = sso.login_email.clone() else {
        return back(&[("error", "access_denied"), ("state", &state)]);
    };
    let code = random_id();
    sso.codes.insert(
        code.clone(),
        CodeGrant {
            redirect_uri: redirect_uri.clone(),
            challenge: get("code_challenge"),
            nonce: get("nonce"),
            email,
        },
    );
    drop(g);
    back(&[("code", &code), ("state", &state)])
}

/// `POST /token`: client authentication (Basic or form), a code used once,
/// the same redirect URI, the PKCE verifier; answers an ID token signed with
/// the current signing key, `aud` the client, with the authorize `nonce`.
async fn token_handler(
    State(s): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    axum::Form(f): axum::Form<std::collections::HashMap<String, String>>,
) -> Response {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let (grant, key, issuer) = {
        let mut g = s.lock();
        let key = g.signing_key;
        let Some(sso) = g.sso.as_mut() else {
            return oauth_error(
                StatusCode::NOT_FOUND,
                "invalid_request",
                "SSO is not enabled",
            );
        };
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        let (id, secret) = match basic {
            Some(pair) => {
                let (id, secret) = pair.split_once(':').unwrap_or((&pair, ""));
                let dec = |x: &str| {
                    url::form_urlencoded::parse(format!("x={x}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                (dec(id), dec(secret))
            }
            None => (get("client_id"), get("client_secret")),
        };
        if id != sso.client_id || secret != sso.client_secret {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "bad client credentials",
            );
        }
        if get("grant_type") != "authorization_code" {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "code only",
            );
        }
        let Some(grant) = sso.codes.remove(&get("code")) else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "unknown or used code",
            );
        };
        (grant, key, s.issuer.clone())
    };
    if get("redirect_uri") != grant.redirect_uri {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri differs",
        );
    }
    let verifier = get("code_verifier");
    let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    if verifier.is_empty() || challenge != grant.challenge {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "PKCE verification failed",
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let client_id = s
        .lock()
        .sso
        .as_ref()
        .map(|x| x.client_id.clone())
        .unwrap_or_default();
    let claims = json!({
        "iss": issuer,
        "sub": format!("person:{}", grant.email),
        "aud": client_id,
        "iat": now,
        "exp": now + 300,
        "nonce": grant.nonce,
        "email": grant.email,
        "email_verified": true,
    });
    let header = json!({"alg": key.alg(), "typ": "JWT", "kid": key.kid()});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("header")),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims"))
    );
    let sig = sign_input(key, key.alg(), signing_input.as_bytes());
    let id_token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig));
    axum::Json(json!({
        "access_token": random_id(),
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}
