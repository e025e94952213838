//! Worst cases of the parsers an anonymous caller (or an admin) can feed
//! (issue 10), each beside the typical input of the same parser, measured
//! in the same run: the form parser of `/oidc/token` and `/oauth/introspect`,
//! the JWT peek, the GraphQL validator, the subject-pattern compiler (and its
//! match, run on every exchange) and the config loader. docs/performance.md
//! has the figures.
//!
//! `cargo bench --bench parsers` (about a minute); `cargo test --benches`
//! runs each once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::Criterion;
use fedgate::federation::keys::VerifyingKey;
use fedgate::federation::policy::{self, Author, BindingSpec};
use fedgate::federation::validate;
use serde_json::{Map, Value, json};

/// 128 KiB: the largest body any route reads.
const BODY: usize = 128 * 1024;

fn form_cases() -> Vec<(&'static str, Vec<u8>)> {
    let jwt = format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.{}",
        "a".repeat(900),
        "s".repeat(342)
    );
    let typical =
        format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}");
    // The reported flood: 32,000 distinct parameters (names of at most 3
    // characters) in 128 KiB.
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let flood: String = (0..32_000usize)
        .map(|i| {
            let mut name = vec![DIGITS[i % 62]];
            let mut rest = i / 62;
            while rest > 0 {
                name.push(DIGITS[rest % 62]);
                rest /= 62;
            }
            String::from_utf8(name).unwrap()
        })
        .collect::<Vec<_>>()
        .join("&");
    assert!(flood.len() <= BODY);
    // The most decoding work that passes the count: 32 parameters of %XX.
    let per = BODY / 32 - 8;
    let encoded: String = (0..32)
        .map(|i| format!("k{i:02}={}", "%41".repeat(per / 3)))
        .collect::<Vec<_>>()
        .join("&");
    // 31 distinct names and a repeat at the end (found by the set).
    let repeat: String = (0..31)
        .map(|i| format!("name{i}={}", "x".repeat(per)))
        .chain(["name0=y".to_string()])
        .collect::<Vec<_>>()
        .join("&");
    vec![
        ("form/typical exchange", typical.into_bytes()),
        ("form/32,000 parameters (refused)", flood.into_bytes()),
        ("form/32 x 4 KiB of %XX", encoded.into_bytes()),
        ("form/repeat after 31 x 4 KiB", repeat.into_bytes()),
    ]
}

fn jwt_cases() -> Vec<(&'static str, String)> {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let header = enc(&json!({"alg": "RS256", "kid": "k", "typ": "JWT"}));
    let sig = URL_SAFE_NO_PAD.encode([7u8; 256]);
    let typical = format!(
        "{header}.{}.{sig}",
        enc(
            &json!({"iss": "https://token.actions.githubusercontent.com", "sub": "repo:acme/app:ref:refs/heads/main",
            "aud": "default", "exp": 2_000_000_000, "iat": 1_999_999_000, "jti": "j",
            "repository": "acme/app", "repository_id": "1", "ref": "refs/heads/main"})
        )
    );
    // The 16 KiB maximum: as many tiny claims as fit (the duplicate check
    // sees every name), and as deep a nesting as JSON allows.
    let mut many = Map::new();
    many.insert("iss".into(), json!("https://i"));
    let mut i = 0;
    while enc(&Value::Object(many.clone())).len() < 11_800 {
        many.insert(format!("c{i}"), json!(i));
        i += 1;
    }
    let wide = format!("{header}.{}.{sig}", enc(&Value::Object(many)));
    let mut deep = json!(1);
    for _ in 0..120 {
        deep = json!({"a": deep});
    }
    let deep = format!(
        "{header}.{}.{sig}",
        enc(&json!({"iss": "https://i", "x": deep, "pad": "p".repeat(9000)}))
    );
    vec![
        ("jwt peek/typical GitHub token", typical),
        ("jwt peek/16 KiB of small claims", wide),
        ("jwt peek/16 KiB, 120 levels deep", deep),
        ("jwt peek/17 KiB (refused on size)", "e".repeat(17 * 1024)),
    ]
}

fn graphql_cases() -> Vec<(&'static str, String)> {
    let sdk = "query Viewer { viewer { id entity username email flags teams { edges { node { name } } } } }"
        .to_string();
    let mut fan = String::from("query Viewer { ...F0 }");
    for i in 0..15 {
        let next = if i < 14 {
            format!("...F{} ", i + 1).repeat(3)
        } else {
            "viewer { id }".into()
        };
        fan.push_str(&format!(" fragment F{i} on Query {{ {next} }}"));
    }
    // 16 KiB: a chain of fragments each used once (no repeat), many selections.
    let mut chain = String::from("query Viewer { viewer { ...G0 } }");
    let mut i = 0;
    while chain.len() < 16 * 1024 - 80 {
        chain.push_str(&format!(" fragment G{i} on User {{ id ...G{} }}", i + 1));
        i += 1;
    }
    chain.push_str(&format!(" fragment G{i} on User {{ id }}"));
    // 16 KiB of arguments and strings the tokenizer must skip.
    let args = format!(
        "query Viewer {{ viewer {{ id teams(q: \"{}\") {{ edges {{ node {{ name }} }} }} }} }}",
        "x".repeat(16 * 1024 - 120)
    );
    vec![
        ("graphql/SDK Viewer", sdk),
        ("graphql/reported fan-out (refused)", fan),
        ("graphql/16 KiB fragment chain (over budget)", chain),
        ("graphql/16 KiB string argument", args),
    ]
}

fn spec(pattern: &str) -> BindingSpec {
    BindingSpec {
        subject: "repo:acme/app:ref:refs/heads/main".into(),
        subject_pattern: Some(pattern.into()),
        claims: BTreeMap::new(),
        allow_broad_subject_pattern: false,
    }
}

fn config_cases() -> Vec<(&'static str, String)> {
    let typical =
        "database_url = \"sqlite://fedgate.db\"\nlisten = \"127.0.0.1:8080\"\ntoken_ttl = 3600\n"
            .to_string();
    let long_string = format!("public_url = \"https://{}.example\"\n", "a".repeat(1 << 20));
    let unknown = format!("{typical}nope = 1\n");
    vec![
        ("config/typical file", typical),
        ("config/1 MiB string value", long_string),
        ("config/unknown key (refused)", unknown),
    ]
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));

    for (name, body) in form_cases() {
        c.bench_function(name, |b| {
            b.iter(|| black_box(fedgate::form::parse_form(black_box(&body))))
        });
    }
    for (name, token) in jwt_cases() {
        c.bench_function(name, |b| {
            b.iter(|| black_box(validate::peek(black_box(&token))))
        });
    }
    for (name, q) in graphql_cases() {
        c.bench_function(name, |b| {
            b.iter(|| black_box(fedgate::http::graphql::validate_query(black_box(&q), None)))
        });
    }
    // Subject patterns: compile (on save and load) and match (every exchange).
    let typical = spec("repo:acme/app:*");
    let stars = spec(&format!("repo:acme/{}b", "*a".repeat(500)));
    let subject_typical = "repo:acme/app:ref:refs/heads/main".to_string();
    let subject_worst = format!("repo:acme/{}", "a".repeat(1000));
    c.bench_function("pattern/compile typical", |b| {
        b.iter(|| {
            black_box(policy::compile(
                "sa",
                "i",
                black_box(&typical),
                Author::TeamAdmin,
            ))
        })
    });
    c.bench_function("pattern/compile 1 KiB of '*a'", |b| {
        b.iter(|| {
            black_box(policy::compile(
                "sa",
                "i",
                black_box(&stars),
                Author::TeamAdmin,
            ))
        })
    });
    let none = Map::new();
    let t = policy::compile("sa", "i", &typical, Author::TeamAdmin).unwrap();
    let w = policy::compile("sa", "i", &stars, Author::TeamAdmin).unwrap();
    c.bench_function("pattern/match typical", |b| {
        b.iter(|| black_box(t.check(black_box(&subject_typical), &none)))
    });
    c.bench_function("pattern/match 1 KiB of '*a' against 1 KiB of 'a'", |b| {
        b.iter(|| black_box(w.check(black_box(&subject_worst), &none)))
    });
    // A JWKS at the fetch cap (256 KiB): as many RSA-2048 keys as fit, each
    // parsed and checked (this runs on key refresh, not per exchange).
    let one = support::jwks()["keys"][0].clone();
    let mut keys = Vec::new();
    while serde_json::to_vec(&json!({"keys": keys})).unwrap().len() < 256 * 1024 - 600 {
        let mut k = one.clone();
        k["kid"] = json!(format!("k{}", keys.len()));
        keys.push(k);
    }
    let n_keys = keys.len();
    let jwks_body = serde_json::to_vec(&json!({"keys": keys})).unwrap();
    let one_body = serde_json::to_vec(&json!({"keys": [one]})).unwrap();
    let parse_jwks = |body: &[u8]| {
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(body).unwrap();
        set.keys
            .iter()
            .filter_map(|k| VerifyingKey::from_jwk(k).ok())
            .count()
    };
    c.bench_function("jwks/1 RSA key", |b| {
        b.iter(|| black_box(parse_jwks(black_box(&one_body))))
    });
    c.bench_function(&format!("jwks/256 KiB: {n_keys} RSA keys"), |b| {
        b.iter(|| black_box(parse_jwks(black_box(&jwks_body))))
    });
    for (name, text) in config_cases() {
        c.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    fedgate::config::ServeArgs::default().resolve_with_file(Some(black_box(&text))),
                )
            })
        });
    }
    c.final_summary();
}
