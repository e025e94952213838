//! The admin CLI end to end against the real server and the test IdP:
//! `fedgate team|sa|key|issuer|explain|audit` and trust as code
//! (`plan|apply|export`), run in-process through the library entry point
//! (and once as the built binary, for the process exit code). Each test
//! checks what a person reads, what a script parses (`--json`) and the
//! exit code, and that the server really changed (or did not).

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::idp::TestIdp;
use crate::support::{TestApp, message};
use fedgate::admin_cli::output::Io;

const GH_SUB: &str = "repo:acme/vision-train:ref:refs/heads/main";

/// One in-process run of the CLI.
struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.out).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.out, self.err
            )
        })
    }
    fn err_json(&self) -> Value {
        serde_json::from_str(self.err.trim())
            .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {}", self.err))
    }
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "stdout: {}\nstderr: {}", self.out, self.err);
        self
    }
}

/// `fedgate <args> --url <app> --api-key <key>`, in-process.
async fn cli(app: &TestApp, key: &str, args: &[&str]) -> Run {
    let mut argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    argv.extend([
        "--url".into(),
        app.base.clone(),
        "--api-key".into(),
        key.into(),
    ]);
    let (mut io, cap) = Io::capture();
    let code = fedgate::admin_cli::run_args(argv, &mut io).await;
    Run {
        code,
        out: cap.out.text(),
        err: cap.err.text(),
    }
}

fn github_token(idp: &TestIdp, overrides: Value) -> String {
    let claims = TestIdp::fixture_with(
        "github-actions",
        crate::support::idp::merge(json!({"aud": "default"}), overrides),
    );
    idp.mint(claims)
}

async fn runs_ok(app: &TestApp, key: &str) -> StatusCode {
    app.run(
        key,
        json!({"entity": "vision", "project": "cli", "name": "r"}),
    )
    .await
    .0
}

#[tokio::test]
async fn teams_accounts_keys_and_issuers_from_the_command_line() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    let admin = app.admin_key.clone();

    // Teams.
    let r = cli(&app, &admin, &["team", "create", "vision"]).await.ok();
    assert!(r.out.contains("Created team vision"), "{}", r.out);
    let r = cli(&app, &admin, &["team", "list", "--json"]).await.ok();
    assert!(
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "vision")
    );
    let r = cli(&app, &admin, &["team", "list"]).await.ok();
    assert!(r.out.starts_with("NAME"), "{}", r.out);

    // A built-in account: its key is printed once, on a line of its own, and works.
    let r = cli(
        &app,
        &admin,
        &["sa", "create", "--team", "vision", "--name", "trainer"],
    )
    .await
    .ok();
    let key = r.out.lines().last().unwrap().trim().to_string();
    assert!(key.starts_with("fgk_"), "{}", r.out);
    assert!(r.out.contains("shown once"), "{}", r.out);
    assert_eq!(runs_ok(&app, &key).await, StatusCode::CREATED);

    // An issuer and a federated account bound to a GitHub repository.
    let r = cli(&app, &admin, &["issuer", "add", &idp.issuer(), "--json"])
        .await
        .ok();
    assert_eq!(r.json()["issuer"], idp.issuer());
    let r = cli(
        &app,
        &admin,
        &[
            "sa",
            "create",
            "--team",
            "vision",
            "--name",
            "gh-train",
            "--issuer",
            &idp.issuer(),
            "--subject",
            GH_SUB,
            "--claim",
            "repository_id=703518824",
            "--json",
        ],
    )
    .await
    .ok();
    let gh = r.json();
    assert_eq!(gh["auth"], "external");
    assert!(gh.get("api_key").is_none(), "{gh}");
    let token = app.exchange_ok(&github_token(&idp, json!({}))).await;
    assert_eq!(runs_ok(&app, &token).await, StatusCode::CREATED);

    // List, show.
    let r = cli(&app, &admin, &["sa", "list", "--json"]).await.ok();
    let names: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let r = cli(&app, &admin, &["sa", "list", "--team", "vision"])
        .await
        .ok();
    assert!(
        r.out.contains("gh-train") && r.out.contains(GH_SUB),
        "{}",
        r.out
    );
    let r = cli(&app, &admin, &["sa", "show", "gh-train"]).await.ok();
    assert!(
        r.out.contains(&idp.issuer()),
        "the issuer is shown by URL: {}",
        r.out
    );
    assert!(
        r.out.contains("claim repository_id") && r.out.contains("703518824"),
        "{}",
        r.out
    );
    let r = cli(&app, &admin, &["sa", "show", "trainer", "--json"])
        .await
        .ok();
    assert_eq!(r.json()["api_keys"].as_array().unwrap().len(), 1);

    // Keys: rotate, list, revoke the old one.
    let r = cli(
        &app,
        &admin,
        &["key", "create", "--sa", "trainer", "--json"],
    )
    .await
    .ok();
    let new_key = r.json()["api_key"].as_str().unwrap().to_string();
    let r = cli(&app, &admin, &["key", "list", "--sa", "trainer", "--json"])
        .await
        .ok();
    let keys = r.json();
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let old_id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| key.starts_with(k["prefix"].as_str().unwrap()))
        .map(|k| k["id"].as_str().unwrap().to_string())
        .expect("the old key is listed by its prefix");
    cli(&app, &admin, &["key", "revoke", &old_id, "--sa", "trainer"])
        .await
        .ok();
    assert_eq!(runs_ok(&app, &key).await, StatusCode::UNAUTHORIZED);
    assert_eq!(runs_ok(&app, &new_key).await, StatusCode::CREATED);

    // Disable and enable.
    let r = cli(&app, &admin, &["sa", "disable", "trainer"]).await.ok();
    assert!(r.out.contains("Disabled"), "{}", r.out);
    assert_eq!(runs_ok(&app, &new_key).await, StatusCode::UNAUTHORIZED);
    cli(&app, &admin, &["sa", "enable", "trainer"]).await.ok();
    let fresh = cli(
        &app,
        &admin,
        &["key", "create", "--sa", "trainer", "--json"],
    )
    .await
    .ok();
    let fresh = fresh.json()["api_key"].as_str().unwrap().to_string();
    assert_eq!(runs_ok(&app, &fresh).await, StatusCode::CREATED);

    // Issuers: list, show, refresh, edit.
    let r = cli(&app, &admin, &["issuer", "list"]).await.ok();
    assert!(r.out.contains(&idp.issuer()), "{}", r.out);
    let r = cli(&app, &admin, &["issuer", "show", &idp.issuer()])
        .await
        .ok();
    assert!(
        r.out.contains("discovery") && r.out.contains("kids"),
        "{}",
        r.out
    );
    let r = cli(
        &app,
        &admin,
        &["issuer", "refresh", &idp.issuer(), "--json"],
    )
    .await
    .ok();
    assert!(r.json()["keys"]["keys"].as_u64().unwrap() >= 1, "{}", r.out);
    let r = cli(
        &app,
        &admin,
        &["issuer", "edit", &idp.issuer(), "--leeway", "30", "--json"],
    )
    .await
    .ok();
    assert_eq!(r.json()["leeway_s"], 30);
    // A bound issuer cannot be deleted: the server says why, exit 7.
    let r = cli(&app, &admin, &["issuer", "delete", &idp.issuer(), "--yes"]).await;
    assert_eq!(r.code, 7, "{}", r.err);
    assert!(
        r.err.contains("still bound") && r.err.contains("hint:"),
        "{}",
        r.err
    );

    // Without --yes and without a terminal, nothing is deleted.
    let r = cli(&app, &admin, &["issuer", "delete", &idp.issuer()]).await;
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("--yes"), "{}", r.err);
    app.stop().await;
}

#[tokio::test]
async fn failures_have_the_servers_message_a_hint_and_an_exit_code() {
    let app = TestApp::start().await;
    app.team("vision").await;
    let member = app.user("dev", "member").await;
    let admin = app.admin_key.clone();

    // 401: a key the server does not know.
    let r = cli(&app, "fgk_notakey", &["team", "list"]).await;
    assert_eq!(r.code, 4, "{}", r.err);
    assert!(r.err.contains("FEDGATE_API_KEY"), "{}", r.err);
    // 403: a member is not an org admin; the server's reason comes first.
    let r = cli(&app, &member, &["sa", "list"]).await;
    assert_eq!(r.code, 5, "{}", r.err);
    assert!(
        r.err.starts_with("error: ") && r.err.contains("org admin"),
        "{}",
        r.err
    );
    assert!(r.err.contains("hint: "), "{}", r.err);
    // 404.
    let r = cli(&app, &admin, &["sa", "show", "nobody"]).await;
    assert_eq!(r.code, 6, "{}", r.err);
    let r = cli(&app, &admin, &["sa", "list", "--team", "nosuchteam"]).await;
    assert_eq!(r.code, 6, "{}", r.err);
    // 409, as JSON for scripts: stdout stays empty, stderr is one object.
    let r = cli(&app, &admin, &["team", "create", "vision", "--json"]).await;
    assert_eq!(r.code, 7, "{}", r.err);
    assert!(r.out.is_empty(), "{}", r.out);
    let e = r.err_json();
    assert_eq!(e["error"]["status"], 409);
    assert_eq!(e["error"]["exit_code"], 7);
    assert!(e["error"]["hint"].is_string(), "{e}");
    // 400: a value the server refuses.
    let r = cli(&app, &admin, &["team", "create", "no spaces"]).await;
    assert_eq!(r.code, 8, "{}", r.err);
    assert!(r.err.contains("invalid"), "{}", r.err);
    let r = cli(
        &app,
        &admin,
        &[
            "sa",
            "create",
            "--team",
            "vision",
            "--name",
            "x",
            "--issuer",
            "https://unknown.example.com",
            "--subject",
            "s",
        ],
    )
    .await;
    assert_eq!(r.code, 8, "{}", r.err);
    assert!(r.err.contains("not a trusted issuer"), "{}", r.err);
    // 2: usage, checked before anything is sent.
    let r = cli(
        &app,
        &admin,
        &[
            "sa",
            "create",
            "--team",
            "vision",
            "--name",
            "x",
            "--subject",
            "s",
        ],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.err);
    let r = cli(&app, &admin, &["sa", "frobnicate"]).await;
    assert_eq!(r.code, 2, "{}", r.err);
    let (mut io, cap) = Io::capture();
    let code = fedgate::admin_cli::run_args(["team", "list", "--url", &app.base], &mut io).await;
    assert_eq!(code, 2, "no key: {}", cap.err.text());
    assert!(cap.err.text().contains("FEDGATE_API_KEY"));
    // 3: nobody listening.
    let (mut io, cap) = Io::capture();
    let code = fedgate::admin_cli::run_args(
        [
            "team",
            "list",
            "--url",
            "http://127.0.0.1:9",
            "--api-key",
            "k",
        ],
        &mut io,
    )
    .await;
    assert_eq!(code, 3, "{}", cap.err.text());
    assert!(cap.err.text().contains("FEDGATE_URL"));

    // The binary: FEDGATE_URL / FEDGATE_API_KEY from the environment, and
    // the exit code reaches the shell.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedgate"))
        .args(["sa", "list", "--json"])
        .env_clear()
        .env("FEDGATE_URL", &app.base)
        .env("FEDGATE_API_KEY", &member)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"]["code"], "forbidden");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedgate"))
        .args(["team", "list", "--json"])
        .env_clear()
        .env("FEDGATE_URL", &app.base)
        .env("FEDGATE_API_KEY", &admin)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let teams: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(teams[0]["name"], "vision");
    app.stop().await;
}

#[tokio::test]
async fn explain_and_audit() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    app.team("vision").await;
    let issuer = app.trust(&idp).await;
    app.external_sa(
        "vision",
        "gh-train",
        json!({"issuer": issuer, "subject": GH_SUB, "claims": {"repository_id": "703518824"}}),
    )
    .await;
    let admin = app.admin_key.clone();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.jwt");
    std::fs::write(&good, github_token(&idp, json!({}))).unwrap();
    let bad = dir.path().join("bad.jwt");
    std::fs::write(&bad, github_token(&idp, json!({"repository_id": "1"}))).unwrap();

    let r = cli(&app, &admin, &["explain", good.to_str().unwrap()])
        .await
        .ok();
    assert!(
        r.out.contains("Would succeed") && r.out.contains("gh-train"),
        "{}",
        r.out
    );
    assert!(r.out.contains("CHECK"), "{}", r.out);
    let r = cli(&app, &admin, &["explain", bad.to_str().unwrap()]).await;
    assert_eq!(r.code, 9, "{}\n{}", r.out, r.err);
    assert!(
        r.out.contains("Would fail") && r.out.contains("repository_id"),
        "{}",
        r.out
    );
    let r = cli(&app, &admin, &["explain", bad.to_str().unwrap(), "--json"]).await;
    assert_eq!(r.code, 9);
    assert_eq!(r.json()["outcome"], "would_fail");
    let r = cli(
        &app,
        &admin,
        &["explain", dir.path().join("nope").to_str().unwrap()],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.err);
    // Explain mints nothing.
    assert!(
        !app.audit()
            .await
            .iter()
            .any(|e| e["action"] == "token.exchange")
    );

    // The audit log: the most recent events, filtered.
    let r = cli(
        &app,
        &admin,
        &["audit", "--json", "--action", "service_account."],
    )
    .await
    .ok();
    let events = r.json();
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events[0]["action"], "service_account.create");
    let r = cli(&app, &admin, &["audit", "--limit", "2", "--json"])
        .await
        .ok();
    let last_two = r.json();
    let all = app.audit().await;
    assert_eq!(
        last_two.as_array().unwrap().as_slice(),
        &all[all.len() - 2..]
    );
    let r = cli(&app, &admin, &["audit"]).await.ok();
    assert!(
        r.out.starts_with("SEQ") && r.out.contains("service_account.create"),
        "{}",
        r.out
    );

    // --follow prints what happens after it started, one JSON object per line.
    let (mut io, cap) = Io::capture();
    let argv: Vec<String> = [
        "audit",
        "--follow",
        "--interval",
        "1",
        "--json",
        "--limit",
        "0",
        "--url",
        &app.base,
        "--api-key",
        &admin,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let follower = tokio::spawn(async move { fedgate::admin_cli::run_args(argv, &mut io).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.team("followed").await;
    let mut seen = false;
    for _ in 0..100 {
        if cap.out.text().contains("team:followed") {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    follower.abort();
    assert!(
        seen,
        "follow did not print the new event: {}",
        cap.out.text()
    );
    for line in cap.out.text().lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        assert!(e["seq"].is_i64(), "{line}");
    }
    app.stop().await;
}

// ---------------------------------------------------------------- trust as code

fn trust_file(dir: &Path, text: &str) -> String {
    let p = dir.join("trust.toml");
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn trust_text(issuer: &str, repo_id: &str) -> String {
    format!(
        r#"org = "default"

[[issuer]]
url = "{issuer}"

[[service_account]]
name = "gh-train"
team = "vision"
issuer = "{issuer}"
subject = "{GH_SUB}"
claims = {{ repository_id = "{repo_id}" }}

[[service_account]]
name = "gh-eval"
team = "research"
issuer = "{issuer}"
subject = "repo:acme/eval:ref:refs/heads/main"
max_token_lifetime_s = 900
"#
    )
}

#[tokio::test]
async fn plan_apply_export_round_trip() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    app.team("vision").await;
    app.team_sa("vision", "trainer").await;
    let admin = app.admin_key.clone();
    let dir = tempfile::tempdir().unwrap();
    let file = trust_file(dir.path(), &trust_text(&idp.issuer(), "703518824"));

    // Plan: shows everything, changes nothing.
    let r = cli(&app, &admin, &["plan", "-f", &file]).await.ok();
    assert!(r.out.contains("+ team research"), "{}", r.out);
    assert!(
        r.out.contains(&format!("+ issuer {}", idp.issuer())),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("+ service account gh-train (team vision)"),
        "{}",
        r.out
    );
    assert!(r.out.contains("repository_id"), "{}", r.out);
    assert!(
        r.out
            .contains("Plan: 4 to create, 0 to change, 0 to delete."),
        "{}",
        r.out
    );
    let r = cli(
        &app,
        &admin,
        &["plan", "-f", &file, "--exit-code", "--json"],
    )
    .await;
    assert_eq!(r.code, 10);
    assert_eq!(
        r.json()["summary"],
        json!({"create": 4, "update": 0, "delete": 0})
    );
    let (s, b) = app.get("/api/v1/orgs/default/issuers", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["issuers"], json!([]), "plan changed nothing");

    // Apply: the token exchange works; built-in accounts are none of the file's business.
    let r = cli(&app, &admin, &["apply", "-f", &file]).await.ok();
    assert!(r.out.contains("Apply complete: 4 created"), "{}", r.out);
    app.exchange_ok(&github_token(&idp, json!({}))).await;
    let (_, b) = app
        .get("/api/v1/orgs/default/service-accounts", Some(&admin))
        .await;
    let eval = b["service_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "gh-eval")
        .unwrap()
        .clone();
    assert_eq!(eval["team"], "research");
    assert_eq!(eval["max_token_lifetime_s"], 900);

    // Idempotent.
    let r = cli(&app, &admin, &["apply", "-f", &file]).await.ok();
    assert!(r.out.contains("No changes"), "{}", r.out);
    let r = cli(&app, &admin, &["plan", "-f", &file, "--exit-code"]).await;
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(
        !r.out.contains("trainer"),
        "built-in accounts are not listed as leftovers: {}",
        r.out
    );

    // Export writes today's state; planning it against the server finds nothing.
    let exported = dir.path().join("exported.toml");
    cli(&app, &admin, &["export", "-o", exported.to_str().unwrap()])
        .await
        .ok();
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(
        text.contains("name = \"gh-eval\"") && text.contains("max_token_lifetime_s = 900"),
        "{text}"
    );
    assert!(!text.contains("trainer"), "{text}");
    let r = cli(
        &app,
        &admin,
        &["plan", "-f", exported.to_str().unwrap(), "--exit-code"],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{text}", r.out);
    let r = cli(&app, &admin, &["export"]).await.ok();
    assert_eq!(
        r.out.lines().skip(1).collect::<Vec<_>>(),
        text.lines().skip(1).collect::<Vec<_>>(),
        "stdout and -o agree (but for the time in the header)"
    );
    let r = cli(&app, &admin, &["export", "--json"]).await.ok();
    assert_eq!(r.json()["service_accounts"].as_array().unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn bad_trust_files_name_the_line_and_change_nothing() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    let admin = app.admin_key.clone();
    let dir = tempfile::tempdir().unwrap();
    let good = trust_text(&idp.issuer(), "703518824");

    let file = trust_file(
        dir.path(),
        &good.replace("subject = \"repo:acme/eval", "subjet = \"repo:acme/eval"),
    );
    let r = cli(&app, &admin, &["apply", "-f", &file]).await;
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(
        r.err.contains("trust.toml:17:") && r.err.contains("subjet"),
        "{}",
        r.err
    );

    let file = trust_text(&idp.issuer(), "703518824")
        .replace("max_token_lifetime_s = 900", "max_token_lifetime_s = 5");
    let file = trust_file(dir.path(), &file);
    let r = cli(&app, &admin, &["plan", "-f", &file, "--json"]).await;
    assert_eq!(r.code, 2, "{}", r.err);
    let e = r.err_json();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("trust.toml:18:"),
        "{e}"
    );

    // Another organization's file is refused before anything changes.
    let file = trust_file(
        dir.path(),
        &good.replace("org = \"default\"", "org = \"acme\""),
    );
    let r = cli(&app, &admin, &["apply", "-f", &file]).await;
    assert_eq!(r.code, 7, "{}", r.err);
    assert!(r.err.contains("\"acme\""), "{}", r.err);

    // A declared account whose name a built-in one holds: nothing is applied.
    app.team("vision").await;
    app.team_sa("vision", "gh-eval").await;
    let file = trust_file(dir.path(), &good);
    let r = cli(&app, &admin, &["plan", "-f", &file]).await;
    assert_eq!(r.code, 7, "{}", r.out);
    assert!(
        r.out.contains("Cannot be applied") && r.out.contains("gh-eval"),
        "{}",
        r.out
    );
    let r = cli(&app, &admin, &["apply", "-f", &file]).await;
    assert_eq!(r.code, 7, "{}", r.err);
    assert!(r.err.contains("nothing was changed"), "{}", r.err);
    let (_, b) = app.get("/api/v1/orgs/default/issuers", Some(&admin)).await;
    assert_eq!(b["issuers"], json!([]));

    // The server refusing an item stops apply at it, saying what was done.
    let file = trust_file(
        dir.path(),
        &format!(
            "[[issuer]]\nurl = \"{}\"\n\n[[issuer]]\nurl = \"http://127.0.0.1:9/nobody\"\n",
            idp.issuer()
        ),
    );
    let r = cli(&app, &admin, &["apply", "-f", &file]).await;
    assert_eq!(r.code, 8, "{}\n{}", r.out, r.err);
    assert!(
        r.out.contains("created issuer") && r.out.contains("Stopped at"),
        "{}",
        r.out
    );
    assert!(r.err.contains("signing keys cannot be used"), "{}", r.err);
    app.stop().await;
}
#[tokio::test]
async fn edit_show_delete_and_shadow_from_the_command_line() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    app.team("vision").await;
    let admin = app.admin_key.clone();
    let issuer_id = app.trust(&idp).await;

    // A duplicate registration names the existing issuer.
    let r = cli(&app, &admin, &["issuer", "add", &idp.issuer()]).await;
    assert_eq!(r.code, 7, "{}", r.err);
    assert!(
        r.err.contains(&format!("registered as {issuer_id}")),
        "{}",
        r.err
    );
    let r = cli(&app, &admin, &["issuer", "show", &issuer_id, "--json"])
        .await
        .ok();
    assert_eq!(r.json()["issuer"], idp.issuer());

    // A federated account, created in shadow mode: it mints nothing, and
    // explain and the audit log say it would have matched.
    let r = cli(
        &app,
        &admin,
        &[
            "sa",
            "create",
            "--team",
            "vision",
            "--name",
            "gh-train",
            "--issuer",
            &issuer_id,
            "--subject",
            GH_SUB,
            "--claim",
            "repository_id=1",
            "--mode",
            "shadow",
            "--json",
        ],
    )
    .await
    .ok();
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = cli(&app, &admin, &["sa", "show", &id, "--json"]).await.ok();
    assert_eq!(r.json()["binding"]["mode"], "shadow");
    let r = cli(&app, &admin, &["sa", "list"]).await.ok();
    assert!(r.out.contains("(shadow)"), "{}", r.out);
    let token = github_token(&idp, json!({}));

    // Edit: the claim condition is replaced, the mode turned on; the next
    // exchange uses the new binding.
    let (s, _) = app.exchange(&token).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let r = cli(
        &app,
        &admin,
        &[
            "sa",
            "edit",
            "gh-train",
            "--claim",
            "repository_id=703518824",
            "--mode",
            "enforce",
            "--json",
        ],
    )
    .await
    .ok();
    assert_eq!(r.json()["binding"]["claims"]["repository_id"], "703518824");
    let access = app.exchange_ok(&token).await;
    assert_eq!(runs_ok(&app, &access).await, StatusCode::CREATED);
    let r = cli(
        &app,
        &admin,
        &["sa", "edit", "gh-train", "--remove-claim", "nope"],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.err);
    let r = cli(&app, &admin, &["sa", "edit", "gh-train"]).await;
    assert_eq!(r.code, 2, "nothing to change: {}", r.err);
    let r = cli(
        &app,
        &admin,
        &[
            "sa",
            "edit",
            "gh-train",
            "--subject-pattern",
            "repo:acme/*",
            "--description",
            "CI of vision",
        ],
    )
    .await
    .ok();
    assert!(r.out.contains("Updated"), "{}", r.out);
    let r = cli(&app, &admin, &["sa", "show", "gh-train"]).await.ok();
    assert!(
        r.out.contains("repo:acme/*") && r.out.contains("CI of vision"),
        "{}",
        r.out
    );
    cli(
        &app,
        &admin,
        &["sa", "edit", "gh-train", "--clear-subject-pattern"],
    )
    .await
    .ok();
    let r = cli(&app, &admin, &["sa", "show", "gh-train", "--json"])
        .await
        .ok();
    assert!(
        r.json()["binding"].get("subject_pattern").is_none(),
        "{}",
        r.out
    );

    // Delete: the live token is refused at once; the name is free again.
    let r = cli(&app, &admin, &["sa", "delete", "gh-train", "--yes"])
        .await
        .ok();
    assert!(r.out.contains("Deleted"), "{}", r.out);
    assert_eq!(runs_ok(&app, &access).await, StatusCode::UNAUTHORIZED);
    let r = cli(&app, &admin, &["sa", "show", "gh-train"]).await;
    assert_eq!(r.code, 6, "{}", r.err);
    let r = cli(&app, &admin, &["sa", "show", &id]).await;
    assert_eq!(r.code, 6, "{}", r.err);

    // Teams: show, and delete refused while something lives in it.
    app.team_sa("vision", "trainer").await;
    let r = cli(&app, &admin, &["team", "show", "vision"]).await.ok();
    assert!(r.out.contains("Team vision"), "{}", r.out);
    let r = cli(&app, &admin, &["team", "delete", "vision", "--yes"]).await;
    assert_eq!(r.code, 7, "{}", r.err);
    assert!(
        r.err.contains("trainer"),
        "the server lists what is left: {}",
        r.err
    );
    let r = cli(
        &app,
        &admin,
        &["team", "delete", "vision", "--yes", "--delete-contents"],
    )
    .await
    .ok();
    assert!(r.out.contains("trainer"), "{}", r.out);
    app.stop().await;
}

#[tokio::test]
async fn apply_changes_bindings_and_prunes() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    let admin = app.admin_key.clone();
    let dir = tempfile::tempdir().unwrap();
    let file = trust_file(dir.path(), &trust_text(&idp.issuer(), "1"));
    cli(&app, &admin, &["apply", "-f", &file]).await.ok();
    let token = github_token(&idp, json!({}));
    let (s, _) = app.exchange(&token).await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "repository 1 is not the token's"
    );

    // A changed claim: planned field by field, applied, used by the next exchange.
    let file = trust_file(dir.path(), &trust_text(&idp.issuer(), "703518824"));
    let r = cli(&app, &admin, &["plan", "-f", &file]).await.ok();
    assert!(r.out.contains("~ service account gh-train"), "{}", r.out);
    assert!(
        r.out
            .contains("claims.repository_id: \"1\" -> \"703518824\""),
        "{}",
        r.out
    );
    assert!(
        r.out
            .contains("Plan: 0 to create, 1 to change, 0 to delete."),
        "{}",
        r.out
    );
    cli(&app, &admin, &["apply", "-f", &file]).await.ok();
    let access = app.exchange_ok(&token).await;

    // Shadow mode declared: the exchange mints nothing and is audited.
    let shadow = trust_text(&idp.issuer(), "703518824").replace(
        "claims = { repository_id = \"703518824\" }",
        "claims = { repository_id = \"703518824\" }\nmode = \"shadow\"",
    );
    let file = trust_file(dir.path(), &shadow);
    cli(&app, &admin, &["apply", "-f", &file]).await.ok();
    let (s, _) = app.exchange(&token).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        app.audit()
            .await
            .iter()
            .any(|e| e["action"] == "token.exchange.shadow")
    );
    let r = cli(&app, &admin, &["plan", "-f", &file, "--exit-code"]).await;
    assert_eq!(r.code, 0, "{}", r.out);
    let exported = cli(&app, &admin, &["export"]).await.ok();
    assert!(
        exported.out.contains("mode = \"shadow\""),
        "{}",
        exported.out
    );

    // An account removed from the file: kept without --prune, deleted with it.
    let one = format!(
        "[[issuer]]\nurl = \"{}\"\n\n[[service_account]]\nname = \"gh-eval\"\nteam = \"research\"\nissuer = \"{}\"\nsubject = \"repo:acme/eval:ref:refs/heads/main\"\nmax_token_lifetime_s = 900\n",
        idp.issuer(),
        idp.issuer()
    );
    let file = trust_file(dir.path(), &one);
    let r = cli(&app, &admin, &["apply", "-f", &file]).await.ok();
    assert!(r.out.contains("No changes"), "{}", r.out);
    assert!(r.err.contains("--prune"), "{}", r.err);
    let r = cli(&app, &admin, &["plan", "-f", &file, "--prune", "--json"])
        .await
        .ok();
    let plan = r.json();
    assert_eq!(plan["changes"][0]["action"], "delete");
    assert_eq!(plan["changes"][0]["name"], "gh-train");
    let r = cli(&app, &admin, &["apply", "-f", &file, "--prune"])
        .await
        .ok();
    assert!(
        r.out.contains("deleted service account gh-train"),
        "{}",
        r.out
    );
    let (_, b) = app
        .get("/api/v1/orgs/default/service-accounts", Some(&admin))
        .await;
    let names: Vec<&str> = b["service_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["gh-eval"]);
    let _ = access;
    app.stop().await;
}

#[tokio::test]
async fn a_broad_subject_pattern_round_trips_through_the_trust_file() {
    let app = TestApp::start().await;
    let idp = TestIdp::start().await;
    app.team("vision").await;
    let admin = app.admin_key.clone();
    let dir = tempfile::tempdir().unwrap();
    let issuer = idp.issuer();
    let text = |broad: bool| {
        format!(
            r#"org = "default"

[[issuer]]
url = "{issuer}"

[[service_account]]
name = "gh-any"
team = "vision"
issuer = "{issuer}"
subject = "{GH_SUB}"
subject_pattern = "repo:*"
{}"#,
            if broad {
                "allow_broad_subject_pattern = true\n"
            } else {
                ""
            }
        )
    };

    // Without the opt-in the server refuses the pattern, naming the field.
    let file = trust_file(dir.path(), &text(false));
    let r = cli(&app, &admin, &["apply", "-f", &file]).await;
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(
        r.err.contains("too broad") && r.err.contains("allow_broad_subject_pattern"),
        "{}",
        r.err
    );

    // With it: plan shows it, apply sets it, the next plan is empty.
    let file = trust_file(dir.path(), &text(true));
    let r = cli(&app, &admin, &["plan", "-f", &file]).await.ok();
    assert!(r.out.contains("allow_broad_subject_pattern"), "{}", r.out);
    cli(&app, &admin, &["apply", "-f", &file]).await.ok();
    let (_, b) = app
        .get("/api/v1/orgs/default/service-accounts", Some(&admin))
        .await;
    let sa = b["service_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "gh-any")
        .unwrap_or_else(|| panic!("{b}"))
        .clone();
    assert_eq!(sa["binding"]["allow_broad_subject_pattern"], true, "{sa}");
    assert_eq!(sa["binding"]["subject_pattern"], "repo:*", "{sa}");
    let r = cli(&app, &admin, &["plan", "-f", &file, "--exit-code"]).await;
    assert_eq!(r.code, 0, "{}", r.out);

    // Export writes it back; the exported file plans to nothing.
    let r = cli(&app, &admin, &["export"]).await.ok();
    assert!(
        r.out.contains("allow_broad_subject_pattern = true"),
        "{}",
        r.out
    );
    let exported = trust_file(dir.path(), &r.out);
    let r = cli(&app, &admin, &["plan", "-f", &exported, "--exit-code"]).await;
    assert_eq!(r.code, 0, "{}", r.out);
    let r = cli(&app, &admin, &["export", "--json"]).await.ok();
    assert_eq!(
        r.json()["service_accounts"][0]["allow_broad_subject_pattern"],
        true
    );

    // A team admin cannot apply it: the server keeps the opt-in an org admin's.
    let lead = app.user("lead", "member").await;
    app.member("vision", "lead", "admin").await;
    let (s, b) = app
        .patch(
            &format!("/api/v1/service-accounts/{}", sa["id"].as_str().unwrap()),
            Some(&lead),
            json!({"allow_broad_subject_pattern": true, "subject_pattern": "repo:*"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("org admin"), "{b}");
    let r = cli(&app, &lead, &["apply", "-f", &file]).await;
    assert_ne!(r.code, 0, "a team admin's apply: {}", r.out);

    // Removing the line is a change back to the default, which the server
    // then refuses for this pattern: the plan says so field by field.
    let file = trust_file(dir.path(), &text(false));
    let r = cli(&app, &admin, &["plan", "-f", &file, "--json"]).await;
    let plan = r.json();
    let fields: Vec<&str> = plan["changes"][0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["allow_broad_subject_pattern"], "{plan}");

    // A bad value names its line.
    let file = trust_file(
        dir.path(),
        &text(true).replace(
            "allow_broad_subject_pattern = true",
            "allow_broad_subject_pattern = \"yes\"",
        ),
    );
    let r = cli(&app, &admin, &["plan", "-f", &file]).await;
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("trust.toml:12:"), "{}", r.err);
    idp.stop();
    app.stop().await;
}
