//! The docs run as written: the README tour and the guides' shell blocks are
//! extracted from the Markdown, run with bash and curl against the real
//! `fedgate` binary (`fedgate serve` on a fresh SQLite store), and every
//! answer a block shows (`# → …` lines) is checked against what came back.
//!
//! What is substituted, and nothing else: the host and port (`127.0.0.1:8080`,
//! or the guide's example server URL) by the test server's; an identity
//! provider the machine cannot reach (GitHub's issuer URL) by the test IdP,
//! whose tokens the test hands to the block as the variable a CI system would
//! set (`$JWT`); and `export ADMIN=fgk_…`, the key `fedgate serve` printed,
//! which the reader copies by hand.
//!
//! Answers are compared on their key facts: whitespace is ignored and `…`
//! stands for anything (ids, keys, timestamps, skipped fields), but every
//! shown fragment must come back, in order. A leading status (`201 {…}`) is
//! checked against the HTTP status of the step's last curl call. A block
//! preceded by `<!-- doc-test: skip (why) -->` is not run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::idp::TestIdp;

/// One answer shown in a doc: `# → …` plus continuation lines (`#  …`).
#[derive(Debug)]
struct Expect {
    line: usize,
    text: String,
}

/// Commands up to the answers they produce.
#[derive(Debug, Default)]
struct Step {
    line: usize,
    script: Vec<String>,
    /// The step is the doc's `fedgate serve` line: its answers are the
    /// server's output, not bash's.
    serve: bool,
    expects: Vec<Expect>,
}

/// The runnable steps of a Markdown document, in order.
fn steps(md: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut run_block = false;
    let mut skip_next = false;
    let mut cur = Step::default();
    let mut in_answer = false;
    for (i, line) in md.lines().enumerate() {
        let n = i + 1;
        let t = line.trim_start();
        if let Some(info) = t.strip_prefix("```") {
            if in_block {
                if run_block && (!cur.script.is_empty() || !cur.expects.is_empty()) {
                    out.push(std::mem::take(&mut cur));
                }
                in_block = false;
                in_answer = false;
            } else {
                in_block = true;
                let lang = info.split_whitespace().next().unwrap_or("");
                run_block = matches!(lang, "sh" | "bash" | "shell") && !skip_next;
                skip_next = false;
            }
            continue;
        }
        if !in_block {
            if t.starts_with("<!-- doc-test: skip") {
                assert!(
                    t.len() > "<!-- doc-test: skip -->".len() + 3,
                    "line {n}: a skipped block says why"
                );
                skip_next = true;
            } else if !t.is_empty() {
                skip_next = false;
            }
            continue;
        }
        if !run_block {
            continue;
        }
        if let Some(answer) = t.strip_prefix("# →") {
            cur.expects.push(Expect {
                line: n,
                text: answer.trim().to_string(),
            });
            in_answer = true;
            continue;
        }
        // Continuation lines: `#  …`, and `#` alone for a blank line.
        if in_answer && (t.starts_with("#  ") || t.trim_end() == "#") {
            if let Some(last) = cur.expects.last_mut() {
                last.text.push_str(t.trim_start_matches('#'));
            }
            continue;
        }
        in_answer = false;
        if !cur.expects.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        if cur.script.is_empty() && cur.line == 0 {
            cur.line = n;
        }
        if t.starts_with("cargo run --release -- serve") || t.starts_with("fedgate serve") {
            // The test starts the server itself (on the substituted port).
            if !cur.script.is_empty() {
                out.push(std::mem::take(&mut cur));
                cur.line = n;
            }
            cur.serve = true;
            continue;
        }
        cur.script.push(line.to_string());
    }
    out
}

/// Whether `actual` shows what the doc shows. A JSON answer is compared as
/// JSON: every member shown must be there with that value (members not
/// shown, and their order, do not matter), `…` stands for elided members,
/// array elements or characters of a string. Any other answer: every
/// fragment between `…`s must appear, in order, ignoring whitespace.
fn shows(expected: &str, actual: &str) -> bool {
    let e = expected.trim_start();
    if e.starts_with('{') || e.starts_with('[') {
        let Some(pattern) = Pattern::parse(e) else {
            panic!("the doc's answer is not JSON (with …): {expected}");
        };
        let values: Vec<Value> = serde_json::Deserializer::from_str(actual)
            .into_iter::<Value>()
            .map_while(Result::ok)
            .collect();
        return values.iter().any(|v| pattern.matches(v));
    }
    let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let actual = squash(actual);
    let mut rest = actual.as_str();
    for frag in expected.split('…').map(squash).filter(|f| !f.is_empty()) {
        match rest.find(&frag) {
            Some(i) => rest = &rest[i + frag.len()..],
            None => return false,
        }
    }
    true
}

/// A JSON answer as a doc shows it, `…` included.
#[derive(Debug)]
enum Pattern {
    Object(Vec<(String, Pattern)>),
    /// `None`: a `…` standing for any number of elements.
    Array(Vec<Option<Pattern>>),
    /// May contain `…`.
    Str(String),
    Literal(Value),
    Any,
}

impl Pattern {
    fn parse(text: &str) -> Option<Pattern> {
        let chars: Vec<char> = text.chars().collect();
        let mut at = 0;
        let p = Self::value(&chars, &mut at)?;
        Self::ws(&chars, &mut at);
        (at == chars.len()).then_some(p)
    }

    fn ws(c: &[char], at: &mut usize) {
        while *at < c.len() && (c[*at].is_whitespace() || c[*at] == ',') {
            *at += 1;
        }
    }

    fn value(c: &[char], at: &mut usize) -> Option<Pattern> {
        Self::ws(c, at);
        match c.get(*at)? {
            '…' => {
                *at += 1;
                Some(Pattern::Any)
            }
            '{' => {
                *at += 1;
                let mut members = Vec::new();
                loop {
                    Self::ws(c, at);
                    match c.get(*at)? {
                        '}' => {
                            *at += 1;
                            return Some(Pattern::Object(members));
                        }
                        '…' => *at += 1,
                        '"' => {
                            let key = Self::string(c, at)?;
                            Self::ws(c, at);
                            if c.get(*at) != Some(&':') {
                                return None;
                            }
                            *at += 1;
                            members.push((key, Self::value(c, at)?));
                        }
                        _ => return None,
                    }
                }
            }
            '[' => {
                *at += 1;
                let mut items = Vec::new();
                loop {
                    Self::ws(c, at);
                    match c.get(*at)? {
                        ']' => {
                            *at += 1;
                            return Some(Pattern::Array(items));
                        }
                        '…' => {
                            *at += 1;
                            items.push(None);
                        }
                        _ => items.push(Some(Self::value(c, at)?)),
                    }
                }
            }
            '"' => Some(Pattern::Str(Self::string(c, at)?)),
            _ => {
                let start = *at;
                while *at < c.len() && !matches!(c[*at], ',' | ']' | '}') && !c[*at].is_whitespace()
                {
                    *at += 1;
                }
                let lit: String = c[start..*at].iter().collect();
                serde_json::from_str(&lit).ok().map(Pattern::Literal)
            }
        }
    }

    fn string(c: &[char], at: &mut usize) -> Option<String> {
        let start = *at;
        *at += 1;
        while *at < c.len() && c[*at] != '"' {
            if c[*at] == '\\' {
                *at += 1;
            }
            *at += 1;
        }
        *at += 1;
        let raw: String = c.get(start..*at)?.iter().collect();
        serde_json::from_str(&raw).ok()
    }

    fn matches(&self, v: &Value) -> bool {
        match (self, v) {
            (Pattern::Any, _) => true,
            (Pattern::Object(members), Value::Object(m)) => members
                .iter()
                .all(|(k, p)| m.get(k).is_some_and(|v| p.matches(v))),
            (Pattern::Array(items), Value::Array(a)) => {
                if !items.iter().any(Option::is_none) {
                    return items.len() == a.len()
                        && items
                            .iter()
                            .zip(a)
                            .all(|(p, v)| p.as_ref().is_some_and(|p| p.matches(v)));
                }
                // In order, gaps anywhere.
                let mut rest = a.iter();
                items.iter().flatten().all(|p| rest.any(|v| p.matches(v)))
            }
            (Pattern::Str(s), Value::String(v)) => {
                let frags: Vec<&str> = s.split('…').collect();
                if frags.len() == 1 {
                    return s == v;
                }
                let (first, last) = (frags[0], frags[frags.len() - 1]);
                if !v.starts_with(first) || !v[first.len()..].ends_with(last) {
                    return false;
                }
                let mut rest = &v[first.len()..v.len() - last.len()];
                frags[1..frags.len() - 1]
                    .iter()
                    .all(|f| match rest.find(f) {
                        Some(i) => {
                            rest = &rest[i + f.len()..];
                            true
                        }
                        None => false,
                    })
            }
            (Pattern::Literal(l), v) => l == v,
            _ => false,
        }
    }
}

/// `201 {…}` → (Some(201), "{…}").
fn split_status(expected: &str) -> (Option<u16>, &str) {
    let mut parts = expected.splitn(2, ' ');
    match (parts.next(), parts.next()) {
        (Some(code), Some(rest)) if code.len() == 3 && code.parse::<u16>().is_ok() => {
            (code.parse().ok(), rest)
        }
        _ => (None, expected),
    }
}

/// A free loopback port (bound, then released for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `fedgate serve` as the docs start it, in its own folder (so `./fedgate.db`
/// is fresh), on `port`; returns the child, its printed lines and the key.
async fn serve(dir: &Path, port: u16) -> (tokio::process::Child, String, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedgate"))
        .arg("serve")
        .current_dir(dir)
        .env("FEDGATE_LISTEN", format!("127.0.0.1:{port}"))
        // The test IdP stands in for GitHub on a loopback http:// URL.
        .env("FEDGATE_ALLOW_INSECURE_ISSUERS", "true")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start fedgate serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let key = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            printed.push_str(&l);
            printed.push('\n');
            if let Some(k) = l.strip_prefix("Admin API key (shown once, store it now): ") {
                return k.trim().to_string();
            }
        }
        panic!("fedgate serve printed no admin key: {printed}");
    })
    .await
    .expect("fedgate serve prints its admin key within 60 s");
    let client = reqwest::Client::new();
    for _ in 0..300 {
        let up = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            return (child, printed, key);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fedgate serve did not answer /healthz on port {port}");
}

/// How one document is run.
struct DocRun<'a> {
    /// Repository-relative path of the Markdown file.
    doc: &'a str,
    /// (text in the doc, replacement) applied to every command line;
    /// `{base}` in a replacement is the server's URL.
    subs: Vec<(String, String)>,
    /// Variables the environment provides (a CI system's token, say);
    /// `{base}` is the server's URL, `{admin_key}` the key it printed.
    env: Vec<(String, String)>,
}

/// A document that ran, with its server still up for further checks.
struct Ran {
    base: String,
    admin_key: String,
    _server: tokio::process::Child,
    dir: tempfile::TempDir,
}

const MARK: &str = "@@doc-step";

/// Runs every step of `run.doc` against a fresh `fedgate serve` and checks
/// every shown answer; returns the server, still running.
async fn run_doc(run: DocRun<'_>) -> Ran {
    run_doc_with(run, async |_: &str, _: &str, _: &Path| {}).await
}

/// [`run_doc`], calling `before` with the server's URL, the admin key and
/// the folder the commands run in, before they run (to hand them what a CI
/// system or an earlier step of the reader's would: a token file, trust).
async fn run_doc_with(run: DocRun<'_>, before: impl AsyncFnOnce(&str, &str, &Path)) -> Ran {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let md = std::fs::read_to_string(root.join(run.doc)).unwrap();
    let steps = steps(&md);
    assert!(!steps.is_empty(), "{}: no commands to run", run.doc);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (server, printed, key) = serve(dir.path(), port).await;
    let base = format!("http://127.0.0.1:{port}");
    before(&base, &key, dir.path()).await;

    let mut subs: Vec<(String, String)> = run
        .subs
        .into_iter()
        .map(|(from, to)| (from, to.replace("{base}", &base)))
        .collect();
    subs.push(("127.0.0.1:8080".into(), format!("127.0.0.1:{port}")));
    subs.push(("ADMIN=fgk_…".into(), format!("ADMIN={key}")));
    subs.push((
        "FEDGATE_API_KEY=fgk_…".into(),
        format!("FEDGATE_API_KEY={key}"),
    ));
    // Every curl reports its status on stderr (the answers show some).
    let mut script = String::from(
        "set -eo pipefail\ncurl() { command curl -w '%{stderr}@@http %{http_code}\\n' \"$@\"; }\n",
    );
    for (i, step) in steps.iter().enumerate() {
        for line in &step.script {
            let mut l = line.clone();
            for (from, to) in &subs {
                l = l.replace(from.as_str(), to);
            }
            assert!(
                !l.contains("fgk_…"),
                "{} line {}: a placeholder the test cannot fill: {line}",
                run.doc,
                step.line
            );
            script.push_str(&l);
            script.push('\n');
        }
        script.push_str(&format!("echo; echo '{MARK} {i}'; echo '{MARK} {i}' >&2\n"));
    }
    // The guides run inside the reader's repository (trust-as-code commits).
    let git = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir.path())
        .status();
    assert!(git.is_ok_and(|s| s.success()), "git init");
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env_clear()
        // `fedgate` (the client commands of the guides) is the binary under test.
        .env("PATH", {
            let bin = PathBuf::from(env!("CARGO_BIN_EXE_fedgate"));
            let dir = bin.parent().unwrap().display().to_string();
            format!("{dir}:{}", std::env::var("PATH").unwrap_or_default())
        })
        .env("HOME", dir.path())
        .env("GIT_AUTHOR_NAME", "docs")
        .env("GIT_AUTHOR_EMAIL", "docs@example.com")
        .env("GIT_COMMITTER_NAME", "docs")
        .env("GIT_COMMITTER_EMAIL", "docs@example.com")
        .envs(run.env.iter().map(|(k, v)| {
            (
                k.clone(),
                v.replace("{base}", &base).replace("{admin_key}", &key),
            )
        }))
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("the doc's commands finish within 180 s")
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let split = |text: &str| -> Vec<String> {
        let mut parts = Vec::new();
        let mut cur = String::new();
        for l in text.lines() {
            if l.starts_with(MARK) {
                parts.push(std::mem::take(&mut cur));
            } else {
                cur.push_str(l);
                cur.push('\n');
            }
        }
        parts
    };
    let outs = split(&stdout);
    let errs = split(&stderr);
    if outs.len() < steps.len() {
        let failed = &steps[outs.len()];
        panic!(
            "{} line {}: the commands failed (exit {:?}).\ncommands:\n{}\nstdout:\n{}\nstderr:\n{}",
            run.doc,
            failed.line,
            out.status.code(),
            failed.script.join("\n"),
            outs.last().map(String::as_str).unwrap_or(""),
            stderr
        );
    }
    let mut wrong = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let actual = if step.serve { &printed } else { &outs[i] };
        for e in &step.expects {
            // The same hosts stand in on both sides.
            let text = subs.iter().fold(e.text.clone(), |t, (from, to)| {
                if from.contains("=fgk_") {
                    t
                } else {
                    t.replace(from.as_str(), to)
                }
            });
            let (status, body) = split_status(&text);
            if let Some(code) = status {
                let last = errs[i]
                    .lines()
                    .filter_map(|l| l.strip_prefix("@@http "))
                    .next_back()
                    .and_then(|c| c.trim().parse::<u16>().ok());
                if last != Some(code) {
                    wrong.push(format!(
                        "{} line {}: the doc shows status {code}; got {last:?}: {actual}",
                        run.doc, e.line
                    ));
                }
            }
            if !shows(body, actual) {
                wrong.push(format!(
                    "{} line {}: the doc shows\n  {}\nbut the commands printed\n  {}",
                    run.doc,
                    e.line,
                    e.text,
                    actual.trim()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    Ran {
        base,
        admin_key: key,
        _server: server,
        dir,
    }
}

/// A GitHub Actions token from the test IdP for `repository`, with `aud`.
fn github_token(idp: &TestIdp, aud: &str, overrides: Value) -> String {
    let claims = TestIdp::fixture_with(
        "github-actions",
        crate::support::idp::merge(json!({"aud": aud}), overrides),
    );
    idp.mint(claims)
}

const GITHUB: &str = "https://token.actions.githubusercontent.com";

#[test]
fn answers_are_matched_on_their_key_facts() {
    assert!(shows(
        r#"{"id":"sa_…","scope":"team",…}"#,
        "{\"id\": \"sa_x1\", \"name\": \"n\", \"scope\": \"team\", \"a\": 1}"
    ));
    assert!(!shows(r#"{"allowed":false}"#, r#"{"allowed":true}"#));
    assert!(
        shows(r#"{"a":1,…,"b":2}"#, r#"{"b":2,"a":1}"#),
        "members in any order"
    );
    assert!(
        !shows(r#"{"a":1,"c":3}"#, r#"{"b":2,"a":1}"#),
        "every member shown"
    );
    assert!(!shows(r#"{"id":"sa_…"}"#, r#"{"id":"team_1"}"#));
    assert!(shows(
        r#"{"r":"user \"a\" is …; …"}"#,
        r#"{"r":"user \"a\" is not; x"}"#
    ));
    assert!(shows(
        r#"["RS256",…,"EdDSA"]"#,
        r#"["RS256","ES256","EdDSA"]"#
    ));
    assert!(!shows(
        r#"["RS256","EdDSA"]"#,
        r#"["RS256","ES256","EdDSA"]"#
    ));
    assert!(
        shows(r#"{"name":"b"}"#, "{\"name\":\"a\"}\n{\"name\":\"b\"}"),
        "any of several answers"
    );
    assert!(shows("fedgate: created …", "fedgate: created org"));
    assert_eq!(split_status("201 {\"a\":1}"), (Some(201), "{\"a\":1}"));
    assert_eq!(split_status("{\"a\":1}"), (None, "{\"a\":1}"));
    let s = steps(
        "```sh\nfedgate serve\n# → hello\nexport A=1\ncurl x\n# → {\"a\":\n#   1}\n```\n\
         <!-- doc-test: skip (needs GitHub) -->\n```sh\ncurl y\n```\n```yaml\nk: v\n```\n",
    );
    assert_eq!(s.len(), 2, "{s:?}");
    assert!(s[0].serve && s[0].expects[0].text == "hello");
    assert_eq!(s[1].script, ["export A=1", "curl x"]);
    assert_eq!(s[1].expects[0].text, "{\"a\":   1}");
    let s = steps("```sh\nfedgate plan\n# → Plan:\n#\n#   + x\nls\n```\n");
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(s[0].expects[0].text, "Plan:   + x");
}

#[tokio::test]
async fn the_readme_tour_runs_as_written() {
    let idp = TestIdp::start().await;
    let jwt = github_token(&idp, "default", json!({}));
    run_doc(DocRun {
        doc: "README.md",
        subs: vec![(GITHUB.into(), idp.issuer())],
        env: vec![("JWT".into(), jwt)],
    })
    .await;
}

#[tokio::test]
async fn the_curl_guide_runs_as_written() {
    run_doc(DocRun {
        doc: "docs/guides/curl.md",
        subs: vec![],
        env: vec![],
    })
    .await;
}

/// The ```json blocks of a doc that are external service accounts.
fn account_blocks(md: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in md.lines() {
        let t = line.trim_start();
        match (&mut cur, t.strip_prefix("```")) {
            (None, Some("json")) => cur = Some(String::new()),
            (Some(text), Some(_)) => {
                if let Ok(v) = serde_json::from_str::<Value>(text)
                    && v["auth"] == "external"
                {
                    out.push(v);
                }
                cur = None;
            }
            (Some(text), None) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

#[tokio::test]
async fn the_github_actions_guide_runs_with_the_test_idp_as_github() {
    let idp = TestIdp::start().await;
    let ran = run_doc(DocRun {
        doc: "docs/guides/github-actions.md",
        subs: vec![
            (GITHUB.into(), idp.issuer()),
            ("https://fedgate.example.com".into(), "{base}".into()),
        ],
        env: vec![],
    })
    .await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{}{path}", ran.base))
            .bearer_auth(&ran.admin_key)
            .json(&body)
            .send()
    };

    // Every account the guide shows as JSON is accepted as written.
    let md = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/guides/github-actions.md"),
    )
    .unwrap();
    let accounts = account_blocks(&md);
    let names: Vec<&str> = accounts.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["gh-release", "gh-deploy", "gh-promote"]);
    for mut a in accounts {
        a["issuer"] = json!(idp.issuer());
        let r = post("/api/v1/teams/vision/service-accounts", a.clone())
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{a}: {}", r.text().await.unwrap());
    }

    // Each trigger of the guide's subject table becomes exactly one account.
    let who = |token: String| {
        let client = client.clone();
        let base = ran.base.clone();
        async move {
            let r = client
                .post(format!("{base}/oidc/token"))
                .form(&[
                    ("grant_type", crate::support::JWT_BEARER),
                    ("assertion", token.as_str()),
                ])
                .send()
                .await
                .unwrap();
            let body: Value = r.json().await.unwrap();
            let Some(at) = body["access_token"].as_str() else {
                return format!("refused: {body}");
            };
            let v: Value = client
                .get(format!("{base}/api/v1/viewer"))
                .bearer_auth(at)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["name"].as_str().unwrap_or_default().to_string()
        }
    };
    let aud = ran.base.as_str();
    let env_claims = |job_workflow_ref: &str| {
        let claims = TestIdp::fixture_with(
            "github-actions-environment",
            json!({"aud": aud, "job_workflow_ref": job_workflow_ref}),
        );
        idp.mint(claims)
    };
    assert_eq!(who(github_token(&idp, aud, json!({}))).await, "gh-train");
    assert_eq!(
        who(github_token(
            &idp,
            aud,
            json!({"sub": "repo:acme/vision-train:ref:refs/tags/v1.4.0",
                   "ref": "refs/tags/v1.4.0", "ref_type": "tag"})
        ))
        .await,
        "gh-release"
    );
    assert_eq!(
        who(env_claims(
            "acme/vision-train/.github/workflows/deploy.yml@refs/heads/main"
        ))
        .await,
        "gh-deploy"
    );
    assert_eq!(
        who(env_claims(
            "acme/ci-templates/.github/workflows/promote-model.yml@refs/tags/v3.2.0"
        ))
        .await,
        "gh-promote"
    );

    // Numbers in a binding: the same condition as their string form, and a
    // token carrying the claim as a number matches it too.
    let r = post(
        "/api/v1/teams/vision/service-accounts",
        json!({"name": "gh-numeric", "auth": "external", "issuer": idp.issuer(),
               "subject": "repo:acme/numeric:ref:refs/heads/main",
               "claims": {"repository_id": 703518824u64, "ref_protected": true}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        b["binding"]["claims"],
        json!({"repository_id": "703518824", "ref_protected": "true"}),
        "{b}"
    );
    for repository_id in [json!("703518824"), json!(703518824u64)] {
        let t = github_token(
            &idp,
            aud,
            json!({"sub": "repo:acme/numeric:ref:refs/heads/main",
                   "repository_id": repository_id, "ref_protected": true}),
        );
        assert_eq!(who(t).await, "gh-numeric", "claim {repository_id}");
    }
    let t = github_token(
        &idp,
        aud,
        json!({"sub": "repo:acme/numeric:ref:refs/heads/main", "repository_id": 703518825u64,
               "ref_protected": true}),
    );
    assert!(
        who(t).await.contains("repository_id"),
        "another number fails"
    );
    let r = post(
        "/api/v1/teams/vision/service-accounts",
        json!({"name": "gh-bad", "auth": "external", "issuer": idp.issuer(),
               "subject": "x:y:z", "claims": {"repository_id": [1]}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("an array") && text.contains("number"),
        "{text}"
    );

    // An intended overlap: the client names the account, as the guide shows.
    let r = post(
        "/api/v1/teams/vision/service-accounts",
        json!({"name": "gh-deploy-2", "auth": "external", "issuer": idp.issuer(),
               "subject": "repo:acme/vision-train:environment:production"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("gh-oidc-token");
    // The workflow may save GitHub's whole answer instead of `jq -r .value`.
    let jwt = env_claims("acme/vision-train/.github/workflows/deploy.yml@refs/heads/main");
    std::fs::write(&token_file, json!({"count": 1, "value": jwt}).to_string()).unwrap();
    let tf = token_file.to_str().unwrap();
    let vars = [
        ("WANDB_BASE_URL", ran.base.as_str()),
        ("WANDB_IDENTITY_TOKEN_FILE", tf),
    ];
    let out = crate::client::fedgate(home.path(), &vars, &["login"]).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("matches 2 service accounts")
            && out.stderr.contains("--audience sa:<org>/<team>/<name>")
            && out.stderr.contains("FEDGATE_AUDIENCE"),
        "{}",
        out.stderr
    );
    let mut with_env = vars.to_vec();
    with_env.push(("FEDGATE_AUDIENCE", "sa:default/vision/gh-deploy"));
    let out = crate::client::fedgate(home.path(), &with_env, &["login"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout["viewer"]["name"], "gh-deploy");
    let out = crate::client::fedgate(
        home.path(),
        &vars,
        &[
            "login",
            "--audience",
            "sa:default/vision/gh-deploy-2",
            "--scope",
            "read",
        ],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout["viewer"]["name"], "gh-deploy-2");
    assert_eq!(out.stdout["viewer"]["scope"], "read");
    // whoami with another audience does not reuse the cached gh-deploy-2 token.
    let out = crate::client::fedgate(home.path(), &with_env, &["whoami"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout["name"], "gh-deploy");
}

/// The ```text blocks of a doc: (line of the fence, text).
fn text_blocks(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        let t = line.trim_start();
        match (cur.take(), t.strip_prefix("```")) {
            (None, Some("text")) => cur = Some((i + 1, String::new())),
            (Some(block), Some(_)) => out.push(block),
            (Some((n, mut text)), None) => {
                text.push_str(line);
                text.push('\n');
                cur = Some((n, text));
            }
            (None, _) => {}
        }
    }
    out
}

/// The ```json blocks of a doc: (line of the fence, text).
fn json_blocks(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        let t = line.trim_start();
        match (cur.take(), t.strip_prefix("```")) {
            (None, Some("json")) => cur = Some((i + 1, String::new())),
            (Some(block), Some(_)) => out.push(block),
            (Some((n, mut text)), None) => {
                text.push_str(line);
                text.push('\n');
                cur = Some((n, text));
            }
            (None, _) => {}
        }
    }
    out
}

/// Whitespace removed, for quotes that the Markdown wraps over lines.
fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Asserts `md` quotes `quote` (wrapped or not) and returns it.
fn quoted<'a>(doc: &str, md: &str, quote: &'a str) -> &'a str {
    assert!(
        squash(md).contains(&squash(quote)),
        "{doc} no longer quotes {quote:?}: update this test with what it quotes now"
    );
    quote
}

/// Whether `actual` has the shape the doc shows: the same members (none
/// missing, none extra), the same values, except members named in `vary`
/// (ids, times, paths: the same type, and for `x_…` ids the same prefix) and
/// strings with `…` (a pattern). Differences go to `wrong`.
fn same_shape(shown: &Value, actual: &Value, vary: &[&str], at: &str, wrong: &mut Vec<String>) {
    match (shown, actual) {
        (Value::Object(s), Value::Object(a)) => {
            for k in s.keys().filter(|k| !a.contains_key(*k)) {
                wrong.push(format!("{at}.{k}: shown, but not printed"));
            }
            for k in a.keys().filter(|k| !s.contains_key(*k)) {
                wrong.push(format!("{at}.{k}: printed, but not shown"));
            }
            for (k, sv) in s {
                let Some(av) = a.get(k) else { continue };
                let path = format!("{at}.{k}");
                if vary.contains(&k.as_str()) {
                    let prefix = |v: &Value| {
                        v.as_str()
                            .and_then(|t| t.split_once('_'))
                            .map(|(p, _)| p.to_string())
                    };
                    let same_type = std::mem::discriminant(sv) == std::mem::discriminant(av);
                    if !same_type || prefix(sv) != prefix(av) {
                        wrong.push(format!("{path}: shown {sv}, printed {av}"));
                    }
                } else {
                    same_shape(sv, av, vary, &path, wrong);
                }
            }
        }
        (Value::String(s), Value::String(_)) if s.contains('…') => {
            if !Pattern::Str(s.clone()).matches(actual) {
                wrong.push(format!("{at}: shown {shown}, printed {actual}"));
            }
        }
        (Value::Array(s), Value::Array(a)) if s.len() == a.len() => {
            for (i, (sv, av)) in s.iter().zip(a).enumerate() {
                same_shape(sv, av, vary, &format!("{at}[{i}]"), wrong);
            }
        }
        _ if shown == actual => {}
        _ => wrong.push(format!("{at}: shown {shown}, printed {actual}")),
    }
}

const GH_SUB: &str = "repo:acme/vision-train:ref:refs/heads/main";

/// What the GitHub Actions guide sets up, for guides that build on it: the
/// test IdP trusted with audience `base` (fedgate's URL, as the guide's
/// audience) and `gh-train` of team `vision` bound to the fixture's repository.
async fn bind_gh_train(base: &str, key: &str, idp: &TestIdp) {
    let client = reqwest::Client::new();
    for (path, body) in [
        (
            "/api/v1/orgs/default/teams".to_string(),
            json!({"name": "vision"}),
        ),
        (
            "/api/v1/orgs/default/issuers".into(),
            json!({"issuer": idp.issuer(), "audiences": [base]}),
        ),
        (
            "/api/v1/teams/vision/service-accounts".into(),
            json!({"name": "gh-train", "auth": "external", "issuer": idp.issuer(),
                   "subject": GH_SUB,
                   "claims": {"repository_id": "703518824", "repository_owner_id": "84215903"}}),
        ),
    ] {
        let r = client
            .post(format!("{base}{path}"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{path}: {}", r.text().await.unwrap());
    }
}

/// An admin's POST; its answer's status must be `want`.
async fn admin_post(ran: &Ran, path: &str, body: Value, want: u16) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", ran.base))
        .bearer_auth(&ran.admin_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(status, want, "{path} {body}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A server that answers the n-th request with `answers[n]` (raw HTTP
/// responses; the last one again for any further request), as a proxy or
/// another product at WANDB_BASE_URL would. Returns its URL.
async fn canned(answers: Vec<String>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut sock, _)) = listener.accept().await {
            let answer = answers[n.min(answers.len() - 1)].clone();
            n += 1;
            tokio::spawn(async move {
                // The whole request first (headers, then Content-Length bytes).
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(k) = sock.read(&mut buf).await else {
                        return;
                    };
                    if k == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..k]);
                    let text = String::from_utf8_lossy(&req).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if req.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = sock.write_all(answer.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// A raw HTTP response.
fn http_answer(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn the_client_guide_runs_with_the_test_idp_as_the_ci_system() {
    let doc = "docs/guides/client.md";
    let idp = TestIdp::start().await;
    let outside = tempfile::tempdir().unwrap();
    let tf = outside.path().join("oidc-token");
    let ran = run_doc_with(
        DocRun {
            doc,
            subs: vec![
                ("https://fedgate.example.com".into(), "{base}".into()),
                (
                    "/path/to/your/ci/oidc-token".into(),
                    tf.to_str().unwrap().to_string(),
                ),
            ],
            env: vec![],
        },
        // The CI system's token, for the account the guide says is bound.
        async |base: &str, key: &str, _: &Path| {
            bind_gh_train(base, key, &idp).await;
            std::fs::write(&tf, github_token(&idp, base, json!({}))).unwrap();
        },
    )
    .await;
    let base = ran.base.as_str();
    let md = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
    let md_here = md.replace("https://fedgate.example.com", base);
    let home = tempfile::tempdir().unwrap();
    let creds = home.path().join(".config/wandb/credentials.json");
    let tf = tf.to_str().unwrap();
    let vars = [("WANDB_BASE_URL", base), ("WANDB_IDENTITY_TOKEN_FILE", tf)];
    let mut wrong = Vec::new();

    // What the commands print, as the guide's JSON shows it.
    admin_post(
        &ran,
        "/api/v1/orgs/default/users",
        json!({"username": "alice", "email": "alice@acme.example", "role": "member"}),
        201,
    )
    .await;
    admin_post(
        &ran,
        "/api/v1/teams/vision/members",
        json!({"username": "alice", "role": "member"}),
        201,
    )
    .await;
    let out = crate::client::fedgate(home.path(), &vars, &["login"]).await;
    assert!(out.ok, "{}", out.stderr);
    for (line, text) in json_blocks(&md_here) {
        let shown: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{doc} line {line}: {e}"));
        let (actual, vary): (Value, &[&str]) = if shown.get("viewer").is_some() {
            let out = crate::client::fedgate(home.path(), &vars, &["login"]).await;
            assert!(out.ok, "{}", out.stderr);
            (out.stdout, &["credentials_file", "expires_at", "id"])
        } else if shown.get("credentials").is_some() {
            let file = std::fs::read_to_string(&creds).unwrap();
            (
                serde_json::from_str(&file).unwrap(),
                &["expires_at", "fedgate_request"],
            )
        } else if shown.get("attribution").is_some() {
            let mut with_user = vars.to_vec();
            with_user.push(("WANDB_USERNAME", "alice"));
            let config = shown["config"].to_string();
            let out = crate::client::fedgate(
                home.path(),
                &with_user,
                &["log-run", "--project", "detector", "--config", &config],
            )
            .await;
            assert!(out.ok, "{}", out.stderr);
            (out.stdout, &["id", "name", "created_at"])
        } else {
            panic!("{doc} line {line}: a JSON answer this test does not produce: add it");
        };
        same_shape(
            &shown,
            &actual,
            vary,
            &format!("{doc} line {line}"),
            &mut wrong,
        );
    }

    // The errors it quotes, from the binary.
    let run = async |vars: &[(&str, &str)], args: &[&str]| {
        let out = crate::client::fedgate(home.path(), vars, args).await;
        assert!(!out.ok, "{args:?} fails: {}", out.stdout);
        out.stderr
    };
    let wrong_aud = outside.path().join("wrong-aud");
    std::fs::write(
        &wrong_aud,
        github_token(&idp, "https://github.com/acme", json!({})),
    )
    .unwrap();
    admin_post(
        &ran,
        "/api/v1/orgs/default/teams",
        json!({"name": "nlp"}),
        201,
    )
    .await;
    admin_post(
        &ran,
        "/api/v1/teams/nlp/projects",
        json!({"name": "n-team", "visibility": "team"}),
        201,
    )
    .await;
    let retried = canned(vec![
        http_answer(
            "503 Service Unavailable",
            "application/json",
            r#"{"error":"temporarily_unavailable","error_description":"the issuer's keys cannot be fetched"}"#,
        ),
        http_answer(
            "400 Bad Request",
            "application/json",
            r#"{"error":"invalid_grant","error_description":"stop here"}"#,
        ),
    ])
    .await;
    for (line, text) in text_blocks(&md_here) {
        let stderr = if text.starts_with("fedgate: both") {
            run(
                &[
                    ("WANDB_API_KEY", "fgk_x"),
                    ("WANDB_IDENTITY_TOKEN_FILE", tf),
                ],
                &["whoami"],
            )
            .await
        } else if text.contains("token exchange attempt") {
            run(
                &[
                    ("WANDB_BASE_URL", retried.as_str()),
                    ("WANDB_IDENTITY_TOKEN_FILE", tf),
                ],
                &["login"],
            )
            .await
        } else if text.contains("token exchange refused") {
            run(
                &[
                    ("WANDB_BASE_URL", base),
                    ("WANDB_IDENTITY_TOKEN_FILE", wrong_aud.to_str().unwrap()),
                ],
                &["login"],
            )
            .await
        } else if text.starts_with("fedgate: POST") {
            run(
                &vars,
                &["log-run", "--entity", "nlp", "--project", "n-team"],
            )
            .await
        } else {
            panic!("{doc} line {line}: a quoted message this test does not produce: add it");
        };
        if !shows(&text, &stderr) {
            wrong.push(format!(
                "{doc} line {line}: the doc quotes\n  {}\nbut the binary printed\n  {}",
                text.trim(),
                stderr.trim()
            ));
        }
    }

    // Quotes in the text.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let stderr = run(
        &[
            ("WANDB_BASE_URL", closed.as_str()),
            ("WANDB_IDENTITY_TOKEN_FILE", tf),
        ],
        &["login"],
    )
    .await;
    let quote = quoted(doc, &md, "(`cannot reach …/oidc/token: …`)");
    assert!(
        shows(quote.trim_matches(['(', ')', '`']), &stderr),
        "{quote} vs {stderr}"
    );
    assert_eq!(stderr.matches(&closed).count(), 1, "the URL once: {stderr}");

    let html = canned(vec![http_answer(
        "501 Not Implemented",
        "text/html",
        "<html><body>Not Implemented</body></html>",
    )])
    .await;
    let stderr = run(
        &[
            ("WANDB_BASE_URL", html.as_str()),
            ("WANDB_IDENTITY_TOKEN_FILE", tf),
        ],
        &["login"],
    )
    .await;
    let quote = quoted(
        doc,
        &md,
        "`… answered 501 with an HTML page, not fedgate's JSON: is WANDB_BASE_URL (…) the root URL of a fedgate server?`",
    );
    assert!(
        shows(quote.trim_matches('`'), &stderr),
        "{quote} vs {stderr}"
    );
    assert_eq!(stderr.matches("answered 501").count(), 1, "once: {stderr}");

    std::fs::write(&creds, "not json").unwrap();
    let out = crate::client::fedgate(home.path(), &vars, &["whoami"]).await;
    assert!(out.ok, "{}", out.stderr);
    let quote = quoted(
        doc,
        &md,
        "(`fedgate: warning: the credentials file … is not JSON; it will be replaced …`)",
    );
    assert!(
        shows(quote.trim_matches(['(', ')', '`']), &out.stderr),
        "{quote} vs {}",
        out.stderr
    );

    // `--help` lists what the guide's table lists.
    for cmd in ["login", "whoami", "log-run"] {
        let help = crate::client::fedgate(home.path(), &[], &[cmd, "--help"]).await;
        let help = help.stdout.as_str().unwrap_or_default().to_string();
        for var in [
            "WANDB_BASE_URL",
            "WANDB_IDENTITY_TOKEN_FILE",
            "WANDB_API_KEY",
            "WANDB_CREDENTIALS_FILE",
            "FEDGATE_AUDIENCE",
            "FEDGATE_SCOPE",
            "--audience",
            "--scope",
        ] {
            assert!(help.contains(var), "{cmd} --help lists {var}: {help}");
            assert!(md.contains(var), "{doc} documents {var}");
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// `fedgate login` with `token` at `base`: what it prints on stderr (it must fail).
async fn login_refused(base: &str, token: &str) -> String {
    let home = tempfile::tempdir().unwrap();
    let tf = home.path().join("token");
    std::fs::write(&tf, token).unwrap();
    let vars = [
        ("WANDB_BASE_URL", base),
        ("WANDB_IDENTITY_TOKEN_FILE", tf.to_str().unwrap()),
    ];
    let out = crate::client::fedgate(home.path(), &vars, &["login"]).await;
    assert!(!out.ok, "refused: {}", out.stdout);
    out.stderr
}

#[tokio::test]
async fn the_github_guides_quoted_refusals_are_what_the_binary_prints() {
    let doc = "docs/guides/github-actions.md";
    let idp = TestIdp::start().await;
    let ran = run_doc(DocRun {
        doc,
        subs: vec![
            (GITHUB.into(), idp.issuer()),
            ("https://fedgate.example.com".into(), "{base}".into()),
        ],
        env: vec![],
    })
    .await;
    let base = ran.base.as_str();
    let md = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
    let md_here = md.replace("https://fedgate.example.com", base);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut wrong = Vec::new();

    for (line, text) in text_blocks(&md_here) {
        if text.contains("──▶") {
            continue; // the diagram
        }
        let token =
            if text.contains("is bound to subject \"repo:acme/vision-train:ref:refs/heads/dev\"") {
                github_token(
                    &idp,
                    base,
                    json!({"sub": "repo:acme/vision-train:ref:refs/heads/dev",
                       "ref": "refs/heads/dev"}),
                )
            } else {
                panic!("{doc} line {line}: a quoted message this test does not produce: add it");
            };
        let stderr = login_refused(base, &token).await;
        if !shows(&text, &stderr) {
            wrong.push(format!(
                "{doc} line {line}: the doc quotes\n  {}\nbut the binary printed\n  {}",
                text.trim(),
                stderr.trim()
            ));
        }
    }

    // The troubleshooting table: each error it lists, as the client prints it.
    let table = md_here
        .split("## Troubleshooting")
        .nth(1)
        .expect("the guide has a troubleshooting table");
    let mut quotes: Vec<String> = table
        .lines()
        .filter_map(|row| row.strip_prefix("| `")?.split_once('`'))
        .map(|(quote, _)| quote.replace(GITHUB, &idp.issuer()))
        .collect();
    let rows = quotes.len();
    // The overlap needs a second account: last, so the others see one.
    quotes.sort_by_key(|q| q.contains("matches 2 service accounts"));
    let mut overlap = false;
    for quote in quotes {
        let token = if quote.starts_with("ACTIONS_ID_TOKEN_REQUEST_URL") {
            continue; // GitHub's side: the workflow's permissions
        } else if quote.contains("is not accepted") {
            github_token(&idp, "https://github.com/acme", json!({}))
        } else if quote.contains("nearly matches") {
            github_token(&idp, base, json!({"iss": format!("{}/", idp.issuer())}))
        } else if quote.contains("is not a trusted issuer") {
            github_token(&idp, base, json!({"iss": "https://ci.untrusted.example"}))
        } else if quote.contains("is bound to subject") {
            github_token(
                &idp,
                base,
                json!({"sub": "repo:acme/vision-train:ref:refs/heads/dev"}),
            )
        } else if quote.contains("does not hold") {
            github_token(&idp, base, json!({"repository_id": "703518825"}))
        } else if quote.contains("expired at") {
            github_token(&idp, base, json!({"iat": now - 900, "exp": now - 600}))
        } else if quote.contains("matches 2 service accounts") {
            if !overlap {
                admin_post(
                    &ran,
                    "/api/v1/teams/vision/service-accounts",
                    json!({"name": "gh-train-copy", "auth": "external",
                           "issuer": idp.issuer(), "subject": GH_SUB}),
                    201,
                )
                .await;
                overlap = true;
            }
            github_token(&idp, base, json!({}))
        } else {
            panic!(
                "{doc}: the troubleshooting table quotes an error this test does not produce: {quote}"
            );
        };
        let stderr = login_refused(base, &token).await;
        if !shows(&quote, &stderr) {
            wrong.push(format!(
                "{doc}: the troubleshooting table quotes\n  {quote}\nbut the binary printed\n  {}",
                stderr.trim()
            ));
        }
    }
    assert!(rows >= 8, "{doc}: the troubleshooting table was not found");
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// The name of the account an exchange of `token` at `base` becomes, or
/// the refusal.
async fn who(base: &str, token: &str) -> String {
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/oidc/token"))
        .form(&[
            ("grant_type", crate::support::JWT_BEARER),
            ("assertion", token),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let Some(at) = body["access_token"].as_str() else {
        return format!("refused: {body}");
    };
    let v: Value = client
        .get(format!("{base}/api/v1/viewer"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["name"].as_str().unwrap_or_default().to_string()
}

/// Creates every external account a guide shows as JSON, on `issuer`, in `team`.
async fn create_accounts(ran: &Ran, doc: &str, team: &str, issuer: &str) -> Vec<String> {
    let md = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
    let mut names = Vec::new();
    for mut a in account_blocks(&md) {
        a["issuer"] = json!(issuer);
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/teams/{team}/service-accounts", ran.base))
            .bearer_auth(&ran.admin_key)
            .json(&a)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{doc}: {a}: {}", r.text().await.unwrap());
        names.push(a["name"].as_str().unwrap().to_string());
    }
    names
}

#[tokio::test]
async fn the_gitlab_guide_runs_with_the_test_idp_as_gitlab() {
    let idp = TestIdp::start().await;
    let ran = run_doc(DocRun {
        doc: "docs/guides/gitlab-ci.md",
        subs: vec![
            ("https://gitlab.com".into(), idp.issuer()),
            ("https://fedgate.example.com".into(), "{base}".into()),
        ],
        env: vec![],
    })
    .await;
    let names = create_accounts(&ran, "docs/guides/gitlab-ci.md", "nlp", &idp.issuer()).await;
    assert_eq!(names, ["gl-release"]);
    let mint = |overrides: Value| {
        idp.mint(TestIdp::fixture_with(
            "gitlab-ci",
            crate::support::idp::merge(json!({"aud": ran.base}), overrides),
        ))
    };
    assert_eq!(who(&ran.base, &mint(json!({}))).await, "gl-eval");
    let tag = mint(
        json!({"sub": "project_path:acme/nlp:ref_type:tag:ref:v1.2.0",
                          "ref": "v1.2.0", "ref_type": "tag"}),
    );
    assert_eq!(who(&ran.base, &tag).await, "gl-release");
    // An unprotected branch is refused, naming the condition.
    let unprotected = mint(json!({"ref_protected": "false"}));
    assert!(who(&ran.base, &unprotected).await.contains("ref_protected"));

    // The job's script, as .gitlab-ci.yml runs it.
    let home = tempfile::tempdir().unwrap();
    let tf = home.path().join("token");
    std::fs::write(&tf, mint(json!({}))).unwrap();
    let vars = [
        ("WANDB_BASE_URL", ran.base.as_str()),
        ("WANDB_IDENTITY_TOKEN_FILE", tf.to_str().unwrap()),
        ("WANDB_PROJECT", "eval"),
    ];
    let out = crate::client::fedgate(home.path(), &vars, &["login"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout["viewer"]["name"], "gl-eval");
    let out = crate::client::fedgate(
        home.path(),
        &vars,
        &["log-run", "--name", "gl-1-2", "--config", r#"{"f1": 0.91}"#],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout["entity"], "nlp");
    assert_eq!(out.stdout["project"], "eval");
}

#[tokio::test]
async fn the_kubernetes_guide_runs_with_the_test_idp_as_the_cluster() {
    let idp = TestIdp::start().await;
    let ran = run_doc(DocRun {
        doc: "docs/guides/kubernetes.md",
        subs: vec![
            (
                "https://oidc.eks.eu-west-1.amazonaws.com/id/4F1C…".into(),
                idp.issuer(),
            ),
            (
                "https://kubernetes.default.svc.cluster.local".into(),
                idp.issuer(),
            ),
            ("https://fedgate.example.com".into(), "{base}".into()),
        ],
        env: vec![],
    })
    .await;
    // The pod's projected token, and `fedgate whoami` as the guide runs it.
    let token = idp.mint(TestIdp::fixture_with(
        "kubernetes",
        json!({"aud": ran.base}),
    ));
    let home = tempfile::tempdir().unwrap();
    let tf = home.path().join("token");
    std::fs::write(&tf, &token).unwrap();
    let vars = [
        ("WANDB_BASE_URL", ran.base.as_str()),
        ("WANDB_IDENTITY_TOKEN_FILE", tf.to_str().unwrap()),
    ];
    let out = crate::client::fedgate(home.path(), &vars, &["whoami"]).await;
    assert!(out.ok, "{}", out.stderr);
    let md = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/guides/kubernetes.md"),
    )
    .unwrap();
    let shown = md
        .lines()
        .find(|l| l.starts_with("# {\"kind\":\"service_account\",\"name\":\"k8s-trainer\""))
        .expect("the guide shows whoami's answer");
    assert!(
        shows(shown.trim_start_matches("# "), &out.stdout.to_string()),
        "{shown} vs {}",
        out.stdout
    );
    // Another service account of the namespace is not the trainer.
    let other = idp.mint(TestIdp::fixture_with(
        "kubernetes",
        json!({"aud": ran.base, "sub": "system:serviceaccount:ml:default"}),
    ));
    assert!(who(&ran.base, &other).await.starts_with("refused"));
}

#[tokio::test]
async fn the_generic_oidc_guide_runs_with_the_test_idp_as_keycloak() {
    let idp = TestIdp::start_with_path("/realms/ml").await;
    let keycloak = idp.issuer().trim_end_matches("/realms/ml").to_string();
    let dir = tempfile::tempdir().unwrap();
    let tf = dir.path().join("token");
    // What Keycloak's client-credentials grant returns for `trainer`.
    let token = |aud: &str| {
        idp.mint(
            json!({"sub": "5e2c6a0e-7d1b-4f3a-9e84-2b1f0c9d7a61", "azp": "trainer",
                        "aud": aud, "typ": "Bearer"}),
        )
    };
    let ran = run_doc_with(
        DocRun {
            doc: "docs/guides/generic-oidc.md",
            subs: vec![
                ("https://keycloak.acme.internal".into(), keycloak.clone()),
                ("https://fedgate.example.com".into(), "{base}".into()),
            ],
            env: vec![
                ("WANDB_BASE_URL".into(), "{base}".into()),
                (
                    "WANDB_IDENTITY_TOKEN_FILE".into(),
                    tf.to_str().unwrap().to_string(),
                ),
            ],
        },
        // The token's audience is the server's URL, known once it runs.
        async |base: &str, _: &str, _: &Path| std::fs::write(&tf, token(base)).unwrap(),
    )
    .await;
    // Another client of the realm is not the trainer.
    let other = idp.mint(json!({"sub": "5e2c6a0e-7d1b-4f3a-9e84-2b1f0c9d7a61",
                                "azp": "notebook", "aud": ran.base}));
    assert!(who(&ran.base, &other).await.contains("azp"));
}

#[tokio::test]
async fn the_trust_as_code_guide_runs_as_written() {
    let doc = "docs/guides/trust-as-code.md";
    let ran = run_doc(DocRun {
        doc,
        subs: vec![("https://fedgate.example.com".into(), "{base}".into())],
        env: vec![],
    })
    .await;

    // What reviewers see: the plan of the file it shows, against the
    // organization before that pull request (gh-train on any branch).
    let idp = TestIdp::start().await;
    let base = ran.base.as_str();
    for (path, body) in [
        ("/api/v1/orgs/default/teams", json!({"name": "vision"})),
        ("/api/v1/orgs/default/teams", json!({"name": "research"})),
        (
            "/api/v1/orgs/default/issuers",
            json!({"issuer": idp.issuer(), "audiences": [base]}),
        ),
        (
            "/api/v1/teams/vision/service-accounts",
            json!({"name": "gh-train", "auth": "external", "issuer": idp.issuer(),
                   "subject": GH_SUB, "claims": {"repository_id": "703518824"}}),
        ),
    ] {
        admin_post(&ran, path, body, 201).await;
    }
    let md = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(doc))
        .unwrap()
        .replace(GITHUB, &idp.issuer())
        .replace("https://fedgate.example.com", base);
    let toml = toml_blocks(&md);
    assert_eq!(toml.len(), 1, "{doc}: one trust file");
    std::fs::write(ran.dir.path().join("trust.toml"), &toml[0].1).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedgate"))
        .args(["plan", "-f", "trust.toml"])
        .current_dir(ran.dir.path())
        .env_clear()
        .env("FEDGATE_URL", base)
        .env("FEDGATE_API_KEY", &ran.admin_key)
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    let texts = text_blocks(&md);
    assert_eq!(texts.len(), 1, "{doc}: one quoted plan");
    assert!(
        shows(&texts[0].1, &printed),
        "{doc} line {}: the guide shows\n{}\nbut plan printed\n{printed}",
        texts[0].0,
        texts[0].1
    );
}

/// README.md and every Markdown file under docs/: (path, text).
fn all_docs() -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![(
        "README.md".to_string(),
        std::fs::read_to_string(root.join("README.md")).unwrap(),
    )];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                let rel = path.strip_prefix(&root).unwrap().display().to_string();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `fedgate <path> --help`, or `None` when `path` is not a command.
fn help_of(
    cache: &mut std::collections::HashMap<Vec<String>, Option<String>>,
    path: &[String],
) -> Option<String> {
    cache
        .entry(path.to_vec())
        .or_insert_with(|| {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_fedgate"))
                .args(path)
                .arg("--help")
                .env_clear()
                .output()
                .expect("run fedgate --help");
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).to_string())
        })
        .clone()
}

/// Whether `help` lists `flag` (`--x`, not a longer `--x-y`).
fn lists_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        !help[i + flag.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

/// Every `fedgate …` command line the docs show (in code blocks, code spans
/// and tables) uses only flags that command's `--help` lists, and every
/// `FEDGATE_*` variable they name is one some `--help` lists, or a variable
/// of the test suite or of a CI system that the docs name themselves.
#[test]
fn every_documented_flag_and_variable_is_one_the_binary_has() {
    let mut cache = std::collections::HashMap::new();
    let mut wrong = Vec::new();
    let mut checked = 0;
    let mut all_help = String::new();
    for path in [
        vec![],
        vec!["serve".to_string()],
        vec!["login".to_string()],
        vec!["team".to_string(), "list".to_string()],
    ] {
        all_help.push_str(&help_of(&mut cache, &path).expect("fedgate --help"));
    }
    for (doc, md) in all_docs() {
        // A command continued with `\` is one line.
        let md = md.replace("\\\n", " ");
        for (n, line) in md.lines().enumerate() {
            let mut at = 0;
            while let Some(i) = line[at..].find("fedgate ") {
                let start = at + i;
                at = start + "fedgate ".len();
                let before = line[..start].chars().next_back();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || "-_./:$".contains(c)) {
                    continue;
                }
                // The command ends where the shell or the Markdown says so.
                let rest = &line[at..];
                let end = ["`", "|", " #", "&&", ";", ")", ">", "<!--"]
                    .iter()
                    .filter_map(|s| rest.find(s))
                    .min()
                    .unwrap_or(rest.len());
                let words: Vec<&str> = rest[..end].split_whitespace().collect();
                let mut path: Vec<String> = Vec::new();
                for w in &words {
                    if !w.chars().all(|c| c.is_ascii_lowercase() || c == '-') || w.starts_with('-')
                    {
                        break;
                    }
                    let mut next = path.clone();
                    next.push(w.to_string());
                    if help_of(&mut cache, &next).is_none() {
                        break;
                    }
                    path = next;
                }
                if path.is_empty() {
                    continue;
                }
                let help = help_of(&mut cache, &path).unwrap_or_default();
                for w in &words {
                    let Some(name) = w.strip_prefix("--") else {
                        continue;
                    };
                    let name: String = name
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect();
                    if name.is_empty() {
                        continue;
                    }
                    checked += 1;
                    let flag = format!("--{name}");
                    if !lists_flag(&help, &flag) {
                        wrong.push(format!(
                            "{doc} line {}: `fedgate {}` has no {flag} (see `fedgate {} --help`)",
                            n + 1,
                            path.join(" "),
                            path.join(" ")
                        ));
                    }
                }
            }
        }
        // Variables: the binary's, or ones the docs define for CI / tests.
        let not_ours = [
            "FEDGATE_TEST_DATABASE_URL", // the test suite's (README, scripts/test.sh)
            "FEDGATE_SCREENSHOTS",       // the console tests' (docs/console.md)
            "FEDGATE_ID_TOKEN",          // GitLab's id_tokens name (gitlab-ci.md)
            "FEDGATE_SOURCE",            // a GitHub variable (trust-as-code.md)
        ];
        let mut rest = md.as_str();
        while let Some(i) = rest.find("FEDGATE_") {
            let var: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            rest = &rest[i + var.len()..];
            checked += 1;
            if !not_ours.contains(&var.as_str()) && !lists_flag(&all_help, &var) {
                wrong.push(format!("{doc}: {var} is in no --help"));
            }
        }
    }
    assert!(checked > 50, "only {checked} flags and variables found");
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The ```toml blocks of a doc: (line of the fence, text).
fn toml_blocks(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        let t = line.trim_start();
        match (cur.take(), t.strip_prefix("```")) {
            (None, Some("toml")) => cur = Some((i + 1, String::new())),
            (Some(block), Some(_)) => out.push(block),
            (Some((n, mut text)), None) => {
                text.push_str(line);
                text.push('\n');
                cur = Some((n, text));
            }
            (None, _) => {}
        }
    }
    out
}

#[tokio::test]
async fn the_cli_manual_runs_as_written() {
    let doc = "docs/cli.md";
    let idp = TestIdp::start().await;
    let md = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
    let here = |text: &str, base: &str| {
        text.replace(GITHUB, &idp.issuer())
            .replace("https://fedgate.example.com", base)
    };
    let ran = run_doc_with(
        DocRun {
            doc,
            subs: vec![
                (GITHUB.into(), idp.issuer()),
                ("https://fedgate.example.com".into(), "{base}".into()),
            ],
            env: vec![],
        },
        async |base: &str, _: &str, dir: &Path| {
            // The CI job's token that `explain` reads, and the trust file
            // the manual shows, where the reader keeps them.
            let jwt = github_token(&idp, "default", json!({}));
            std::fs::write(dir.join("token.jwt"), jwt).unwrap();
            let toml = toml_blocks(&md);
            assert_eq!(toml.len(), 1, "{doc}: one trust file");
            std::fs::write(dir.join("trust.toml"), here(&toml[0].1, base)).unwrap();
        },
    )
    .await;
    let base = ran.base.as_str();
    let cli = async |key: &str, args: &[&str]| {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedgate"))
            .args(args)
            .current_dir(ran.dir.path())
            .env_clear()
            .env("FEDGATE_URL", base)
            .env("FEDGATE_API_KEY", key)
            .output()
            .await
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    // The failure it quotes: a member's key where an org admin's is needed.
    admin_post(
        &ran,
        "/api/v1/orgs/default/users",
        json!({"username": "dev", "email": "dev@acme.example", "role": "member"}),
        201,
    )
    .await;
    let k = admin_post(&ran, "/api/v1/users/dev/api-keys", json!({}), 201).await;
    let dev = k["api_key"].as_str().unwrap();
    let mut wrong = Vec::new();
    for (line, text) in text_blocks(&here(&md, base)) {
        if text.starts_with("error: ") {
            let (code, _, err) = cli(dev, &["sa", "list"]).await;
            assert_eq!(code, Some(5), "{err}");
            if !shows(&text, &err) {
                wrong.push(format!(
                    "{doc} line {line}: the manual quotes\n  {}\nbut the binary printed\n  {}",
                    text.trim(),
                    err.trim()
                ));
            }
        } else {
            panic!("{doc} line {line}: a quoted output this test does not produce: add it");
        }
    }
    let (code, out, err) = cli(dev, &["sa", "list", "--json"]).await;
    assert_eq!((code, out.as_str()), (Some(5), ""), "{err}");
    let e: Value = serde_json::from_str(&err).unwrap();
    let keys: Vec<&str> = e["error"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let shown = quoted(
        doc,
        &md,
        r#"`{"error": {"status", "code", "message", "hint", "exit_code"}}`"#,
    );
    for k in &keys {
        assert!(
            shown.contains(&format!("\"{k}\"")),
            "{k} is not shown: {err}"
        );
    }
    assert_eq!(keys.len(), 5, "{err}");

    // Accounts the file does not declare are listed, and left alone.
    admin_post(
        &ran,
        "/api/v1/teams/vision/service-accounts",
        json!({"name": "legacy-ci", "auth": "external", "issuer": idp.issuer(),
               "subject": "repo:acme/legacy:ref:refs/heads/main"}),
        201,
    )
    .await;
    let file = ran.dir.path().join("trust.toml");
    std::fs::write(&file, here(&toml_blocks(&md)[0].1, base)).unwrap();
    let (code, out, err) = cli(&ran.admin_key, &["plan", "-f", "trust.toml"]).await;
    assert_eq!(code, Some(0), "{err}");
    let shown = quoted(
        doc,
        &md,
        "Not in trust.toml, left as they are (apply --prune deletes them):",
    );
    assert!(
        shows(
            &format!("{shown} service account legacy-ci (team vision)"),
            &out
        ),
        "{out}"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// Whether the OpenAPI template `tpl` (`/api/v1/teams/{team}`) matches the
/// path a doc names (`/api/v1/teams/vision`, `/api/v1/teams/{team}`, `$B/…`).
fn template_matches(tpl: &str, path: &str) -> bool {
    let t: Vec<&str> = tpl.trim_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t.starts_with('{') || t == p || p.contains(['{', '<', '$', '…']))
}

/// Every endpoint the docs name (`POST /api/v1/…`, `/oidc/token`, …) is one
/// the server describes in `/openapi.json`, with that method.
#[tokio::test]
async fn every_documented_endpoint_is_served() {
    let app = crate::support::TestApp::start().await;
    let (_, spec) = app.get("/openapi.json", None).await;
    let paths = spec["paths"].as_object().expect("paths").clone();
    app.stop().await;
    let mut wrong = Vec::new();
    let mut checked = 0;
    let prefixes = ["/api/v1/", "/oidc/", "/oauth/", "/.well-known/"];
    for (doc, md) in all_docs() {
        for (n, line) in md.lines().enumerate() {
            for prefix in prefixes {
                let mut at = 0;
                while let Some(i) = line[at..].find(prefix) {
                    let start = at + i;
                    at = start + prefix.len();
                    // The path: up to a space, quote, backtick or query.
                    let path: String = line[start..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && !"`\"'?),|*:;".contains(*c))
                        .collect();
                    let path = path.trim_end_matches(['.', '/']).to_string();
                    // Another product's endpoint (GitHub's, GitLab's).
                    let host = line[..start]
                        .rsplit(|c: char| c.is_whitespace() || "`\"'(".contains(c))
                        .next()
                        .unwrap_or("");
                    if host.contains("github") || host.contains("gitlab") || host.contains('{') {
                        continue;
                    }
                    if path.len() <= prefix.len() || path.ends_with('…') {
                        continue;
                    }
                    let method = line[..start]
                        .trim_end_matches(['`', ' '])
                        .rsplit([' ', '`', '(', '|'])
                        .next()
                        .filter(|m| ["GET", "POST", "PATCH", "PUT", "DELETE"].contains(m))
                        .map(str::to_lowercase);
                    checked += 1;
                    let served = paths.iter().any(|(tpl, item)| {
                        template_matches(tpl, &path)
                            && method.as_ref().is_none_or(|m| item.get(m).is_some())
                    });
                    if !served {
                        wrong.push(format!(
                            "{doc} line {}: {} {path} is not in /openapi.json",
                            n + 1,
                            method.as_deref().unwrap_or("").to_uppercase()
                        ));
                    }
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} endpoints found");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The answer a doc shows as `# …` lines right after the line starting
/// with `command`, joined.
fn shown_after(md: &str, command: &str) -> String {
    let mut lines = md.lines().skip_while(|l| !l.starts_with(command));
    assert!(lines.next().is_some(), "the doc shows `{command}`");
    lines
        .map_while(|l| l.strip_prefix('#'))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn the_operations_commands_print_what_the_guide_shows() {
    let doc = "docs/operations.md";
    let md = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = async |args: &[&str]| {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fedgate"))
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("RUST_LOG", "warn")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let db = "sqlite://fedgate.db";
    let out = run(&[
        "bootstrap",
        "--database-url",
        db,
        "--org",
        "acme",
        "--admin",
        "alice",
        "--email",
        "alice@acme.example",
    ])
    .await;
    let shown = shown_after(&md, "fedgate bootstrap --database-url URL")
        .replace("USERNAME", "alice")
        .replace("NAME", "acme");
    assert!(shows(&shown, &out), "{doc}: {shown} vs {out}");
    let out = run(&["keys", "rotate", "--database-url", db]).await;
    let shown = shown_after(&md, "fedgate keys rotate");
    assert!(shows(&shown, &out), "{doc}: {shown} vs {out}");
    let out = run(&["backup", "--database-url", db, "fedgate-2026-12-02.db"]).await;
    let shown = shown_after(&md, "fedgate backup --database-url");
    assert!(shows(&shown, &out), "{doc}: {shown} vs {out}");
}

#[tokio::test]
async fn the_console_guides_sso_setup_runs_with_the_test_idp_as_the_provider() {
    let idp = TestIdp::start().await;
    // The client the guide registers at the provider first.
    idp.enable_sso("fedgate", "…");
    run_doc(DocRun {
        doc: "docs/console.md",
        subs: vec![
            ("https://login.example.com".into(), idp.issuer()),
            ("https://fedgate.example.com".into(), "{base}".into()),
        ],
        // As the README's tour left them.
        env: vec![
            ("B".into(), "{base}/api/v1".into()),
            ("ADMIN".into(), "{admin_key}".into()),
        ],
    })
    .await;
}
