//! The checks on a presented JWT, in the order of DESIGN §3, hardened as
//! RFC 8725 asks. Two phases because the issuer is looked up between them:
//! [`peek`] parses without trusting anything (size, compact JWS shape,
//! header, payload, `iss`), then the caller picks the issuer and its key,
//! then [`verify`] checks algorithm, signature and claims. Every check can
//! be recorded in a [`Trace`] for the admin "explain" endpoint.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::keys::VerifyingKey;
use super::{IssuerConfig, excerpt};

/// Largest token accepted (DESIGN §3): bounds parsing work before any signature check.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// One check and its outcome, with the values compared (never the token or a key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable check name (`ValidationError::check_name`), e.g. `exp`, `aud`.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// The values compared, or the failure description.
    pub detail: String,
}

/// Every check in order, for the admin "explain" dry run. A disabled trace
/// (the exchange's hot path) formats nothing.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct Trace {
    checks: Vec<Check>,
    #[serde(skip)]
    disabled: bool,
}

impl Trace {
    /// A trace that records (same as `default()`).
    pub fn new() -> Self {
        Trace::default()
    }

    /// A trace that records nothing, so the exchange pays no formatting.
    pub fn disabled() -> Self {
        Trace {
            checks: Vec::new(),
            disabled: true,
        }
    }

    /// Records a passed check; `detail` is only formatted when recording.
    pub fn push_ok(&mut self, name: &'static str, detail: impl fmt::Display) {
        self.push(name, true, detail);
    }

    /// Records a failed check.
    pub fn push_fail(&mut self, name: &'static str, detail: impl fmt::Display) {
        self.push(name, false, detail);
    }

    /// Records a validation failure under its check name.
    pub fn push_error(&mut self, e: &ValidationError) {
        self.push_fail(e.check_name(), e);
    }

    fn push(&mut self, name: &'static str, ok: bool, detail: impl fmt::Display) {
        if !self.disabled {
            self.checks.push(Check {
                name,
                ok,
                detail: detail.to_string(),
            });
        }
    }

    /// The checks recorded so far.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }
}

/// Why a presented JWT is refused. The `Display` text is the RFC 6749 §5.2
/// `error_description`: it names the failed check and never echoes the
/// token or a key (claim values are quoted truncated).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("the token is {len} bytes; at most {max} are accepted")]
    TooLarge { len: usize, max: usize },
    #[error("the token is a JWE (5 parts); only signed compact JWS tokens are accepted")]
    Jwe,
    #[error("the token is not a compact JWS: expected 3 dot-separated parts, found {0}")]
    NotCompact(usize),
    #[error(
        "the token is a fedgate API key, not a JWT: an API key is used as it is (Authorization: Bearer, or HTTP Basic api:<key>; WANDB_API_KEY), and only an identity provider's JWT is exchanged here"
    )]
    ApiKey,
    #[error("the JWT {part} is not base64url without padding (RFC 7515 §2)")]
    Base64 { part: &'static str },
    #[error("the JWT {part} is not UTF-8")]
    Utf8 { part: &'static str },
    #[error("the JWT {part} is not a JSON object: {reason}")]
    Json { part: &'static str, reason: String },
    #[error(
        "the JWT {part} repeats the member {name:?}; duplicate names are refused (RFC 7519 §4, RFC 7515 §5.2)"
    )]
    Duplicate { part: &'static str, name: String },
    #[error("the JWT header has no \"alg\"")]
    MissingAlg,
    #[error("the JWT header member \"{0}\" must be a string")]
    HeaderType(&'static str),
    #[error("unsecured JWTs (alg \"none\") are refused (RFC 8725 §3.1)")]
    AlgNone,
    #[error(
        "symmetric algorithm {0:?} refused: trusted issuers sign with private keys (RFC 8725 §2.1, §3.1)"
    )]
    SymmetricAlg(String),
    #[error("algorithm {0:?} is not supported")]
    UnsupportedAlg(String),
    #[error(
        "header parameter \"{0}\" refused: keys come only from the registered issuer's JWKS (RFC 8725 §3.10)"
    )]
    ForbiddenHeader(&'static str),
    #[error(
        "header parameter \"crit\" refused: no critical extension is understood here (RFC 7515 §4.1.11): {0}"
    )]
    Crit(String),
    #[error("header parameter \"b64\": unencoded payloads (RFC 7797) are refused")]
    B64,
    #[error("the JWT has no \"iss\" claim")]
    MissingIss,
    #[error("the \"iss\" claim must be a non-empty string")]
    InvalidIss,
    #[error("the JWT has no signature")]
    MissingSignature,
    #[error("the token given to verify is not the one peeked")]
    TokenMismatch,
    #[error("issuer {found:?} is not the configured {expected:?}")]
    IssuerMismatch { found: String, expected: String },
    #[error("algorithm {alg:?} is not allowed for this issuer (allowed: {allowed})")]
    AlgNotAllowed { alg: Algorithm, allowed: String },
    #[error("{0}")]
    KeyMismatch(String),
    #[error("signature verification failed")]
    BadSignature,
    #[error("the JWT has no \"exp\" claim; it is required here")]
    MissingExp,
    #[error("the \"{0}\" claim is not a NumericDate (RFC 7519 §2)")]
    InvalidDate(&'static str),
    #[error(
        "the JWT expired at {} (now {}, leeway {leeway} s): request a new token from your identity provider and exchange that",
        rfc3339(*exp),
        rfc3339(*now)
    )]
    Expired { exp: i64, now: i64, leeway: i64 },
    #[error(
        "the JWT is not valid before {} (now {}, leeway {leeway} s): check the clocks of the identity provider and fedgate",
        rfc3339(*nbf),
        rfc3339(*now)
    )]
    NotYetValid { nbf: i64, now: i64, leeway: i64 },
    #[error(
        "the JWT was issued in the future at {} (now {}, leeway {leeway} s): check the clocks of the identity provider and fedgate",
        rfc3339(*iat),
        rfc3339(*now)
    )]
    IssuedInFuture { iat: i64, now: i64, leeway: i64 },
    #[error("the JWT lives {lifetime} s (exp - {from}); this issuer accepts at most {max} s")]
    LifetimeTooLong {
        lifetime: i64,
        from: &'static str,
        max: i64,
    },
    #[error("the JWT has no \"aud\" claim")]
    MissingAud,
    #[error("the \"aud\" claim must be a string or a non-empty array of strings")]
    InvalidAud,
    #[error("audience {found} is not accepted (accepted: {accepted})")]
    AudMismatch { found: String, accepted: String },
    #[error("the \"sub\" claim is missing or not a non-empty string")]
    MissingSub,
    #[error("the \"jti\" claim must be a string")]
    InvalidJti,
}

/// A NumericDate as people read it: RFC 3339 in UTC (the number itself when
/// it is out of range).
pub fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// `"k1"`, or `none` when a header member is absent.
fn or_none(v: Option<&str>) -> String {
    v.map(|s| format!("{:?}", excerpt(s, 64)))
        .unwrap_or_else(|| "none".into())
}

impl ValidationError {
    /// RFC 6749 §5.2 code: `invalid_request` when the request is malformed
    /// (size, not a JWS, bad base64/UTF-8/JSON), `invalid_grant` when a
    /// well-formed assertion is refused.
    pub fn error_code(&self) -> &'static str {
        use ValidationError::*;
        match self {
            TooLarge { .. }
            | Jwe
            | NotCompact(_)
            | ApiKey
            | Base64 { .. }
            | Utf8 { .. }
            | Json { .. }
            | Duplicate { .. }
            | MissingAlg
            | HeaderType(_)
            | TokenMismatch => "invalid_request",
            _ => "invalid_grant",
        }
    }

    /// Whether the check failed after the signature verified: only such a
    /// refusal is known to come from the issuer, and may reach the audit log
    /// of the organization that trusts it.
    pub fn after_signature(&self) -> bool {
        use ValidationError::*;
        matches!(
            self,
            MissingExp
                | InvalidDate(_)
                | Expired { .. }
                | NotYetValid { .. }
                | IssuedInFuture { .. }
                | LifetimeTooLong { .. }
                | MissingAud
                | InvalidAud
                | AudMismatch { .. }
                | MissingSub
                | InvalidJti
        )
    }

    /// Stable name of the failed check (trace entries, metrics labels).
    pub fn check_name(&self) -> &'static str {
        use ValidationError::*;
        match self {
            TooLarge { .. } => "size",
            Jwe | NotCompact(_) | ApiKey | TokenMismatch => "format",
            Base64 { part } | Utf8 { part } | Json { part, .. } | Duplicate { part, .. } => part,
            MissingAlg | AlgNone | SymmetricAlg(_) | UnsupportedAlg(_) | AlgNotAllowed { .. } => {
                "alg"
            }
            HeaderType(_) | ForbiddenHeader(_) | B64 => "header",
            Crit(_) => "crit",
            MissingIss | InvalidIss | IssuerMismatch { .. } => "iss",
            KeyMismatch(_) => "key",
            MissingSignature | BadSignature => "signature",
            MissingExp | Expired { .. } | InvalidDate("exp") => "exp",
            NotYetValid { .. } | InvalidDate("nbf") => "nbf",
            IssuedInFuture { .. } | InvalidDate(_) => "iat",
            LifetimeTooLong { .. } => "lifetime",
            MissingAud | InvalidAud | AudMismatch { .. } => "aud",
            MissingSub => "sub",
            InvalidJti => "jti",
        }
    }
}

/// A token parsed but not yet trusted: enough to find the issuer and key.
/// `Debug` leaves the raw token out.
#[derive(Clone)]
pub struct Unverified {
    /// Header `alg`, already known to be asymmetric.
    pub alg: Algorithm,
    /// Header `kid`, to choose the issuer's key.
    pub kid: Option<String>,
    /// Header `typ`, informative only (IdPs send `JWT`, `at+jwt` or nothing).
    pub typ: Option<String>,
    /// Unverified `iss`, to look the issuer up by exact value.
    pub iss: String,
    /// The whole header (no duplicate names).
    pub header: Map<String, Value>,
    /// The whole payload, untrusted until `verify` succeeds. Shared with
    /// the [`VerifiedClaims`], not copied.
    pub claims: Arc<Map<String, Value>>,
    raw: String,
    signing_input_len: usize,
    /// The signature, decoded once here and checked in [`verify`].
    signature: Vec<u8>,
}

impl fmt::Debug for Unverified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unverified")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("typ", &self.typ)
            .field("iss", &self.iss)
            .finish_non_exhaustive()
    }
}

/// The claims of a token that passed every check of [`verify`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerifiedClaims {
    /// The issuer, equal to the configured one.
    pub iss: String,
    /// The subject the bindings match (non-empty).
    pub sub: String,
    /// `aud` as a list, whatever its JSON form.
    pub aud: Vec<String>,
    /// Expiry (unix seconds), also the horizon of a single-use `jti` record.
    pub exp: i64,
    /// Issued-at, if present.
    pub iat: Option<i64>,
    /// Not-before, if present.
    pub nbf: Option<i64>,
    /// Token id, for the optional single-use check.
    pub jti: Option<String>,
    /// Every claim, for binding conditions and the explain endpoint.
    pub claims: Arc<Map<String, Value>>,
}

fn fail<T>(trace: &mut Trace, e: ValidationError) -> Result<T, ValidationError> {
    trace.push_error(&e);
    Err(e)
}

/// [`peek_traced`] without a trace (the exchange's hot path).
pub fn peek(token: &str) -> Result<Unverified, ValidationError> {
    peek_traced(token, &mut Trace::disabled())
}

/// Phase one, nothing trusted yet: size, compact JWS, header (`alg`
/// asymmetric, no `jku`/`x5u`/`jwk`, no `crit`), payload object without
/// duplicate names, `iss`, a signature present.
pub fn peek_traced(token: &str, trace: &mut Trace) -> Result<Unverified, ValidationError> {
    use ValidationError as E;
    if token.len() > MAX_TOKEN_BYTES {
        return fail(
            trace,
            E::TooLarge {
                len: token.len(),
                max: MAX_TOKEN_BYTES,
            },
        );
    }
    trace.push_ok(
        "size",
        format_args!("{} bytes (max {MAX_TOKEN_BYTES})", token.len()),
    );
    if token.starts_with(crate::secrets::API_KEY_PREFIX) {
        return fail(trace, E::ApiKey);
    }
    let parts: Vec<&str> = token.split('.').collect();
    let &[h64, p64, s64] = parts.as_slice() else {
        return fail(
            trace,
            if parts.len() == 5 {
                E::Jwe
            } else {
                E::NotCompact(parts.len())
            },
        );
    };
    trace.push_ok("format", "compact JWS, 3 parts");

    let header = decode_object(h64, "header").or_else(|e| fail(trace, e))?;
    let alg = match header.get("alg") {
        None => return fail(trace, E::MissingAlg),
        Some(Value::String(s)) => parse_alg(s).or_else(|e| fail(trace, e))?,
        Some(_) => return fail(trace, E::HeaderType("alg")),
    };
    trace.push_ok("alg", format_args!("{alg:?}: asymmetric"));
    // RFC 8725 §3.10 / §2.7: a key named by the token itself proves nothing.
    for name in ["jku", "x5u", "jwk"] {
        if header.contains_key(name) {
            return fail(trace, E::ForbiddenHeader(name));
        }
    }
    if let Some(crit) = header.get("crit") {
        let what = match crit {
            Value::Array(a) if a.is_empty() => "an empty list is invalid".to_owned(),
            Value::Array(_) => excerpt(&crit.to_string(), 64),
            _ => "not a list".to_owned(),
        };
        return fail(trace, E::Crit(what));
    }
    trace.push_ok("crit", "absent");
    if header.get("b64").is_some_and(|v| v != &Value::Bool(true)) {
        return fail(trace, E::B64);
    }
    let kid = optional_string(&header, "kid").or_else(|e| fail(trace, e))?;
    let typ = optional_string(&header, "typ").or_else(|e| fail(trace, e))?;
    trace.push_ok(
        "header",
        format_args!(
            "kid {}, typ {}; no jku, x5u or jwk",
            or_none(kid.as_deref()),
            or_none(typ.as_deref())
        ),
    );

    let claims = decode_object(p64, "payload").or_else(|e| fail(trace, e))?;
    trace.push_ok(
        "payload",
        format_args!("JSON object, {} claims, no duplicate names", claims.len()),
    );
    let iss = match claims.get("iss") {
        None => return fail(trace, E::MissingIss),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return fail(trace, E::InvalidIss),
    };
    trace.push_ok(
        "iss",
        format_args!("{:?} (issuer lookup follows)", excerpt(&iss, 100)),
    );
    if s64.is_empty() {
        return fail(trace, E::MissingSignature);
    }
    let Ok(signature) = URL_SAFE_NO_PAD.decode(s64) else {
        return fail(trace, E::Base64 { part: "signature" });
    };
    Ok(Unverified {
        alg,
        kid,
        typ,
        iss,
        header,
        claims: Arc::new(claims),
        raw: token.to_owned(),
        signing_input_len: h64.len() + 1 + p64.len(),
        signature,
    })
}

fn parse_alg(s: &str) -> Result<Algorithm, ValidationError> {
    if s.eq_ignore_ascii_case("none") {
        return Err(ValidationError::AlgNone);
    }
    match s.parse::<Algorithm>() {
        Ok(a) if a.family() == AlgorithmFamily::Hmac => {
            Err(ValidationError::SymmetricAlg(s.to_owned()))
        }
        Ok(a) => Ok(a),
        Err(_) if s.starts_with("HS") => Err(ValidationError::SymmetricAlg(excerpt(s, 16))),
        Err(_) => Err(ValidationError::UnsupportedAlg(excerpt(s, 16))),
    }
}

fn optional_string(
    header: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, ValidationError> {
    match header.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ValidationError::HeaderType(name)),
    }
}

fn decode_object(segment: &str, part: &'static str) -> Result<Map<String, Value>, ValidationError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| ValidationError::Base64 { part })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ValidationError::Utf8 { part })?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = StrictValue::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| json_error(part, &e))?;
    match value.0 {
        Value::Object(map) => Ok(map),
        other => {
            let kind = match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            };
            Err(ValidationError::Json {
                part,
                reason: format!("found {kind}"),
            })
        }
    }
}

const DUPLICATE: &str = "duplicate member ";

fn json_error(part: &'static str, e: &serde_json::Error) -> ValidationError {
    let text = e.to_string();
    match text.strip_prefix(DUPLICATE) {
        Some(rest) if e.is_data() => {
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let name = rest.strip_suffix(&suffix).unwrap_or(rest);
            ValidationError::Duplicate {
                part,
                name: excerpt(name, 64),
            }
        }
        _ => ValidationError::Json { part, reason: text },
    }
}

/// A JSON value that refuses duplicate member names at every depth
/// (serde_json silently keeps the last one; RFC 7519 §4 lets us reject).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        // Members are collected, sorted once and checked side by side, then
        // the map is built from the sorted run in one pass: cheaper than a
        // tree search and insertion per member (a payload has 20–30).
        let mut members: Vec<(String, Value)> = Vec::with_capacity(16);
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(v) = map.next_value()?;
            members.push((key, v));
        }
        members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(pair) = members.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(de::Error::custom(format!("{DUPLICATE}{}", pair[0].0)));
        }
        Ok(Value::Object(members.into_iter().collect()))
    }
}

/// A NumericDate (RFC 7519 §2): a JSON number of seconds, fractions
/// allowed; rounded towards refusal by the caller's choice of `floor`.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
    round_up: bool,
) -> Result<Option<i64>, ValidationError> {
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    let Some(x) = v
        .as_f64()
        .filter(|x| x.is_finite() && (0.0..1e15).contains(x))
    else {
        return Err(ValidationError::InvalidDate(name));
    };
    let x = if round_up { x.ceil() } else { x.floor() };
    // In range by the filter above, so the cast is exact.
    Ok(Some(x as i64))
}

/// Phase two, once the caller has found the issuer (by exact `iss`) and the
/// key (by `kid`): `iss`, `alg` allowed, key family, signature, `exp`,
/// `nbf`, `iat`, lifetime, `aud`, `sub`, `jti` type, in this order.
///
/// Lifetime is `exp - iat`; without `iat` it is `exp - now`, i.e. the time
/// the token could still be used, which is what the bound protects.
pub fn verify(
    u: &Unverified,
    token: &str,
    issuer: &IssuerConfig,
    key: &VerifyingKey,
    now: i64,
    trace: &mut Trace,
) -> Result<VerifiedClaims, ValidationError> {
    use ValidationError as E;
    if token != u.raw {
        return fail(trace, E::TokenMismatch);
    }
    if u.iss != issuer.issuer {
        return fail(
            trace,
            E::IssuerMismatch {
                found: excerpt(&u.iss, 100),
                expected: issuer.issuer.clone(),
            },
        );
    }
    trace.push_ok(
        "iss",
        format_args!("{:?} is the configured issuer", issuer.issuer),
    );
    if u.alg.family() == AlgorithmFamily::Hmac || !issuer.allowed_algs.contains(&u.alg) {
        let allowed = issuer
            .allowed_algs
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        return fail(
            trace,
            E::AlgNotAllowed {
                alg: u.alg,
                allowed,
            },
        );
    }
    trace.push_ok(
        "alg",
        format_args!("{:?} is allowed for this issuer", u.alg),
    );
    if !key.family.accepts(u.alg) || key.alg.is_some_and(|a| a != u.alg) {
        let own = key
            .alg
            .map(|a| format!(" (JWK alg {a:?})"))
            .unwrap_or_default();
        return fail(
            trace,
            E::KeyMismatch(format!(
                "the {} key{own} cannot verify alg {:?} (RFC 8725 §3.1)",
                key.family.name(),
                u.alg
            )),
        );
    }
    trace.push_ok(
        "key",
        format_args!(
            "{} key {} fits {:?}",
            key.family.name(),
            key.kid
                .as_deref()
                .map(|k| format!("{:?}", excerpt(k, 64)))
                .unwrap_or_else(|| "(no kid)".into()),
            u.alg
        ),
    );
    let (message, signature) = token.split_at(u.signing_input_len);
    let signature = signature.strip_prefix('.').unwrap_or(signature);
    let valid = match &key.parsed {
        // The pre-parsed key when it is for this very algorithm (the usual case).
        Some((alg, parsed)) if *alg == u.alg => {
            parsed.verify_sig(message.as_bytes(), &u.signature).is_ok()
        }
        _ => matches!(
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key.key, u.alg),
            Ok(true)
        ),
    };
    if !valid {
        return fail(trace, E::BadSignature);
    }
    trace.push_ok("signature", format_args!("valid {:?} signature", u.alg));

    let leeway = issuer.leeway_s.max(0);
    let exp = match numeric_date(&u.claims, "exp", false).or_else(|e| fail(trace, e))? {
        None => return fail(trace, E::MissingExp),
        Some(exp) if now > exp.saturating_add(leeway) => {
            return fail(trace, E::Expired { exp, now, leeway });
        }
        Some(exp) => exp,
    };
    trace.push_ok(
        "exp",
        format_args!(
            "expires at {}, now {}, leeway {leeway} s",
            rfc3339(exp),
            rfc3339(now)
        ),
    );
    let nbf = numeric_date(&u.claims, "nbf", true).or_else(|e| fail(trace, e))?;
    match nbf {
        Some(nbf) if nbf > now.saturating_add(leeway) => {
            return fail(trace, E::NotYetValid { nbf, now, leeway });
        }
        Some(nbf) => trace.push_ok(
            "nbf",
            format_args!(
                "not before {}, now {}, leeway {leeway} s",
                rfc3339(nbf),
                rfc3339(now)
            ),
        ),
        None => trace.push_ok("nbf", "absent"),
    }
    let iat = numeric_date(&u.claims, "iat", true).or_else(|e| fail(trace, e))?;
    match iat {
        Some(iat) if iat > now.saturating_add(leeway) => {
            return fail(trace, E::IssuedInFuture { iat, now, leeway });
        }
        Some(iat) => trace.push_ok(
            "iat",
            format_args!(
                "issued at {}, now {}, leeway {leeway} s",
                rfc3339(iat),
                rfc3339(now)
            ),
        ),
        None => trace.push_ok("iat", "absent"),
    }
    let (start, from) = match iat {
        Some(iat) => (iat, "iat"),
        None => (now, "now"),
    };
    let lifetime = exp.saturating_sub(start);
    if lifetime > issuer.max_token_age_s {
        return fail(
            trace,
            E::LifetimeTooLong {
                lifetime,
                from,
                max: issuer.max_token_age_s,
            },
        );
    }
    trace.push_ok(
        "lifetime",
        format_args!(
            "exp - {from} = {lifetime} s, max {} s",
            issuer.max_token_age_s
        ),
    );

    let aud: Vec<String> = match u.claims.get("aud") {
        None => return fail(trace, E::MissingAud),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if !a.is_empty() => {
            match a
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
            {
                Some(list) => list,
                None => return fail(trace, E::InvalidAud),
            }
        }
        Some(_) => return fail(trace, E::InvalidAud),
    };
    let accepted = || format!("{:?}", issuer.audiences);
    match aud.iter().find(|a| issuer.audiences.contains(a)) {
        Some(hit) => trace.push_ok(
            "aud",
            format_args!(
                "{:?} is accepted (accepted: {})",
                excerpt(hit, 100),
                accepted()
            ),
        ),
        None => {
            let found = excerpt(&format!("{aud:?}"), 120);
            return fail(
                trace,
                E::AudMismatch {
                    found,
                    accepted: accepted(),
                },
            );
        }
    }
    let sub = match u.claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return fail(trace, E::MissingSub),
    };
    trace.push_ok("sub", format_args!("{:?}", excerpt(&sub, 200)));
    let jti = match u.claims.get("jti") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return fail(trace, E::InvalidJti),
    };
    Ok(VerifiedClaims {
        iss: u.iss.clone(),
        sub,
        aud,
        exp,
        iat,
        nbf,
        jti,
        claims: Arc::clone(&u.claims),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::federation::keys::test_keys::{TestKey, b64, ec256, ed25519, rsa};
    use crate::federation::{DEFAULT_ALGS, KeySource};

    const NOW: i64 = 1_800_000_000;
    const ISS: &str = "https://token.actions.githubusercontent.com";

    fn issuer() -> IssuerConfig {
        IssuerConfig {
            id: "i1".into(),
            org_id: "o1".into(),
            org_name: "acme".into(),
            issuer: ISS.into(),
            key_source: KeySource::Discovery,
            audiences: vec!["acme".into(), "https://fedgate.example".into()],
            allowed_algs: DEFAULT_ALGS.to_vec(),
            max_token_age_s: 3600,
            leeway_s: 60,
            single_use_jti: false,
            users: false,
            created_at: 0,
        }
    }

    fn claims() -> Value {
        json!({"iss": ISS, "sub": "repo:acme/app:ref:refs/heads/main", "aud": "acme",
               "iat": NOW - 10, "exp": NOW + 300, "jti": "j-1", "repository": "acme/app"})
    }

    fn with(mut c: Value, k: &str, v: Value) -> Value {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v;
        }
        c
    }

    fn run(token: &str, key: &VerifyingKey) -> Result<VerifiedClaims, ValidationError> {
        let u = peek(token)?;
        verify(&u, token, &issuer(), key, NOW, &mut Trace::new())
    }

    fn rs256(c: &Value) -> String {
        rsa(0).token("RS256", "k1", c)
    }

    fn rsa_key() -> VerifyingKey {
        rsa(0).verifying("k1")
    }

    fn refused(token: &str, key: &VerifyingKey) -> ValidationError {
        let e = run(token, key).unwrap_err();
        assert!(!e.to_string().contains(token), "token echoed");
        e
    }

    #[test]
    fn accepts_every_family_and_traces_in_order() {
        let cases: [(TestKey, &str); 5] = [
            (rsa(0), "RS256"),
            (rsa(0), "RS512"),
            (rsa(0), "PS256"),
            (ec256(), "ES256"),
            (ed25519(), "EdDSA"),
        ];
        for (k, alg) in cases {
            let t = k.token(alg, "k1", &claims());
            let v = run(&t, &k.verifying("k1")).unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(
                (v.sub.as_str(), v.aud.as_slice(), v.jti.as_deref()),
                (
                    "repo:acme/app:ref:refs/heads/main",
                    &["acme".to_owned()][..],
                    Some("j-1")
                )
            );
        }
        let t = rs256(&claims());
        let mut trace = Trace::new();
        let u = peek_traced(&t, &mut trace).unwrap();
        assert_eq!(
            (u.alg, u.kid.as_deref(), u.typ.as_deref(), u.iss.as_str()),
            (Algorithm::RS256, Some("k1"), Some("JWT"), ISS)
        );
        verify(&u, &t, &issuer(), &rsa_key(), NOW, &mut trace).unwrap();
        let names: Vec<_> = trace.checks().iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "size",
                "format",
                "alg",
                "crit",
                "header",
                "payload",
                "iss",
                "iss",
                "alg",
                "key",
                "signature",
                "exp",
                "nbf",
                "iat",
                "lifetime",
                "aud",
                "sub"
            ]
        );
        assert!(
            trace
                .checks()
                .iter()
                .all(|c| c.ok && !c.detail.contains(&t))
        );
        let json = serde_json::to_value(&trace).unwrap();
        assert_eq!(
            json[10],
            json!({"name": "signature", "ok": true, "detail": "valid RS256 signature"})
        );
        assert!(!format!("{u:?}").contains(&t));
    }

    #[test]
    fn unsecured_and_symmetric_algorithms_are_refused() {
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none"}"#),
            b64(claims().to_string())
        );
        assert_eq!(refused(&none, &rsa_key()), ValidationError::AlgNone);
        // HS256 "signed" with the RSA public key as the HMAC secret: the classic confusion.
        let secret = serde_json::to_vec(&rsa(0).jwk("k1", json!({}))).unwrap();
        let input = format!(
            "{}.{}",
            b64(r#"{"alg":"HS256","kid":"k1"}"#),
            b64(claims().to_string())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        let hs = format!("{input}.{}", b64(tag.as_ref()));
        let e = refused(&hs, &rsa_key());
        assert_eq!(
            (e.clone(), e.error_code(), e.check_name()),
            (
                ValidationError::SymmetricAlg("HS256".into()),
                "invalid_grant",
                "alg"
            )
        );
        let es512 = rsa(0).token_raw("RS256", r#"{"alg":"ES512"}"#, &claims().to_string());
        assert_eq!(
            refused(&es512, &rsa_key()),
            ValidationError::UnsupportedAlg("ES512".into())
        );
        let no_alg = rsa(0).token_raw("RS256", r#"{"kid":"k1"}"#, &claims().to_string());
        assert_eq!(refused(&no_alg, &rsa_key()).error_code(), "invalid_request");
    }

    #[test]
    fn key_bearing_headers_are_refused() {
        for (name, value) in [
            ("jku", json!("https://evil.example/jwks")),
            ("x5u", json!("https://evil.example/c.pem")),
            ("jwk", rsa(1).jwk("x", json!({}))),
        ] {
            let header = json!({"alg": "RS256", "kid": "k1", name: value}).to_string();
            let t = rsa(1).token_raw("RS256", &header, &claims().to_string());
            let e = refused(&t, &rsa_key());
            assert!(
                matches!(e, ValidationError::ForbiddenHeader(n) if n == name),
                "{e}"
            );
        }
    }

    #[test]
    fn crit_and_b64_are_refused() {
        for header in [
            r#"{"alg":"RS256","crit":["exp"],"exp":1}"#,
            r#"{"alg":"RS256","crit":["b64"],"b64":false}"#,
            r#"{"alg":"RS256","crit":[]}"#,
        ] {
            let t = rsa(0).token_raw("RS256", header, &claims().to_string());
            assert_eq!(refused(&t, &rsa_key()).check_name(), "crit", "{header}");
        }
        let t = rsa(0).token_raw(
            "RS256",
            r#"{"alg":"RS256","b64":false}"#,
            &claims().to_string(),
        );
        assert_eq!(refused(&t, &rsa_key()), ValidationError::B64);
    }

    #[test]
    fn malformed_tokens_are_invalid_requests() {
        let good = rs256(&claims());
        let parts: Vec<&str> = good.split('.').collect();
        let cases = [
            (
                format!("{good}.{}.{}", parts[1], parts[2]),
                ValidationError::Jwe,
            ),
            (
                format!("{}.{}", parts[0], parts[1]),
                ValidationError::NotCompact(2),
            ),
            (
                "x".repeat(MAX_TOKEN_BYTES + 1),
                ValidationError::TooLarge {
                    len: MAX_TOKEN_BYTES + 1,
                    max: MAX_TOKEN_BYTES,
                },
            ),
            (
                format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
                ValidationError::Base64 { part: "header" },
            ),
            (
                format!("{}.{}.{}", parts[0], "a$b", parts[2]),
                ValidationError::Base64 { part: "payload" },
            ),
            (
                format!("{}.{}.{}", parts[0], b64([0xff, 0xfe, 0x7b]), parts[2]),
                ValidationError::Utf8 { part: "payload" },
            ),
            (
                format!("{}.{}.{}", b64("[1]"), parts[1], parts[2]),
                ValidationError::Json {
                    part: "header",
                    reason: "found an array".into(),
                },
            ),
        ];
        for (t, want) in cases {
            let e = refused(&t, &rsa_key());
            assert_eq!(e, want);
            assert_eq!(e.error_code(), "invalid_request", "{e}");
        }
        let not_json = format!("{}.{}.{}", parts[0], b64("not json"), parts[2]);
        assert!(matches!(
            refused(&not_json, &rsa_key()),
            ValidationError::Json {
                part: "payload",
                ..
            }
        ));
        let trailing = format!("{}.{}.{}", parts[0], b64(r#"{"iss":"x"} {}"#), parts[2]);
        assert!(matches!(
            refused(&trailing, &rsa_key()),
            ValidationError::Json {
                part: "payload",
                ..
            }
        ));
    }

    #[test]
    fn duplicate_names_are_refused() {
        let payload = format!(
            r#"{{"iss":"{ISS}","sub":"repo:acme/app:ref:refs/heads/main","aud":"acme","exp":{},"sub":"repo:evil/x"}}"#,
            NOW + 300
        );
        let t = rsa(0).token_raw("RS256", r#"{"alg":"RS256","kid":"k1"}"#, &payload);
        assert_eq!(
            refused(&t, &rsa_key()),
            ValidationError::Duplicate {
                part: "payload",
                name: "sub".into()
            }
        );
        let nested = format!(r#"{{"iss":"{ISS}","k":{{"ns":"a","ns":"b"}}}}"#);
        let t = rsa(0).token_raw("RS256", r#"{"alg":"RS256"}"#, &nested);
        assert_eq!(
            refused(&t, &rsa_key()),
            ValidationError::Duplicate {
                part: "payload",
                name: "ns".into()
            }
        );
        let t = rsa(0).token_raw(
            "RS256",
            r#"{"alg":"HS256","alg":"RS256"}"#,
            &claims().to_string(),
        );
        assert_eq!(
            refused(&t, &rsa_key()),
            ValidationError::Duplicate {
                part: "header",
                name: "alg".into()
            }
        );
    }

    #[test]
    fn time_claims_with_leeway() {
        let k = rsa_key();
        let ok = |c: Value| run(&rs256(&c), &k).map(|_| ()).map_err(|e| e.check_name());
        assert_eq!(ok(with(claims(), "exp", json!(NOW - 61))), Err("exp"));
        assert_eq!(ok(with(claims(), "exp", json!(NOW - 59))), Ok(()));
        assert_eq!(ok(with(claims(), "exp", Value::Null)), Err("exp"));
        assert_eq!(ok(with(claims(), "exp", json!("1900000000"))), Err("exp"));
        assert_eq!(ok(with(claims(), "exp", json!(NOW as f64 + 100.5))), Ok(()));
        assert_eq!(ok(with(claims(), "nbf", json!(NOW + 61))), Err("nbf"));
        assert_eq!(ok(with(claims(), "nbf", json!(NOW + 59))), Ok(()));
        assert_eq!(ok(with(claims(), "nbf", json!(true))), Err("nbf"));
        assert_eq!(ok(with(claims(), "iat", json!(NOW + 61))), Err("iat"));
        assert_eq!(ok(with(claims(), "iat", json!(NOW + 59))), Ok(()));
        // Lifetime: exp - iat, or exp - now without iat.
        assert_eq!(
            ok(with(claims(), "exp", json!(NOW + 3591))),
            Err("lifetime")
        );
        assert_eq!(ok(with(claims(), "exp", json!(NOW + 3590))), Ok(()));
        assert_eq!(
            ok(with(
                with(claims(), "iat", Value::Null),
                "exp",
                json!(NOW + 3601)
            )),
            Err("lifetime")
        );
        assert_eq!(
            ok(with(
                with(claims(), "iat", Value::Null),
                "exp",
                json!(NOW + 3600)
            )),
            Ok(())
        );
        let e = run(&rs256(&with(claims(), "exp", json!(NOW - 100))), &k).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "the JWT expired at {} (now {}, leeway 60 s)",
                rfc3339(NOW - 100),
                rfc3339(NOW)
            )),
            "{text}"
        );
        assert!(text.contains("request a new token"), "{text}");
        assert!(rfc3339(NOW).ends_with('Z') && rfc3339(NOW).contains('T'));
        assert!(
            !text.contains(&NOW.to_string()),
            "no raw NumericDate: {text}"
        );
    }

    #[test]
    fn audience_string_or_array() {
        let k = rsa_key();
        let aud = |v: Value| run(&rs256(&with(claims(), "aud", v)), &k).map(|c| c.aud);
        assert_eq!(
            aud(json!(["other", "https://fedgate.example"])).unwrap(),
            ["other", "https://fedgate.example"]
        );
        assert!(matches!(
            aud(json!("other")),
            Err(ValidationError::AudMismatch { .. })
        ));
        assert!(matches!(
            aud(json!(["other", "x"])),
            Err(ValidationError::AudMismatch { .. })
        ));
        assert_eq!(aud(Value::Null), Err(ValidationError::MissingAud));
        assert_eq!(aud(json!([])), Err(ValidationError::InvalidAud));
        assert_eq!(aud(json!(["acme", 1])), Err(ValidationError::InvalidAud));
        assert_eq!(aud(json!({"acme": true})), Err(ValidationError::InvalidAud));
        let e = aud(json!("x".repeat(500))).unwrap_err();
        assert!(
            e.to_string().len() < 300,
            "long claim values are truncated: {e}"
        );
    }

    #[test]
    fn signatures_must_be_by_the_issuers_key() {
        let k = rsa_key();
        let good = rs256(&claims());
        let parts: Vec<&str> = good.split('.').collect();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64(with(claims(), "sub", json!("repo:evil/x")).to_string()),
            parts[2]
        );
        assert_eq!(refused(&tampered, &k), ValidationError::BadSignature);
        let stripped = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(refused(&stripped, &k), ValidationError::MissingSignature);
        let other = rsa(1).token("RS256", "k1", &claims());
        assert_eq!(refused(&other, &k), ValidationError::BadSignature);
        // RS256 signature presented as PS256 on the same key.
        let ps = format!(
            "{}.{}.{}",
            b64(r#"{"alg":"PS256","kid":"k1"}"#),
            parts[1],
            parts[2]
        );
        assert_eq!(refused(&ps, &k), ValidationError::BadSignature);
    }

    #[test]
    fn ecdsa_zero_signature_is_refused() {
        let k = ec256().verifying("k1");
        let input = format!(
            "{}.{}",
            b64(r#"{"alg":"ES256","kid":"k1"}"#),
            b64(claims().to_string())
        );
        for sig in [vec![0u8; 64], vec![], vec![0u8; 32]] {
            let t = format!("{input}.{}", b64(&sig));
            let e = refused(&t, &k);
            assert!(
                matches!(
                    e,
                    ValidationError::BadSignature | ValidationError::MissingSignature
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn issuer_alg_and_key_family_are_enforced() {
        let t = rs256(&claims());
        let u = peek(&t).unwrap();
        let mut only_es = issuer();
        only_es.allowed_algs = vec![Algorithm::ES256];
        let e = verify(&u, &t, &only_es, &rsa_key(), NOW, &mut Trace::new()).unwrap_err();
        assert_eq!(
            e,
            ValidationError::AlgNotAllowed {
                alg: Algorithm::RS256,
                allowed: "ES256".into()
            }
        );
        let e = verify(
            &u,
            &t,
            &issuer(),
            &ec256().verifying("k1"),
            NOW,
            &mut Trace::new(),
        )
        .unwrap_err();
        assert_eq!(e.check_name(), "key");
        let mut other = issuer();
        other.issuer = "https://gitlab.com".into();
        let e = verify(&u, &t, &other, &rsa_key(), NOW, &mut Trace::new()).unwrap_err();
        assert_eq!(e.check_name(), "iss");
        let e = verify(
            &u,
            &rs256(&with(claims(), "jti", json!(1))),
            &issuer(),
            &rsa_key(),
            NOW,
            &mut Trace::new(),
        )
        .unwrap_err();
        assert_eq!(e, ValidationError::TokenMismatch);
    }

    #[test]
    fn required_claims() {
        let k = rsa_key();
        assert_eq!(
            refused(&rs256(&with(claims(), "sub", Value::Null)), &k),
            ValidationError::MissingSub
        );
        assert_eq!(
            refused(&rs256(&with(claims(), "sub", json!(""))), &k),
            ValidationError::MissingSub
        );
        assert_eq!(
            refused(&rs256(&with(claims(), "iss", Value::Null)), &k),
            ValidationError::MissingIss
        );
        assert_eq!(
            refused(&rs256(&with(claims(), "iss", json!(7))), &k),
            ValidationError::InvalidIss
        );
        assert_eq!(
            refused(&rs256(&with(claims(), "jti", json!(7))), &k),
            ValidationError::InvalidJti
        );
    }

    #[test]
    fn failures_are_traced_and_descriptions_distinct() {
        let t = rs256(&with(claims(), "aud", json!("nope")));
        let mut trace = Trace::new();
        let u = peek_traced(&t, &mut trace).unwrap();
        verify(&u, &t, &issuer(), &rsa_key(), NOW, &mut trace).unwrap_err();
        let last = trace.checks().last().unwrap();
        assert_eq!((last.name, last.ok), ("aud", false));
        assert!(
            last.detail.contains("\"nope\"") && last.detail.contains("acme"),
            "{}",
            last.detail
        );
        let mut disabled = Trace::disabled();
        peek_traced(&t, &mut disabled).unwrap();
        assert!(disabled.checks().is_empty());

        use ValidationError as E;
        let all = [
            E::TooLarge { len: 1, max: 0 },
            E::Jwe,
            E::NotCompact(1),
            E::Base64 { part: "header" },
            E::Utf8 { part: "header" },
            E::Json {
                part: "header",
                reason: "r".into(),
            },
            E::Duplicate {
                part: "payload",
                name: "n".into(),
            },
            E::MissingAlg,
            E::HeaderType("kid"),
            E::AlgNone,
            E::SymmetricAlg("HS256".into()),
            E::UnsupportedAlg("X".into()),
            E::ForbiddenHeader("jku"),
            E::Crit("c".into()),
            E::B64,
            E::MissingIss,
            E::InvalidIss,
            E::MissingSignature,
            E::TokenMismatch,
            E::IssuerMismatch {
                found: "a".into(),
                expected: "b".into(),
            },
            E::AlgNotAllowed {
                alg: Algorithm::RS256,
                allowed: "ES256".into(),
            },
            E::KeyMismatch("k".into()),
            E::BadSignature,
            E::MissingExp,
            E::InvalidDate("exp"),
            E::Expired {
                exp: 1,
                now: 2,
                leeway: 0,
            },
            E::NotYetValid {
                nbf: 1,
                now: 0,
                leeway: 0,
            },
            E::IssuedInFuture {
                iat: 1,
                now: 0,
                leeway: 0,
            },
            E::LifetimeTooLong {
                lifetime: 2,
                from: "iat",
                max: 1,
            },
            E::MissingAud,
            E::InvalidAud,
            E::AudMismatch {
                found: "a".into(),
                accepted: "b".into(),
            },
            E::MissingSub,
            E::InvalidJti,
        ];
        let texts: std::collections::HashSet<String> = all.iter().map(|e| e.to_string()).collect();
        assert_eq!(texts.len(), all.len());
        assert!(
            all.iter()
                .all(|e| ["invalid_request", "invalid_grant"].contains(&e.error_code()))
        );
        assert_eq!(E::InvalidDate("nbf").check_name(), "nbf");
        assert_eq!(E::InvalidDate("iat").check_name(), "iat");
    }
}

/// Generated inputs (issue 10): the peek reads anything an anonymous
/// caller can send, so any text, and any compact JWS built from arbitrary
/// header and payload bytes, is refused with a reason or peeked, never a
/// panic.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod generated {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;

    use super::peek;

    fn json_ish() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            "\\{(\"(alg|kid|iss|typ|crit|jku|sub)\": ?(\"(RS256|ES256|none|HS256|x)\"|[0-9]{1,3}|null|\\[\\]|\\{\\}),? ?){0,6}\\}"
                .prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn any_text_is_peeked_or_refused(token in any::<String>()) {
            let _ = peek(&token);
        }

        #[test]
        fn any_compact_jws_is_peeked_or_refused(
            header in json_ish(),
            payload in json_ish(),
            sig in prop::collection::vec(any::<u8>(), 0..80),
            dots in 0usize..4,
        ) {
            let mut token = format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(&header),
                URL_SAFE_NO_PAD.encode(&payload),
                URL_SAFE_NO_PAD.encode(&sig)
            );
            token.push_str(&".".repeat(dots));
            if let Ok(u) = peek(&token) {
                // What the peek promises the exchange: an asymmetric alg
                // and the payload's `iss`, exactly.
                prop_assert!(u.alg.family() != jsonwebtoken::AlgorithmFamily::Hmac);
                prop_assert_eq!(u.claims.get("iss").and_then(|v| v.as_str()), Some(u.iss.as_str()));
            }
        }
    }
}
