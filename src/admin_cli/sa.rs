//! `fedgate sa …` (service accounts) and `fedgate key …` (their API keys,
//! and users').

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::admin_cli::api::{AdminApi, path};
use crate::admin_cli::error::{CliError, CliResult};
use crate::admin_cli::output::{Printer, Table, cell, s};
use crate::admin_cli::{Conn, parse_pair};
use crate::client::ClientError;

/// `fedgate sa …`.
#[derive(Debug, Args)]
pub struct SaArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: SaCommand,
}

/// A binding's settings as flags (create and edit).
#[derive(Debug, Clone, Default, Args)]
pub struct BindingFlags {
    /// Federated: the trusted issuer (its URL or id) whose tokens this account accepts.
    #[arg(long)]
    pub issuer: Option<String>,
    /// Federated: the exact `sub` of the workload's token.
    #[arg(long)]
    pub subject: Option<String>,
    /// Federated: a glob on `sub` (`*` any run, `?` one character).
    #[arg(long)]
    pub subject_pattern: Option<String>,
    /// Federated: a claim condition NAME=VALUE (exact, or a glob with `*`/`?`;
    /// dotted names reach nested claims). Repeatable.
    #[arg(long = "claim", value_name = "NAME=VALUE", value_parser = parse_pair)]
    pub claims: Vec<(String, String)>,
    /// Federated: `shadow` (matches are audited, nothing is minted) or `enforce`.
    #[arg(long, value_parser = ["shadow", "enforce"])]
    pub mode: Option<String>,
}

/// Service-account subcommands.
#[derive(Debug, Subcommand)]
pub enum SaCommand {
    /// Create a service account. Built-in (the default) prints its API key
    /// once; with --issuer and --subject it is federated (external).
    Create {
        /// Account name, unique in the organization.
        #[arg(long)]
        name: String,
        /// Team-scoped to this team.
        #[arg(
            long,
            conflicts_with = "default_team",
            required_unless_present = "default_team"
        )]
        team: Option<String>,
        /// Org-scoped (built-in only), writing to this team by default.
        #[arg(long)]
        default_team: Option<String>,
        /// Ceiling of the lifetime of tokens minted for it, in seconds (60-43200).
        #[arg(long, value_name = "SECONDS")]
        max_token_lifetime: Option<i64>,
        /// What the account is for, shown to admins.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        binding: BindingFlags,
    },
    /// List service accounts: the organization's, or one team's (--team).
    List {
        /// Only this team's team-scoped accounts (what a team admin may list).
        #[arg(long)]
        team: Option<String>,
    },
    /// Show one account (by name or id), its binding or its API keys.
    Show {
        /// Name or id (`sa_…`).
        account: String,
    },
    /// Change an account: its binding (issuer, subject, pattern, claims,
    /// mode), token lifetime, or an org account's default team.
    Edit {
        /// Name or id (`sa_…`).
        account: String,
        #[command(flatten)]
        binding: BindingFlags,
        /// Remove the subject pattern.
        #[arg(long, conflicts_with = "subject_pattern")]
        clear_subject_pattern: bool,
        /// Remove a claim condition. Repeatable.
        #[arg(long = "remove-claim", value_name = "NAME")]
        remove_claims: Vec<String>,
        /// New ceiling of minted tokens' lifetime, in seconds.
        #[arg(long, value_name = "SECONDS")]
        max_token_lifetime: Option<i64>,
        /// New default team of an org-scoped account.
        #[arg(long)]
        default_team: Option<String>,
        /// Rename the account (unique in the organization).
        #[arg(long, value_name = "NAME")]
        new_name: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Disable an account: every key and token of it is refused at once.
    Disable {
        /// Name or id (`sa_…`).
        account: String,
    },
    /// Enable an account again (credentials issued before the disable stay dead).
    Enable {
        /// Name or id (`sa_…`).
        account: String,
    },
    /// Delete an account: all its credentials are revoked at once; its audit
    /// history and runs stay.
    Delete {
        /// Name or id (`sa_…`).
        account: String,
        /// Do not ask for confirmation (required when not on a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Finds a service account by id or name: `GET /service-accounts/{id}` for
/// ids, else the organization's list (an org admin's view), else — when the
/// caller may only see one team — nothing it can name.
pub async fn find_sa(api: &mut AdminApi, reference: &str) -> CliResult<Value> {
    if reference.starts_with("sa_") {
        match api
            .get(&path(&["api", "v1", "service-accounts", reference]))
            .await
        {
            Ok(v) => return Ok(v),
            // A server without the endpoint: look in the list instead.
            Err(CliError::Client(ClientError::Api {
                status: 404 | 405,
                message,
                ..
            })) if message.contains("endpoint") => {}
            Err(e) => return Err(e),
        }
    }
    let org = api.org().await?;
    let all = api
        .list_all(
            &path(&["api", "v1", "orgs", &org, "service-accounts"]),
            "service_accounts",
        )
        .await?;
    all.into_iter()
        .find(|sa| s(sa, "name") == reference || s(sa, "id") == reference)
        .ok_or_else(|| {
            CliError::NotFound(format!(
                "no service account {reference:?} in organization \"{org}\""
            ))
        })
}

/// The URL of a trusted issuer id (or the id when it cannot be listed).
async fn issuer_urls(api: &mut AdminApi) -> BTreeMap<String, String> {
    let Ok(org) = api.org().await else {
        return BTreeMap::new();
    };
    match api
        .list_all(&path(&["api", "v1", "orgs", &org, "issuers"]), "issuers")
        .await
    {
        Ok(list) => list
            .iter()
            .map(|i| (s(i, "id").to_string(), s(i, "issuer").to_string()))
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

/// The binding object of an account answer, if any.
fn spec(sa: &Value) -> Option<&Value> {
    let b = sa.get("binding")?;
    Some(b.get("spec").unwrap_or(b))
}

/// The binding's mode (`enforce` when the server does not say).
fn mode(sa: &Value) -> &str {
    sa.get("binding")
        .and_then(|b| {
            b.get("mode")
                .or_else(|| b.get("spec").and_then(|s| s.get("mode")))
        })
        .or_else(|| sa.get("mode"))
        .and_then(Value::as_str)
        .unwrap_or("enforce")
}

fn status(sa: &Value) -> &'static str {
    if sa.get("disabled").and_then(Value::as_bool).unwrap_or(false) {
        "disabled"
    } else {
        "enabled"
    }
}

fn team_of(sa: &Value) -> &str {
    match s(sa, "team") {
        "" => s(sa, "default_team"),
        t => t,
    }
}

/// Runs a service-account subcommand.
pub async fn run(a: SaArgs, p: &mut Printer<'_>) -> CliResult<()> {
    let mut api = a.conn.api()?;
    match a.command {
        SaCommand::Create {
            name,
            team,
            default_team,
            max_token_lifetime,
            description,
            binding,
        } => {
            create(
                &mut api,
                p,
                name,
                team,
                default_team,
                max_token_lifetime,
                description,
                binding,
            )
            .await
        }
        SaCommand::List { team } => {
            let list = match &team {
                Some(t) => {
                    api.list_all(
                        &path(&["api", "v1", "teams", t, "service-accounts"]),
                        "service_accounts",
                    )
                    .await?
                }
                None => {
                    let org = api.org().await?;
                    api.list_all(
                        &path(&["api", "v1", "orgs", &org, "service-accounts"]),
                        "service_accounts",
                    )
                    .await?
                }
            };
            p.json(&Value::Array(list.clone()))?;
            let mut t = Table::new(&["NAME", "SCOPE", "TEAM", "AUTH", "STATUS", "SUBJECT", "ID"]);
            for sa in &list {
                let subject = spec(sa)
                    .map(|b| {
                        let mut subj = s(b, "subject").to_string();
                        if mode(sa) == "shadow" {
                            subj.push_str(" (shadow)");
                        }
                        subj
                    })
                    .unwrap_or_else(|| "-".into());
                t.row(vec![
                    s(sa, "name").into(),
                    s(sa, "scope").into(),
                    team_of(sa).into(),
                    s(sa, "auth").into(),
                    status(sa).into(),
                    subject,
                    s(sa, "id").into(),
                ]);
            }
            p.table(&t, "No service accounts.")
        }
        SaCommand::Show { account } => {
            let sa = find_sa(&mut api, &account).await?;
            let keys = if s(&sa, "auth") == "builtin" {
                Some(
                    api.list(
                        &path(&["api", "v1", "service-accounts", s(&sa, "id"), "api-keys"]),
                        "api_keys",
                    )
                    .await?,
                )
            } else {
                None
            };
            if p.json {
                let mut out = sa.clone();
                if let Some(k) = &keys {
                    out["api_keys"] = json!(k);
                }
                return p.json(&out);
            }
            let issuers = issuer_urls(&mut api).await;
            show(p, &sa, keys.as_deref(), &issuers)
        }
        SaCommand::Edit {
            account,
            binding,
            clear_subject_pattern,
            remove_claims,
            max_token_lifetime,
            default_team,
            new_name,
            description,
        } => {
            let sa = find_sa(&mut api, &account).await?;
            let mut body = serde_json::Map::new();
            if let Some(v) = new_name {
                body.insert("name".into(), json!(v));
            }
            if let Some(v) = description {
                body.insert("description".into(), json!(v));
            }
            if let Some(v) = max_token_lifetime {
                body.insert("max_token_lifetime_s".into(), json!(v));
            }
            if let Some(v) = default_team {
                body.insert("default_team".into(), json!(v));
            }
            if let Some(v) = binding.issuer {
                body.insert("issuer".into(), json!(v));
            }
            if let Some(v) = binding.subject {
                body.insert("subject".into(), json!(v));
            }
            if let Some(v) = binding.subject_pattern {
                body.insert("subject_pattern".into(), json!(v));
            }
            if clear_subject_pattern {
                body.insert("subject_pattern".into(), Value::Null);
            }
            if let Some(v) = binding.mode {
                body.insert("mode".into(), json!(v));
            }
            if !binding.claims.is_empty() || !remove_claims.is_empty() {
                let mut claims: BTreeMap<String, Value> = spec(&sa)
                    .and_then(|b| b.get("claims"))
                    .and_then(Value::as_object)
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                for name in &remove_claims {
                    if claims.remove(name).is_none() {
                        return Err(CliError::Usage(format!(
                            "--remove-claim {name:?}: the binding has no such claim condition"
                        )));
                    }
                }
                for (k, v) in binding.claims {
                    claims.insert(k, json!(v));
                }
                body.insert("claims".into(), json!(claims));
            }
            if body.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give at least one of --issuer, --subject, --subject-pattern, --clear-subject-pattern, --claim, --remove-claim, --mode, --max-token-lifetime, --default-team, --new-name, --description".into(),
                ));
            }
            let out = api
                .patch(
                    &path(&["api", "v1", "service-accounts", s(&sa, "id")]),
                    &Value::Object(body),
                )
                .await?;
            p.json(&out)?;
            p.say(&format!(
                "Updated service account {} ({}); a binding change applies to the next exchange.",
                s(&out, "name"),
                s(&out, "id")
            ))
        }
        SaCommand::Disable { account } => set_disabled(&mut api, p, &account, true).await,
        SaCommand::Enable { account } => set_disabled(&mut api, p, &account, false).await,
        SaCommand::Delete { account, yes } => {
            let sa = find_sa(&mut api, &account).await?;
            if !yes {
                confirm(&format!(
                    "Delete service account {} ({})? Every credential of it stops working at once.",
                    s(&sa, "name"),
                    s(&sa, "id")
                ))?;
            }
            api.delete(&path(&["api", "v1", "service-accounts", s(&sa, "id")]))
                .await?;
            p.json(&json!({"deleted": true, "id": s(&sa, "id"), "name": s(&sa, "name")}))?;
            p.say(&format!(
                "Deleted service account {} ({}); its audit history and runs remain.",
                s(&sa, "name"),
                s(&sa, "id")
            ))
        }
    }
}

/// Asks on the terminal; refuses when there is none (scripts pass `--yes`).
pub fn confirm(question: &str) -> CliResult<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(
            "refusing to delete without confirmation: pass --yes (stdin is not a terminal)".into(),
        ));
    }
    let mut err = std::io::stderr();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Local(format!("cannot read the answer: {e}")))?;
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(CliError::Usage("not confirmed; nothing was deleted".into()))
    }
}

#[allow(clippy::too_many_arguments)]
async fn create(
    api: &mut AdminApi,
    p: &mut Printer<'_>,
    name: String,
    team: Option<String>,
    default_team: Option<String>,
    max_token_lifetime: Option<i64>,
    description: Option<String>,
    b: BindingFlags,
) -> CliResult<()> {
    let external = b.issuer.is_some()
        || b.subject.is_some()
        || b.subject_pattern.is_some()
        || !b.claims.is_empty()
        || b.mode.is_some();
    let mut body = json!({ "name": name });
    if let Some(v) = max_token_lifetime {
        body["max_token_lifetime_s"] = json!(v);
    }
    if let Some(v) = description {
        body["description"] = json!(v);
    }
    let out = match (team, default_team) {
        (Some(team), _) => {
            if external {
                let (Some(issuer), Some(subject)) = (b.issuer, b.subject) else {
                    return Err(CliError::Usage(
                        "a federated account needs --issuer (a trusted issuer's URL or id) and --subject (the exact `sub` of the workload's token)".into(),
                    ));
                };
                body["auth"] = json!("external");
                body["issuer"] = json!(issuer);
                body["subject"] = json!(subject);
                if let Some(v) = b.subject_pattern {
                    body["subject_pattern"] = json!(v);
                }
                if !b.claims.is_empty() {
                    let claims: BTreeMap<String, String> = b.claims.into_iter().collect();
                    body["claims"] = json!(claims);
                }
                if let Some(m) = b.mode {
                    body["mode"] = json!(m);
                }
            } else {
                body["auth"] = json!("builtin");
            }
            api.post(
                &path(&["api", "v1", "teams", &team, "service-accounts"]),
                &body,
            )
            .await
            .map_err(|e| name_taken(e, &name))?
        }
        (None, Some(default_team)) => {
            if external {
                return Err(CliError::Usage(
                    "federated accounts are team-scoped: use --team instead of --default-team"
                        .into(),
                ));
            }
            body["default_team"] = json!(default_team);
            let org = api.org().await?;
            api.post(
                &path(&["api", "v1", "orgs", &org, "service-accounts"]),
                &body,
            )
            .await
            .map_err(|e| name_taken(e, &name))?
        }
        (None, None) => {
            return Err(CliError::Usage(
                "give --team (team-scoped) or --default-team (org-scoped)".into(),
            ));
        }
    };
    p.json(&out)?;
    let scope = if s(&out, "scope") == "org" {
        format!("org-scoped, default team {}", s(&out, "default_team"))
    } else {
        format!("team-scoped to {}", s(&out, "team"))
    };
    p.say(&format!(
        "Created service account {} ({}), {}, {}.",
        s(&out, "name"),
        s(&out, "id"),
        scope,
        if s(&out, "auth") == "external" {
            "federated"
        } else {
            "built-in"
        }
    ))?;
    if let Some(key) = out.get("api_key").and_then(Value::as_str) {
        p.say("API key (shown once: fedgate keeps only its hash; store it now):")?;
        p.say(key)?;
    }
    Ok(())
}

/// A 409 on create: the name is taken in the organization.
fn name_taken(e: CliError, name: &str) -> CliError {
    if e.status() != Some(409) {
        return e;
    }
    CliError::Hinted {
        error: Box::new(e),
        hint: format!(
            "names are unique in the organization: look at the existing one with `fedgate sa show {name}`, change it with `fedgate sa edit {name}`, or pick another name"
        ),
    }
}

async fn set_disabled(
    api: &mut AdminApi,
    p: &mut Printer<'_>,
    account: &str,
    disabled: bool,
) -> CliResult<()> {
    let sa = find_sa(api, account).await?;
    let verb = if disabled { "disable" } else { "enable" };
    let out = api
        .post(
            &path(&["api", "v1", "service-accounts", s(&sa, "id"), verb]),
            &json!({}),
        )
        .await?;
    p.json(&out)?;
    p.say(&if disabled {
        format!(
            "Disabled service account {}: its keys and tokens are refused from now on.",
            s(&out, "name")
        )
    } else {
        format!(
            "Enabled service account {} (keys and tokens issued before it was disabled stay dead).",
            s(&out, "name")
        )
    })
}

fn show(
    p: &mut Printer<'_>,
    sa: &Value,
    keys: Option<&[Value]>,
    issuers: &BTreeMap<String, String>,
) -> CliResult<()> {
    let mut t = Table::new(&["FIELD", "VALUE"]);
    let mut row = |k: &str, v: String| t.row(vec![k.to_string(), v]);
    row("name", s(sa, "name").into());
    row("id", s(sa, "id").into());
    row("scope", s(sa, "scope").into());
    if s(sa, "scope") == "org" {
        row("default team", s(sa, "default_team").into());
    } else {
        row("team", s(sa, "team").into());
    }
    row("auth", s(sa, "auth").into());
    row("status", status(sa).into());
    if !s(sa, "description").is_empty() {
        row("description", s(sa, "description").into());
    }
    row(
        "max token lifetime",
        format!(
            "{}s",
            cell(sa.get("max_token_lifetime_s").unwrap_or(&Value::Null))
        ),
    );
    row("created", s(sa, "created_at").into());
    if let Some(b) = spec(sa) {
        let issuer_id = sa
            .get("binding")
            .and_then(|b| b.get("issuer_id"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let issuer = match s(b, "issuer") {
            "" => issuers
                .get(issuer_id)
                .cloned()
                .unwrap_or_else(|| issuer_id.to_string()),
            url => url.to_string(),
        };
        row("issuer", issuer);
        row("subject", s(b, "subject").into());
        if let Some(pat) = b.get("subject_pattern").and_then(Value::as_str) {
            row("subject pattern", pat.into());
        }
        if let Some(claims) = b.get("claims").and_then(Value::as_object) {
            for (k, v) in claims {
                row(&format!("claim {k}"), cell(v));
            }
        }
        row("mode", mode(sa).into());
    }
    // Printer::table is a no-op in JSON mode; show is only called for tables.
    p.table(&t, "")?;
    if let Some(keys) = keys {
        p.say("")?;
        let mut kt = Table::new(&["KEY ID", "PREFIX", "CREATED", "LAST USED", "REVOKED"]);
        for k in keys {
            kt.row(key_row(k));
        }
        p.table(&kt, "No API keys.")?;
    }
    Ok(())
}

fn key_row(k: &Value) -> Vec<String> {
    vec![
        s(k, "id").into(),
        s(k, "prefix").into(),
        s(k, "created_at").into(),
        cell(k.get("last_used_at").unwrap_or(&Value::Null)),
        cell(k.get("revoked_at").unwrap_or(&Value::Null)),
    ]
}

// ---------------------------------------------------------------- keys

/// `fedgate key …`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: KeyCommand,
}

/// Whose keys: a built-in service account or a user.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct Owner {
    /// A built-in service account (name or id).
    #[arg(long)]
    pub sa: Option<String>,
    /// A user (yourself, or anyone of the organization for an org admin).
    #[arg(long)]
    pub user: Option<String>,
}

/// API-key subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Validate an API key offline (shape and checksum; nothing is sent
    /// anywhere, no credential needed). Exit status: 0 a valid key, 1 not a
    /// fedgate key (or a failed checksum), 11 a legacy key without a checksum
    /// (only the server can tell whether it is real).
    Check {
        /// The key, or "-" to read it from standard input (keeps it out of
        /// the shell history).
        key: String,
    },
    /// Create another API key (rotation); the key is printed once.
    Create {
        #[command(flatten)]
        owner: Owner,
    },
    /// List API keys (never the secrets).
    List {
        #[command(flatten)]
        owner: Owner,
    },
    /// Revoke an API key, effective at once on every replica.
    Revoke {
        /// The key's id (`key_…`), from `fedgate key list`.
        key_id: String,
        #[command(flatten)]
        owner: Owner,
    },
}

/// The API path of an owner's keys, and how to name the owner.
async fn keys_path(api: &mut AdminApi, owner: &Owner) -> CliResult<(String, String)> {
    match (&owner.sa, &owner.user) {
        (Some(sa), _) => {
            let sa = find_sa(api, sa).await?;
            Ok((
                path(&["api", "v1", "service-accounts", s(&sa, "id"), "api-keys"]),
                format!("service account {}", s(&sa, "name")),
            ))
        }
        (None, Some(user)) => Ok((
            path(&["api", "v1", "users", user, "api-keys"]),
            format!("user {user}"),
        )),
        (None, None) => Err(CliError::Usage("give --sa NAME or --user NAME".into())),
    }
}

/// Runs an API-key subcommand; its exit code (`check` has its own).
pub async fn run_key(a: KeyArgs, p: &mut Printer<'_>) -> CliResult<i32> {
    if let KeyCommand::Check { key } = &a.command {
        let key = if key == "-" {
            crate::admin_cli::read_input("-", "API key", 4096)?
        } else {
            key.clone()
        };
        let (status, text, out) = crate::apikey::report(&key);
        p.json(&out)?;
        p.say(&text)?;
        return Ok(i32::from(status));
    }
    let mut api = a.conn.api()?;
    run_key_call(&mut api, a.command, p).await.map(|_| 0)
}

async fn run_key_call(
    api: &mut AdminApi,
    command: KeyCommand,
    p: &mut Printer<'_>,
) -> CliResult<()> {
    match command {
        KeyCommand::Check { .. } => Ok(()),
        KeyCommand::Create { owner } => {
            let (base, who) = keys_path(api, &owner).await?;
            let out = api.post(&base, &json!({})).await?;
            p.json(&out)?;
            p.say(&format!(
                "Created API key {} for {who}. Shown once (fedgate keeps only its hash); store it now:",
                s(&out, "id")
            ))?;
            p.say(s(&out, "api_key"))
        }
        KeyCommand::List { owner } => {
            let (base, _) = keys_path(api, &owner).await?;
            let keys = api.list(&base, "api_keys").await?;
            p.json(&Value::Array(keys.clone()))?;
            let mut t = Table::new(&["KEY ID", "PREFIX", "CREATED", "LAST USED", "REVOKED"]);
            for k in &keys {
                t.row(key_row(k));
            }
            p.table(&t, "No API keys.")
        }
        KeyCommand::Revoke { key_id, owner } => {
            let (base, who) = keys_path(api, &owner).await?;
            api.delete(&format!("{base}{}", path(&[&key_id]))).await?;
            p.json(&json!({"revoked": true, "id": key_id}))?;
            p.say(&format!("Revoked API key {key_id} of {who}."))
        }
    }
}
