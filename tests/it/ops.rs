//! Operations (docs/operations.md): backups that restore, changes made by
//! another process seen by a running server, secrets at rest, nothing
//! acknowledged lost, and the start-up order.
//!
//! Backends: the backup test takes a SQLite backup with `fedgate backup` (on
//! PostgreSQL it checks the command points at `pg_dump`); file modes are a
//! SQLite matter; every other test runs on both backends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::replicas::{Replica, bootstrap, kid_of, rotate_keys};
use crate::support::idp::TestIdp;
use crate::support::{Options, TestApp, fresh_database};

const SUB: &str = "repo:acme/vision-train:ref:refs/heads/main";
/// How soon a change made by another process must be seen (the bound).
const SEEN_WITHIN: Duration = Duration::from_secs(5);

fn fedgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fedgate"));
    c.env("NO_COLOR", "1").kill_on_drop(true);
    c
}

/// Runs a command that must end by itself (a server that unexpectedly
/// starts would otherwise hang the test).
async fn ended(cmd: &mut Command) -> std::process::Output {
    tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the command did not end within 120 s")
        .expect("run fedgate")
}

fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    url.strip_prefix("sqlite://").map(std::path::PathBuf::from)
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Polls `$check` every 100 ms until it holds; panics naming `$what` after `$limit`.
macro_rules! within {
    ($limit:expr, $what:expr, $check:expr) => {{
        let start = Instant::now();
        loop {
            if $check {
                eprintln!("ops: {}: {} ms", $what, start.elapsed().as_millis());
                break start.elapsed();
            }
            assert!(
                start.elapsed() < $limit,
                "{}: not within {} s",
                $what,
                $limit.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }};
}

/// Team `vision`, the test IdP trusted and an external account `ci` bound to
/// [`SUB`], set up through `app`; returns the IdP.
async fn federation(app: &TestApp) -> TestIdp {
    let idp = TestIdp::start().await;
    let issuer = app.trust(&idp).await;
    app.team("vision").await;
    app.external_sa("vision", "ci", json!({"issuer": issuer, "subject": SUB}))
        .await;
    idp
}

fn assertion(idp: &TestIdp) -> String {
    idp.mint(TestIdp::fixture_with(
        "github-actions",
        json!({"aud": "default", "sub": SUB}),
    ))
}

// ------------------------------------------------------------------ backups

/// What the writers got acknowledged, and when.
#[derive(Default)]
struct Acked {
    runs: Vec<(Instant, String)>,
    teams: Vec<(Instant, String)>,
}

#[tokio::test]
async fn a_backup_taken_under_writes_restores_every_change_acknowledged_before_it() {
    let app = TestApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup.db");
    if sqlite_path(&app.database_url).is_none() {
        let done = ended(
            fedgate()
                .args(["backup", "--database-url", &app.database_url])
                .arg(&out),
        )
        .await;
        let err = String::from_utf8_lossy(&done.stderr);
        assert!(!done.status.success());
        assert!(
            err.contains("pg_dump") && err.contains("pg_restore"),
            "{err}"
        );
        assert!(!out.exists());
        return;
    }
    app.team("ml").await;
    let (_, key) = app.team_sa("ml", "writer").await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let runs = {
        let (client, url, acked, stop) = (
            app.client.clone(),
            app.url("/api/v1/runs"),
            acked.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            for i in 0..900 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let r = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"project": "p", "name": format!("run-{i}")}))
                    .send()
                    .await
                    .unwrap();
                if r.status() == StatusCode::CREATED {
                    let id = r.json::<Value>().await.unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    acked.lock().unwrap().runs.push((Instant::now(), id));
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let teams = {
        let (client, url, admin, acked, stop) = (
            app.client.clone(),
            app.url("/api/v1/orgs/default/teams"),
            app.admin_key.clone(),
            acked.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            for i in 0..400 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = format!("team-{i}");
                let r = client
                    .post(&url)
                    .bearer_auth(&admin)
                    .json(&json!({"name": name}))
                    .send()
                    .await
                    .unwrap();
                if r.status() == StatusCode::CREATED {
                    acked.lock().unwrap().teams.push((Instant::now(), name));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let began = Instant::now();
    let done = ended(
        fedgate()
            .args(["backup", "--database-url", &app.database_url])
            .arg(&out),
    )
    .await;
    let finished = Instant::now();
    assert!(
        done.status.success(),
        "backup: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    let report: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(report["integrity"], "ok", "{report}");
    assert_eq!(report["signing_keys_encrypted"], false, "{report}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    runs.await.unwrap();
    teams.await.unwrap();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let before = |v: &[(Instant, String)]| {
        v.iter()
            .filter(|(t, _)| *t < began)
            .map(|(_, x)| x.clone())
            .collect::<Vec<_>>()
    };
    let (runs_before, teams_before) = (before(&acked.runs), before(&acked.teams));
    let written_during = acked
        .runs
        .iter()
        .chain(&acked.teams)
        .filter(|(t, _)| *t >= began && *t <= finished)
        .count();
    eprintln!(
        "ops: backup took {} ms; acknowledged before it: {} runs, {} teams; during it: {written_during}",
        (finished - began).as_millis(),
        runs_before.len(),
        teams_before.len()
    );
    assert!(!runs_before.is_empty() && !teams_before.is_empty());

    // One self-contained file: no WAL beside it, private like the store.
    assert!(!dir.path().join("backup.db-wal").exists());
    #[cfg(unix)]
    assert_eq!(mode(&out), 0o600);
    // Refuses to overwrite.
    let again = ended(
        fedgate()
            .args(["backup", "--database-url", &app.database_url])
            .arg(&out),
    )
    .await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let admin = app.admin_key.clone();
    app.stop().await;

    // A server started on the backup has every change acknowledged before it began.
    let restored = TestApp::start_with(Options {
        database_url: Some(format!("sqlite://{}", out.display())),
        ..Options::default()
    })
    .await;
    let (s, listed) = restored
        .get("/api/v1/projects/ml/p/runs", Some(&admin))
        .await;
    assert_eq!(s, StatusCode::OK, "{listed}");
    let listed = listed.to_string();
    for id in &runs_before {
        assert!(
            listed.contains(id),
            "run {id} acknowledged before the backup is missing"
        );
    }
    let (s, listed) = restored
        .get("/api/v1/orgs/default/teams", Some(&admin))
        .await;
    assert_eq!(s, StatusCode::OK, "{listed}");
    let listed = listed.to_string();
    let mut audited = String::new();
    let mut after = 0;
    loop {
        let (s, page) = restored
            .get(
                &format!("/api/v1/orgs/default/audit?limit=1000&after={after}"),
                Some(&admin),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let events = page["events"].as_array().cloned().unwrap_or_default();
        let Some(last) = events.last() else { break };
        after = last["seq"].as_i64().unwrap();
        audited.push_str(&Value::Array(events).to_string());
    }
    for name in &teams_before {
        assert!(
            listed.contains(&format!("\"{name}\"")),
            "team {name} acknowledged before the backup is missing"
        );
        assert!(
            audited.contains(&format!("team:{name}\"")),
            "the audit event of team {name} is missing"
        );
    }
    restored.stop().await;
}

// ------------------------------------------------------------------ changes from other processes

#[tokio::test]
async fn a_key_rotated_by_the_cli_is_published_and_used_by_a_running_server_within_5s() {
    let app = TestApp::start().await;
    let idp = federation(&app).await;
    let old_token = app.exchange_ok(&assertion(&idp)).await;
    let old_kid = kid_of(&old_token);
    let new_kid = rotate_keys(&app.database_url).await;
    assert_ne!(old_kid, new_kid);
    within!(SEEN_WITHIN, "rotated key published and signing", {
        let (_, jwks) = app.get("/.well-known/jwks.json", None).await;
        jwks.to_string().contains(&new_kid)
            && kid_of(&app.exchange_ok(&assertion(&idp)).await) == new_kid
    });
    // The retired key still verifies what it signed.
    let (s, _) = app.get("/api/v1/viewer", Some(&old_token)).await;
    assert_eq!(s, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn a_second_process_on_the_same_store_sees_accounts_keys_issuers_and_bindings_change() {
    let a = TestApp::start().await;
    // `b` has its own store handle, caches and change subscription: another
    // process as far as the store can tell.
    let b = TestApp::start_with(Options {
        database_url: Some(a.database_url.clone()),
        ..Options::default()
    })
    .await;
    let admin = a.admin_key.clone();
    let idp = federation(&a).await;
    // Binding created on a: exchanged on b (b loaded nothing of it at start).
    within!(SEEN_WITHIN, "new binding usable on b", {
        b.exchange(&assertion(&idp)).await.0 == StatusCode::OK
    });
    let (_, ext) = a
        .get("/api/v1/teams/vision/service-accounts", Some(&admin))
        .await;
    let ext_id = ext.to_string();
    let ext_id = ext_id
        .split("\"id\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    // Account disabled on a: refused on b.
    let (s, body) = a
        .post(
            &format!("/api/v1/service-accounts/{ext_id}/disable"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    within!(SEEN_WITHIN, "disabled account refused on b", {
        b.exchange(&assertion(&idp)).await.0 == StatusCode::BAD_REQUEST
    });
    // API key revoked on a: refused on b, which had it cached.
    let (bot, key) = a.team_sa("vision", "bot").await;
    assert_eq!(b.get("/api/v1/viewer", Some(&key)).await.0, StatusCode::OK);
    let (_, keys) = a
        .get(
            &format!("/api/v1/service-accounts/{bot}/api-keys"),
            Some(&admin),
        )
        .await;
    let key_id = keys["api_keys"][0]["id"].as_str().unwrap().to_string();
    let (s, body) = a
        .delete(
            &format!("/api/v1/service-accounts/{bot}/api-keys/{key_id}"),
            Some(&admin),
        )
        .await;
    assert!(s.is_success(), "{body}");
    within!(SEEN_WITHIN, "revoked key refused on b", {
        b.get("/api/v1/viewer", Some(&key)).await.0 == StatusCode::UNAUTHORIZED
    });
    b.stop().await;
    a.stop().await;
}

// ------------------------------------------------------------------ secrets at rest

#[cfg(unix)]
#[tokio::test]
async fn store_files_are_created_private_and_a_readable_one_is_named() {
    let app = TestApp::start().await;
    let Some(db) = sqlite_path(&app.database_url) else {
        eprintln!("ops: file modes are a SQLite matter");
        return;
    };
    app.team("vision").await;
    for suffix in ["", "-wal", "-shm"] {
        let f = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    let url = app.database_url.clone();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = ended(fedgate().args(["keys", "rotate", "--database-url", &url])).await;
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("readable by other local users") && err.contains("chmod 600"),
        "{err}"
    );
    app.stop().await;
}

fn kek_file(dir: &std::path::Path, name: &str, lines: &[&str]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path.display().to_string()
}

/// The stored form of every signing key.
async fn stored_keys(url: &str) -> Vec<String> {
    let store = fedgate::store::open(url).await.unwrap();
    store
        .signing_keys(i64::MIN)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.private_key)
        .collect()
}

#[tokio::test]
async fn signing_keys_are_sealed_with_the_kek_and_the_kek_rotates() {
    let (url, _dir) = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let a = kek_file(
        dir.path(),
        "a.key",
        &["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="],
    );
    let b_key = "6162636465666768696a6b6c6d6e6f707172737475767778797a303132333435";
    let b = kek_file(dir.path(), "b.key", &[b_key]);
    let ba = kek_file(
        dir.path(),
        "ba.key",
        &[b_key, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="],
    );
    let out = ended(fedgate().args([
        "bootstrap",
        "--database-url",
        &url,
        "--org",
        "default",
        "--admin",
        "admin",
        "--email",
        "admin@example.com",
        "--key-encryption-key-file",
        &a,
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin: Value = serde_json::from_slice(&out.stdout).unwrap();
    let admin = admin["api_key"].as_str().unwrap().to_string();
    let keys = stored_keys(&url).await;
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.starts_with("enc:v1:")),
        "{keys:?}"
    );

    // Without the KEK nothing starts or rotates, and the error says why.
    let out = ended(fedgate().args(["keys", "rotate", "--database-url", &url])).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--key-encryption-key-file"));
    let out =
        ended(fedgate().args(["serve", "--database-url", &url, "--listen", "127.0.0.1:0"])).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is encrypted"));

    // With it: serves, rotates (sealed), mints.
    let r = Replica::start_with("kek-a", &url, &["--key-encryption-key-file", &a]).await;
    let (s, _) = r.get("/api/v1/viewer", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK);
    let out = ended(fedgate().args([
        "keys",
        "rotate",
        "--database-url",
        &url,
        "--key-encryption-key-file",
        &a,
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = stored_keys(&url).await;
    assert!(keys.len() >= 2 && keys.iter().all(|k| k.starts_with("enc:v1:")));
    drop(r);

    // KEK rotation: a file with the new key first and the old one second
    // opens both; rewrap seals everything with the new; then the new alone works.
    let out = ended(fedgate().args([
        "keys",
        "rewrap",
        "--database-url",
        &url,
        "--key-encryption-key-file",
        &ba,
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let b_id = report["key_encryption_key"].as_str().unwrap().to_string();
    assert!(
        stored_keys(&url)
            .await
            .iter()
            .all(|k| k.starts_with(&format!("enc:v1:{b_id}:")))
    );
    let r = Replica::start_with("kek-b", &url, &["--key-encryption-key-file", &b]).await;
    assert_eq!(
        r.get("/api/v1/viewer", Some(&admin)).await.0,
        StatusCode::OK
    );
    drop(r);
    let out = ended(fedgate().args([
        "serve",
        "--database-url",
        &url,
        "--listen",
        "127.0.0.1:0",
        "--key-encryption-key-file",
        &a,
    ]))
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&b_id));
    // And back to unencrypted.
    let out = ended(fedgate().args([
        "keys",
        "rewrap",
        "--database-url",
        &url,
        "--key-encryption-key-file",
        &b,
        "--decrypt",
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stored_keys(&url)
            .await
            .iter()
            .all(|k| !k.starts_with("enc:"))
    );
}

// ------------------------------------------------------------------ start-up

#[tokio::test]
async fn serve_fails_before_creating_anything_when_the_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fedgate.db");
    let out = ended(
        fedgate()
            .args(["serve", "--listen", &addr, "--database-url"])
            .arg(format!("sqlite://{}", db.display())),
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        !printed.contains("fgk_"),
        "an admin key was printed: {printed}"
    );
    assert!(
        !db.exists(),
        "the store was created although nothing could be served"
    );
}

#[tokio::test]
async fn no_bootstrap_on_an_empty_store_says_so_and_how_to_create_an_org() {
    let (url, _dir) = fresh_database().await;
    let r = Replica::start_with("empty", &url, &[]).await;
    let log = r
        .log
        .tail
        .lock()
        .unwrap()
        .iter()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        log.contains("no organization") && log.contains("fedgate bootstrap --database-url"),
        "{log}"
    );
    drop(r);
    // Not said when there is one.
    let (url, _dir) = fresh_database().await;
    bootstrap(&url).await;
    let r = Replica::start_with("bootstrapped", &url, &[]).await;
    let log = r
        .log
        .tail
        .lock()
        .unwrap()
        .iter()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!log.contains("no organization"), "{log}");
}

// ----------------------------------------------------------------- start-up

/// The index a server builds at start-up (one joined query) is the one the
/// first server built change by change: same accounts, same fields; builtin
/// accounts are not in it.
#[tokio::test]
async fn a_server_started_on_a_store_loads_every_external_account_as_it_was() {
    let a = TestApp::start().await;
    let idp = TestIdp::start().await;
    let issuer = a.trust(&idp).await;
    a.team("vision").await;
    a.team("infra").await;
    a.external_sa("vision", "ci", json!({"issuer": issuer, "subject": SUB}))
        .await;
    let pattern = a
        .external_sa(
            "infra",
            "deploys",
            json!({"issuer": issuer, "subject": "repo:acme/deploy:ref:refs/heads/main",
                   "subject_pattern": "repo:acme/deploy:*", "mode": "shadow"}),
        )
        .await;
    let disabled = a
        .external_sa(
            "vision",
            "old-ci",
            json!({"issuer": issuer, "subject": "repo:acme/old:ref:refs/heads/main",
                   "max_token_lifetime_s": 600}),
        )
        .await;
    let (s, body) = a
        .post(
            &format!("/api/v1/service-accounts/{disabled}/disable"),
            Some(&a.admin_key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (builtin, _) = a.team_sa("vision", "bot").await;

    let b = TestApp::start_with(Options {
        database_url: Some(a.database_url.clone()),
        ..Options::default()
    })
    .await;
    let (ia, ib) = (&a.state.index, &b.state.index);
    assert_eq!(ib.sizes(), ia.sizes());
    assert_eq!(ib.sizes().1, 3, "three external accounts");
    assert!(
        ib.account(&builtin).is_none(),
        "a builtin account is not bound"
    );
    for id in [pattern.as_str(), disabled.as_str()] {
        let (x, y) = (ia.account(id).unwrap(), ib.account(id).unwrap());
        assert_eq!(
            (&y.name, &y.org_id, &y.org_name, &y.team_name),
            (&x.name, &x.org_id, &x.org_name, &x.team_name)
        );
        assert_eq!(
            (y.disabled, y.shadow, y.max_token_lifetime_s),
            (x.disabled, x.shadow, x.max_token_lifetime_s)
        );
        assert_eq!(
            (
                &y.binding.issuer_id,
                y.binding.subject(),
                y.binding.is_exact()
            ),
            (
                &x.binding.issuer_id,
                x.binding.subject(),
                x.binding.is_exact()
            )
        );
    }
    let p = ib.account(&pattern).unwrap();
    assert!(p.shadow && !p.binding.is_exact() && p.team_name == "infra");
    let d = ib.account(&disabled).unwrap();
    assert!(d.disabled && d.max_token_lifetime_s == 600);
    // And b exchanges with it.
    assert_eq!(b.exchange(&assertion(&idp)).await.0, StatusCode::OK);
    b.stop().await;
    a.stop().await;
}

/// A poller (SQLite) starts where the change log ends, even past the
/// 1,000 rows one poll reads.
#[tokio::test]
async fn the_change_log_end_is_the_last_change_published() {
    let (url, _dir) = fresh_database().await;
    let store = fedgate::store::open(&url).await.unwrap();
    if url.starts_with("postgres") {
        assert_eq!(store.change_log_end().await.unwrap(), None);
        return;
    }
    assert_eq!(store.change_log_end().await.unwrap(), Some(0));
    for i in 0..1005 {
        store
            .publish_change(&format!("principal:p{i}"))
            .await
            .unwrap();
    }
    let end = store.change_log_end().await.unwrap().unwrap();
    let (last, changes) = store.poll_changes(end).await.unwrap().unwrap();
    assert_eq!((last, changes.len()), (end, 0), "nothing after the end");
    // Exactly 1,005 before it.
    let (first_page, _) = store.poll_changes(0).await.unwrap().unwrap();
    assert!(first_page < end, "one poll reads at most 1,000 rows");
    let (rest_last, rest) = store.poll_changes(first_page).await.unwrap().unwrap();
    assert_eq!(rest_last, end);
    assert!(rest.is_empty(), "this store's own changes are skipped");
}
