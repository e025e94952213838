//! API keys that secret scanners recognise (docs/api-keys.md): every key
//! fedgate issues has the published shape and checksum, a key whose
//! checksum fails is refused before any lookup, keys made before the
//! checksum keep working, and `fedgate key check` validates offline.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::seed_rules::world;
use crate::support::{TestApp, message};

/// A stored key row for `key`, owned by the service account `sa_id`, as
/// the store would hold it had fedgate issued that key.
async fn store_key(app: &TestApp, sa_id: &str, key: &str) {
    app.state
        .store
        .insert_api_key(&fedgate::store::ApiKeyRow {
            id: fedgate::secrets::new_id("key"),
            owner_id: sa_id.to_string(),
            owner_kind: "service_account".into(),
            prefix: fedgate::secrets::key_prefix(key),
            secret_hash: fedgate::secrets::sha256_hex(key.as_bytes()),
            created_at: fedgate::clock::Clock::now_ms(&fedgate::clock::SystemClock),
            last_used_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn every_issued_key_matches_the_published_regex_and_checksum() {
    let app = world().await;
    let re = regex::Regex::new(fedgate::apikey::REGEX).unwrap();
    let (_, sa_key) = app.team_sa("vision", "ci-bot").await;
    let (_, org_key) = app.org_sa("org-bot", "vision").await;
    let user_key = app.user("alice", "member").await;
    for key in [&app.admin_key, &sa_key, &org_key, &user_key] {
        assert_eq!(key.len(), 40, "{key}");
        // Found in surrounding text, exactly, as a scanner would.
        let text = format!("export WANDB_API_KEY=\"{key}\" # leaked");
        let found: Vec<&str> = re.find_iter(&text).map(|m| m.as_str()).collect();
        assert_eq!(found, [key.as_str()]);
        assert_eq!(
            fedgate::apikey::classify(key),
            Ok(fedgate::apikey::Format::Checksummed)
        );
        let (s, b) = app.get("/api/v1/viewer", Some(key)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    // No false positives: the old format, other vendors' tokens, and keys
    // glued to more word characters do not match.
    let legacy = format!("fgk_{}", fedgate::secrets::random_base62(36));
    for text in [
        legacy.clone(),
        "ghp_0123456789abcdefghijABCDEFGHIJ012345".to_string(),
        format!("x{sa_key}"),
        format!("{sa_key}0"),
        sa_key.replace('_', "-"),
    ] {
        assert!(!re.is_match(&text), "{text}");
    }
}

#[tokio::test]
async fn a_key_whose_checksum_fails_is_refused_before_any_lookup() {
    let app = world().await;
    let (sa_id, key) = app.team_sa("vision", "ci-bot").await;
    // One character changed: the checksum no longer matches. The store is
    // given a row for exactly that string, so a lookup would find it and
    // let it in: only the offline check can refuse it.
    let mut bytes = key.clone().into_bytes();
    bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
    let typo = String::from_utf8(bytes).unwrap();
    store_key(&app, &sa_id, &typo).await;
    let (s, b) = app.get("/api/v1/viewer", Some(&typo)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert!(message(&b).contains("checksum does not match"), "{b}");
    assert!(!b.to_string().contains(&typo), "never echoed: {b}");
    // As HTTP Basic (what the W&B SDK sends) and on a write: the same.
    let resp = app
        .client
        .post(app.url("/api/v1/runs"))
        .basic_auth("api", Some(&typo))
        .json(&json!({"project": "v-team"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let b: Value = resp.json().await.unwrap();
    assert!(message(&b).contains("checksum"), "{b}");
    // A truncated key or one of another shape is refused the same way.
    for bad in [
        &key[..39],
        "fgk_short",
        "fgk_0123456789abcdefghijABCDEFGHI_3T8zL2X",
    ] {
        store_key(&app, &sa_id, bad).await;
        let (s, b) = app.get("/api/v1/viewer", Some(bad)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad}: {b}");
        assert!(message(&b).starts_with("invalid API key"), "{b}");
    }
    // The real key still works.
    let (s, _) = app.get("/api/v1/viewer", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn keys_made_before_the_checksum_keep_working() {
    let app = world().await;
    let (sa_id, _) = app.team_sa("vision", "ci-bot").await;
    // The format fedgate issued before: fgk_ + 36 base62, no checksum.
    let legacy = format!("fgk_{}", fedgate::secrets::random_base62(36));
    store_key(&app, &sa_id, &legacy).await;
    let (s, b) = app.get("/api/v1/viewer", Some(&legacy)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["name"], "ci-bot");
    let (s, b) = app.run(&legacy, json!({"project": "v-team"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // An unknown key of the old shape is looked up, and refused.
    let unknown = format!("fgk_{}", fedgate::secrets::random_base62(36));
    let (s, b) = app.get("/api/v1/viewer", Some(&unknown)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert_eq!(message(&b), "invalid API key");
}

/// `fedgate key check …`: (exit code, stdout).
async fn key_check(args: &[&str], stdin: Option<&str>) -> (i32, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedgate"))
        .arg("key")
        .arg("check")
        .args(args)
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .await
        .unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[tokio::test]
async fn key_check_validates_offline() {
    let good = fedgate::apikey::generate();
    let good = good.expose();
    let (code, out) = key_check(&[good], None).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("valid fedgate API key"), "{out}");
    assert!(!out.contains(good), "the key is not repeated: {out}");

    // From standard input, as JSON.
    let (code, out) = key_check(&["-", "--json"], Some(&format!("{good}\n"))).await;
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["format"], "checksummed");
    assert_eq!(v["checksum"], "ok");

    let mut typo = good.to_string().into_bytes();
    typo[20] = if typo[20] == b'z' { b'y' } else { b'z' };
    let typo = String::from_utf8(typo).unwrap();
    let (code, out) = key_check(&[&typo, "--json"], None).await;
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["checksum"], "mismatch");

    let (code, out) = key_check(&["not-a-key"], None).await;
    assert_eq!(code, 1, "{out}");
    // A usage error (no key) is clap's 2, distinct from every answer.
    let (code, _) = key_check(&[], None).await;
    assert_eq!(code, 2);

    let legacy = format!("fgk_{}", fedgate::secrets::random_base62(36));
    let (code, out) = key_check(&[&legacy], None).await;
    assert_eq!(code, 11, "{out}");
    assert!(out.contains("legacy"), "{out}");
}
