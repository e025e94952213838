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
        if in_answer && t.starts_with("#  ") {
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
    /// Variables the environment provides (a CI system's token, say).
    env: Vec<(String, String)>,
}

/// A document that ran, with its server still up for further checks.
struct Ran {
    base: String,
    admin_key: String,
    _server: tokio::process::Child,
    _dir: tempfile::TempDir,
}

const MARK: &str = "@@doc-step";

/// Runs every step of `run.doc` against a fresh `fedgate serve` and checks
/// every shown answer; returns the server, still running.
async fn run_doc(run: DocRun<'_>) -> Ran {
    run_doc_with(run, |_| {}).await
}

/// [`run_doc`], calling `before` with the server's URL before the doc's
/// commands run (to hand them what a CI system would, e.g. a token file).
async fn run_doc_with(run: DocRun<'_>, before: impl FnOnce(&str)) -> Ran {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let md = std::fs::read_to_string(root.join(run.doc)).unwrap();
    let steps = steps(&md);
    assert!(!steps.is_empty(), "{}: no commands to run", run.doc);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (server, printed, key) = serve(dir.path(), port).await;
    let base = format!("http://127.0.0.1:{port}");
    before(&base);

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
        .envs(
            run.env
                .iter()
                .map(|(k, v)| (k.clone(), v.replace("{base}", &base))),
        )
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
        _dir: dir,
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

#[tokio::test]
async fn the_client_guides_quoted_messages_are_what_the_binary_prints() {
    let md = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/guides/client.md"),
    )
    .unwrap();
    let both = md
        .lines()
        .find(|l| l.starts_with("fedgate: both WANDB_API_KEY"))
        .expect("client.md quotes the both-set error");
    let home = tempfile::tempdir().unwrap();
    let out = crate::client::fedgate(
        home.path(),
        &[
            ("WANDB_API_KEY", "fgk_x"),
            ("WANDB_IDENTITY_TOKEN_FILE", "/t"),
        ],
        &["whoami"],
    )
    .await;
    assert!(!out.ok);
    assert_eq!(out.stderr.trim(), both);

    let help = crate::client::fedgate(home.path(), &[], &["login", "--help"]).await;
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
        assert!(help.contains(var), "login --help lists {var}: {help}");
        assert!(md.contains(var), "client.md documents {var}");
    }
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
        |base| std::fs::write(&tf, token(base)).unwrap(),
    )
    .await;
    // Another client of the realm is not the trainer.
    let other = idp.mint(json!({"sub": "5e2c6a0e-7d1b-4f3a-9e84-2b1f0c9d7a61",
                                "azp": "notebook", "aud": ran.base}));
    assert!(who(&ran.base, &other).await.contains("azp"));
}

#[tokio::test]
async fn the_trust_as_code_guide_runs_as_written() {
    run_doc(DocRun {
        doc: "docs/guides/trust-as-code.md",
        subs: vec![("https://fedgate.example.com".into(), "{base}".into())],
        env: vec![],
    })
    .await;
}
