//! A GitHub-Actions-shaped identity provider without a server, shared by
//! `benches/exchange.rs` and `examples/loadgen.rs` (included with `#[path]`):
//! the static JWKS of `fixtures/keys/rsa2048-a.pem` and RS256 tokens signed
//! with it, shaped like `fixtures/claims/github-actions.json`.
#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The `iss` of the tokens; registered with a static JWKS, so never contacted.
pub const ISSUER: &str = "https://token.actions.githubusercontent.com";
/// The `kid` of the one key.
pub const KID: &str = "rsa-a";
/// The audience: org `default`'s name, what an issuer accepts by default.
pub const AUDIENCE: &str = "default";

const PRIVATE_PEM: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/keys/rsa2048-a.pem"
));
/// SubjectPublicKeyInfo PEM of the key, for bare `jsonwebtoken` verification.
pub const PUBLIC_PEM: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/keys/rsa2048-a.pub.pem"
));
const CLAIMS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/claims/github-actions.json"
));

fn der() -> Vec<u8> {
    let body: String = PRIVATE_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body")
}

/// The static JWKS to register the issuer with (`{"keys": [<rsa-a>]}`).
pub fn jwks() -> Value {
    let pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der()).expect("RSA PKCS#8");
    let public = aws_lc_rs::signature::KeyPair::public_key(&pair);
    let n = public.modulus().big_endian_without_leading_zero().to_vec();
    let e = public.exponent().big_endian_without_leading_zero().to_vec();
    json!({"keys": [{
        "kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e),
    }]})
}

/// The `iss` of issuer `k`: [`ISSUER`] for 0, then made-up private issuers
/// (all sharing the one key, registered with a static JWKS).
pub fn issuer(k: usize) -> String {
    if k == 0 {
        ISSUER.to_string()
    } else {
        format!("https://idp-{k:03}.ci.example")
    }
}

/// The subject of account `i` (each account is bound to its own).
pub fn subject(i: usize) -> String {
    format!("repo:acme/svc-{i:05}:ref:refs/heads/main")
}

/// Signs GitHub-shaped claims for `sub`, issued at `now`, valid `ttl` seconds.
pub struct Minter {
    key: jsonwebtoken::EncodingKey,
    claims: Value,
}

impl Minter {
    pub fn new() -> Minter {
        Minter {
            key: jsonwebtoken::EncodingKey::from_rsa_pem(PRIVATE_PEM.as_bytes()).expect("RSA PEM"),
            claims: serde_json::from_str(CLAIMS).expect("claims fixture"),
        }
    }

    pub fn mint(&self, sub: &str, now: i64, ttl: i64) -> String {
        self.mint_for(ISSUER, sub, now, ttl)
    }

    pub fn mint_for(&self, iss: &str, sub: &str, now: i64, ttl: i64) -> String {
        let mut claims = self.claims.clone();
        let obj = claims.as_object_mut().expect("claims object");
        obj.insert("sub".into(), json!(sub));
        obj.insert("iss".into(), json!(iss));
        obj.insert("aud".into(), json!(AUDIENCE));
        obj.insert("iat".into(), json!(now));
        obj.insert("nbf".into(), json!(now));
        obj.insert("exp".into(), json!(now + ttl));
        obj.insert(
            "jti".into(),
            json!(format!("{:016x}", fastrand_u64(now as u64, sub))),
        );
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(KID.into());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("RS256 sign")
    }
}

fn fastrand_u64(seed: u64, s: &str) -> u64 {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for b in s.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
    }
    h
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
