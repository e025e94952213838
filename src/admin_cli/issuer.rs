//! `fedgate issuer add|list|show|refresh|edit|delete`: the organization's
//! trusted issuers.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::admin_cli::api::{AdminApi, path};
use crate::admin_cli::error::{CliError, CliResult};
use crate::admin_cli::output::{Printer, Table, cell, s};
use crate::admin_cli::sa::confirm;
use crate::admin_cli::{Conn, read_input};
use crate::client::ClientError;

/// `fedgate issuer …`.
#[derive(Debug, Args)]
pub struct IssuerArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: IssuerCommand,
}

/// An issuer's settings as flags (add and edit).
#[derive(Debug, Clone, Default, Args)]
pub struct IssuerFlags {
    /// Fetch keys from this JWKS URL instead of OIDC discovery.
    #[arg(long, conflicts_with = "jwks_file")]
    pub jwks_uri: Option<String>,
    /// A static JWK Set (JSON file, "-" for stdin) for an issuer fedgate cannot reach.
    #[arg(long, value_name = "FILE")]
    pub jwks_file: Option<String>,
    /// An accepted `aud` value. Repeatable [default: the organization's name].
    #[arg(long = "audience", value_name = "AUD")]
    pub audiences: Vec<String>,
    /// An accepted signature algorithm (RS256, PS256, ES256, EdDSA, …). Repeatable.
    #[arg(long = "alg", value_name = "ALG")]
    pub algs: Vec<String>,
    /// Largest `exp - iat` accepted, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub max_token_age: Option<i64>,
    /// Clock leeway for `exp`, `nbf` and `iat`, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub leeway: Option<i64>,
    /// Accept each `jti` once (true/false).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub single_use_jti: Option<bool>,
    /// Also trust this issuer for people: a token whose `sub` is a user's email signs that user in (true/false).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub users: Option<bool>,
}

impl IssuerFlags {
    fn body(&self) -> CliResult<serde_json::Map<String, Value>> {
        let mut b = serde_json::Map::new();
        if let Some(v) = &self.jwks_uri {
            b.insert("jwks_uri".into(), json!(v));
        }
        if let Some(f) = &self.jwks_file {
            let text = read_input(f, "JWKS file", 64 * 1024)?;
            let jwks: Value = serde_json::from_str(&text)
                .map_err(|e| CliError::Usage(format!("JWKS file {f:?} is not JSON: {e}")))?;
            b.insert("jwks".into(), jwks);
        }
        if !self.audiences.is_empty() {
            b.insert("audiences".into(), json!(self.audiences));
        }
        if !self.algs.is_empty() {
            b.insert("allowed_algs".into(), json!(self.algs));
        }
        if let Some(v) = self.max_token_age {
            b.insert("max_token_age_s".into(), json!(v));
        }
        if let Some(v) = self.leeway {
            b.insert("leeway_s".into(), json!(v));
        }
        if let Some(v) = self.single_use_jti {
            b.insert("single_use_jti".into(), json!(v));
        }
        if let Some(v) = self.users {
            b.insert("users".into(), json!(v));
        }
        Ok(b)
    }
}

/// Issuer subcommands.
#[derive(Debug, Subcommand)]
pub enum IssuerCommand {
    /// Trust an issuer: its keys are fetched and checked before it is saved.
    Add {
        /// The exact `iss` of its tokens, e.g. https://token.actions.githubusercontent.com
        #[arg(value_name = "URL")]
        issuer: String,
        #[command(flatten)]
        flags: IssuerFlags,
    },
    /// List the trusted issuers with their key-cache state.
    List,
    /// Show one issuer (URL or id) and its key-cache state.
    Show {
        /// The issuer's URL or id (`iss_…`).
        issuer: String,
    },
    /// Fetch an issuer's keys now and show the result.
    Refresh {
        /// The issuer's URL or id.
        issuer: String,
    },
    /// Change an issuer's settings (all but its URL), checked like `add`.
    Edit {
        /// The issuer's URL or id.
        issuer: String,
        #[command(flatten)]
        flags: IssuerFlags,
    },
    /// Stop trusting an issuer no account is bound to.
    Delete {
        /// The issuer's URL or id.
        issuer: String,
        /// Do not ask for confirmation (required when not on a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// The organization's issuers (as the API lists them).
pub async fn list_issuers(api: &mut AdminApi) -> CliResult<Vec<Value>> {
    let org = api.org().await?;
    api.list_all(&path(&["api", "v1", "orgs", &org, "issuers"]), "issuers")
        .await
}

/// Finds an issuer by id or exact URL (a trailing slash is significant, as in `iss`).
pub async fn find_issuer(api: &mut AdminApi, reference: &str) -> CliResult<Value> {
    if reference.starts_with("iss_") {
        let org = api.org().await?;
        match api
            .get(&path(&["api", "v1", "orgs", &org, "issuers", reference]))
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
    let list = list_issuers(api).await?;
    let found = list
        .iter()
        .find(|i| s(i, "id") == reference || s(i, "issuer") == reference);
    match found {
        Some(i) => Ok(i.clone()),
        None => {
            let near = list
                .iter()
                .map(|i| s(i, "issuer"))
                .find(|u| u.trim_end_matches('/') == reference.trim_end_matches('/'));
            Err(CliError::NotFound(match near {
                Some(u) => format!(
                    "no trusted issuer {reference:?}; did you mean {u:?}? (the URL must match `iss` exactly)"
                ),
                None => format!("no trusted issuer {reference:?} in this organization"),
            }))
        }
    }
}

fn keys_cell(i: &Value) -> String {
    match i.get("keys") {
        Some(k) if !k.is_null() => {
            let n = k.get("keys").and_then(Value::as_u64).unwrap_or(0);
            match k.get("last_error").and_then(Value::as_str) {
                Some(e) if !e.is_empty() => format!("{n} (error: {e})"),
                _ => n.to_string(),
            }
        }
        _ => "not fetched".into(),
    }
}

fn list_cell(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        Some(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        None => "-".into(),
    }
}

fn show(p: &mut Printer<'_>, i: &Value) -> CliResult<()> {
    let mut t = Table::new(&["FIELD", "VALUE"]);
    let mut row = |k: &str, v: String| t.row(vec![k.to_string(), v]);
    row("issuer", s(i, "issuer").into());
    row("id", s(i, "id").into());
    row("key source", s(i, "key_source").into());
    if let Some(u) = i.get("jwks_uri").and_then(Value::as_str) {
        row("jwks uri", u.into());
    }
    row("audiences", list_cell(i.get("audiences")));
    row("allowed algs", list_cell(i.get("allowed_algs")));
    row(
        "max token age",
        format!(
            "{}s",
            cell(i.get("max_token_age_s").unwrap_or(&Value::Null))
        ),
    );
    row(
        "leeway",
        format!("{}s", cell(i.get("leeway_s").unwrap_or(&Value::Null))),
    );
    row(
        "single-use jti",
        cell(i.get("single_use_jti").unwrap_or(&Value::Null)),
    );
    row("users", cell(i.get("users").unwrap_or(&Value::Null)));
    row("created", s(i, "created_at").into());
    let keys = i.get("keys").cloned().unwrap_or(Value::Null);
    row("keys", keys_cell(i));
    if !keys.is_null() {
        row("kids", list_cell(keys.get("kids")));
        row(
            "last fetch",
            cell(keys.get("last_fetch").unwrap_or(&Value::Null)),
        );
        row(
            "keys expire",
            cell(keys.get("expires_at").unwrap_or(&Value::Null)),
        );
    }
    if let Some(e) = i.get("refresh_error").and_then(Value::as_str) {
        row("refresh error", e.into());
    }
    p.table(&t, "")
}

/// Runs an issuer subcommand.
pub async fn run(a: IssuerArgs, p: &mut Printer<'_>) -> CliResult<()> {
    let mut api = a.conn.api()?;
    match a.command {
        IssuerCommand::Add { issuer, flags } => {
            let org = api.org().await?;
            let mut body = flags.body()?;
            body.insert("issuer".into(), json!(issuer));
            let out = match api
                .post(
                    &path(&["api", "v1", "orgs", &org, "issuers"]),
                    &Value::Object(body),
                )
                .await
            {
                Ok(out) => out,
                Err(e) if e.status() == Some(409) => {
                    // Already registered: name it, and how to change it instead.
                    return Err(match find_issuer(&mut api, &issuer).await {
                        Ok(existing) => CliError::Hinted {
                            error: Box::new(e),
                            hint: format!(
                                "it is registered as {}: change it with `fedgate issuer edit {} …`, or look at it with `fedgate issuer show {}`",
                                s(&existing, "id"),
                                s(&existing, "id"),
                                s(&existing, "id")
                            ),
                        },
                        Err(_) => e,
                    });
                }
                Err(e) => return Err(e),
            };
            p.json(&out)?;
            p.say(&format!(
                "Trusted issuer {} ({}); its keys were fetched and checked.",
                s(&out, "issuer"),
                s(&out, "id")
            ))
        }
        IssuerCommand::List => {
            let list = list_issuers(&mut api).await?;
            p.json(&Value::Array(list.clone()))?;
            let mut t = Table::new(&["ISSUER", "KEY SOURCE", "AUDIENCES", "USERS", "KEYS", "ID"]);
            for i in &list {
                t.row(vec![
                    s(i, "issuer").into(),
                    s(i, "key_source").into(),
                    list_cell(i.get("audiences")),
                    cell(i.get("users").unwrap_or(&Value::Null)),
                    keys_cell(i),
                    s(i, "id").into(),
                ]);
            }
            p.table(&t, "No trusted issuers.")
        }
        IssuerCommand::Show { issuer } => {
            let i = find_issuer(&mut api, &issuer).await?;
            p.json(&i)?;
            if !p.json {
                show(p, &i)?;
            }
            Ok(())
        }
        IssuerCommand::Refresh { issuer } => {
            let i = find_issuer(&mut api, &issuer).await?;
            let org = api.org().await?;
            let out = api
                .post(
                    &path(&["api", "v1", "orgs", &org, "issuers", s(&i, "id"), "refresh"]),
                    &json!({}),
                )
                .await?;
            p.json(&out)?;
            if !p.json {
                show(p, &out)?;
            }
            match out.get("refresh_error").and_then(Value::as_str) {
                // The fetch failed: the cached keys (if any) keep serving, but
                // a script must see it.
                Some(e) => Err(CliError::Unavailable(format!(
                    "the keys of issuer {} could not be fetched: {e}",
                    s(&i, "issuer")
                ))),
                None => Ok(()),
            }
        }
        IssuerCommand::Edit { issuer, flags } => {
            let i = find_issuer(&mut api, &issuer).await?;
            let body = flags.body()?;
            if body.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give at least one of --jwks-uri, --jwks-file, --audience, --alg, --max-token-age, --leeway, --single-use-jti, --users".into(),
                ));
            }
            let org = api.org().await?;
            let out = api
                .patch(
                    &path(&["api", "v1", "orgs", &org, "issuers", s(&i, "id")]),
                    &Value::Object(body),
                )
                .await?;
            p.json(&out)?;
            p.say(&format!(
                "Updated issuer {} ({}); effective at once on every replica.",
                s(&out, "issuer"),
                s(&out, "id")
            ))
        }
        IssuerCommand::Delete { issuer, yes } => {
            let i = find_issuer(&mut api, &issuer).await?;
            if !yes {
                confirm(&format!(
                    "Stop trusting issuer {} ({})?",
                    s(&i, "issuer"),
                    s(&i, "id")
                ))?;
            }
            let org = api.org().await?;
            api.delete(&path(&["api", "v1", "orgs", &org, "issuers", s(&i, "id")]))
                .await?;
            p.json(&json!({"deleted": true, "id": s(&i, "id"), "issuer": s(&i, "issuer")}))?;
            p.say(&format!("Deleted trusted issuer {}.", s(&i, "issuer")))
        }
    }
}
