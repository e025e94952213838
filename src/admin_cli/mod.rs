//! The admin's command line (`fedgate team|sa|key|issuer|explain|audit`,
//! and trust as code: `fedgate plan|apply|export`), in the style of `gh`,
//! `vault` and `gcloud iam`.
//!
//! It is a client of the HTTP API like any other: the server URL and the
//! credential come from `FEDGATE_URL` and `FEDGATE_API_KEY` (or `--url`,
//! `--api-key`), the organization from the credential (or `--org`). People
//! get tables and sentences, scripts `--json`; a failure prints the
//! server's message and a hint, and exits with a code from
//! [`error`] that scripts can branch on. docs/cli.md is the manual.

pub mod api;
pub mod audit;
pub mod error;
pub mod issuer;
pub mod output;
pub mod sa;
pub mod team;
pub mod trust;

use clap::{Args, Parser, Subcommand};

use crate::admin_cli::api::AdminApi;
use crate::admin_cli::error::{CliError, CliResult, EXIT_OK, EXIT_USAGE};
use crate::admin_cli::output::{Io, Printer};

/// Where fedgate is and who is asking; on every admin command.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// fedgate's base URL.
    #[arg(
        long,
        env = "FEDGATE_URL",
        global = true,
        default_value = crate::client::DEFAULT_BASE_URL
    )]
    pub url: String,
    /// An API key of an org admin (or of a team admin, for that team's
    /// accounts). Prefer the environment variable: flags show in `ps`.
    #[arg(long, env = "FEDGATE_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<String>,
    /// Organization to act on [default: the credential's own].
    #[arg(long, env = "FEDGATE_ORG", global = true)]
    pub org: Option<String>,
    /// Print JSON for scripts instead of tables (errors go to stderr as JSON too).
    #[arg(long, global = true)]
    pub json: bool,
}

impl Conn {
    /// The API client these settings describe.
    pub fn api(&self) -> CliResult<AdminApi> {
        // An empty variable (`FEDGATE_ORG=`) counts as unset, as in the W&B SDK.
        let org = self.org.clone().filter(|o| !o.trim().is_empty());
        AdminApi::new(&self.url, self.api_key.as_deref(), org)
    }
}

/// The admin subcommands, flattened into `fedgate`'s own.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Admin: teams (create, list).
    Team(team::TeamArgs),
    /// Admin: service accounts, built-in and federated (create, list, show,
    /// edit, disable, enable, delete).
    Sa(sa::SaArgs),
    /// API keys of built-in service accounts and users (create, list,
    /// revoke), and `check`: validate one offline.
    Key(sa::KeyArgs),
    /// Admin: trusted issuers (add, list, show, refresh, edit, delete).
    Issuer(issuer::IssuerArgs),
    /// Admin: dry-run an exchange of the JWT in TOKEN_FILE ("-" for stdin):
    /// every check, the matching accounts; mints nothing.
    Explain(audit::ExplainArgs),
    /// Admin: the organization's audit log (--follow to keep watching).
    Audit(audit::AuditArgs),
    /// Trust as code: show what `apply` would create, change and delete.
    Plan(trust::PlanArgs),
    /// Trust as code: make the organization's issuers and federated
    /// accounts what the trust file declares (idempotent).
    Apply(trust::ApplyArgs),
    /// Trust as code: write today's issuers and federated accounts as a trust file.
    Export(trust::ExportArgs),
}

impl AdminCommand {
    fn conn(&self) -> &Conn {
        match self {
            AdminCommand::Team(a) => &a.conn,
            AdminCommand::Sa(a) => &a.conn,
            AdminCommand::Key(a) => &a.conn,
            AdminCommand::Issuer(a) => &a.conn,
            AdminCommand::Explain(a) => &a.conn,
            AdminCommand::Audit(a) => &a.conn,
            AdminCommand::Plan(a) => &a.file.conn,
            AdminCommand::Apply(a) => &a.file.conn,
            AdminCommand::Export(a) => &a.conn,
        }
    }
}

/// Runs one admin command and returns its exit code; errors are written to
/// `io.err` (text with a hint, or JSON with `--json`).
pub async fn run(cmd: AdminCommand, io: &mut Io) -> i32 {
    let json = cmd.conn().json;
    let result = dispatch(cmd, io, json).await;
    match result {
        Ok(code) => code,
        Err(e) => {
            let text = if json {
                e.to_json().to_string()
            } else {
                e.to_text()
            };
            let _ = writeln!(io.err, "{text}");
            e.exit_code()
        }
    }
}

use std::io::Write as _;

async fn dispatch(cmd: AdminCommand, io: &mut Io, json: bool) -> CliResult<i32> {
    let mut p = Printer { io, json };
    match cmd {
        AdminCommand::Team(a) => team::run(a, &mut p).await.map(|_| EXIT_OK),
        AdminCommand::Sa(a) => sa::run(a, &mut p).await.map(|_| EXIT_OK),
        AdminCommand::Key(a) => sa::run_key(a, &mut p).await,
        AdminCommand::Issuer(a) => issuer::run(a, &mut p).await.map(|_| EXIT_OK),
        AdminCommand::Explain(a) => audit::explain(a, &mut p).await,
        AdminCommand::Audit(a) => audit::run(a, &mut p).await.map(|_| EXIT_OK),
        AdminCommand::Plan(a) => trust::plan(a, &mut p).await,
        AdminCommand::Apply(a) => trust::apply(a, &mut p).await,
        AdminCommand::Export(a) => trust::export(a, &mut p).await.map(|_| EXIT_OK),
    }
}

/// `fedgate`'s admin commands alone, for [`run_args`].
#[derive(Debug, Parser)]
#[command(name = "fedgate")]
struct AdminCli {
    #[command(subcommand)]
    command: AdminCommand,
}

/// Parses `args` (without the program name) as an admin command and runs
/// it: the library entry point the tests use in-process. A usage error is
/// written to `io.err` with exit code 2, as the binary does.
pub async fn run_args<I, T>(args: I, io: &mut Io) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let argv = std::iter::once(std::ffi::OsString::from("fedgate"))
        .chain(args.into_iter().map(Into::into));
    match AdminCli::try_parse_from(argv) {
        Ok(cli) => run(cli.command, io).await,
        Err(e) => {
            let _ = write!(io.err, "{}", e.render());
            match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    EXIT_OK
                }
                _ => EXIT_USAGE,
            }
        }
    }
}

/// A `KEY=VALUE` pair of a flag like `--claim repository_id=703518824`.
pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

/// Reads a file named on the command line (`-` is stdin), bounded in size.
pub fn read_input(path: &str, what: &str, max: u64) -> CliResult<String> {
    use std::io::Read;
    let mut text = String::new();
    let res = if path == "-" {
        std::io::stdin()
            .take(max + 1)
            .read_to_string(&mut text)
            .map(|_| ())
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(max + 1).read_to_string(&mut text).map(|_| ()))
    };
    res.map_err(|e| CliError::Usage(format!("cannot read {what} {path:?}: {e}")))?;
    if text.len() as u64 > max {
        return Err(CliError::Usage(format!(
            "{what} {path:?} is larger than {max} bytes"
        )));
    }
    Ok(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_command_line_is_well_formed() {
        crate::config::Cli::command().debug_assert();
        super::AdminCli::command().debug_assert();
        // The global flags work after every subcommand's own arguments
        // (a positional named like a global flag would swallow it).
        for argv in [
            &["issuer", "add", "https://x"][..],
            &["issuer", "show", "https://x"],
            &[
                "sa", "create", "--team", "t", "--name", "n", "--claim", "a=b",
            ],
            &["sa", "edit", "n", "--remove-claim", "a"],
            &["key", "revoke", "key_1", "--sa", "n"],
            &["explain", "-"],
            &["plan", "-f", "t.toml", "--exit-code"],
            &["apply", "-f", "t.toml", "--prune"],
            &["export", "-o", "x.toml"],
            &["audit", "--follow"],
            &["team", "create", "vision"],
        ] {
            let mut full: Vec<&str> = vec!["fedgate"];
            full.extend_from_slice(argv);
            full.extend_from_slice(&[
                "--url",
                "http://h:1",
                "--api-key",
                "k",
                "--org",
                "o",
                "--json",
            ]);
            let cli =
                super::AdminCli::try_parse_from(&full).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            let conn = cli.command.conn();
            assert_eq!(
                (
                    conn.url.as_str(),
                    conn.api_key.as_deref(),
                    conn.org.as_deref(),
                    conn.json
                ),
                ("http://h:1", Some("k"), Some("o"), true),
                "{argv:?}"
            );
        }
        assert_eq!(
            super::parse_pair("a.b=c=d").unwrap(),
            ("a.b".into(), "c=d".into())
        );
        assert!(super::parse_pair("=x").is_err());
    }
}
