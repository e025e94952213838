//! At the edge (docs/operations.md): behind a real reverse proxy (nginx, the
//! Debian package, installed by `scripts/test-deps.sh`), SIGTERM under load,
//! and SIGKILL right after admin changes. Each test runs the real binary
//! (`crate::replicas::Replica`) on both backends.

use std::collections::HashSet;
use std::net::IpAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::replicas::{Replica, bootstrap};
use crate::support::idp::TestIdp;
use crate::support::{JWT_BEARER, fresh_database};

const SUB: &str = "repo:acme/vision-train:ref:refs/heads/main";

/// Team `vision`, the test IdP trusted, external account `ci` bound to [`SUB`].
async fn federation(r: &Replica, admin: &str) -> TestIdp {
    let idp = TestIdp::start().await;
    let (s, b) = r
        .post(
            "/api/v1/orgs/default/teams",
            admin,
            json!({"name": "vision"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = r
        .post(
            "/api/v1/orgs/default/issuers",
            admin,
            json!({"issuer": idp.issuer()}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let issuer = b["id"].as_str().unwrap().to_string();
    let (s, b) = r
        .post(
            "/api/v1/teams/vision/service-accounts",
            admin,
            json!({"name": "ci", "auth": "external", "issuer": issuer, "subject": SUB}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    idp
}

fn assertion(idp: &TestIdp) -> String {
    idp.mint(TestIdp::fixture_with(
        "github-actions",
        json!({"aud": "default", "sub": SUB}),
    ))
}

/// Every audit event of org `default`, read through `r`.
async fn audit(r: &Replica, admin: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let (s, page) = r
            .get(
                &format!("/api/v1/orgs/default/audit?limit=1000&after={after}"),
                Some(admin),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let events = page["events"].as_array().cloned().unwrap_or_default();
        let Some(last) = events.last() else { break };
        after = last["seq"].as_i64().unwrap();
        all.extend(events);
    }
    all
}

// ------------------------------------------------------------------ nginx

/// nginx in the foreground on a free loopback port, proxying to `upstream`
/// the way docs/operations.md shows; killed when dropped.
struct Nginx {
    port: u16,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(upstream: &str) -> Nginx {
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect(
                "nginx is not installed: scripts/test-deps.sh installs the Debian package nginx",
            );
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass {upstream};
      proxy_bind 127.0.0.1;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
  }}
}}
"#
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start nginx");
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "nginx did not listen: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Nginx {
            port,
            _child: child,
            _dir: dir,
        }
    }
}

/// A client whose connections come from `source` (any 127.0.0.0/8 address
/// is local on Linux), so one machine can play several clients.
fn client_from(source: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(source))
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Sends `n` exchanges of a worthless token, each claiming another client
/// address in `X-Forwarded-For`; how many were rate-limited (429).
async fn limited(client: &reqwest::Client, url: &str, n: u8) -> usize {
    let mut limited = 0;
    for i in 0..n {
        let r = client
            .post(url)
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .form(&[("grant_type", JWT_BEARER), ("assertion", "x.y.z")])
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            StatusCode::BAD_REQUEST => {}
            s => panic!("unexpected {s}"),
        }
    }
    limited
}

#[tokio::test]
async fn behind_nginx_each_client_has_its_own_rate_limit_and_audit_address() {
    let (url, _dir) = fresh_database().await;
    let admin = bootstrap(&url).await;
    let r = Replica::start_with(
        "behind-nginx",
        &url,
        &[
            "--trusted-proxies",
            "127.0.0.1/32",
            "--exchange-rate-limit",
            "1",
        ],
    )
    .await;
    let idp = federation(&r, &admin).await;
    let nginx = Nginx::start(&r.base).await;
    let via_nginx = format!("http://127.0.0.1:{}/oidc/token", nginx.port);

    // Client A (127.0.0.2) through nginx: spoofing X-Forwarded-For does not
    // get it a new bucket (nginx appends its real address, the rightmost
    // untrusted hop), so most of 20 quick exchanges are limited.
    let a = client_from([127, 0, 0, 2]);
    let n = limited(&a, &via_nginx, 20).await;
    assert!(n >= 10, "client A was limited only {n} times of 20");
    // Client B (127.0.0.3), through the same nginx, has its own bucket.
    let b = client_from([127, 0, 0, 3]);
    let resp = b
        .post(&via_nginx)
        .form(&[("grant_type", JWT_BEARER), ("assertion", &assertion(&idp))])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "client B shares A's bucket");
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    // Straight to fedgate from an untrusted peer, X-Forwarded-For is ignored.
    let c = client_from([127, 0, 0, 4]);
    let n = limited(&c, &r.url("/oidc/token"), 20).await;
    assert!(
        n >= 10,
        "a direct client escaped the limit with X-Forwarded-For ({n} limited)"
    );

    // The audit log names the client, not nginx.
    let events = audit(&r, &admin).await;
    let ev = events
        .iter()
        .find(|e| e["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no audit event for {request_id}"));
    assert_eq!(ev["details"]["client"], "127.0.0.3", "{ev}");
}

// ------------------------------------------------------------------ SIGTERM

#[tokio::test]
async fn sigterm_under_load_resets_no_request_and_loses_no_acknowledged_event() {
    let (url, _dir) = fresh_database().await;
    let admin = bootstrap(&url).await;
    let mut r = Replica::start_with("drain", &url, &["--shutdown-timeout", "20"]).await;
    let idp = Arc::new(federation(&r, &admin).await);
    let token_url = r.url("/oidc/token");
    let acked = Arc::new(Mutex::new(Vec::<(Instant, String)>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (idp, url, acked, failures, refused, stop) = (
            idp.clone(),
            token_url.clone(),
            acked.clone(),
            failures.clone(),
            refused.clone(),
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            while !stop.load(Ordering::Relaxed) {
                let form = [("grant_type", JWT_BEARER), ("assertion", &assertion(&idp))];
                match http.post(&url).form(&form).send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        let id = resp
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        match resp.text().await {
                            Ok(_) if status == StatusCode::OK => {
                                acked.lock().unwrap().push((Instant::now(), id))
                            }
                            Ok(body) => failures.lock().unwrap().push(format!("{status}: {body}")),
                            Err(e) => failures.lock().unwrap().push(format!("body: {e:?}")),
                        }
                    }
                    // The listener is closed: refused, never half-served.
                    Err(e) if e.is_connect() => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => {
                        failures.lock().unwrap().push(format!("{e:?}"));
                        break;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = r.child.id().expect("pid");
    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(60), r.child.wait())
        .await
        .expect("fedgate did not exit within 60 s of SIGTERM")
        .unwrap();
    let took = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert!(status.success(), "fedgate exited with {status}");
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "requests that were not answered cleanly: {failures:#?}"
    );
    let acked = acked.lock().unwrap().clone();
    let after_signal = acked.iter().filter(|(t, _)| *t >= signalled).count();
    eprintln!(
        "edge: {} exchanges acknowledged ({after_signal} after SIGTERM), {} clients refused at the end, exit after {} ms",
        acked.len(),
        refused.load(Ordering::Relaxed),
        took.as_millis()
    );
    assert!(acked.len() > 20, "too little load: {}", acked.len());

    // Every acknowledged exchange is in the audit log, read by a new server.
    let r2 = Replica::start_with("after-drain", &url, &[]).await;
    let audited: HashSet<String> = audit(&r2, &admin)
        .await
        .into_iter()
        .filter(|e| e["action"] == "token.exchange")
        .filter_map(|e| e["request_id"].as_str().map(String::from))
        .collect();
    let lost: Vec<_> = acked
        .iter()
        .filter(|(_, id)| !audited.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged exchanges not audited",
        lost.len()
    );
}

// ------------------------------------------------------------------ SIGKILL

#[tokio::test]
async fn admin_changes_are_audited_before_they_are_acknowledged_even_under_sigkill() {
    let (url, _dir) = fresh_database().await;
    let admin = bootstrap(&url).await;
    let mut r = Replica::start_with("killed", &url, &[]).await;
    let mut created = Vec::new();
    for i in 0..20 {
        let name = format!("t-{i}");
        let (s, b) = r
            .post("/api/v1/orgs/default/teams", &admin, json!({"name": name}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        created.push(name);
    }
    // No flush, no shutdown: the process dies right after the last answer.
    r.child.start_kill().unwrap();
    r.child.wait().await.unwrap();
    let store = fedgate::store::open(&url).await.unwrap();
    let org = store.org_by_name("default").await.unwrap().unwrap();
    let events = store.audit_of_org(&org.id, 0, 1000).await.unwrap();
    for name in &created {
        assert!(
            events.iter().any(
                |e| e.event.action == "team.create" && e.event.target == format!("team:{name}")
            ),
            "team {name} was acknowledged but its audit event is lost"
        );
    }
}

#[tokio::test]
async fn lifecycle_changes_and_their_audit_events_survive_sigkill_together() {
    let (url, _dir) = fresh_database().await;
    let admin = bootstrap(&url).await;
    let mut r = Replica::start_with("killed-lifecycle", &url, &[]).await;
    let (s, b) = r
        .post(
            "/api/v1/orgs/default/teams",
            &admin,
            json!({"name": "vision"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    const N: usize = 8;
    let mut sa_ids = Vec::new();
    for i in 0..N {
        for (path, body) in [
            (
                "/api/v1/orgs/default/users".to_string(),
                json!({"username": format!("u-{i}"), "email": format!("u-{i}@example.com")}),
            ),
            (
                "/api/v1/teams/vision/members".to_string(),
                json!({"username": format!("u-{i}"), "role": "member"}),
            ),
            (
                "/api/v1/teams/vision/projects".to_string(),
                json!({"name": format!("p-{i}")}),
            ),
        ] {
            let (s, b) = r.post(&path, &admin, body).await;
            assert_eq!(s, StatusCode::CREATED, "{path}: {b}");
        }
        let (s, b) = r
            .post(
                "/api/v1/teams/vision/service-accounts",
                &admin,
                json!({"name": format!("sa-{i}")}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        sa_ids.push(b["id"].as_str().unwrap().to_string());
    }
    // Lifecycle changes, each acknowledged; the process dies right after the last.
    let ok = |s: StatusCode, b: &Value, what: &str| {
        assert!(s.is_success(), "{what}: {s} {b}");
    };
    for (i, sa_id) in sa_ids.iter().enumerate() {
        let (s, b) = r
            .send(
                r.http
                    .patch(r.url(&format!("/api/v1/users/u-{i}")))
                    .json(&json!({"email": format!("new-{i}@example.com")})),
                Some(&admin),
            )
            .await;
        ok(s, &b, "user.update");
        let (s, b) = r
            .post(&format!("/api/v1/users/u-{i}/disable"), &admin, json!({}))
            .await;
        ok(s, &b, "user.disable");
        let (s, b) = r
            .send(
                r.http
                    .delete(r.url(&format!("/api/v1/teams/vision/members/u-{i}"))),
                Some(&admin),
            )
            .await;
        ok(s, &b, "team.member.remove");
        let (s, b) = r
            .send(
                r.http
                    .delete(r.url(&format!("/api/v1/projects/vision/p-{i}"))),
                Some(&admin),
            )
            .await;
        ok(s, &b, "project.delete");
        let (s, b) = r
            .send(
                r.http
                    .patch(r.url(&format!("/api/v1/service-accounts/{}", sa_id)))
                    .json(&json!({"description": format!("edited {i}")})),
                Some(&admin),
            )
            .await;
        ok(s, &b, "service_account.update");
        let (s, b) = r
            .send(
                r.http
                    .delete(r.url(&format!("/api/v1/service-accounts/{}", sa_id))),
                Some(&admin),
            )
            .await;
        ok(s, &b, "service_account.delete");
    }
    // No flush, no shutdown.
    r.child.start_kill().unwrap();
    r.child.wait().await.unwrap();

    let store = fedgate::store::open(&url).await.unwrap();
    let org = store.org_by_name("default").await.unwrap().unwrap();
    let events = store.audit_of_org(&org.id, 0, 10_000).await.unwrap();
    let audited = |action: &str, target: &str, detail: &str| {
        events.iter().any(|e| {
            e.event.action == action
                && e.event.target == target
                && e.event.outcome == "success"
                && e.event.details.contains(detail)
        })
    };
    let team = store.team_by_name("vision").await.unwrap().unwrap();
    let members = store.members_of_team(&team.id).await.unwrap();
    let mut lost = Vec::new();
    for (i, sa_id) in sa_ids.iter().enumerate() {
        let user = store
            .user_by_username(&format!("u-{i}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            user.email,
            format!("new-{i}@example.com"),
            "the change is stored"
        );
        assert!(user.disabled, "u-{i} is disabled");
        assert!(!members.iter().any(|m| m.username == user.username));
        assert!(
            store
                .project_by_name(&team.id, &format!("p-{i}"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.service_account_by_id(sa_id).await.unwrap().is_none());
        let member = format!("\"username\":\"u-{i}\"");
        for (action, target, detail) in [
            ("user.update", format!("user:u-{i}"), ""),
            ("user.disable", format!("user:u-{i}"), ""),
            (
                "team.member.remove",
                "team:vision".to_string(),
                member.as_str(),
            ),
            ("project.delete", format!("vision/p-{i}"), ""),
            (
                "service_account.update",
                format!("service_account:sa-{i}"),
                "",
            ),
            (
                "service_account.delete",
                format!("service_account:sa-{i}"),
                "",
            ),
        ] {
            if !audited(action, &target, detail) {
                lost.push(format!("{action} {target}"));
            }
        }
    }
    assert!(
        lost.is_empty(),
        "acknowledged changes whose audit events are lost: {lost:?}"
    );
}
