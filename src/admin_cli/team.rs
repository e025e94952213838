//! `fedgate team create|list|show|delete`.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::admin_cli::Conn;
use crate::admin_cli::api::path;
use crate::admin_cli::error::CliResult;
use crate::admin_cli::output::{Printer, Table, s};
use crate::admin_cli::sa::confirm;

/// `fedgate team …`.
#[derive(Debug, Args)]
pub struct TeamArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: TeamCommand,
}

/// Team subcommands.
#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Create a team (org admins). Its name is the entity in paths and unique in the instance.
    Create {
        /// Team name: 1-64 letters, digits, '.', '_' or '-'.
        name: String,
    },
    /// List the organization's teams.
    List,
    /// Show a team and its members.
    Show {
        /// Team name.
        name: String,
    },
    /// Delete a team (org admins). Refused, with the list of what still
    /// lives in it, unless --delete-contents.
    Delete {
        /// Team name.
        name: String,
        /// Also delete its projects (with their runs) and its team-scoped
        /// service accounts (with every credential).
        #[arg(long)]
        delete_contents: bool,
        /// Do not ask for confirmation (required when not on a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Runs a team subcommand.
pub async fn run(a: TeamArgs, p: &mut Printer<'_>) -> CliResult<()> {
    let mut api = a.conn.api()?;
    let org = api.org().await?;
    match a.command {
        TeamCommand::Create { name } => {
            let t = api
                .post(
                    &path(&["api", "v1", "orgs", &org, "teams"]),
                    &json!({ "name": name }),
                )
                .await?;
            p.json(&t)?;
            p.say(&format!(
                "Created team {} ({}) in organization {}.",
                s(&t, "name"),
                s(&t, "id"),
                org
            ))
        }
        TeamCommand::List => {
            let teams = api
                .list_all(&path(&["api", "v1", "orgs", &org, "teams"]), "teams")
                .await?;
            p.json(&Value::Array(teams.clone()))?;
            let mut t = Table::new(&["NAME", "ID"]);
            for team in &teams {
                t.row(vec![s(team, "name").into(), s(team, "id").into()]);
            }
            p.table(&t, "No teams.")
        }
        TeamCommand::Show { name } => {
            let team = api.get(&path(&["api", "v1", "teams", &name])).await?;
            let members = api
                .list_all(&path(&["api", "v1", "teams", &name, "members"]), "members")
                .await?;
            let mut out = team.clone();
            out["members"] = json!(members);
            p.json(&out)?;
            p.say(&format!(
                "Team {} ({}) of organization {}.",
                s(&team, "name"),
                s(&team, "id"),
                s(&team, "org")
            ))?;
            let mut t = Table::new(&["MEMBER", "ROLE"]);
            for m in &members {
                t.row(vec![s(m, "username").into(), s(m, "role").into()]);
            }
            p.table(&t, "No members.")
        }
        TeamCommand::Delete {
            name,
            delete_contents,
            yes,
        } => {
            if !yes {
                confirm(&format!(
                    "Delete team {name}{}?",
                    if delete_contents {
                        " with its projects, runs and service accounts"
                    } else {
                        ""
                    }
                ))?;
            }
            let mut target = path(&["api", "v1", "teams", &name]);
            if delete_contents {
                target.push_str("?delete_contents=true");
            }
            let out = api.delete(&target).await?;
            p.json(&json!({"deleted": true, "team": name, "removed": out}))?;
            p.say(&format!("Deleted team {name}."))?;
            for (field, what) in [
                ("projects", "projects"),
                ("service_accounts", "service accounts"),
            ] {
                let names: Vec<&str> = out
                    .get(field)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                if !names.is_empty() {
                    p.say(&format!("  with its {what}: {}", names.join(", ")))?;
                }
            }
            Ok(())
        }
    }
}
