//! Trust as code: `fedgate plan|apply|export`. The organization's trusted
//! issuers and federated accounts live in a TOML file ([`file`]); `plan`
//! compares it with today's state ([`diff`]) and changes nothing; `apply`
//! carries the plan out (running it twice changes nothing the second time);
//! `export` writes today's state in the same format ([`export`]).

pub mod diff;
pub mod export;
pub mod file;

use std::collections::BTreeSet;

use clap::Args;
use serde_json::{Value, json};

use crate::admin_cli::Conn;
use crate::admin_cli::api::{AdminApi, path};
use crate::admin_cli::error::{CliError, CliResult, EXIT_CHANGES, EXIT_CONFLICT, EXIT_OK};
use crate::admin_cli::output::{Printer, s};
use crate::admin_cli::trust::diff::{
    Action, Change, Current, IssuerState, Kind, Op, Plan, SaState,
};

/// The trust file and connection, shared by `plan` and `apply`.
#[derive(Debug, Args)]
pub struct FileArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The trust file ("-" for stdin).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: String,
    /// Also delete federated accounts and issuers the file does not declare.
    #[arg(long)]
    pub prune: bool,
}

/// `fedgate plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Exit 10 when there are changes (0 when none), for CI.
    #[arg(long)]
    pub exit_code: bool,
}

/// `fedgate apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub file: FileArgs,
}

/// `fedgate export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Write to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<String>,
}

fn parse_list<T: serde::de::DeserializeOwned>(list: Vec<Value>, what: &str) -> CliResult<Vec<T>> {
    list.into_iter()
        .map(|v| {
            serde_json::from_value(v).map_err(|e| {
                CliError::Local(format!(
                    "the server's {what} list is not what this CLI reads: {e}"
                ))
            })
        })
        .collect()
}

/// Reads today's teams, issuers and service accounts of the organization.
pub async fn current(api: &mut AdminApi) -> CliResult<Current> {
    let org = api.org().await?;
    let teams = api
        .list_all(&path(&["api", "v1", "orgs", &org, "teams"]), "teams")
        .await?;
    let issuers = api
        .list_all(&path(&["api", "v1", "orgs", &org, "issuers"]), "issuers")
        .await?;
    let accounts = api
        .list_all(
            &path(&["api", "v1", "orgs", &org, "service-accounts"]),
            "service_accounts",
        )
        .await?;
    Ok(Current {
        teams: teams
            .iter()
            .map(|t| s(t, "name").to_string())
            .collect::<BTreeSet<_>>(),
        issuers: parse_list::<IssuerState>(issuers, "issuer")?,
        accounts: parse_list::<SaState>(accounts, "service account")?,
        org,
    })
}

fn sign(a: Action) -> char {
    match a {
        Action::Create => '+',
        Action::Update => '~',
        Action::Delete => '-',
    }
}

fn show_value(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

fn change_title(c: &Change, file: &str) -> String {
    let mut t = format!("{} {} {}", sign(c.action), c.kind.label(), c.name);
    if let Some(team) = &c.team
        && c.kind == Kind::ServiceAccount
    {
        t.push_str(&format!(" (team {team})"));
    }
    if let Some(line) = c.line {
        t.push_str(&format!("  [{file}:{line}]"));
    }
    t
}

fn summary(p: &Plan) -> Value {
    json!({
        "create": p.count(Action::Create),
        "update": p.count(Action::Update),
        "delete": p.count(Action::Delete),
    })
}

/// Prints a plan for people.
fn print_plan(p: &mut Printer<'_>, plan: &Plan, file: &str, prune: bool) -> CliResult<()> {
    p.say(&format!("Plan for organization \"{}\" ({file}):", plan.org))?;
    if plan.changes.is_empty() && plan.errors.is_empty() {
        p.say(&format!(
            "\nNo changes: the organization's trust matches {file}."
        ))?;
    }
    if !plan.changes.is_empty() {
        p.say("")?;
    }
    for c in &plan.changes {
        p.say(&format!("  {}", change_title(c, file)))?;
        for f in &c.fields {
            let line = match c.action {
                Action::Create => format!("      {} = {}", f.field, show_value(&f.to)),
                _ => format!(
                    "      {}: {} -> {}",
                    f.field,
                    show_value(&f.from),
                    show_value(&f.to)
                ),
            };
            p.say(&line)?;
        }
    }
    if !plan.kept.is_empty() {
        p.say(&format!(
            "\nNot in {file}, left as they are{}:",
            if prune {
                ""
            } else {
                " (apply --prune deletes them)"
            }
        ))?;
        for k in &plan.kept {
            let team = k
                .team
                .as_ref()
                .map(|t| format!(" (team {t})"))
                .unwrap_or_default();
            p.say(&format!("    {} {}{team}", k.kind.label(), k.name))?;
        }
    }
    if !plan.errors.is_empty() {
        p.say("\nCannot be applied:")?;
        for e in &plan.errors {
            p.say(&format!("  ! {e}"))?;
        }
    }
    p.say(&format!(
        "\nPlan: {} to create, {} to change, {} to delete.",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Delete)
    ))
}

async fn load_plan(a: &FileArgs) -> CliResult<(AdminApi, Plan)> {
    let file = file::load(&a.file)?;
    let mut api = a.conn.api()?;
    let cur = current(&mut api).await?;
    Ok((api, diff::plan(&file, &cur, a.prune)))
}

fn file_name(a: &FileArgs) -> &str {
    if a.file == "-" { "<stdin>" } else { &a.file }
}

/// `fedgate plan`: prints the plan; changes nothing.
pub async fn plan(a: PlanArgs, p: &mut Printer<'_>) -> CliResult<i32> {
    let (_, plan) = load_plan(&a.file).await?;
    p.json(&json!({
        "org": plan.org,
        "changes": plan.changes,
        "kept": plan.kept,
        "errors": plan.errors,
        "summary": summary(&plan),
    }))?;
    print_plan(p, &plan, file_name(&a.file), a.file.prune)?;
    if !plan.errors.is_empty() {
        return Ok(EXIT_CONFLICT);
    }
    Ok(if a.exit_code && !plan.changes.is_empty() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}

/// Carries out one change.
async fn execute(api: &mut AdminApi, org: &str, c: &Change) -> CliResult<()> {
    match &c.op {
        Op::CreateTeam => {
            api.post(
                &path(&["api", "v1", "orgs", org, "teams"]),
                &json!({"name": c.name}),
            )
            .await?;
        }
        Op::CreateIssuer { body } => {
            api.post(&path(&["api", "v1", "orgs", org, "issuers"]), body)
                .await?;
        }
        Op::UpdateIssuer { id, body } => {
            api.patch(&path(&["api", "v1", "orgs", org, "issuers", id]), body)
                .await?;
        }
        Op::DeleteIssuer { id } => {
            api.delete(&path(&["api", "v1", "orgs", org, "issuers", id]))
                .await?;
        }
        Op::CreateSa {
            team,
            body,
            disabled,
        } => {
            let out = api
                .post(
                    &path(&["api", "v1", "teams", team, "service-accounts"]),
                    body,
                )
                .await?;
            if *disabled {
                api.post(
                    &path(&["api", "v1", "service-accounts", s(&out, "id"), "disable"]),
                    &json!({}),
                )
                .await?;
            }
        }
        Op::UpdateSa { id, body, disabled } => {
            if let Some(body) = body {
                api.patch(&path(&["api", "v1", "service-accounts", id]), body)
                    .await?;
            }
            if let Some(d) = disabled {
                let verb = if *d { "disable" } else { "enable" };
                api.post(
                    &path(&["api", "v1", "service-accounts", id, verb]),
                    &json!({}),
                )
                .await?;
            }
        }
        Op::DeleteSa { id } => {
            api.delete(&path(&["api", "v1", "service-accounts", id]))
                .await?;
        }
    }
    Ok(())
}

fn done_line(c: &Change) -> String {
    let verb = match c.action {
        Action::Create => "created",
        Action::Update => "updated",
        Action::Delete => "deleted",
    };
    format!("{verb} {} {}", c.kind.label(), c.name)
}

/// `fedgate apply`: refuses a plan with errors; otherwise runs its changes
/// in order and stops at the first refusal, saying what was done before it.
pub async fn apply(a: ApplyArgs, p: &mut Printer<'_>) -> CliResult<i32> {
    let (mut api, plan) = load_plan(&a.file).await?;
    let name = file_name(&a.file).to_string();
    if !plan.errors.is_empty() {
        p.json(&json!({"org": plan.org, "applied": [], "errors": plan.errors}))?;
        return Err(CliError::Plan(format!(
            "{name} cannot be applied; nothing was changed:\n  {}",
            plan.errors.join("\n  ")
        )));
    }
    let mut applied: Vec<&Change> = Vec::new();
    for c in &plan.changes {
        if let Err(e) = execute(&mut api, &plan.org, c).await {
            p.json(&json!({"org": plan.org, "applied": applied, "failed": c}))?;
            p.say(&format!(
                "Stopped at {} ({} of {} changes were applied); run plan again to see what is left.",
                change_title(c, &name),
                applied.len(),
                plan.changes.len()
            ))?;
            return Err(e);
        }
        p.say(&format!("  {}", done_line(c)))?;
        applied.push(c);
    }
    p.json(
        &json!({"org": plan.org, "applied": applied, "kept": plan.kept, "summary": summary(&plan)}),
    )?;
    if plan.changes.is_empty() {
        p.say(&format!(
            "No changes: the organization's trust already matches {name}."
        ))?;
    } else {
        p.say(&format!(
            "Apply complete: {} created, {} changed, {} deleted.",
            plan.count(Action::Create),
            plan.count(Action::Update),
            plan.count(Action::Delete)
        ))?;
    }
    if !plan.kept.is_empty() && !a.file.prune {
        p.note(&format!(
            "note: {} object(s) not in {name} were left as they are (--prune deletes them)",
            plan.kept.len()
        ))?;
    }
    Ok(EXIT_OK)
}

/// `fedgate export`.
pub async fn export(a: ExportArgs, p: &mut Printer<'_>) -> CliResult<()> {
    let mut api = a.conn.api()?;
    let cur = current(&mut api).await?;
    if p.json {
        return p.json(&export::to_json(&cur));
    }
    let now = crate::clock::rfc3339(crate::clock::Clock::now_ms(&crate::clock::SystemClock));
    let text = export::render(&cur, &now);
    match &a.output {
        Some(path) => {
            std::fs::write(path, &text)
                .map_err(|e| CliError::Local(format!("cannot write {path:?}: {e}")))?;
            p.note(&format!("wrote {path}"))
        }
        None => {
            use std::io::Write;
            p.io.out
                .write_all(text.as_bytes())
                .map_err(|e| CliError::Local(format!("cannot write output: {e}")))
        }
    }
}
