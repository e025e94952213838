//! `fedgate team create|list`.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::admin_cli::Conn;
use crate::admin_cli::api::path;
use crate::admin_cli::error::CliResult;
use crate::admin_cli::output::{Printer, Table, s};

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
                .list(&path(&["api", "v1", "orgs", &org, "teams"]), "teams")
                .await?;
            p.json(&Value::Array(teams.clone()))?;
            let mut t = Table::new(&["NAME", "ID"]);
            for team in &teams {
                t.row(vec![s(team, "name").into(), s(team, "id").into()]);
            }
            p.table(&t, "No teams.")
        }
    }
}
