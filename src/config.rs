//! Command line and configuration: every `serve` flag is also `FEDGATE_<NAME>`
//! in the environment and a key of the optional TOML file (`--config`).
//! Precedence: flag, then environment, then file, then default.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

/// fedgate: trade a workload's OIDC token for a short-lived platform token.
#[derive(Debug, Parser)]
#[command(name = "fedgate", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (defaults: ./fedgate.db, 127.0.0.1:8080).
    Serve(ServeArgs),
    /// Create an organization and its admin offline; prints {"org","username","api_key"}.
    Bootstrap(BootstrapArgs),
    /// Write one consistent, self-contained copy of a SQLite store to OUT
    /// while the server runs (PostgreSQL: says what to run instead).
    Backup(BackupArgs),
    /// Manage fedgate's own token-signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Client: exchange the identity token in WANDB_IDENTITY_TOKEN_FILE (or
    /// check WANDB_API_KEY) at WANDB_BASE_URL, cache the access token in
    /// WANDB_CREDENTIALS_FILE, print who you are (JSON).
    #[command(after_help = CLIENT_ENV_HELP)]
    Login(ExchangeArgs),
    /// Client: print the caller's identity (GET /api/v1/viewer) as JSON.
    #[command(after_help = CLIENT_ENV_HELP)]
    Whoami(ExchangeArgs),
    /// Client: log a run (POST /api/v1/runs); prints the created run as JSON.
    #[command(after_help = CLIENT_ENV_HELP)]
    LogRun(LogRunArgs),
    /// The admin's commands (team, sa, key, issuer, explain, audit, plan,
    /// apply, export): an HTTP client of FEDGATE_URL with FEDGATE_API_KEY.
    #[command(flatten)]
    Admin(crate::admin_cli::AdminCommand),
    /// Client: log one call of an LLM trace (POST /api/v1/traces), with the
    /// same WANDB_* variables as log-run; prints the created call as JSON.
    #[command(after_help = CLIENT_ENV_HELP)]
    LogTrace(LogTraceArgs),
}

/// `fedgate log-trace` arguments; unset ones fall back to the W&B variables.
#[derive(Debug, Clone, Default, Args)]
pub struct LogTraceArgs {
    /// Project to log to [default: WANDB_PROJECT]; created on first write.
    #[arg(long)]
    pub project: Option<String>,
    /// Team (entity) to log to [default: WANDB_ENTITY, else your default entity].
    #[arg(long)]
    pub entity: Option<String>,
    /// The operation called, e.g. "openai.chat.completions.create".
    #[arg(long)]
    pub op_name: String,
    /// Trace to add the call to [default: the parent's trace, else a new one].
    #[arg(long)]
    pub trace_id: Option<String>,
    /// Id of the call this one is nested in (printed as "id" by an earlier log-trace).
    #[arg(long)]
    pub parent_id: Option<String>,
    /// Inputs as a JSON object, e.g. '{"prompt": "hi"}'.
    #[arg(long)]
    pub inputs: Option<String>,
    /// Output as JSON, e.g. '"hello"'.
    #[arg(long)]
    pub output: Option<String>,
    /// Start time, RFC 3339 [default: now].
    #[arg(long)]
    pub started_at: Option<String>,
    /// End time, RFC 3339.
    #[arg(long)]
    pub ended_at: Option<String>,
    #[command(flatten)]
    pub exchange: ExchangeArgs,
}

/// The environment the client commands read, listed under their `--help`.
pub const CLIENT_ENV_HELP: &str = "\
Environment (the W&B SDK's variables; empty values count as unset):
  WANDB_BASE_URL             the fedgate server's root URL [default: http://127.0.0.1:8080]
  WANDB_IDENTITY_TOKEN_FILE  file holding your CI system's or IdP's JWT, exchanged at /oidc/token
                             (a raw JWT, or GitHub's {\"count\":1,\"value\":\"eyJ…\"} answer)
  WANDB_API_KEY              a fedgate API key (fgk_…) instead of an identity token
  WANDB_CREDENTIALS_FILE     where access tokens are cached [default: ~/.config/wandb/credentials.json]
  WANDB_ENTITY, WANDB_PROJECT             where log-run and log-trace log (flags win)
  WANDB_USERNAME, WANDB_USER_EMAIL        credit a run to a user (attribution)
  FEDGATE_AUDIENCE, FEDGATE_SCOPE         defaults of --audience and --scope";

/// How the identity token is exchanged (`login`, and the exchange inside
/// `whoami` / `log-run`): RFC 8693 `audience` and RFC 6749 `scope`.
#[derive(Debug, Clone, Default, Args)]
pub struct ExchangeArgs {
    /// The account to become when the token matches several:
    /// sa:<org>/<team>/<name>.
    #[arg(long, env = "FEDGATE_AUDIENCE", value_name = "sa:ORG/TEAM/NAME")]
    pub audience: Option<String>,
    /// Scopes to ask for, space-separated: "read", "write" or "read write"
    /// [default: the account's, read write].
    #[arg(long, env = "FEDGATE_SCOPE")]
    pub scope: Option<String>,
}

/// `fedgate log-run` arguments; unset ones fall back to the W&B variables.
#[derive(Debug, Clone, Default, Args)]
pub struct LogRunArgs {
    /// Project to log to [default: WANDB_PROJECT]; created on first write.
    #[arg(long)]
    pub project: Option<String>,
    /// Team (entity) to log to [default: WANDB_ENTITY, else your default entity].
    #[arg(long)]
    pub entity: Option<String>,
    /// Run name [default: generated].
    #[arg(long)]
    pub name: Option<String>,
    /// Run config as a JSON object, e.g. '{"lr": 0.001}'.
    #[arg(long)]
    pub config: Option<String>,
    #[command(flatten)]
    pub exchange: ExchangeArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a new signing key and make it current; older keys keep verifying
    /// the tokens they signed until those expire.
    Rotate {
        #[command(flatten)]
        db: DbArgs,
        /// Algorithm of the new key: ES256 or EdDSA.
        #[arg(long, env = "FEDGATE_SIGNING_ALG", default_value = "ES256")]
        alg: String,
        #[command(flatten)]
        kek: KekArgs,
    },
    /// Re-encrypt every stored signing key under the first key of
    /// --key-encryption-key-file (decrypting with any key in that file), or
    /// with --decrypt store them unencrypted: how a key-encryption key is
    /// introduced, rotated or removed (docs/operations.md).
    Rewrap {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        kek: KekArgs,
        /// Store the signing keys unencrypted (decrypting with the file's keys).
        #[arg(long)]
        decrypt: bool,
    },
}

/// The key-encryption key of the signing keys at rest.
#[derive(Debug, Clone, Default, Args)]
pub struct KekArgs {
    /// File of 256-bit key-encryption keys, one per line (base64 or hex, e.g.
    /// from `openssl rand -base64 32`): new signing keys are stored encrypted
    /// (AES-256-GCM) with the first, any of them decrypts [default: stored
    /// unencrypted].
    #[arg(long, env = "FEDGATE_KEY_ENCRYPTION_KEY_FILE")]
    pub key_encryption_key_file: Option<PathBuf>,
}

/// `fedgate backup` arguments.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The file to write (must not exist yet); created mode 0600.
    pub out: PathBuf,
}

/// Where the store is.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Store URL: sqlite://PATH (embedded) or postgres://USER@HOST/DB (replicas).
    #[arg(long, env = "FEDGATE_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

/// `fedgate bootstrap` arguments.
#[derive(Debug, Clone, Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Name of the organization (tenant) to create.
    #[arg(long)]
    pub org: String,
    /// Username of its first admin.
    #[arg(long)]
    pub admin: String,
    /// Email of that admin.
    #[arg(long)]
    pub email: String,
    /// Seals the first signing key, when this creates it.
    #[command(flatten)]
    pub kek: KekArgs,
}

/// `fedgate serve` flags. Unset flags fall back to the environment, the file, the default.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Optional TOML file with any of the keys below (snake_case).
    #[arg(long, env = "FEDGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Store URL: sqlite://PATH (embedded, default sqlite://fedgate.db) or postgres://… (replicas).
    #[arg(long, env = "FEDGATE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Address to listen on, IP:PORT [default: 127.0.0.1:8080].
    #[arg(long, env = "FEDGATE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Public base URL, http(s)://HOST[:PORT]: the `iss` of minted tokens
    /// [default: http://<listen>].
    #[arg(long, env = "FEDGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Default lifetime of minted access tokens, in seconds, 60 to 43200
    /// [default: 3600].
    #[arg(long, env = "FEDGATE_TOKEN_TTL")]
    pub token_ttl: Option<u64>,
    /// Accept http:// issuers on loopback addresses (development and tests
    /// only); also allows fetching keys from loopback addresses.
    #[arg(long, env = "FEDGATE_ALLOW_INSECURE_ISSUERS")]
    pub allow_insecure_issuers: bool,
    /// Non-public addresses issuer keys may be fetched from, as CIDRs or
    /// addresses separated by commas (e.g. 10.0.0.0/8,fd00::/8). By default
    /// private, loopback, link-local and cloud-metadata addresses are
    /// refused after DNS resolution; a metadata address only by its exact
    /// address [default: none].
    #[arg(long, env = "FEDGATE_ALLOW_PRIVATE_ISSUERS", value_name = "CIDR,…")]
    pub allow_private_issuers: Option<String>,
    /// Serve GET /metrics on this separate address only (e.g. 127.0.0.1:9090);
    /// the main listener then answers 404 there [default: on the main listener].
    #[arg(long, env = "FEDGATE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Algorithm of the signing key created on first start: ES256 or EdDSA [default: ES256].
    #[arg(long, env = "FEDGATE_SIGNING_ALG")]
    pub signing_alg: Option<String>,
    /// Minimum seconds between two automatic JWKS fetches of one issuer
    /// (an unknown `kid` triggers one), 0 to 86400 [default: 30].
    #[arg(long, env = "FEDGATE_JWKS_REFRESH_COOLDOWN")]
    pub jwks_refresh_cooldown: Option<u64>,
    /// Token exchanges allowed per second per client address (burst: twice
    /// that), 0 to 1000000; 0 turns the limit off [default: 200].
    #[arg(long, env = "FEDGATE_EXCHANGE_RATE_LIMIT")]
    pub exchange_rate_limit: Option<u32>,
    /// Do not create org "default" and its admin on an empty store.
    #[arg(long, env = "FEDGATE_NO_BOOTSTRAP")]
    pub no_bootstrap: bool,
    /// Longest a request may take, body upload included, before it is
    /// answered 503 and its work dropped (1 to 300) [default: 30].
    #[arg(long, env = "FEDGATE_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
    /// Settings (snake_case) whose value came from their `FEDGATE_*`
    /// variable rather than the flag: errors name the place to fix.
    #[arg(skip)]
    pub from_env: Vec<String>,
    /// Comma-separated CIDRs of reverse proxies / load balancers whose
    /// `X-Forwarded-For` is believed (client address = the rightmost address
    /// not in these) [default: none: the peer address is the client].
    #[arg(long, env = "FEDGATE_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// File with the 256-bit key-encryption key of the signing keys at rest
    /// (see `fedgate keys rewrap`) [default: signing keys stored unencrypted].
    #[arg(long, env = "FEDGATE_KEY_ENCRYPTION_KEY_FILE")]
    pub key_encryption_key_file: Option<PathBuf>,
    /// On SIGTERM / Ctrl-C, how many seconds in-flight requests may take to
    /// finish before the server closes them and exits [default: 10].
    #[arg(long, env = "FEDGATE_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<u64>,
}

/// Default `--request-timeout`: far above any legitimate request (a JWKS
/// fetch gives up after 5 s), short enough that a slow upload or a stuck
/// dependency cannot hold a connection and its memory for long.
pub const DEFAULT_REQUEST_TIMEOUT_S: u64 = 30;

/// Default embedded store.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://fedgate.db";

/// The file form of [`ServeArgs`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    listen: Option<SocketAddr>,
    public_url: Option<String>,
    token_ttl: Option<u64>,
    allow_insecure_issuers: Option<bool>,
    allow_private_issuers: Option<String>,
    metrics_listen: Option<SocketAddr>,
    signing_alg: Option<String>,
    jwks_refresh_cooldown: Option<u64>,
    exchange_rate_limit: Option<u32>,
    no_bootstrap: Option<bool>,
    trusted_proxies: Option<String>,
    key_encryption_key_file: Option<PathBuf>,
    shutdown_timeout: Option<u64>,
    request_timeout: Option<u64>,
}

/// Resolved configuration of a running gateway.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub database_url: String,
    pub listen: SocketAddr,
    /// No trailing slash.
    pub public_url: String,
    pub token_ttl_s: i64,
    pub allow_insecure_issuers: bool,
    /// Non-public networks issuer keys may be fetched from
    /// (`--allow-private-issuers`, plus loopback with `--allow-insecure-issuers`).
    pub allow_private_issuers: Vec<ipnet::IpNet>,
    /// Where `/metrics` is served when not on the main listener.
    pub metrics_listen: Option<SocketAddr>,
    /// `ES256` or `EdDSA`.
    pub signing_alg: String,
    pub jwks_refresh_cooldown_s: u64,
    /// Exchanges per second per client address; 0 = unlimited.
    pub exchange_rate_limit: u32,
    pub bootstrap: bool,
    /// Peers whose `X-Forwarded-For` names the client (`--trusted-proxies`).
    pub trusted_proxies: crate::proxy::TrustedProxies,
    /// Where the key-encryption key of the signing keys is, if any.
    pub key_encryption_key_file: Option<PathBuf>,
    /// How long in-flight requests may run on after a shutdown signal.
    pub shutdown_timeout_s: u64,
    /// Every route's time limit, in seconds.
    pub request_timeout_s: u64,
}

impl ServeArgs {
    /// Where the value of setting `name` came from, for error messages: its
    /// flag, its `FEDGATE_*` variable, or its key in the config file.
    pub fn origin(&self, name: &str, from_args: bool) -> String {
        match (&self.config, from_args) {
            (Some(path), false) => format!("{name} in config file {}", path.display()),
            _ if self.from_env.iter().any(|n| n == name) => {
                format!("FEDGATE_{}", name.to_ascii_uppercase())
            }
            _ => format!("--{}", name.replace('_', "-")),
        }
    }

    /// Merges flags/environment with the optional file and the defaults.
    pub fn resolve(self) -> anyhow::Result<ServeConfig> {
        let text =
            match &self.config {
                Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read config file {}: {e}", path.display())
                })?),
                None => None,
            };
        self.resolve_with_file(text.as_deref())
    }

    /// [`ServeArgs::resolve`] with the file's text already read: any text
    /// gives a configuration or an error that says why, never a panic
    /// (generated-input tested).
    pub fn resolve_with_file(self, text: Option<&str>) -> anyhow::Result<ServeConfig> {
        let file: FileConfig = match text {
            Some(text) => {
                let path = self
                    .config
                    .as_deref()
                    .unwrap_or(std::path::Path::new("(config)"));
                toml::from_str(text)
                    .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let public_url_at = self.origin("public_url", self.public_url.is_some());
        let public_url = self
            .public_url
            .clone()
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        let public_url = public_url.trim_end_matches('/').to_string();
        url::Url::parse(&public_url).map_err(|e| {
            anyhow::anyhow!("{public_url_at} {public_url:?} is not a URL ({e}), e.g. https://fedgate.example.com")
        })?;
        let token_ttl_at = self.origin("token_ttl", self.token_ttl.is_some());
        let token_ttl = self.token_ttl.or(file.token_ttl).unwrap_or(3600);
        // Retired signing keys verify for 13 h (tokens::RETIRED_KEY_GRACE_MS):
        // no token may outlive that.
        if !(60..=43_200).contains(&token_ttl) {
            anyhow::bail!("{token_ttl_at} must be between 60 and 43200 seconds, got {token_ttl}");
        }
        let signing_alg_at = self.origin("signing_alg", self.signing_alg.is_some());
        let signing_alg = self
            .signing_alg
            .clone()
            .or(file.signing_alg)
            .unwrap_or_else(|| "ES256".into());
        if !matches!(signing_alg.as_str(), "ES256" | "EdDSA") {
            anyhow::bail!("{signing_alg_at} must be ES256 or EdDSA, got {signing_alg:?}");
        }
        let cooldown_at = self.origin(
            "jwks_refresh_cooldown",
            self.jwks_refresh_cooldown.is_some(),
        );
        let jwks_refresh_cooldown_s = self
            .jwks_refresh_cooldown
            .or(file.jwks_refresh_cooldown)
            .unwrap_or(30);
        if jwks_refresh_cooldown_s > 86_400 {
            anyhow::bail!(
                "{cooldown_at} must be between 0 and 86400 seconds, got {jwks_refresh_cooldown_s}"
            );
        }
        let rate_at = self.origin("exchange_rate_limit", self.exchange_rate_limit.is_some());
        let exchange_rate_limit = self
            .exchange_rate_limit
            .or(file.exchange_rate_limit)
            .unwrap_or(200);
        if exchange_rate_limit > 1_000_000 {
            anyhow::bail!(
                "{rate_at} must be between 0 and 1000000 per second, got {exchange_rate_limit}"
            );
        }
        let request_timeout = self
            .request_timeout
            .or(file.request_timeout)
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT_S);
        if !(1..=300).contains(&request_timeout) {
            anyhow::bail!(
                "--request-timeout must be between 1 and 300 seconds, got {request_timeout}"
            );
        }
        let allow_insecure_issuers =
            self.allow_insecure_issuers || file.allow_insecure_issuers.unwrap_or(false);
        let private_at = self.origin(
            "allow_private_issuers",
            self.allow_private_issuers.is_some(),
        );
        let mut allow_private_issuers =
            match self.allow_private_issuers.or(file.allow_private_issuers) {
                Some(text) => crate::federation::netguard::parse_cidrs(&text)
                    .map_err(|e| anyhow::anyhow!("{private_at}: {e}"))?,
                None => Vec::new(),
            };
        if allow_insecure_issuers {
            // http:// is allowed only to loopback hosts: that mode is for a
            // local IdP, so loopback addresses are allowed with it.
            allow_private_issuers.extend(crate::federation::netguard::loopback_nets());
        }
        Ok(ServeConfig {
            database_url: self
                .database_url
                .or(file.database_url)
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            listen,
            public_url,
            token_ttl_s: token_ttl as i64,
            allow_insecure_issuers,
            allow_private_issuers,
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            signing_alg,
            jwks_refresh_cooldown_s,
            exchange_rate_limit,
            bootstrap: !(self.no_bootstrap || file.no_bootstrap.unwrap_or(false)),
            trusted_proxies: crate::proxy::TrustedProxies::parse(
                &self
                    .trusted_proxies
                    .or(file.trusted_proxies)
                    .unwrap_or_default(),
            )?,
            key_encryption_key_file: self
                .key_encryption_key_file
                .or(file.key_encryption_key_file),
            shutdown_timeout_s: self
                .shutdown_timeout
                .or(file.shutdown_timeout)
                .unwrap_or(10),
            request_timeout_s: request_timeout,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn private_issuer_ranges_and_metrics_address() {
        let cfg = ServeArgs {
            allow_private_issuers: Some("10.0.0.0/8, fd00::/8,192.168.1.20".into()),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        let nets: Vec<String> = cfg
            .allow_private_issuers
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "fd00::/8", "192.168.1.20/32"]);
        assert_eq!(
            cfg.metrics_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9090)))
        );
        // Loopback only comes with --allow-insecure-issuers (a local IdP).
        let dev = ServeArgs {
            allow_insecure_issuers: true,
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        let nets: Vec<String> = dev
            .allow_private_issuers
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["127.0.0.0/8", "::1/128"]);
        assert!(
            ServeArgs::default()
                .resolve()
                .unwrap()
                .allow_private_issuers
                .is_empty()
        );
        let err = ServeArgs {
            allow_private_issuers: Some("10.0.0.0/8,intranet".into()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--allow-private-issuers") && err.contains("\"intranet\""),
            "{err}"
        );
    }

    #[test]
    fn file_values_are_checked_like_flags() {
        let ok = ServeArgs::default()
            .resolve_with_file(Some("token_ttl = 600\nrequest_timeout = 5\n"))
            .unwrap();
        assert_eq!((ok.token_ttl_s, ok.request_timeout_s), (600, 5));
        assert_eq!(
            ServeArgs::default()
                .resolve_with_file(None)
                .unwrap()
                .request_timeout_s,
            DEFAULT_REQUEST_TIMEOUT_S
        );
        for (text, want) in [
            (
                "request_timeout = 0",
                "--request-timeout must be between 1 and 300",
            ),
            (
                "request_timeout = 301",
                "--request-timeout must be between 1 and 300",
            ),
            ("token_ttl = 5", "--token-ttl must be between 60 and 43200"),
            ("nope = 1", "unknown field `nope`"),
            ("token_ttl = -1", "config file (config)"),
            ("public_url = \"::\"", "--public-url"),
        ] {
            let e = ServeArgs::default()
                .resolve_with_file(Some(text))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}

/// Generated inputs (issue 10): any file text and any flag values give a
/// configuration or an error, never a panic, and what is accepted is in range.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod generated {
    use proptest::prelude::*;

    use super::*;

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            "\"[ -~]{0,40}\"",
            Just("\"127.0.0.1:0\"".to_string()),
            Just("\"http://[::1]:8080/\"".to_string()),
            Just("\"10.0.0.0/8,::1/128\"".to_string()),
            Just("\"10.0.0.0/33\"".to_string()),
            Just("[1, 2]".to_string()),
            Just("{ a = 1 }".to_string()),
            Just("1.5e300".to_string()),
        ]
    }

    fn file() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("database_url"),
            Just("listen"),
            Just("public_url"),
            Just("token_ttl"),
            Just("allow_insecure_issuers"),
            Just("signing_alg"),
            Just("jwks_refresh_cooldown"),
            Just("exchange_rate_limit"),
            Just("no_bootstrap"),
            Just("request_timeout"),
            Just("allow_private_issuers"),
            Just("metrics_listen"),
            Just("unknown"),
        ];
        prop_oneof![
            any::<String>(),
            prop::collection::vec((key, value()), 0..8).prop_map(|kv| {
                kv.into_iter()
                    .map(|(k, v)| format!("{k} = {v}\n"))
                    .collect()
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn any_file_resolves_or_is_refused(
            text in file(),
            token_ttl in proptest::option::of(any::<u64>()),
            request_timeout in proptest::option::of(any::<u64>()),
            signing_alg in proptest::option::of("[A-Za-z0-9]{0,8}"),
            public_url in proptest::option::of("[ -~]{0,30}"),
        ) {
            let args = ServeArgs {
                token_ttl,
                request_timeout,
                signing_alg,
                public_url,
                ..ServeArgs::default()
            };
            if let Ok(c) = args.resolve_with_file(Some(&text)) {
                prop_assert!((60..=43_200).contains(&c.token_ttl_s));
                prop_assert!((1..=300).contains(&c.request_timeout_s));
                prop_assert!(matches!(c.signing_alg.as_str(), "ES256" | "EdDSA"));
                prop_assert!(!c.public_url.ends_with('/'));
            }
        }
    }
}
