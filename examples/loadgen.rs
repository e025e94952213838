//! The load script's helper (`scripts/load.sh`), not part of the product:
//! it registers the world of a load run through fedgate's admin API, mints
//! a pool of distinct GitHub-shaped IdP tokens, exchanges some of them, and
//! measures the cryptographic floor of an exchange on this machine.
//!
//! It also writes the pools of the refusal floods (`refusals`, `forge`) and
//! the client assertions of the peer in `scripts/peer-bench.sh` (`assertions`).
//!
//! ```text
//! loadgen setup      --base URL --admin-key KEY --accounts N --issuers M --api-keys A --out DIR
//!                    [--fetched-jwks-uri URL]   also an issuer whose keys fedgate fetches
//! loadgen exchange   --base URL --tokens FILE --count C --out FILE
//! loadgen refusals   --accounts N --count C --out DIR   refused-exchange pools
//! loadgen forge      --like FILE --count C --out DIR    refused-access-token pools
//! loadgen assertions --client-id ID --aud URL --count C --out FILE
//! loadgen floor      [--seconds S]
//! loadgen jwks
//! ```
//! Traffic goes only to `--base`, which the script sets to a loopback address.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../benches/support/mod.rs"]
mod support;

use std::io::Write as _;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt as _;
use serde_json::{Value, json};

/// Requests in flight during setup.
const CONCURRENCY: usize = 8;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn num(args: &[String], name: &str, default: usize) -> usize {
    arg(args, name).map_or(default, |v| v.parse().expect(name))
}

fn need(args: &[String], name: &str) -> String {
    arg(args, name).unwrap_or_else(|| panic!("{name} is required"))
}

struct Api {
    base: String,
    key: String,
    client: reqwest::Client,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> Value {
        for attempt in 0..5 {
            let resp = self
                .client
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.key)
                .json(&body)
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => return r.json().await.expect("JSON answer"),
                Ok(r) if r.status().as_u16() == 409 => return Value::Null,
                Ok(r) => {
                    let s = r.status();
                    let text = r.text().await.unwrap_or_default();
                    if attempt == 4 || s.is_client_error() {
                        panic!("POST {path}: {s} {text}");
                    }
                }
                Err(e) if attempt == 4 => panic!("POST {path}: {e}"),
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        unreachable!()
    }
}

/// The `iss` of the issuer registered with a `jwks_uri` (its keys are
/// fetched from the load script's loopback file server).
const FETCHED_ISSUER: &str = "https://idp-fetched.ci.example";
/// A `kid` no registered key set has.
const UNKNOWN_KID: &str = "rsa-rotated-away";
/// The subject of the account whose tokens live 60 s (the expired flood).
const EXPIRING_SUBJECT: &str = "repo:acme/expiring:ref:refs/heads/main";

fn write_lines(path: &str, lines: &[String]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect(path));
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// `count` strings made on every core: `make(i)` for `i` in `0..count`.
fn par_pool(count: usize, make: impl Fn(usize) -> String + Sync) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = vec![String::new(); count];
    let chunk = count.div_ceil(threads).max(1);
    let make = &make;
    std::thread::scope(|s| {
        for (c, slot) in out.chunks_mut(chunk).enumerate() {
            s.spawn(move || {
                for (j, t) in slot.iter_mut().enumerate() {
                    *t = make(c * chunk + j);
                }
            });
        }
    });
    out
}

/// Mints one token per account on every core: account `i` belongs to
/// issuer `i % issuers` and has subject `support::subject(i)`.
fn mint_pool(accounts: usize, issuers: usize, ttl: i64) -> Vec<String> {
    let now = support::now();
    par_pool(accounts, |i| {
        let mut claims = idp_claims(&support::issuer(i % issuers), &support::subject(i), now, i);
        claims.push(("exp", json!(now + ttl)));
        rs256(support::KID, &claims)
    })
}

/// An RS256 JWT of the GitHub-shaped claims with `set` applied, signed with
/// the fixture key (the one every registered issuer trusts) under `kid`.
fn rs256(kid: &str, set: &[(&str, Value)]) -> String {
    static KEY: std::sync::OnceLock<aws_lc_rs::signature::RsaKeyPair> = std::sync::OnceLock::new();
    // Parsed once (jsonwebtoken's `encode` re-parses an RSA key per call).
    let key = KEY.get_or_init(|| {
        let pem = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/keys/rsa2048-a.pem"
        ));
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der).unwrap()
    });
    let mut claims: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/claims/github-actions.json"
    )))
    .unwrap();
    let obj = claims.as_object_mut().unwrap();
    for (k, v) in set {
        obj.insert((*k).to_string(), v.clone());
    }
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        message.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// The claims fedgate checks, for a token of `iss` about `sub`.
fn idp_claims(iss: &str, sub: &str, now: i64, i: usize) -> Vec<(&'static str, Value)> {
    vec![
        ("iss", json!(iss)),
        ("sub", json!(sub)),
        ("aud", json!(support::AUDIENCE)),
        ("iat", json!(now)),
        ("nbf", json!(now)),
        ("exp", json!(now + 3 * 3600)),
        ("jti", json!(format!("load-{now}-{i}"))),
    ]
}

/// The pools of the refused-exchange floods, `--count` distinct tokens each:
/// `ex_unknown_issuer.txt` (an `iss` no issuer has), `ex_unknown_kid.txt`
/// (the fetched issuer, a `kid` its JWKS does not list: after the one
/// refresh, every request meets the cooldown), `ex_bad_signature.txt`
/// (account `i`'s valid token with a signature byte changed).
fn refusals(args: &[String]) {
    let out = need(args, "--out");
    let count = num(args, "--count", 2000);
    let accounts = num(args, "--accounts", 1000).max(1);
    let issuers = num(args, "--issuers", 1).max(1);
    let now = support::now();
    let t = Instant::now();
    let unknown_issuer = par_pool(count, |i| {
        rs256(
            support::KID,
            &idp_claims(
                "https://unknown-idp.ci.example",
                &support::subject(i),
                now,
                i,
            ),
        )
    });
    let unknown_kid = par_pool(count, |i| {
        rs256(
            UNKNOWN_KID,
            &idp_claims(FETCHED_ISSUER, &support::subject(i), now, i),
        )
    });
    let bad_signature = par_pool(count, |i| {
        let a = i % accounts;
        let token = rs256(
            support::KID,
            &idp_claims(&support::issuer(a % issuers), &support::subject(a), now, i),
        );
        // Change one character in the middle of the signature: it still
        // decodes to 256 bytes, which no longer verify.
        let dot = token.rfind('.').unwrap();
        let at = dot + 1 + (token.len() - dot - 1) / 2;
        let mut b = token.into_bytes();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    });
    write_lines(&format!("{out}/ex_unknown_issuer.txt"), &unknown_issuer);
    write_lines(&format!("{out}/ex_unknown_kid.txt"), &unknown_kid);
    write_lines(&format!("{out}/ex_bad_signature.txt"), &bad_signature);
    eprintln!(
        "refusals: 3 × {count} refused-exchange tokens in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// The pools of the refused-access-token floods, from one real access token
/// (`--like`, the first line): `at_unknown_kid.txt`, its claims (distinct
/// `jti`s) signed ES256 by a key fedgate never had, under a `kid` it does
/// not know; `at_malformed.txt`, its header and signature around a payload
/// that is base64url of something that is not JSON (distinct per line).
fn forge(args: &[String]) {
    let like = std::fs::read_to_string(need(args, "--like")).expect("--like file");
    let like = like.lines().next().expect("an access token").to_owned();
    let out = need(args, "--out");
    let count = num(args, "--count", 2000);
    let mut parts = like.split('.');
    let (h, p, sig) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let mut header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    header["kid"] = json!("unknown-signing-key");
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let es = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let rng = SystemRandom::new();
    let payload_len = p.len() * 3 / 4;
    let mut unknown_kid = Vec::with_capacity(count);
    let mut malformed = Vec::with_capacity(count);
    for i in 0..count {
        let mut c = claims.clone();
        c["jti"] = json!(format!("forged-{i:08}"));
        let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode(c.to_string()));
        let s = es.sign(&rng, message.as_bytes()).unwrap();
        unknown_kid.push(format!("{message}.{}", URL_SAFE_NO_PAD.encode(s.as_ref())));
        let mut garbage = format!("not json {i:08} ").into_bytes();
        garbage.resize(payload_len.max(garbage.len()), b'x');
        malformed.push(format!("{h}.{}.{sig}", URL_SAFE_NO_PAD.encode(garbage)));
    }
    write_lines(&format!("{out}/at_unknown_kid.txt"), &unknown_kid);
    write_lines(&format!("{out}/at_malformed.txt"), &malformed);
}

/// `--count` distinct RS256 `private_key_jwt` client assertions (RFC 7523
/// §3) for the peer: the GitHub-shaped claims (so the peer parses as much
/// JSON as fedgate does) with `iss` = `sub` = the client id, `aud` = the
/// peer's token endpoint, a distinct `jti`, valid 3 hours.
fn assertions(args: &[String]) {
    let client_id = need(args, "--client-id");
    let aud = need(args, "--aud");
    let count = num(args, "--count", 20_000);
    let now = support::now();
    let t = Instant::now();
    let pool = par_pool(count, |i| {
        rs256(
            support::KID,
            &[
                ("iss", json!(client_id)),
                ("sub", json!(client_id)),
                ("aud", json!(aud)),
                ("iat", json!(now)),
                ("exp", json!(now + 3 * 3600)),
                ("jti", json!(format!("peer-{now}-{i:06}"))),
            ],
        )
    });
    write_lines(&need(args, "--out"), &pool);
    eprintln!(
        "assertions: {count} minted in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

async fn setup(args: &[String]) {
    let api = Api {
        base: need(args, "--base"),
        key: need(args, "--admin-key"),
        client: reqwest::Client::new(),
    };
    let accounts = num(args, "--accounts", 1000);
    let issuers = num(args, "--issuers", 1).max(1);
    let api_keys = num(args, "--api-keys", 100);
    let out = need(args, "--out");
    let t = Instant::now();
    api.post("/api/v1/orgs/default/teams", json!({"name": "load"}))
        .await;
    api.post(
        "/api/v1/teams/load/projects",
        json!({"name": "load", "visibility": "team"}),
    )
    .await;
    let jwks = support::jwks();
    let issuer_ids: Vec<String> = futures::stream::iter(0..issuers)
        .map(|k| {
            let api = &api;
            let jwks = jwks.clone();
            async move {
                let b = api
                    .post(
                        "/api/v1/orgs/default/issuers",
                        json!({"issuer": support::issuer(k), "jwks": jwks, "audiences": [support::AUDIENCE]}),
                    )
                    .await;
                b["id"].as_str().expect("issuer id").to_string()
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let issuer_ids = &issuer_ids;
    futures::stream::iter(0..accounts)
        .map(|i| {
            let api = &api;
            async move {
                api.post(
                    "/api/v1/teams/load/service-accounts",
                    json!({"name": format!("ext-{i:05}"), "auth": "external",
                           "issuer": issuer_ids[i % issuer_ids.len()], "subject": support::subject(i)}),
                )
                .await;
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    let keys: Vec<String> = futures::stream::iter(0..api_keys)
        .map(|i| {
            let api = &api;
            async move {
                let b = api
                    .post(
                        "/api/v1/teams/load/service-accounts",
                        json!({"name": format!("key-{i:04}"), "auth": "builtin"}),
                    )
                    .await;
                b["api_key"].as_str().expect("api_key").to_string()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    // The expired-token flood's account: its access tokens live 60 s.
    api.post(
        "/api/v1/teams/load/service-accounts",
        json!({"name": "expiring", "auth": "external", "issuer": issuer_ids[0],
               "subject": EXPIRING_SUBJECT, "max_token_lifetime_s": 60}),
    )
    .await;
    if let Some(uri) = arg(args, "--fetched-jwks-uri") {
        api.post(
            "/api/v1/orgs/default/issuers",
            json!({"issuer": FETCHED_ISSUER, "jwks_uri": uri, "audiences": [support::AUDIENCE]}),
        )
        .await;
    }
    let registered = t.elapsed();
    let t = Instant::now();
    let tokens = tokio::task::spawn_blocking(move || mint_pool(accounts, issuers, 3 * 3600))
        .await
        .unwrap();
    let now = support::now();
    let expiring = par_pool(1000, |i| {
        rs256(
            support::KID,
            &idp_claims(&support::issuer(0), EXPIRING_SUBJECT, now, i),
        )
    });
    write_lines(&format!("{out}/idp_tokens.txt"), &tokens);
    write_lines(&format!("{out}/expiring_idp_tokens.txt"), &expiring);
    write_lines(&format!("{out}/api_keys.txt"), &keys);
    eprintln!(
        "setup: {issuers} issuers, {accounts} external accounts, {api_keys} API keys registered in {:.1} s; {} IdP tokens minted in {:.1} s",
        registered.as_secs_f64(),
        tokens.len(),
        t.elapsed().as_secs_f64()
    );
}

async fn exchange(args: &[String]) {
    let base = need(args, "--base");
    let tokens = std::fs::read_to_string(need(args, "--tokens")).expect("tokens file");
    let count = num(args, "--count", 100);
    let client = reqwest::Client::new();
    let minted: Vec<String> = futures::stream::iter(tokens.lines().take(count).map(str::to_owned))
        .map(|t| {
            let client = &client;
            let url = format!("{base}/oidc/token");
            async move {
                let r = client
                    .post(url)
                    .form(&[
                        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                        ("assertion", t.as_str()),
                    ])
                    .send()
                    .await
                    .expect("exchange");
                let s = r.status();
                let v: Value = r.json().await.expect("JSON");
                assert!(s.is_success(), "exchange: {s} {v}");
                v["access_token"]
                    .as_str()
                    .expect("access_token")
                    .to_string()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    write_lines(&need(args, "--out"), &minted);
}

/// CPU seconds of this process so far (utime + stime from /proc/self/stat).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after = &stat[stat.rfind(')').expect("stat") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted after the command name.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The floor of one exchange on this machine: a bare RS256 verification of
/// an IdP token (jsonwebtoken, aws_lc_rs) plus a bare ES256 signature of an
/// access-token-sized message (aws-lc-rs), in CPU µs per pair, measured the
/// way the load script measures fedgate (process CPU time over a few seconds).
fn floor(args: &[String]) {
    let seconds = num(args, "--seconds", 3) as f64;
    let token = support::Minter::new().mint(&support::subject(0), support::now(), 3600);
    let (message, sig) = token.rsplit_once('.').unwrap();
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(support::PUBLIC_PEM.as_bytes()).unwrap();
    let es = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let rng = SystemRandom::new();
    let minted = vec![b'x'; 560];
    let verify = || {
        assert!(
            jsonwebtoken::crypto::verify(
                sig,
                message.as_bytes(),
                &key,
                jsonwebtoken::Algorithm::RS256
            )
            .unwrap()
        );
    };
    let sign = || {
        std::hint::black_box(es.sign(&rng, &minted).unwrap());
    };
    let measure = |f: &dyn Fn()| {
        let (c0, t0) = (cpu_seconds(), Instant::now());
        let mut n = 0u64;
        while t0.elapsed().as_secs_f64() < seconds / 2.0 {
            for _ in 0..100 {
                f();
            }
            n += 100;
        }
        (cpu_seconds() - c0) * 1e6 / n as f64
    };
    let v = measure(&verify);
    let s = measure(&sign);
    println!(
        "{{\"rs256_verify_us\": {v:.1}, \"es256_sign_us\": {s:.1}, \"floor_us\": {:.1}}}",
        v + s
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("setup") => setup(&args).await,
        Some("exchange") => exchange(&args).await,
        Some("floor") => floor(&args),
        Some("refusals") => refusals(&args),
        Some("forge") => forge(&args),
        Some("assertions") => assertions(&args),
        Some("jwks") => println!("{}", support::jwks()),
        _ => {
            eprintln!(
                "usage: loadgen setup|exchange|refusals|forge|assertions|floor|jwks (see examples/loadgen.rs)"
            );
            std::process::exit(2);
        }
    }
}
