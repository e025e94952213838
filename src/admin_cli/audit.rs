//! `fedgate audit` (the organization's audit log, `--follow` to keep
//! watching) and `fedgate explain TOKEN_FILE` (a dry-run exchange).

use std::collections::VecDeque;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use crate::admin_cli::api::{AdminApi, path};
use crate::admin_cli::error::{CliResult, EXIT_OK, EXIT_TOKEN_REFUSED};
use crate::admin_cli::output::{Printer, Table, cell, s};
use crate::admin_cli::{Conn, read_input};

/// Page size of audit reads (the API's maximum).
const PAGE: i64 = 1000;

/// `fedgate audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Events after this sequence number, oldest first [default: the most recent ones].
    #[arg(long, value_name = "SEQ")]
    pub after: Option<i64>,
    /// At most this many events (before --follow takes over).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Only actions starting with this, e.g. `token.exchange` or `service_account.`.
    #[arg(long)]
    pub action: Option<String>,
    /// Only this outcome: success, denied, failure, …
    #[arg(long)]
    pub outcome: Option<String>,
    /// Only this actor, e.g. `user:admin` or `service_account:gh-train`.
    #[arg(long)]
    pub actor: Option<String>,
    /// Keep printing new events as they are recorded (Ctrl-C to stop);
    /// with --json, one JSON object per line.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Seconds between two polls of --follow.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: u64,
}

impl AuditArgs {
    fn keeps(&self, e: &Value) -> bool {
        self.action
            .as_deref()
            .is_none_or(|a| s(e, "action").starts_with(a))
            && self.outcome.as_deref().is_none_or(|o| s(e, "outcome") == o)
            && self.actor.as_deref().is_none_or(|a| s(e, "actor") == a)
    }
}

async fn page(api: &AdminApi, org: &str, after: i64, limit: i64) -> CliResult<Vec<Value>> {
    let p = format!(
        "{}?after={after}&limit={limit}",
        path(&["api", "v1", "orgs", org, "audit"])
    );
    api.list(&p, "events").await
}

fn seq(e: &Value) -> i64 {
    e.get("seq").and_then(Value::as_i64).unwrap_or(0)
}

/// One event on one line (follow mode, where columns cannot be sized ahead).
fn line(e: &Value) -> String {
    let mut l = format!(
        "{}  {}  {}  {}  {}",
        s(e, "time"),
        s(e, "outcome"),
        s(e, "action"),
        s(e, "actor"),
        s(e, "target")
    );
    if !s(e, "reason").is_empty() {
        l.push_str("  ");
        l.push_str(s(e, "reason"));
    }
    l.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Runs `fedgate audit`.
pub async fn run(a: AuditArgs, p: &mut Printer<'_>) -> CliResult<()> {
    let mut api = a.conn.api()?;
    let org = api.org().await?;
    // The events to show first, and the seq to follow from.
    let mut shown: VecDeque<Value> = VecDeque::new();
    let mut last = a.after.unwrap_or(0);
    loop {
        let events = page(&api, &org, last, PAGE).await?;
        let n = events.len() as i64;
        for e in events {
            last = last.max(seq(&e));
            if !a.keeps(&e) {
                continue;
            }
            shown.push_back(e);
            // From a given seq: the first `limit` events; else the last ones.
            if a.after.is_none() && shown.len() > a.limit {
                shown.pop_front();
            }
        }
        if n < PAGE || (a.after.is_some() && shown.len() >= a.limit) {
            break;
        }
    }
    shown.truncate(a.limit);
    if a.after.is_some()
        && let Some(e) = shown.back()
    {
        last = seq(e);
    }
    if a.follow {
        for e in &shown {
            if p.json {
                p.json_line(e)?;
            } else {
                p.say(&line(e))?;
            }
        }
        loop {
            tokio::time::sleep(Duration::from_secs(a.interval)).await;
            let events = page(&api, &org, last, PAGE).await?;
            for e in events {
                last = last.max(seq(&e));
                if !a.keeps(&e) {
                    continue;
                }
                if p.json {
                    p.json_line(&e)?;
                } else {
                    p.say(&line(&e))?;
                }
            }
        }
    }
    let shown: Vec<Value> = shown.into_iter().collect();
    p.json(&Value::Array(shown.clone()))?;
    let mut t = Table::new(&[
        "SEQ", "TIME", "OUTCOME", "ACTION", "ACTOR", "TARGET", "REASON",
    ]);
    for e in &shown {
        t.row(vec![
            cell(e.get("seq").unwrap_or(&Value::Null)),
            s(e, "time").into(),
            s(e, "outcome").into(),
            s(e, "action").into(),
            s(e, "actor").into(),
            s(e, "target").into(),
            s(e, "reason").into(),
        ]);
    }
    p.table(&t, "No audit events.")
}

// ---------------------------------------------------------------- explain

/// `fedgate explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// File holding the workload's JWT ("-" for stdin), e.g. the file of
    /// WANDB_IDENTITY_TOKEN_FILE or a Kubernetes projected token.
    pub token_file: String,
    /// The account to exchange for when several match: `sa:<org>/<team>/<name>`.
    #[arg(long)]
    pub audience: Option<String>,
}

/// Runs `fedgate explain`: exit 0 when the exchange would succeed, 9 when
/// the token would be refused (the failing check is shown).
pub async fn explain(a: ExplainArgs, p: &mut Printer<'_>) -> CliResult<i32> {
    let token = read_input(&a.token_file, "token file", 64 * 1024)?;
    let mut api = a.conn.api()?;
    let org = api.org().await?;
    let mut body = json!({ "token": token.trim() });
    if let Some(aud) = &a.audience {
        body["audience"] = json!(aud);
    }
    let out = api
        .post(
            &path(&["api", "v1", "orgs", &org, "federation", "explain"]),
            &body,
        )
        .await?;
    p.json(&out)?;
    let ok = s(&out, "outcome") == "would_succeed";
    if !p.json {
        let checks = match out.get("checks") {
            Some(Value::Array(a)) => a.clone(),
            Some(o) => o
                .get("checks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let mut t = Table::new(&["CHECK", "RESULT", "DETAIL"]);
        for c in &checks {
            let ok = c.get("ok").and_then(Value::as_bool).unwrap_or(false);
            t.row(vec![
                s(c, "name").into(),
                if ok { "ok" } else { "FAILED" }.into(),
                cell(c.get("detail").unwrap_or(&Value::Null)),
            ]);
        }
        p.table(&t, "No checks ran.")?;
        let candidates = out
            .get("candidates")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !candidates.is_empty() {
            p.say("")?;
            let mut t = Table::new(&["ACCOUNT", "MATCHES", "WHY NOT", "STATE"]);
            for c in &candidates {
                let matched = c.get("matched").and_then(Value::as_bool).unwrap_or(false);
                let mut state = if c.get("disabled").and_then(Value::as_bool).unwrap_or(false) {
                    "disabled".to_string()
                } else {
                    "enabled".to_string()
                };
                if let Some(m) = c.get("mode").and_then(Value::as_str) {
                    state.push_str(", ");
                    state.push_str(m);
                }
                t.row(vec![
                    s(c, "account").into(),
                    if matched { "yes" } else { "no" }.into(),
                    c.get("mismatch")
                        .and_then(Value::as_str)
                        .unwrap_or("-")
                        .into(),
                    state,
                ]);
            }
            p.table(&t, "")?;
        }
        for sh in out
            .get("shadow")
            .or_else(|| out.get("shadow_matches"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = sh
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| match s(sh, "name") {
                    "" => s(sh, "account").to_string(),
                    n => n.to_string(),
                });
            p.say(&format!(
                "Shadow binding {name} would match: it mints nothing until its mode is enforce."
            ))?;
        }
        p.say("")?;
        if ok {
            let m = out.get("matched").cloned().unwrap_or(Value::Null);
            p.say(&format!(
                "Would succeed: the token is exchanged for {} {} ({}).",
                s(&m, "kind").replace('_', " "),
                s(&m, "name"),
                s(&m, "id")
            ))?;
        } else {
            let e = out.get("error").cloned().unwrap_or(Value::Null);
            p.say(&format!(
                "Would fail: {} — {}",
                s(&e, "error"),
                s(&e, "error_description")
            ))?;
        }
    }
    Ok(if ok { EXIT_OK } else { EXIT_TOKEN_REFUSED })
}
