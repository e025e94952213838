//! `fedgate`: parse the command line, set up logging, hand over to the library.

use clap::{CommandFactory, FromArgMatches};
use fedgate::config::{Cli, Command, KeysCommand, ServeArgs};

/// mimalloc instead of glibc's malloc: an exchange allocates a few hundred
/// small, short-lived objects (HTTP buffers, claims, JSON), and glibc's
/// allocator spent ~14% of the server's CPU on them (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, not in CI logs or files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = parse();
    if let Command::Admin(cmd) = cli.command {
        let mut io = fedgate::admin_cli::output::Io::stdio();
        let code = fedgate::admin_cli::run(cmd, &mut io).await;
        return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fedgate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The command line, noting which `serve` settings came from the
/// environment so that an error names the variable rather than the flag.
fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Command::Serve(args), Some(("serve", m))) = (&mut cli.command, matches.subcommand()) {
        args.from_env = m
            .ids()
            .filter(|id| {
                m.value_source(id.as_str()) == Some(clap::parser::ValueSource::EnvVariable)
            })
            .map(|id| id.as_str().to_string())
            .collect();
    }
    cli
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => fedgate::run(args.resolve()?).await,
        Command::Bootstrap(args) => {
            let config = ServeArgs {
                database_url: Some(args.db.database_url),
                key_encryption_key_file: args.kek.key_encryption_key_file,
                no_bootstrap: true,
                ..ServeArgs::default()
            }
            .resolve()?;
            let built = fedgate::build(config).await?;
            let out = fedgate::service::admin::bootstrap(
                &built.state,
                &args.org,
                &args.admin,
                &args.email,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            built.state.audit.flush().await;
            println!("{}", serde_json::to_string(&out)?);
            Ok(())
        }
        Command::Backup(args) => print_json(serde_json::to_value(
            fedgate::backup::backup(&args.db.database_url, &args.out).await?,
        )?),
        Command::Keys {
            command: KeysCommand::Rotate { db, alg, kek },
        } => {
            let kek = fedgate::kek::Kek::load_optional(kek.key_encryption_key_file.as_deref())?;
            let store = fedgate::store::open(&db.database_url).await?;
            let now = fedgate::clock::Clock::now_ms(&fedgate::clock::SystemClock);
            let kid = fedgate::tokens::rotate_with(&store, &alg, kek.as_deref(), now).await?;
            println!("{}", serde_json::json!({"kid": kid, "alg": alg}));
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Rewrap { db, kek, decrypt },
        } => {
            let kek = fedgate::kek::Kek::load_optional(kek.key_encryption_key_file.as_deref())?;
            let store = fedgate::store::open(&db.database_url).await?;
            let n = fedgate::tokens::rewrap(&store, kek.as_deref(), decrypt).await?;
            println!(
                "{}",
                serde_json::json!({
                    "rewrapped": n,
                    "key_encryption_key": if decrypt { None } else { kek.as_ref().map(|k| k.current_id().to_string()) },
                })
            );
            Ok(())
        }
        Command::Login(x) => print_json(client(x)?.login().await?),
        Command::Whoami(x) => print_json(client(x)?.whoami().await?),
        Command::LogRun(args) => print_json(
            client(args.exchange)?
                .log_run(&fedgate::client::RunOptions {
                    entity: args.entity,
                    project: args.project,
                    name: args.name,
                    config: args.config,
                })
                .await?,
        ),
        Command::Admin(_) => Ok(()),
        Command::LogTrace(args) => print_json(
            client(args.exchange)?
                .log_trace(&fedgate::client::TraceOptions {
                    entity: args.entity,
                    project: args.project,
                    op_name: args.op_name,
                    trace_id: args.trace_id,
                    parent_id: args.parent_id,
                    inputs: args.inputs,
                    output: args.output,
                    started_at: args.started_at,
                    ended_at: args.ended_at,
                })
                .await?,
        ),
    }
}

/// The client, configured from the `WANDB_*` environment and the exchange
/// flags (`--audience`, `--scope`, or `FEDGATE_AUDIENCE` / `FEDGATE_SCOPE`).
fn client(x: fedgate::config::ExchangeArgs) -> anyhow::Result<fedgate::client::Client> {
    let mut env = fedgate::client::ClientEnv::from_process()?;
    env.set_exchange(x.audience, x.scope)?;
    Ok(fedgate::client::Client::new(env)?)
}

fn print_json(v: serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
