//! fedgate's HTTP API as the client calls it: the RFC 7523 exchange with
//! bounded retries, and JSON calls carrying a credential the way the W&B SDK
//! sends it (HTTP Basic `api:<key>` for API keys, `Bearer` for access tokens).

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::ClientError;

/// RFC 7523 §2.1: what the W&B SDK sends to `/oidc/token`.
pub const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Largest identity token file read. fedgate refuses tokens over 16 KiB
/// anyway; this only stops a wrong path (a log, a binary) being slurped.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// How a failed exchange is retried: only 429, 5xx and transport errors,
/// with exponential backoff, at most `max_attempts` tries in all. A
/// `Retry-After` (seconds) is honoured as the minimum wait; one longer than
/// `max_retry_after` ends the attempts at once rather than hang a CI job.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait after `failed` attempts (1-based): `base · 2^(failed-1)`,
    /// capped at `max_delay`, but never less than the server's `Retry-After`.
    pub fn delay(&self, failed: u32, retry_after: Option<Duration>) -> Duration {
        let exp = failed.saturating_sub(1).min(16);
        let backoff = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        match retry_after {
            Some(ra) => backoff.max(ra),
            None => backoff,
        }
    }
}

/// `Retry-After` as delta-seconds (RFC 9110 §10.2.3); an HTTP-date is
/// ignored and the backoff applies.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// What is asked for besides the token: RFC 8693 `audience` (the account,
/// `sa:<org>/<team>/<name>`) and `scope`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExchangeParams<'a> {
    pub audience: Option<&'a str>,
    pub scope: Option<&'a str>,
}

/// A credential as sent.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    /// `Authorization: Basic base64(api:<key>)`, as the W&B SDK sends keys.
    ApiKey(&'a str),
    /// `Authorization: Bearer <access token>`.
    Bearer(&'a str),
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: i64,
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// A fedgate server at one base URL.
#[derive(Clone, Debug)]
pub struct Api {
    client: reqwest::Client,
    base_url: String,
}

/// A transport error's causes, without the URL (the message names it once).
fn transport_reason(e: reqwest::Error) -> String {
    let e = e.without_url();
    let chain = error_chain(&e);
    chain
        .strip_prefix("error sending request: ")
        .unwrap_or(&chain)
        .to_string()
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    out
}

/// Reads the identity token, fresh each time: a CI system or the kubelet
/// may have replaced it since the last exchange.
pub fn read_token_file(path: &Path) -> Result<String, ClientError> {
    let fail = |why: String| ClientError::TokenFile(format!("{}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| {
        fail(format!(
            "cannot read the identity token file (WANDB_IDENTITY_TOKEN_FILE): {e}"
        ))
    })?;
    if meta.len() > MAX_TOKEN_FILE_BYTES {
        return Err(fail(format!(
            "{} bytes is too large for an identity token (WANDB_IDENTITY_TOKEN_FILE)",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(format!("cannot read the identity token file: {e}")))?;
    identity_token(text.trim()).map_err(fail)
}

/// The JWT in a token file's text: the token itself, or GitHub's answer to
/// `ACTIONS_ID_TOKEN_REQUEST_URL` (`{"count": …, "value": "eyJ…"}`) saved
/// whole. Anything else gets a message that says what the file holds.
fn identity_token(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("the identity token file (WANDB_IDENTITY_TOKEN_FILE) is empty".into());
    }
    if text.starts_with('{') {
        let doc: Value = serde_json::from_str(text).map_err(|_| {
            "the identity token file holds neither a JWT nor JSON (it starts with '{')".to_string()
        })?;
        return match doc.get("value").and_then(Value::as_str) {
            Some(v) if !v.trim().is_empty() => identity_token(v.trim()),
            _ => Err(
                "the identity token file holds JSON without a \"value\" string; write the JWT itself (GitHub: `jq -r .value`)"
                    .into(),
            ),
        };
    }
    if text.starts_with(crate::secrets::API_KEY_PREFIX) {
        return Err(
            "the identity token file holds a fedgate API key (fgk_…), not an identity token: \
             set WANDB_API_KEY to use an API key, and point WANDB_IDENTITY_TOKEN_FILE only at a JWT \
             from your CI system or identity provider"
                .into(),
        );
    }
    let parts = text.split('.').count();
    if parts != 3 || text.contains(char::is_whitespace) {
        return Err(format!(
            "the identity token file does not hold a JWT (three base64url parts separated by dots; found {parts} part{})",
            if parts == 1 { "" } else { "s" }
        ));
    }
    Ok(text.to_string())
}

/// What an answer that is not fedgate's JSON looks like, for messages.
fn describe_body(content_type: &str, body: &str) -> String {
    let b = body.trim_start();
    if content_type.contains("html") || b.starts_with('<') {
        "an HTML page".into()
    } else if b.is_empty() {
        "an empty body".into()
    } else {
        format!("{:?}", crate::model::truncate(b, 80))
    }
}

/// The `error`/`error_description` of an OAuth error body; `None` when the
/// body is not one (not fedgate, or a proxy in front of it).
fn oauth_error(body: &str) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    serde_json::from_str::<OAuthError>(body)
        .ok()
        .map(|e| (e.error, e.error_description.unwrap_or_default()))
}

/// What the user can change when fedgate refuses for a reason the client's
/// flags address.
fn exchange_hint(error: &str, description: &str) -> &'static str {
    if error == "invalid_target" && description.contains("audience=sa:") {
        "; with the fedgate client, pass --audience sa:<org>/<team>/<name> (or set FEDGATE_AUDIENCE)"
    } else if error == "invalid_scope" {
        "; with the fedgate client, pass --scope (or set FEDGATE_SCOPE), e.g. \"read write\""
    } else {
        ""
    }
}

impl Api {
    /// A client for `base_url` (no trailing slash). Redirects are not
    /// followed: a token or key is never sent anywhere the user did not name.
    pub fn new(base_url: &str) -> Result<Api, ClientError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("fedgate-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {}", error_chain(&e))))?;
        Ok(Api {
            client,
            base_url: base_url.to_string(),
        })
    }

    /// The base URL this client talks to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Exchanges the identity token in `token_file` (re-read on every
    /// attempt) at `/oidc/token`. 4xx answers are final and carry fedgate's
    /// `error_description`; 429, 5xx and transport errors are retried per `retry`.
    /// Progress (a retry and its wait) goes to `progress` as a sentence.
    pub async fn exchange(
        &self,
        token_file: &Path,
        params: &ExchangeParams<'_>,
        retry: &RetryPolicy,
        progress: impl Fn(String),
    ) -> Result<TokenResponse, ClientError> {
        let url = self.url("/oidc/token");
        let attempts = retry.max_attempts.max(1);
        let mut failed = 0u32;
        loop {
            let assertion = read_token_file(token_file)?;
            let mut form = vec![("grant_type", GRANT_JWT_BEARER), ("assertion", &assertion)];
            if let Some(a) = params.audience {
                form.push(("audience", a));
            }
            if let Some(s) = params.scope {
                form.push(("scope", s));
            }
            let sent = self
                .client
                .post(&url)
                .header(reqwest::header::ACCEPT, "application/json")
                .form(&form)
                .send()
                .await;
            let (last, retry_after) = match sent {
                Err(e) => (
                    ClientError::Transport {
                        url: url.clone(),
                        reason: transport_reason(e),
                    },
                    None,
                ),
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    let content_type = resp
                        .headers()
                        .get(reqwest::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let body = resp.text().await.map_err(|e| ClientError::Transport {
                        url: url.clone(),
                        reason: transport_reason(e),
                    });
                    let body = match body {
                        Ok(b) => b,
                        Err(e) => {
                            failed += 1;
                            if failed >= attempts {
                                return Err(e);
                            }
                            tokio::time::sleep(retry.delay(failed, None)).await;
                            continue;
                        }
                    };
                    if status == StatusCode::OK {
                        return serde_json::from_str::<TokenResponse>(&body).map_err(|e| {
                            ClientError::BadResponse {
                                url: url.clone(),
                                reason: format!(
                                    "the token response is not {{access_token, expires_in}}: {e}"
                                ),
                            }
                        });
                    }
                    let err = match oauth_error(&body) {
                        Some((error, description)) => ClientError::Exchange {
                            url: url.clone(),
                            status: status.as_u16(),
                            hint: exchange_hint(&error, &description).to_string(),
                            error,
                            description,
                        },
                        None => ClientError::NotFedgate {
                            url: url.clone(),
                            base_url: self.base_url.clone(),
                            status: status.as_u16(),
                            what: describe_body(&content_type, &body),
                        },
                    };
                    // A proxy in front of fedgate answers 502-504 while it
                    // restarts: worth retrying. Any other answer that is not
                    // fedgate's JSON (a 404 page, 501) will not change.
                    let transient = match &err {
                        ClientError::NotFedgate { .. } => matches!(status.as_u16(), 502..=504),
                        _ => status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
                    };
                    if !transient {
                        return Err(err);
                    }
                    (err, retry_after)
                }
            };
            failed += 1;
            if failed >= attempts {
                return Err(ClientError::GaveUp {
                    attempts: failed,
                    last: Box::new(last),
                });
            }
            if retry_after.is_some_and(|ra| ra > retry.max_retry_after) {
                return Err(ClientError::GaveUp {
                    attempts: failed,
                    last: Box::new(last),
                });
            }
            let wait = retry.delay(failed, retry_after);
            progress(format!(
                "token exchange attempt {failed} of {attempts} failed ({}); retrying in {:.1} s",
                last.short(),
                wait.as_secs_f64()
            ));
            tokio::time::sleep(wait).await;
        }
    }

    /// One JSON call; a non-2xx answer is an [`ClientError::Api`] with
    /// fedgate's `{"error": {"code", "message"}}`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value, ClientError> {
        let url = self.url(path);
        let mut req = self
            .client
            .request(method.clone(), &url)
            .header(reqwest::header::ACCEPT, "application/json");
        req = match auth {
            Auth::ApiKey(k) => req.basic_auth("api", Some(k)),
            Auth::Bearer(t) => req.bearer_auth(t),
        };
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| ClientError::Transport {
            url: url.clone(),
            reason: transport_reason(e),
        })?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.text().await.map_err(|e| ClientError::Transport {
            url: url.clone(),
            reason: transport_reason(e),
        })?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        // 204 No Content (a DELETE, a revoke): success with nothing to read.
        if status == StatusCode::NO_CONTENT || (status.is_success() && text.trim().is_empty()) {
            return Ok(Value::Null);
        }
        let not_fedgate = || ClientError::NotFedgate {
            url: url.clone(),
            base_url: self.base_url.clone(),
            status: status.as_u16(),
            what: describe_body(&content_type, &text),
        };
        if status.is_success() {
            return json.ok_or_else(not_fedgate);
        }
        let err = json.as_ref().and_then(|j| j.get("error"));
        if err.is_none() {
            return Err(not_fedgate());
        }
        let code = err
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_string();
        let message = err
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| crate::model::truncate(text.trim(), 200).to_string());
        Err(ClientError::Api {
            method: method.to_string(),
            url,
            status: status.as_u16(),
            code,
            message,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use axum::Router;
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    use axum::routing::post;
    use serde_json::json;

    use super::*;

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(2),
        }
    }

    /// A token endpoint that answers `script[n]` to the n-th request
    /// (the last entry repeats) and counts requests.
    async fn server(
        script: Vec<(u16, Option<&'static str>, Value)>,
    ) -> (String, Arc<AtomicU32>, tempfile::TempDir) {
        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        let app = Router::new().route(
            "/oidc/token",
            post(move |body: String| {
                let h = h.clone();
                let script = script.clone();
                async move {
                    assert!(body.contains(
                        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
                    ));
                    let n = h.fetch_add(1, Ordering::SeqCst) as usize;
                    let (status, retry_after, body) = script[n.min(script.len() - 1)].clone();
                    let mut headers = HeaderMap::new();
                    if let Some(ra) = retry_after {
                        headers.insert("retry-after", ra.parse().unwrap());
                    }
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        headers,
                        axum::Json(body),
                    )
                        .into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "eyJ.test.token\n").unwrap();
        (format!("http://{addr}"), hits, dir)
    }

    fn ok() -> Value {
        json!({"access_token": "eyJ.minted", "token_type": "Bearer", "expires_in": 3600, "scope": "read write"})
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, None), Duration::from_millis(500));
        assert_eq!(p.delay(2, None), Duration::from_secs(1));
        assert_eq!(p.delay(3, None), Duration::from_secs(2));
        assert_eq!(p.delay(10, None), Duration::from_secs(8));
        assert_eq!(p.delay(40, None), Duration::from_secs(8));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[tokio::test]
    async fn transient_failures_are_retried() {
        let (base, hits, dir) = server(vec![
            (
                503,
                Some("0"),
                json!({"error": "temporarily_unavailable", "error_description": "keys"}),
            ),
            (
                429,
                Some("0"),
                json!({"error": "slow_down", "error_description": "rate"}),
            ),
            (200, None, ok()),
        ])
        .await;
        let api = Api::new(&base).unwrap();
        let t = api
            .exchange(
                &dir.path().join("token"),
                &ExchangeParams::default(),
                &fast(),
                |_| {},
            )
            .await
            .unwrap();
        assert_eq!(t.access_token, "eyJ.minted");
        assert_eq!(t.expires_in, 3600);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn client_errors_are_final_and_show_the_description() {
        let (base, hits, dir) = server(vec![(
            400,
            None,
            json!({"error": "invalid_grant", "error_description": "aud [\"x\"] is not an accepted audience"}),
        )])
        .await;
        let api = Api::new(&base).unwrap();
        let e = api
            .exchange(
                &dir.path().join("token"),
                &ExchangeParams::default(),
                &fast(),
                |_| {},
            )
            .await
            .unwrap_err();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let text = e.to_string();
        assert!(text.contains("invalid_grant"), "{text}");
        assert!(text.contains("is not an accepted audience"), "{text}");
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let (base, hits, dir) = server(vec![(
            503,
            None,
            json!({"error": "temporarily_unavailable", "error_description": "issuer keys unavailable"}),
        )])
        .await;
        let api = Api::new(&base).unwrap();
        let e = api
            .exchange(
                &dir.path().join("token"),
                &ExchangeParams::default(),
                &fast(),
                |_| {},
            )
            .await
            .unwrap_err();
        assert_eq!(hits.load(Ordering::SeqCst), 4);
        let text = e.to_string();
        assert!(text.contains("4 attempts"), "{text}");
        assert!(text.contains("issuer keys unavailable"), "{text}");
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_bound_stops_at_once() {
        let (base, hits, dir) = server(vec![(
            429,
            Some("3600"),
            json!({"error": "slow_down", "error_description": "rate limited"}),
        )])
        .await;
        let api = Api::new(&base).unwrap();
        let e = api
            .exchange(
                &dir.path().join("token"),
                &ExchangeParams::default(),
                &fast(),
                |_| {},
            )
            .await
            .unwrap_err();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert!(e.to_string().contains("rate limited"), "{e}");
    }

    #[tokio::test]
    async fn the_token_file_is_read_on_each_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        assert!(
            read_token_file(&path)
                .unwrap_err()
                .to_string()
                .contains("WANDB_IDENTITY_TOKEN_FILE")
        );
        std::fs::write(&path, "  \n").unwrap();
        assert!(
            read_token_file(&path)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        std::fs::write(&path, "eyJ.one.a\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap(), "eyJ.one.a");
        std::fs::write(&path, "eyJ.two.b").unwrap();
        assert_eq!(read_token_file(&path).unwrap(), "eyJ.two.b");
        std::fs::write(&path, vec![b'a'; 70 * 1024]).unwrap();
        assert!(
            read_token_file(&path)
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
    }

    #[test]
    fn the_token_file_may_hold_githubs_answer_but_not_an_api_key() {
        assert_eq!(
            identity_token(r#"{"count":1,"value":"eyJ.a.b"}"#).unwrap(),
            "eyJ.a.b"
        );
        assert_eq!(
            identity_token("{\n  \"value\": \" eyJ.a.b\\n\",\n  \"count\": 1\n}").unwrap(),
            "eyJ.a.b"
        );
        let e = identity_token(r#"{"count":1}"#).unwrap_err();
        assert!(e.contains("\"value\"") && e.contains("jq -r .value"), "{e}");
        let e = identity_token("{not json").unwrap_err();
        assert!(e.contains("neither a JWT nor JSON"), "{e}");
        let e = identity_token("fgk_0123456789abcdefghijklmnopqrstuvwxyzAB").unwrap_err();
        assert!(
            e.contains("API key") && e.contains("WANDB_API_KEY") && !e.contains("0123456789"),
            "{e}"
        );
        let e = identity_token("just-some-text").unwrap_err();
        assert!(
            e.contains("not hold a JWT") && e.contains("found 1 part"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_server_that_is_not_fedgate_is_named_once_and_not_retried() {
        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        let page = "<html><body>Not Implemented</body></html>";
        let app = Router::new().fallback(move || {
            h.fetch_add(1, Ordering::SeqCst);
            async move {
                (
                    axum::http::StatusCode::NOT_IMPLEMENTED,
                    [("content-type", "text/html")],
                    page,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "eyJ.test.token").unwrap();
        let base = format!("http://{addr}");
        let api = Api::new(&base).unwrap();
        let progress = std::sync::Mutex::new(Vec::new());
        let e = api
            .exchange(
                &dir.path().join("token"),
                &ExchangeParams::default(),
                &fast(),
                |m| progress.lock().unwrap().push(m),
            )
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(hits.load(Ordering::SeqCst), 1, "not retried");
        assert!(progress.lock().unwrap().is_empty());
        assert!(
            e.contains("501") && e.contains("an HTML page") && e.contains("not fedgate's JSON"),
            "{e}"
        );
        assert!(
            !e.contains("Not Implemented"),
            "the page is not dumped: {e}"
        );
        assert_eq!(e.matches(&base).count(), 2, "the URL and the base URL: {e}");
        let e = api
            .call(
                reqwest::Method::GET,
                "/api/v1/viewer",
                Auth::Bearer("x"),
                None,
                &[],
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("an HTML page") && e.contains("WANDB_BASE_URL"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn network_errors_name_the_url_once_and_retries_are_reported() {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "eyJ.test.token").unwrap();
        let api = Api::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let progress = std::sync::Mutex::new(Vec::new());
        let e = api
            .exchange(
                &dir.path().join("token"),
                &ExchangeParams::default(),
                &fast(),
                |m| progress.lock().unwrap().push(m),
            )
            .await
            .unwrap_err()
            .to_string();
        let url = format!("http://127.0.0.1:{port}/oidc/token");
        assert_eq!(e.matches(&url).count(), 1, "{e}");
        assert!(e.contains("4 attempts"), "{e}");
        let progress = progress.lock().unwrap();
        assert_eq!(progress.len(), 3, "{progress:?}");
        assert!(
            progress[0].starts_with("token exchange attempt 1 of 4 failed")
                && progress[0].contains("retrying in"),
            "{progress:?}"
        );
        assert!(!progress[0].contains(&url), "{progress:?}");
    }
}
