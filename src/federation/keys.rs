//! Turning JWKs into verification keys: which JWKs are kept
//! ([`VerifyingKey::from_jwk`]: asymmetric signature keys of sound size and
//! curve only) and which token algorithms each key may verify ([`KeyFamily`]).
//! No I/O here; `fetch` gets the JWKS and `jwks` caches the result.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512,
    RSA_PSS_2048_8192_SHA256, RSA_PSS_2048_8192_SHA384, RSA_PSS_2048_8192_SHA512, RsaParameters,
    RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::excerpt;

/// Smallest RSA modulus accepted: RFC 7518 §3.3 requires 2048 bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted: what aws-lc-rs verifies, and a bound on CPU per verification.
pub const MAX_RSA_BITS: usize = 8192;

/// Curves accepted for ECDSA (RFC 7518 §3.4 ties ES256 to P-256 and ES384 to P-384).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EcCurve {
    /// NIST P-256, for ES256.
    P256,
    /// NIST P-384, for ES384.
    P384,
}

/// What kind of public key a JWK is: the key, not the token header, decides
/// which algorithms it verifies (RFC 8725 §2.1, §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFamily {
    /// RS256/384/512 and PS256/384/512.
    Rsa,
    /// ES256 or ES384, by curve.
    Ec(EcCurve),
    /// EdDSA (RFC 8037).
    Ed25519,
}

impl KeyFamily {
    /// Whether a signature made with `alg` may be checked with a key of this family.
    pub fn accepts(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (
                KeyFamily::Rsa,
                RS256 | RS384 | RS512 | PS256 | PS384 | PS512
            ) | (KeyFamily::Ec(EcCurve::P256), ES256)
                | (KeyFamily::Ec(EcCurve::P384), ES384)
                | (KeyFamily::Ed25519, EdDSA)
        )
    }

    /// Short name for error messages and the admin status.
    pub fn name(self) -> &'static str {
        match self {
            KeyFamily::Rsa => "RSA",
            KeyFamily::Ec(EcCurve::P256) => "EC P-256",
            KeyFamily::Ec(EcCurve::P384) => "EC P-384",
            KeyFamily::Ed25519 => "Ed25519",
        }
    }
}

/// One usable public key of an issuer, parsed once when the JWKS is loaded.
#[derive(Clone, Debug)]
pub struct VerifyingKey {
    /// The JWK's `kid`: how a token names its key (RFC 7515 §4.1.4).
    pub kid: Option<String>,
    /// The JWK's own `alg`, when it names one: the token must then use exactly it.
    pub alg: Option<Algorithm>,
    /// Decides which header `alg` values this key may verify.
    pub family: KeyFamily,
    /// The parsed public key handed to jsonwebtoken's verifier.
    pub key: DecodingKey,
    /// The same key parsed once by aws-lc-rs for the algorithm it is most
    /// likely to verify (its JWK `alg`, else RS256 / ES256 / ES384 / EdDSA by
    /// type): a token of that algorithm skips jsonwebtoken's per-call key
    /// construction (for RSA, the bignums and Montgomery set-up).
    pub parsed: Option<(Algorithm, ParsedPublicKey)>,
}

fn rsa_params(alg: Algorithm) -> Option<&'static RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

impl VerifyingKey {
    /// Keeps a JWK only if it is an asymmetric signature key we can verify
    /// with: `use` absent or `sig` (RFC 7517 §4.2), `key_ops` (if any)
    /// allowing `verify`, no `kty: oct` (RFC 8725 §3.1: a public JWKS must
    /// never yield an HMAC secret), RSA of 2048–8192 bits, EC on P-256/P-384
    /// with a point on the curve, Ed25519. The error says why it was dropped.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, String> {
        match &jwk.common.public_key_use {
            None | Some(PublicKeyUse::Signature) => {}
            Some(PublicKeyUse::Encryption) => return Err("use is \"enc\", not \"sig\"".into()),
            Some(PublicKeyUse::Other(u)) => {
                return Err(format!("use is {:?}, not \"sig\"", excerpt(u, 32)));
            }
        }
        if let Some(ops) = &jwk.common.key_operations
            && !ops.iter().any(|op| matches!(op, KeyOperations::Verify))
        {
            return Err("key_ops does not include \"verify\"".into());
        }
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(ka) => match Algorithm::try_from(ka) {
                Ok(a) if a.family() != AlgorithmFamily::Hmac => Some(a),
                _ => return Err(format!("alg {ka} is not an asymmetric signature algorithm")),
            },
        };
        let (family, key, parsed) = match &jwk.algorithm {
            AlgorithmParameters::RSA(p) => {
                let n = b64(&p.n, "n")?;
                let e = b64(&p.e, "e")?;
                let (n, e) = (strip_zeros(&n), strip_zeros(&e));
                let bits = bit_len(n);
                if bits < MIN_RSA_BITS {
                    return Err(format!(
                        "RSA key of {bits} bits is under the {MIN_RSA_BITS}-bit minimum (RFC 7518 §3.3)"
                    ));
                }
                if bits > MAX_RSA_BITS || e.is_empty() || e.len() > 8 {
                    return Err(format!(
                        "RSA key of {bits} bits or its exponent is out of range"
                    ));
                }
                let fast = alg.unwrap_or(Algorithm::RS256);
                let parsed = rsa_params(fast).and_then(|params| {
                    RsaPublicKeyComponents { n, e }
                        .to_parsed_public_key(params)
                        .ok()
                        .map(|k| (fast, k))
                });
                (
                    KeyFamily::Rsa,
                    DecodingKey::from_rsa_raw_components(n, e),
                    parsed,
                )
            }
            AlgorithmParameters::EllipticCurve(p) => {
                let (curve, len, verifier, fast) = match p.curve {
                    EllipticCurve::P256 => (
                        EcCurve::P256,
                        32,
                        &ECDSA_P256_SHA256_FIXED,
                        Algorithm::ES256,
                    ),
                    EllipticCurve::P384 => (
                        EcCurve::P384,
                        48,
                        &ECDSA_P384_SHA384_FIXED,
                        Algorithm::ES384,
                    ),
                    ref other => return Err(format!("EC curve {other:?} is not supported")),
                };
                let (x, y) = (b64(&p.x, "x")?, b64(&p.y, "y")?);
                if x.len() != len || y.len() != len {
                    return Err("EC coordinates have the wrong length for the curve".into());
                }
                // SEC1 uncompressed point, what jsonwebtoken's EC verifier expects.
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let parsed = ParsedPublicKey::new(verifier, &point)
                    .map_err(|_| "EC point is not on the curve".to_owned())?;
                (
                    KeyFamily::Ec(curve),
                    DecodingKey::from_ec_der(&point),
                    Some((fast, parsed)),
                )
            }
            AlgorithmParameters::OctetKeyPair(p) => {
                if p.curve != EllipticCurve::Ed25519 {
                    return Err(format!("OKP curve {:?} is not supported", p.curve));
                }
                let x = b64(&p.x, "x")?;
                let parsed = ParsedPublicKey::new(&ED25519, &x)
                    .map_err(|_| "Ed25519 public key is malformed".to_owned())?;
                (
                    KeyFamily::Ed25519,
                    DecodingKey::from_ed_der(&x),
                    Some((Algorithm::EdDSA, parsed)),
                )
            }
            AlgorithmParameters::OctetKey(_) => {
                return Err(
                    "symmetric (kty \"oct\") keys are never trusted (RFC 8725 §3.1)".into(),
                );
            }
            AlgorithmParameters::Other(o) => {
                let kty = o.fields.get("kty").and_then(|v| v.as_str()).unwrap_or("?");
                return Err(format!("unsupported kty {:?} or curve", excerpt(kty, 16)));
            }
            _ => return Err("unsupported key type".into()),
        };
        if let Some(a) = alg
            && !family.accepts(a)
        {
            return Err(format!(
                "JWK alg {a:?} does not fit a {} key",
                family.name()
            ));
        }
        Ok(VerifyingKey {
            kid: jwk.common.key_id.clone(),
            alg,
            family,
            key,
            parsed,
        })
    }
}

fn b64(s: &str, field: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| format!("JWK member {field:?} is not base64url"))
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

fn bit_len(b: &[u8]) -> usize {
    match b.first() {
        None => 0,
        Some(&first) => (b.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

/// Real keys for tests (generated with aws-lc-rs) and a compact JWS signer,
/// shared with the tests of `validate`.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod test_keys {
    use std::sync::OnceLock;

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{self as sig, KeyPair as _};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};

    use super::VerifyingKey;

    /// A private key of each family used in tests.
    pub(crate) enum TestKey {
        Rsa(&'static sig::RsaKeyPair),
        Ec256(&'static sig::EcdsaKeyPair),
        Ed(&'static sig::Ed25519KeyPair),
    }

    /// base64url without padding.
    pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    static RSA: [OnceLock<sig::RsaKeyPair>; 2] = [OnceLock::new(), OnceLock::new()];
    static EC: OnceLock<sig::EcdsaKeyPair> = OnceLock::new();
    static ED: OnceLock<sig::Ed25519KeyPair> = OnceLock::new();

    /// RSA-2048 key number `i` (0 or 1), generated once per test binary.
    pub(crate) fn rsa(i: usize) -> TestKey {
        TestKey::Rsa(RSA[i].get_or_init(|| sig::RsaKeyPair::generate(KeySize::Rsa2048).unwrap()))
    }

    /// A P-256 key.
    pub(crate) fn ec256() -> TestKey {
        TestKey::Ec256(EC.get_or_init(|| {
            sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap()
        }))
    }

    /// An Ed25519 key.
    pub(crate) fn ed25519() -> TestKey {
        TestKey::Ed(ED.get_or_init(|| sig::Ed25519KeyPair::generate().unwrap()))
    }

    impl TestKey {
        /// The public JWK, with `kid` and extra members (e.g. `use`, `alg`).
        pub(crate) fn jwk(&self, kid: &str, extra: Value) -> Value {
            let mut jwk = match self {
                TestKey::Rsa(k) => {
                    let p = k.public_key();
                    json!({"kty": "RSA", "n": b64(p.modulus().big_endian_without_leading_zero()),
                           "e": b64(p.exponent().big_endian_without_leading_zero())})
                }
                TestKey::Ec256(k) => {
                    let p = k.public_key().as_ref();
                    json!({"kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
                }
                TestKey::Ed(k) => {
                    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.public_key().as_ref())})
                }
            };
            jwk["kid"] = json!(kid);
            if let Value::Object(extra) = extra {
                for (k, v) in extra {
                    jwk[k] = v;
                }
            }
            jwk
        }

        /// The public key as the cache would hold it.
        pub(crate) fn verifying(&self, kid: &str) -> VerifyingKey {
            VerifyingKey::from_jwk(&serde_json::from_value(self.jwk(kid, json!({}))).unwrap())
                .unwrap()
        }

        /// Signs `signing_input` with `alg` (RS*/PS* for RSA).
        pub(crate) fn sign(&self, alg: &str, signing_input: &[u8]) -> Vec<u8> {
            let rng = SystemRandom::new();
            match self {
                TestKey::Rsa(k) => {
                    let pad: &'static dyn sig::RsaEncoding = match alg {
                        "RS256" => &sig::RSA_PKCS1_SHA256,
                        "RS384" => &sig::RSA_PKCS1_SHA384,
                        "RS512" => &sig::RSA_PKCS1_SHA512,
                        "PS256" => &sig::RSA_PSS_SHA256,
                        other => panic!("no RSA padding for {other}"),
                    };
                    let mut out = vec![0; k.public_modulus_len()];
                    k.sign(pad, &rng, signing_input, &mut out).unwrap();
                    out
                }
                TestKey::Ec256(k) => k.sign(&rng, signing_input).unwrap().as_ref().to_vec(),
                TestKey::Ed(k) => k.sign(signing_input).as_ref().to_vec(),
            }
        }

        /// A compact JWS of raw header and payload JSON text (so tests can
        /// write duplicates and odd values).
        pub(crate) fn token_raw(&self, alg: &str, header: &str, payload: &str) -> String {
            let input = format!("{}.{}", b64(header), b64(payload));
            let sig = self.sign(alg, input.as_bytes());
            format!("{input}.{}", b64(sig))
        }

        /// A compact JWS with header `{"alg", "kid", "typ": "JWT"}` and `claims`.
        pub(crate) fn token(&self, alg: &str, kid: &str, claims: &Value) -> String {
            let header = json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string();
            self.token_raw(alg, &header, &claims.to_string())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::test_keys::{b64, ec256, rsa};
    use super::*;

    #[test]
    fn drop_reasons_are_explained() {
        let weak: Jwk =
            serde_json::from_value(json!({"kty": "RSA", "n": b64([0xC5u8; 128]), "e": "AQAB"}))
                .unwrap();
        assert!(
            VerifyingKey::from_jwk(&weak)
                .unwrap_err()
                .contains("1024 bits")
        );
        let enc: Jwk = serde_json::from_value(rsa(0).jwk("e", json!({"use": "enc"}))).unwrap();
        assert!(VerifyingKey::from_jwk(&enc).unwrap_err().contains("enc"));
        let mixed: Jwk = serde_json::from_value(ec256().jwk("m", json!({"alg": "RS256"}))).unwrap();
        assert!(
            VerifyingKey::from_jwk(&mixed)
                .unwrap_err()
                .contains("does not fit")
        );
    }

    #[test]
    fn p384_keys_verify_es384_only() {
        use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        let k = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let p = k.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-384", "x": b64(&p[1..49]), "y": b64(&p[49..97])});
        let vk = VerifyingKey::from_jwk(&serde_json::from_value(jwk).unwrap()).unwrap();
        assert_eq!(vk.family, KeyFamily::Ec(EcCurve::P384));
        assert!(vk.family.accepts(Algorithm::ES384) && !vk.family.accepts(Algorithm::ES256));
        let sig = k
            .sign(&aws_lc_rs::rand::SystemRandom::new(), b"msg")
            .unwrap();
        let sig = b64(sig.as_ref());
        assert!(jsonwebtoken::crypto::verify(&sig, b"msg", &vk.key, Algorithm::ES384).unwrap());
    }
}
