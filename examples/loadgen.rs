//! The load script's helper (`scripts/load.sh`), not part of the product:
//! it registers the world of a load run through fedgate's admin API, mints
//! a pool of distinct GitHub-shaped IdP tokens, exchanges some of them, and
//! measures the cryptographic floor of an exchange on this machine.
//!
//! ```text
//! loadgen setup    --base URL --admin-key KEY --accounts N --issuers M --api-keys A --out DIR
//! loadgen exchange --base URL --tokens FILE --count C --out FILE
//! loadgen floor    [--seconds S]
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

fn write_lines(path: &str, lines: &[String]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect(path));
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// Mints one token per account on every core: account `i` belongs to
/// issuer `i % issuers` and has subject `support::subject(i)`.
fn mint_pool(accounts: usize, issuers: usize, ttl: i64) -> Vec<String> {
    let now = support::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = vec![String::new(); accounts];
    let chunk = accounts.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (c, slot) in out.chunks_mut(chunk).enumerate() {
            s.spawn(move || {
                let minter = support::Minter::new();
                for (j, t) in slot.iter_mut().enumerate() {
                    let i = c * chunk + j;
                    *t = minter.mint_for(
                        &support::issuer(i % issuers),
                        &support::subject(i),
                        now,
                        ttl,
                    );
                }
            });
        }
    });
    out
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
    let registered = t.elapsed();
    let t = Instant::now();
    let tokens = tokio::task::spawn_blocking(move || mint_pool(accounts, issuers, 3 * 3600))
        .await
        .unwrap();
    write_lines(&format!("{out}/idp_tokens.txt"), &tokens);
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
        Some("jwks") => println!("{}", support::jwks()),
        _ => {
            eprintln!("usage: loadgen setup|exchange|floor|jwks (see examples/loadgen.rs)");
            std::process::exit(2);
        }
    }
}
