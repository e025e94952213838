//! The client side of fedgate (`fedgate login`, `whoami`, `log-run`,
//! `log-trace`): what the W&B SDK does with identity federation, as a small
//! CLI that a CI step can run before (or instead of) the SDK.
//!
//! Settings come from the `WANDB_*` environment variables the SDK reads
//! (see [`ClientEnv`]), gathered once at the edge and passed in, so the logic
//! is testable without touching the process environment.
//!
//! Credential, as the SDK picks it:
//! - `WANDB_API_KEY`: sent as HTTP Basic `api:<key>`.
//! - `WANDB_IDENTITY_TOKEN_FILE`: the JWT in that file is exchanged at
//!   `/oidc/token` (RFC 7523) and the access token cached in the
//!   credentials file (`WANDB_CREDENTIALS_FILE`, default
//!   `~/.config/wandb/credentials.json`), reused by later processes while
//!   more than 5 minutes remain. The file is re-read on every exchange.
//! - Both set: an error, rather than guessing which identity is meant.

pub mod credentials;
pub mod http;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::client::credentials::{CachedToken, Lookup};
use crate::client::http::{Api, Auth, ExchangeParams, RetryPolicy};

/// Where the client talks to when `WANDB_BASE_URL` is unset: a local
/// `fedgate serve` (the W&B SDK's own default is `https://api.wandb.ai`).
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080";

/// The SDK's default credentials file, under the home folder.
pub const DEFAULT_CREDENTIALS_FILE: &str = ".config/wandb/credentials.json";

/// What can go wrong on the client side; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A setting is missing or contradictory.
    #[error("{0}")]
    Config(String),
    /// The identity token file cannot be used.
    #[error("{0}")]
    TokenFile(String),
    /// The credentials file cannot be read or written.
    #[error("credentials file: {0}")]
    CredentialsFile(String),
    /// fedgate could not be reached.
    #[error("cannot reach {url}: {reason}")]
    Transport { url: String, reason: String },
    /// `/oidc/token` refused the identity token (RFC 6749 §5.2 error);
    /// `hint` says what to change on the client side, if anything.
    #[error("token exchange refused by {url} ({status} {error}): {description}{hint}")]
    Exchange {
        url: String,
        status: u16,
        error: String,
        description: String,
        hint: String,
    },
    /// The server at the base URL does not speak fedgate's API.
    #[error(
        "{url} answered {status} with {what}, not fedgate's JSON: is WANDB_BASE_URL ({base_url}) the root URL of a fedgate server?"
    )]
    NotFedgate {
        url: String,
        base_url: String,
        status: u16,
        what: String,
    },
    /// Transient failures went on past the retry policy.
    #[error("token exchange failed after {attempts} attempts; last error: {last}")]
    GaveUp {
        attempts: u32,
        last: Box<ClientError>,
    },
    /// An API call was answered with an error.
    #[error("{method} {url} failed ({status} {code}): {message}")]
    Api {
        method: String,
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    /// fedgate answered something that is not what its API promises.
    #[error("unexpected answer from {url}: {reason}")]
    BadResponse { url: String, reason: String },
}

impl ClientError {
    /// One line without the URL, for progress messages.
    pub fn short(&self) -> String {
        match self {
            ClientError::Exchange {
                status,
                error,
                description,
                ..
            } => format!("{status} {error}: {description}"),
            ClientError::Transport { reason, .. } => reason.clone(),
            ClientError::NotFedgate { status, what, .. } => format!("{status} with {what}"),
            other => other.to_string(),
        }
    }
}

/// The client's settings: the `WANDB_*` variables the W&B SDK honours.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientEnv {
    /// `WANDB_BASE_URL` without a trailing slash (the credentials file key).
    pub base_url: String,
    /// `WANDB_API_KEY`.
    pub api_key: Option<String>,
    /// `WANDB_IDENTITY_TOKEN_FILE`.
    pub identity_token_file: Option<PathBuf>,
    /// `WANDB_CREDENTIALS_FILE`, else `~/.config/wandb/credentials.json`;
    /// `None` when neither it nor `HOME` is set.
    pub credentials_file: Option<PathBuf>,
    /// `WANDB_ENTITY`: the team runs are logged to.
    pub entity: Option<String>,
    /// `WANDB_PROJECT`.
    pub project: Option<String>,
    /// `WANDB_USERNAME`: sent as `X-WANDB-USERNAME` (attribution).
    pub username: Option<String>,
    /// `WANDB_USER_EMAIL`: sent as `X-WANDB-USER-EMAIL` (attribution).
    pub user_email: Option<String>,
    /// `--audience` / `FEDGATE_AUDIENCE`: the account to exchange for,
    /// `sa:<org>/<team>/<name>`, when a token matches several.
    pub audience: Option<String>,
    /// `--scope` / `FEDGATE_SCOPE`: space-separated scopes to ask for.
    pub scope: Option<String>,
}

impl std::fmt::Debug for ClientEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientEnv")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("identity_token_file", &self.identity_token_file)
            .field("credentials_file", &self.credentials_file)
            .field("entity", &self.entity)
            .field("project", &self.project)
            .field("username", &self.username)
            .field("user_email", &self.user_email)
            .field("audience", &self.audience)
            .field("scope", &self.scope)
            .finish()
    }
}

/// `~/x` → `$HOME/x`, as the SDK's `expanduser` does.
fn expand_home(p: &str, home: Option<&str>) -> PathBuf {
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => Path::new(h).join(rest),
        _ if p == "~" => home.map(PathBuf::from).unwrap_or_else(|| PathBuf::from(p)),
        _ => PathBuf::from(p),
    }
}

impl ClientEnv {
    /// Reads the settings through `var` (the process environment in the
    /// binary, a map in tests). Empty values count as unset, as in the SDK.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<ClientEnv, ClientError> {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let home = get("HOME");
        let base_url = get("WANDB_BASE_URL").unwrap_or_else(|| DEFAULT_BASE_URL.into());
        let base_url = base_url.trim_end_matches('/').to_string();
        match url::Url::parse(&base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                // fedgate serves its API at fixed paths under the root
                // (/oidc/token, /api/v1/…), as the W&B SDK expects.
                if u.path() != "/" || u.query().is_some() {
                    let mut root = u.clone();
                    root.set_path("");
                    root.set_query(None);
                    return Err(ClientError::Config(format!(
                        "WANDB_BASE_URL {base_url:?} has a path: use the server's root URL, {:?}",
                        root.as_str().trim_end_matches('/')
                    )));
                }
            }
            _ => {
                return Err(ClientError::Config(format!(
                    "WANDB_BASE_URL {base_url:?} is not an http(s) URL, e.g. https://fedgate.example.com"
                )));
            }
        }
        let credentials_file = match get("WANDB_CREDENTIALS_FILE") {
            Some(p) => Some(expand_home(&p, home.as_deref())),
            None => home
                .as_deref()
                .map(|h| Path::new(h).join(DEFAULT_CREDENTIALS_FILE)),
        };
        Ok(ClientEnv {
            base_url,
            api_key: get("WANDB_API_KEY"),
            identity_token_file: get("WANDB_IDENTITY_TOKEN_FILE")
                .map(|p| expand_home(&p, home.as_deref())),
            credentials_file,
            entity: get("WANDB_ENTITY"),
            project: get("WANDB_PROJECT"),
            username: get("WANDB_USERNAME"),
            user_email: get("WANDB_USER_EMAIL"),
            audience: None,
            scope: None,
        })
    }

    /// Sets `--audience` and `--scope` (already merged with `FEDGATE_AUDIENCE`
    /// and `FEDGATE_SCOPE`), checking their form before anything is sent.
    pub fn set_exchange(
        &mut self,
        audience: Option<String>,
        scope: Option<String>,
    ) -> Result<(), ClientError> {
        let audience = audience
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty());
        if let Some(a) = audience
            .as_deref()
            .filter(|a| !crate::service::exchange::is_account_name(a))
        {
            return Err(ClientError::Config(format!(
                "--audience (FEDGATE_AUDIENCE) {a:?} does not name a service account: use sa:<org>/<team>/<name> (e.g. sa:default/vision/gh-deploy) or the account's id (sa_…)"
            )));
        }
        let scope = scope
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        if let Some(s) = scope.as_ref().filter(|s| s.contains(',')) {
            return Err(ClientError::Config(format!(
                "--scope (FEDGATE_SCOPE) {s:?}: scopes are space-separated, e.g. \"read write\""
            )));
        }
        self.audience = audience;
        self.scope = scope;
        Ok(())
    }

    /// What the cached access token was asked for (`None`: the defaults), so
    /// a token for one account is never reused when another is named.
    fn request_key(&self) -> Option<String> {
        match (&self.audience, &self.scope) {
            (None, None) => None,
            (a, s) => Some(format!(
                "audience={} scope={}",
                a.as_deref().unwrap_or("-"),
                s.as_deref().unwrap_or("-")
            )),
        }
    }

    /// Reads the settings from the process environment.
    pub fn from_process() -> Result<ClientEnv, ClientError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }
}

/// The credential a command will send.
#[derive(Clone)]
enum Credential {
    ApiKey(String),
    /// An access token, and whether it came from the credentials file
    /// (then a 401 is worth one fresh exchange) or from an exchange just now.
    AccessToken {
        token: CachedToken,
        cached: bool,
    },
}

impl Credential {
    fn auth(&self) -> Auth<'_> {
        match self {
            Credential::ApiKey(k) => Auth::ApiKey(k),
            Credential::AccessToken { token, .. } => Auth::Bearer(&token.access_token),
        }
    }
}

/// Options of `fedgate log-run`; unset ones fall back to the environment.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub entity: Option<String>,
    pub project: Option<String>,
    pub name: Option<String>,
    /// The run's config as JSON text (an object).
    pub config: Option<String>,
}

/// Options of `fedgate log-trace`; unset entity and project fall back to
/// the environment, as for runs.
#[derive(Clone, Debug, Default)]
pub struct TraceOptions {
    pub entity: Option<String>,
    pub project: Option<String>,
    pub op_name: String,
    pub trace_id: Option<String>,
    pub parent_id: Option<String>,
    /// JSON text (an object).
    pub inputs: Option<String>,
    /// JSON text (any value).
    pub output: Option<String>,
    /// RFC 3339.
    pub started_at: Option<String>,
    /// RFC 3339.
    pub ended_at: Option<String>,
}

/// The client: settings, an HTTP client for the base URL, a retry policy.
#[derive(Debug)]
pub struct Client {
    env: ClientEnv,
    api: Api,
    retry: RetryPolicy,
    warned: std::sync::Mutex<Vec<String>>,
}

impl Client {
    /// A client for `env.base_url`.
    pub fn new(env: ClientEnv) -> Result<Client, ClientError> {
        let api = Api::new(&env.base_url)?;
        Ok(Client {
            env,
            api,
            retry: RetryPolicy::default(),
            warned: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Replaces the exchange retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    /// Tells the person at the terminal, once per command, something they
    /// may want to fix; not a log line.
    fn warn(&self, message: String) {
        if let Ok(mut seen) = self.warned.lock() {
            if seen.contains(&message) {
                return;
            }
            seen.push(message.clone());
        }
        eprintln!("fedgate: warning: {message}");
    }

    /// The credentials file's contents; a corrupt file reads as empty, with
    /// a warning.
    fn load_credentials(&self, path: &Path) -> Result<Value, ClientError> {
        let (doc, warning) = credentials::load(path)?;
        if let Some(w) = warning {
            self.warn(w);
        }
        Ok(doc)
    }

    fn credentials_file(&self) -> Result<&Path, ClientError> {
        self.env.credentials_file.as_deref().ok_or_else(|| {
            ClientError::Config(
                "set WANDB_CREDENTIALS_FILE (or HOME) so the access token can be cached".into(),
            )
        })
    }

    /// Which credential the settings name, without using it yet.
    fn source(&self) -> Result<Source<'_>, ClientError> {
        match (&self.env.api_key, &self.env.identity_token_file) {
            (Some(_), Some(_)) => Err(ClientError::Config(
                "both WANDB_API_KEY and WANDB_IDENTITY_TOKEN_FILE are set: unset one of them \
                 (an API key, or an identity token to exchange for an access token)"
                    .into(),
            )),
            (Some(k), None) => Ok(Source::ApiKey(k)),
            (None, Some(f)) => Ok(Source::TokenFile(f)),
            (None, None) => Err(ClientError::Config(
                "no credential: set WANDB_IDENTITY_TOKEN_FILE to a file holding your identity \
                 provider's JWT (identity federation), or WANDB_API_KEY"
                    .into(),
            )),
        }
    }

    /// Exchanges the identity token and caches the access token.
    async fn exchange(&self, token_file: &Path) -> Result<CachedToken, ClientError> {
        let path = self.credentials_file()?;
        let params = ExchangeParams {
            audience: self.env.audience.as_deref(),
            scope: self.env.scope.as_deref(),
        };
        let resp = self
            .api
            .exchange(token_file, &params, &self.retry, |m| {
                eprintln!("fedgate: {m}")
            })
            .await?;
        let token = CachedToken {
            access_token: resp.access_token,
            expires_at: OffsetDateTime::now_utc() + time::Duration::seconds(resp.expires_in),
            request: self.env.request_key(),
        };
        let doc = self.load_credentials(path)?;
        credentials::store(
            path,
            &credentials::with_entry(doc, &self.env.base_url, &token),
        )?;
        Ok(token)
    }

    /// The credential to send: the API key, or an access token from the
    /// credentials file while fresh, else from a new exchange.
    async fn credential(&self, force_exchange: bool) -> Result<Credential, ClientError> {
        match self.source()? {
            Source::ApiKey(k) => Ok(Credential::ApiKey(k.to_string())),
            Source::TokenFile(f) => {
                if !force_exchange {
                    let doc = self.load_credentials(self.credentials_file()?)?;
                    if let Lookup::Fresh(token) = credentials::lookup(
                        &doc,
                        &self.env.base_url,
                        self.env.request_key().as_deref(),
                        OffsetDateTime::now_utc(),
                    ) {
                        return Ok(Credential::AccessToken {
                            token,
                            cached: true,
                        });
                    }
                }
                Ok(Credential::AccessToken {
                    token: self.exchange(f).await?,
                    cached: false,
                })
            }
        }
    }

    /// One API call; a cached access token refused with 401 (revoked,
    /// server reset) is replaced by one fresh exchange and the call repeated.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value, ClientError> {
        let cred = self.credential(false).await?;
        let first = self
            .api
            .call(method.clone(), path, cred.auth(), body, headers)
            .await;
        match (&first, &cred) {
            (
                Err(ClientError::Api { status: 401, .. }),
                Credential::AccessToken { cached: true, .. },
            ) => {
                self.warn(
                    "the cached access token was refused; exchanging the identity token again"
                        .into(),
                );
                let cred = self.credential(true).await?;
                self.api
                    .call(method, path, cred.auth(), body, headers)
                    .await
            }
            _ => first,
        }
    }

    /// `fedgate login`: exchanges the identity token now (or checks the API
    /// key), caches the access token, and says who the credential is.
    pub async fn login(&self) -> Result<Value, ClientError> {
        let cred = self.credential(true).await?;
        let viewer = self
            .api
            .call(
                reqwest::Method::GET,
                "/api/v1/viewer",
                cred.auth(),
                None,
                &[],
            )
            .await?;
        let mut out = json!({
            "base_url": self.env.base_url,
            "viewer": viewer,
        });
        match &cred {
            Credential::ApiKey(_) => out["credential"] = json!("api_key"),
            Credential::AccessToken { token, .. } => {
                out["credential"] = json!("access_token");
                out["expires_at"] = json!(credentials::format_expires_at(token.expires_at));
                out["credentials_file"] =
                    json!(self.credentials_file()?.to_string_lossy().into_owned());
            }
        }
        Ok(out)
    }

    /// `fedgate whoami`: `GET /api/v1/viewer` with the current credential.
    pub async fn whoami(&self) -> Result<Value, ClientError> {
        self.call(reqwest::Method::GET, "/api/v1/viewer", None, &[])
            .await
    }

    /// `fedgate log-run`: `POST /api/v1/runs` with the entity, project and
    /// attribution headers the SDK would send.
    pub async fn log_run(&self, opts: &RunOptions) -> Result<Value, ClientError> {
        let body = run_body(&self.env, opts)?;
        self.call(
            reqwest::Method::POST,
            "/api/v1/runs",
            Some(&body),
            &self.attribution_headers(),
        )
        .await
    }

    /// `fedgate log-trace`: `POST /api/v1/traces` with the same entity,
    /// project and attribution as `log-run`.
    pub async fn log_trace(&self, opts: &TraceOptions) -> Result<Value, ClientError> {
        let body = trace_body(&self.env, opts)?;
        self.call(
            reqwest::Method::POST,
            "/api/v1/traces",
            Some(&body),
            &self.attribution_headers(),
        )
        .await
    }

    /// `WANDB_USERNAME` / `WANDB_USER_EMAIL` as the SDK sends them.
    fn attribution_headers(&self) -> Vec<(&'static str, &str)> {
        let mut headers = Vec::new();
        if let Some(u) = &self.env.username {
            headers.push(("X-WANDB-USERNAME", u.as_str()));
        }
        if let Some(e) = &self.env.user_email {
            headers.push(("X-WANDB-USER-EMAIL", e.as_str()));
        }
        headers
    }
}

enum Source<'a> {
    ApiKey(&'a str),
    TokenFile(&'a Path),
}

/// The `POST /api/v1/runs` body: flags first, then `WANDB_ENTITY` /
/// `WANDB_PROJECT`; without an entity the server uses the default entity.
pub fn run_body(env: &ClientEnv, opts: &RunOptions) -> Result<Value, ClientError> {
    let mut body = target_body(env, opts.entity.as_ref(), opts.project.as_ref())?;
    if let Some(n) = &opts.name {
        body["name"] = json!(n);
    }
    if let Some(c) = &opts.config {
        body["config"] = json_flag("--config", c, true)?;
    }
    Ok(body)
}

/// The `POST /api/v1/traces` body: entity and project as for runs.
pub fn trace_body(env: &ClientEnv, opts: &TraceOptions) -> Result<Value, ClientError> {
    let mut body = target_body(env, opts.entity.as_ref(), opts.project.as_ref())?;
    body["op_name"] = json!(opts.op_name);
    for (field, v) in [
        ("trace_id", &opts.trace_id),
        ("parent_id", &opts.parent_id),
        ("started_at", &opts.started_at),
        ("ended_at", &opts.ended_at),
    ] {
        if let Some(v) = v {
            body[field] = json!(v);
        }
    }
    if let Some(i) = &opts.inputs {
        body["inputs"] = json_flag("--inputs", i, true)?;
    }
    if let Some(o) = &opts.output {
        body["output"] = json_flag("--output", o, false)?;
    }
    Ok(body)
}

/// `{project, entity?}`: flags first, then `WANDB_PROJECT` / `WANDB_ENTITY`;
/// without an entity the server uses the default entity.
fn target_body(
    env: &ClientEnv,
    entity: Option<&String>,
    project: Option<&String>,
) -> Result<Value, ClientError> {
    let project = project.or(env.project.as_ref()).ok_or_else(|| {
        ClientError::Config("no project: pass --project or set WANDB_PROJECT".into())
    })?;
    let mut body = json!({ "project": project });
    if let Some(e) = entity.or(env.entity.as_ref()) {
        body["entity"] = json!(e);
    }
    Ok(body)
}

/// A flag holding JSON; `object` demands a JSON object.
fn json_flag(flag: &str, text: &str, object: bool) -> Result<Value, ClientError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| ClientError::Config(format!("{flag} is not valid JSON: {e}")))?;
    if object && !v.is_object() {
        return Err(ClientError::Config(format!(
            "{flag} must be a JSON object, e.g. '{{\"lr\": 0.001}}'"
        )));
    }
    Ok(v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<ClientEnv, ClientError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ClientEnv::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_sdk() {
        let e = env(&[("HOME", "/home/ci")]).unwrap();
        assert_eq!(e.base_url, DEFAULT_BASE_URL);
        assert_eq!(
            e.credentials_file.as_deref(),
            Some(Path::new("/home/ci/.config/wandb/credentials.json"))
        );
        assert_eq!(e.api_key, None);
        assert_eq!(e.identity_token_file, None);
        // No HOME and no WANDB_CREDENTIALS_FILE: nowhere to cache.
        assert_eq!(env(&[]).unwrap().credentials_file, None);
    }

    #[test]
    fn variables_are_read_and_normalised() {
        let e = env(&[
            ("HOME", "/home/ci"),
            ("WANDB_BASE_URL", "https://fedgate.example.com/"),
            ("WANDB_IDENTITY_TOKEN_FILE", "~/token"),
            ("WANDB_CREDENTIALS_FILE", "/tmp/c.json"),
            ("WANDB_ENTITY", "nlp"),
            ("WANDB_PROJECT", "eval"),
            ("WANDB_USERNAME", "alice"),
            ("WANDB_USER_EMAIL", "alice@example.com"),
            ("WANDB_API_KEY", ""),
        ])
        .unwrap();
        assert_eq!(e.base_url, "https://fedgate.example.com");
        assert_eq!(
            e.identity_token_file.as_deref(),
            Some(Path::new("/home/ci/token"))
        );
        assert_eq!(
            e.credentials_file.as_deref(),
            Some(Path::new("/tmp/c.json"))
        );
        assert_eq!(e.entity.as_deref(), Some("nlp"));
        assert_eq!(e.project.as_deref(), Some("eval"));
        assert_eq!(e.username.as_deref(), Some("alice"));
        assert_eq!(e.user_email.as_deref(), Some("alice@example.com"));
        assert_eq!(e.api_key, None, "an empty value is unset");
        for bad in ["fedgate.example.com", "ftp://x", "http://"] {
            assert!(env(&[("WANDB_BASE_URL", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_api_key_never_shows_in_debug() {
        let e = env(&[("WANDB_API_KEY", "fgk_secret")]).unwrap();
        assert!(!format!("{e:?}").contains("fgk_secret"));
    }

    #[test]
    fn both_credentials_are_an_error_and_none_is_too() {
        let both = Client::new(
            env(&[
                ("WANDB_API_KEY", "fgk_x"),
                ("WANDB_IDENTITY_TOKEN_FILE", "/t"),
            ])
            .unwrap(),
        )
        .unwrap();
        let e = both.source().err().unwrap().to_string();
        assert!(
            e.contains("WANDB_API_KEY") && e.contains("WANDB_IDENTITY_TOKEN_FILE"),
            "{e}"
        );
        let none = Client::new(env(&[]).unwrap()).unwrap();
        assert!(
            none.source()
                .err()
                .unwrap()
                .to_string()
                .contains("no credential")
        );
    }

    #[test]
    fn run_body_takes_flags_then_environment() {
        let e = env(&[("WANDB_ENTITY", "nlp"), ("WANDB_PROJECT", "eval")]).unwrap();
        let b = run_body(&e, &RunOptions::default()).unwrap();
        assert_eq!(b, json!({"project": "eval", "entity": "nlp"}));
        let b = run_body(
            &e,
            &RunOptions {
                entity: Some("vision".into()),
                project: Some("train".into()),
                name: Some("r1".into()),
                config: Some("{\"lr\": 0.001}".into()),
            },
        )
        .unwrap();
        assert_eq!(
            b,
            json!({"project": "train", "entity": "vision", "name": "r1", "config": {"lr": 0.001}})
        );
        let none = env(&[]).unwrap();
        assert!(run_body(&none, &RunOptions::default()).is_err());
        let b = run_body(
            &none,
            &RunOptions {
                project: Some("p".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            b,
            json!({"project": "p"}),
            "no entity: the server's default"
        );
        for bad in ["[1]", "{", "3"] {
            let r = run_body(
                &none,
                &RunOptions {
                    project: Some("p".into()),
                    config: Some(bad.into()),
                    ..Default::default()
                },
            );
            assert!(r.is_err(), "{bad}");
        }
    }

    #[test]
    fn a_base_url_with_a_path_asks_for_the_root() {
        for bad in [
            "https://fedgate.example.com/api/v1",
            "https://fedgate.example.com/api/v1/",
            "http://127.0.0.1:8080/oidc/token",
            "https://fedgate.example.com/?x=1",
        ] {
            let e = env(&[("WANDB_BASE_URL", bad)]).unwrap_err().to_string();
            assert!(
                e.contains("has a path") && e.contains("root URL"),
                "{bad}: {e}"
            );
            assert!(
                e.contains("\"https://fedgate.example.com\"")
                    || e.contains("\"http://127.0.0.1:8080\""),
                "names the root: {e}"
            );
        }
        assert!(env(&[("WANDB_BASE_URL", "https://fedgate.example.com/")]).is_ok());
    }

    #[test]
    fn audience_and_scope_are_checked_before_anything_is_sent() {
        let mut e = env(&[]).unwrap();
        e.set_exchange(
            Some("sa:default/vision/gh-deploy".into()),
            Some("read".into()),
        )
        .unwrap();
        assert_eq!(e.audience.as_deref(), Some("sa:default/vision/gh-deploy"));
        assert_eq!(
            e.request_key().as_deref(),
            Some("audience=sa:default/vision/gh-deploy scope=read")
        );
        for bad in [
            "https://fedgate.example.com",
            "sa:default/vision",
            "sa://x/y",
            "gh-deploy",
        ] {
            let err = e
                .set_exchange(Some(bad.into()), None)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("sa:<org>/<team>/<name>") && err.contains("FEDGATE_AUDIENCE"),
                "{bad}: {err}"
            );
        }
        let err = e
            .set_exchange(None, Some("read,write".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("space-separated"), "{err}");
        e.set_exchange(Some(" ".into()), Some("".into())).unwrap();
        assert_eq!((e.audience.clone(), e.request_key()), (None, None));
    }

    #[test]
    fn a_cached_token_for_another_account_is_not_reused() {
        let now = OffsetDateTime::now_utc();
        let token = CachedToken {
            access_token: "eyJ.a.b".into(),
            expires_at: now + time::Duration::hours(1),
            request: Some("audience=sa:default/vision/gh-deploy scope=-".into()),
        };
        let doc = credentials::with_entry(json!({}), "http://x", &token);
        assert!(matches!(
            credentials::lookup(&doc, "http://x", token.request.as_deref(), now),
            Lookup::Fresh(_)
        ));
        assert_eq!(
            credentials::lookup(&doc, "http://x", None, now),
            Lookup::Stale
        );
        assert_eq!(
            credentials::lookup(
                &doc,
                "http://x",
                Some("audience=sa:default/vision/other scope=-"),
                now
            ),
            Lookup::Stale
        );
    }
}
