//! fedgate's own access tokens (RFC 9068 JWTs): the signing keys, minting,
//! verifying, rotation.
//!
//! Keys live in the store so every replica verifies what another minted. The
//! newest live key signs; retired keys keep verifying for as long as a token
//! they signed can live. Signing uses parsed aws-lc-rs key pairs held in
//! memory (jsonwebtoken's `encode` re-parses the key on every call).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use moka::sync::Cache;
use serde::{Deserialize, Serialize};

use crate::kek::Kek;
use crate::secrets::{new_id, sha256_hex};
use crate::store::{DynStore, SigningKeyRow};

/// Signing failed (a bug or a broken key; never the caller's input).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("signing failed: {0}")]
    Sign(String),
}

/// How long a retired key keeps verifying: longer than any token can live.
pub const RETIRED_KEY_GRACE_MS: i64 = 13 * 3600 * 1000;

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// `act` (RFC 8693 §4.1): who the token was exchanged for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub iss: String,
    pub sub: String,
}

/// The claims of a minted access token (RFC 9068 §2.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The service account's (or user's) id.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// `iat` in milliseconds: revocation watermarks are in milliseconds, so a
    /// token minted just after a re-enable is not mistaken for an older one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub iat_ms: i64,
    pub jti: String,
    /// RFC 9068 §2.2: the client the token was issued to; here the principal.
    pub client_id: String,
    /// The organization's name.
    pub org: String,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

enum KeyPairKind {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// One of fedgate's signing keys, parsed.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pair: KeyPairKind,
    decoding: DecodingKey,
    /// The JWS header of minted tokens, base64url: the same for every token.
    header_b64: String,
    pub jwk: serde_json::Value,
    pub retired_at: Option<i64>,
}

impl SigningKey {
    fn from_row(row: &SigningKeyRow) -> anyhow::Result<SigningKey> {
        let der = STANDARD
            .decode(&row.private_key)
            .map_err(|e| anyhow::anyhow!("signing key {}: bad base64: {e}", row.kid))?;
        let (alg, pair, jwk, decoding) = match row.alg.as_str() {
            "ES256" => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .map_err(|e| anyhow::anyhow!("signing key {}: {e}", row.kid))?;
                let point = pair.public_key().as_ref();
                if point.len() != 65 {
                    anyhow::bail!("signing key {}: unexpected EC point length", row.kid);
                }
                let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
                let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
                let decoding = DecodingKey::from_ec_components(&x, &y)?;
                let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y,
                    "kid": row.kid, "use": "sig", "alg": "ES256"});
                (Algorithm::ES256, KeyPairKind::Es256(pair), jwk, decoding)
            }
            "EdDSA" => {
                let pair = Ed25519KeyPair::from_pkcs8(&der)
                    .map_err(|e| anyhow::anyhow!("signing key {}: {e}", row.kid))?;
                let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
                let decoding = DecodingKey::from_ed_components(&x)?;
                let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x,
                    "kid": row.kid, "use": "sig", "alg": "EdDSA"});
                (Algorithm::EdDSA, KeyPairKind::EdDsa(pair), jwk, decoding)
            }
            other => anyhow::bail!("signing key {}: unsupported algorithm {other}", row.kid),
        };
        let alg_name = if alg == Algorithm::EdDSA {
            "EdDSA"
        } else {
            "ES256"
        };
        let header = serde_json::json!({"alg": alg_name, "typ": "at+jwt", "kid": row.kid});
        Ok(SigningKey {
            kid: row.kid.clone(),
            alg,
            pair,
            decoding,
            header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
            jwk,
            retired_at: row.retired_at,
        })
    }

    /// Signs `message` and appends the signature, base64url, to `out`.
    fn sign_into(&self, message: &[u8], out: &mut String) -> Result<(), TokenError> {
        match &self.pair {
            KeyPairKind::Es256(p) => {
                let sig = p
                    .sign(&SystemRandom::new(), message)
                    .map_err(|_| TokenError::Sign("ES256".into()))?;
                URL_SAFE_NO_PAD.encode_string(sig.as_ref(), out);
            }
            KeyPairKind::EdDsa(p) => URL_SAFE_NO_PAD.encode_string(p.sign(message).as_ref(), out),
        }
        Ok(())
    }
}

/// Generates a new key row (PKCS#8, base64) for `alg` (`ES256` or `EdDSA`).
pub fn generate_key(alg: &str, now: i64) -> anyhow::Result<SigningKeyRow> {
    let der = match alg {
        "ES256" => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|k| k.to_pkcs8v1())
            .map_err(|e| anyhow::anyhow!("cannot generate ES256 key: {e}"))?
            .as_ref()
            .to_vec(),
        "EdDSA" => Ed25519KeyPair::generate()
            .and_then(|k| k.to_pkcs8())
            .map_err(|e| anyhow::anyhow!("cannot generate Ed25519 key: {e}"))?
            .as_ref()
            .to_vec(),
        other => anyhow::bail!("unsupported signing algorithm {other:?}: use ES256 or EdDSA"),
    };
    Ok(SigningKeyRow {
        kid: new_id("fg"),
        alg: alg.to_string(),
        private_key: STANDARD.encode(der),
        created_at: now,
        retired_at: None,
    })
}

/// Creates a new current key and retires the others (`fedgate keys rotate`).
/// Retired keys keep verifying for [`RETIRED_KEY_GRACE_MS`]. Running replicas
/// are told at once (`signing_keys` change); one that misses it still loads
/// the new key on its periodic resync or on the first token it cannot verify.
pub async fn rotate(store: &DynStore, alg: &str, now: i64) -> anyhow::Result<String> {
    rotate_with(store, alg, None, now).await
}

/// [`rotate`], storing the new key sealed with `kek` when given. Without a
/// KEK on a store whose keys are sealed it refuses, rather than store the
/// new key in the clear.
pub async fn rotate_with(
    store: &DynStore,
    alg: &str,
    kek: Option<&Kek>,
    now: i64,
) -> anyhow::Result<String> {
    if kek.is_none()
        && let Some(sealed) = store
            .signing_keys(now - RETIRED_KEY_GRACE_MS)
            .await?
            .iter()
            .find_map(|r| crate::kek::sealed_with(&r.private_key).map(String::from))
    {
        anyhow::bail!(
            "the stored signing keys are encrypted (key-encryption key {sealed}): pass --key-encryption-key-file"
        );
    }
    let row = generate_key(alg, now)?;
    // Check the KEK opens what is stored before adding a key under it.
    for r in store.signing_keys(now - RETIRED_KEY_GRACE_MS).await? {
        crate::kek::open_row(&r, kek)?;
    }
    store
        .insert_signing_key(&crate::kek::seal_row(row.clone(), kek)?)
        .await?;
    store.retire_signing_keys_except(&row.kid, now).await?;
    if let Err(e) = store
        .publish_change(&crate::change::Change::SigningKeys.encode())
        .await
    {
        tracing::warn!(error = %e, "key rotated, but replicas were not notified; they pick it up within a minute");
    }
    Ok(row.kid)
}

/// `fedgate keys rewrap`: stores every signing key (retired ones too) sealed
/// under `kek`'s first key, or in the clear when `decrypt`; opens them with
/// any key of `kek`. Returns how many rows were rewritten. Running servers
/// reload their keys (`signing_keys` change); each must already have a KEK
/// file that opens the new form.
pub async fn rewrap(store: &DynStore, kek: Option<&Kek>, decrypt: bool) -> anyhow::Result<usize> {
    if kek.is_none() && !decrypt {
        anyhow::bail!(
            "pass --key-encryption-key-file (and --decrypt to store the keys unencrypted)"
        );
    }
    let rows = store.signing_keys(i64::MIN).await?;
    // Open them all before changing any: a wrong file changes nothing.
    let plain = rows
        .iter()
        .map(|r| crate::kek::open_row(r, kek))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for row in plain {
        let kid = row.kid.clone();
        let stored = crate::kek::seal_row(row, if decrypt { None } else { kek })?;
        store.update_signing_key(&kid, &stored.private_key).await?;
    }
    if let Err(e) = store
        .publish_change(&crate::state::Change::SigningKeys.encode())
        .await
    {
        tracing::warn!(error = %e, "keys rewrapped, but running servers were not notified");
    }
    Ok(rows.len())
}

struct Keyring {
    current: Arc<SigningKey>,
    by_kid: HashMap<String, Arc<SigningKey>>,
}

/// The signing keys in memory, plus the cache of verified tokens.
pub struct Signer {
    ring: RwLock<Arc<Keyring>>,
    issuer: String,
    verified: Cache<String, Arc<AccessClaims>>,
    last_reload: std::sync::Mutex<i64>,
    /// Opens the stored keys and seals a first one (`--key-encryption-key-file`).
    kek: Option<Arc<Kek>>,
}

impl Signer {
    /// Loads the keys, creating the first one (`alg`) on an empty store.
    pub async fn load(
        store: &DynStore,
        issuer: &str,
        alg: &str,
        now: i64,
    ) -> anyhow::Result<Signer> {
        Self::load_with(store, issuer, alg, None, now).await
    }

    /// [`Signer::load`] with the key-encryption key of the stored keys.
    pub async fn load_with(
        store: &DynStore,
        issuer: &str,
        alg: &str,
        kek: Option<Arc<Kek>>,
        now: i64,
    ) -> anyhow::Result<Signer> {
        let ring = load_ring(store, alg, kek.as_deref(), now).await?;
        Ok(Signer {
            ring: RwLock::new(Arc::new(ring)),
            issuer: issuer.to_string(),
            verified: Cache::builder()
                .max_capacity(200_000)
                .time_to_live(Duration::from_secs(12 * 3600))
                .build(),
            last_reload: std::sync::Mutex::new(0),
            kek,
        })
    }

    /// Re-reads the keys after a rotation (here or on another replica).
    pub async fn reload(&self, store: &DynStore, now: i64) -> anyhow::Result<()> {
        let current_alg = self.current().alg;
        let alg = if current_alg == Algorithm::EdDSA {
            "EdDSA"
        } else {
            "ES256"
        };
        let ring = load_ring(store, alg, self.kek.as_deref(), now).await?;
        if let Ok(mut guard) = self.ring.write() {
            *guard = Arc::new(ring);
        }
        Ok(())
    }

    fn ring(&self) -> Arc<Keyring> {
        match self.ring.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The key that signs now.
    pub fn current(&self) -> Arc<SigningKey> {
        self.ring().current.clone()
    }

    /// The `iss` of minted tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public keys (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> serde_json::Value {
        let ring = self.ring();
        let mut keys: Vec<&Arc<SigningKey>> = ring.by_kid.values().collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        serde_json::json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
    }

    /// Signs `claims` with the current key (`typ: at+jwt`, RFC 9068 §2.1).
    pub fn mint(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        let key = self.current();
        let payload =
            serde_json::to_vec(claims).map_err(|e| TokenError::Sign(format!("claims: {e}")))?;
        // header . payload . signature (≤ 86 base64url characters), one allocation.
        let mut out =
            String::with_capacity(key.header_b64.len() + 2 + payload.len().div_ceil(3) * 4 + 88);
        out.push_str(&key.header_b64);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
        let signing_input_len = out.len();
        out.push('.');
        // The signature goes to its own buffer: `out` is the message while signing.
        let mut sig = String::with_capacity(88);
        key.sign_into(&out.as_bytes()[..signing_input_len], &mut sig)?;
        out.push_str(&sig);
        Ok(out)
    }

    /// Verifies a token fedgate minted; cached by the token's hash, so the
    /// signature is checked once per token per replica. Revocation is not
    /// checked here: joining a token with its principal's liveness is
    /// `crate::service::auth`'s job.
    pub async fn verify(
        &self,
        store: &DynStore,
        token: &str,
        now_s: i64,
    ) -> Result<Arc<AccessClaims>, String> {
        if token.len() > MAX_TOKEN_LEN {
            return Err("malformed access token".into());
        }
        let hash = sha256_hex(token.as_bytes());
        if let Some(c) = self.verified.get(&hash) {
            crate::metrics::cache_lookup(crate::metrics::Cache::VerifiedTokens, true);
            return if c.exp > now_s {
                Ok(c)
            } else {
                Err("access token has expired".into())
            };
        }
        crate::metrics::cache_lookup(crate::metrics::Cache::VerifiedTokens, false);
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| "malformed access token".to_string())?;
        if header.typ.as_deref() != Some("at+jwt") {
            return Err("not a fedgate access token (typ must be at+jwt)".into());
        }
        let kid = header.kid.ok_or("access token has no kid")?;
        // Refusals that need no signature (a flood of old or garbled tokens
        // costs no verification, nor a key reload for an unknown `kid`):
        // the payload must carry a numeric `exp` that has not passed. Read
        // unverified, this can only refuse, and only what would be refused
        // anyway, with the same reason: a token without a well-formed `exp`
        // fails the claim checks, and an expired one (`exp` ≤ now, the
        // verified-token cache's rule) is expired whoever signed it.
        match unverified_exp(token) {
            Some(exp) if exp > now_s => {}
            Some(_) => return Err("access token has expired".into()),
            None => return Err("invalid access token".into()),
        }
        let key = match self.ring().by_kid.get(&kid) {
            Some(k) => k.clone(),
            None => {
                // Minted by another replica after a rotation we have not heard of yet.
                self.reload_rate_limited(store, now_s).await;
                self.ring()
                    .by_kid
                    .get(&kid)
                    .cloned()
                    .ok_or("access token signed by an unknown key")?
            }
        };
        if header.alg != key.alg {
            return Err("access token algorithm does not match its key".into());
        }
        let mut v = Validation::new(key.alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.issuer]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub", "iat"]);
        v.leeway = 0;
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &v).map_err(|e| match e
                .kind()
            {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    "access token has expired".to_string()
                }
                _ => "invalid access token".to_string(),
            })?;
        let claims = Arc::new(data.claims);
        self.verified.insert(hash, claims.clone());
        Ok(claims)
    }

    async fn reload_rate_limited(&self, store: &DynStore, now_s: i64) {
        {
            let Ok(mut last) = self.last_reload.lock() else {
                return;
            };
            if now_s - *last < 5 {
                return;
            }
            *last = now_s;
        }
        if let Err(e) = self.reload(store, now_s * 1000).await {
            tracing::warn!(error = %e, "could not reload signing keys");
        }
    }
}

/// Longest access token looked at; fedgate's are well under 2 KiB.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The `exp` of a compact JWS's payload, unverified: `None` unless the
/// token has three parts and its payload is a JSON object whose `exp` is a
/// non-negative integer (what the claim checks after the signature require).
fn unverified_exp(token: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct Exp {
        exp: u64,
    }
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let exp = serde_json::from_slice::<Exp>(&bytes).ok()?.exp;
    Some(i64::try_from(exp).unwrap_or(i64::MAX))
}

async fn load_ring(
    store: &DynStore,
    alg: &str,
    kek: Option<&Kek>,
    now: i64,
) -> anyhow::Result<Keyring> {
    let mut rows = store.signing_keys(now - RETIRED_KEY_GRACE_MS).await?;
    if !rows.iter().any(|r| r.retired_at.is_none()) {
        let row = crate::kek::seal_row(generate_key(alg, now)?, kek)?;
        store.insert_signing_key(&row).await?;
        rows = store.signing_keys(now - RETIRED_KEY_GRACE_MS).await?;
    }
    let mut by_kid = HashMap::new();
    let mut current: Option<Arc<SigningKey>> = None;
    for row in &rows {
        if kek.is_some() && crate::kek::sealed_with(&row.private_key).is_none() {
            tracing::warn!(kid = %row.kid, "signing key stored unencrypted although --key-encryption-key-file is set; run: fedgate keys rewrap");
        }
        let key = Arc::new(SigningKey::from_row(&crate::kek::open_row(row, kek)?)?);
        // Rows come newest first: the first live one signs.
        if current.is_none() && row.retired_at.is_none() {
            current = Some(key.clone());
        }
        by_kid.insert(row.kid.clone(), key);
    }
    let current = current.ok_or_else(|| anyhow::anyhow!("no live signing key"))?;
    Ok(Keyring { current, by_kid })
}
