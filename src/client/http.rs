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
    let token = text.trim();
    if token.is_empty() {
        return Err(fail(
            "the identity token file (WANDB_IDENTITY_TOKEN_FILE) is empty".into(),
        ));
    }
    Ok(token.to_string())
}

/// The `error`/`error_description` of an OAuth error body, or a short excerpt.
fn oauth_error(body: &str) -> (String, String) {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    match serde_json::from_str::<OAuthError>(body) {
        Ok(e) => (e.error, e.error_description.unwrap_or_default()),
        Err(_) => (
            "unexpected_response".into(),
            crate::model::truncate(body.trim(), 200).to_string(),
        ),
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
    pub async fn exchange(
        &self,
        token_file: &Path,
        retry: &RetryPolicy,
    ) -> Result<TokenResponse, ClientError> {
        let url = self.url("/oidc/token");
        let attempts = retry.max_attempts.max(1);
        let mut failed = 0u32;
        loop {
            let assertion = read_token_file(token_file)?;
            let sent = self
                .client
                .post(&url)
                .header(reqwest::header::ACCEPT, "application/json")
                .form(&[("grant_type", GRANT_JWT_BEARER), ("assertion", &assertion)])
                .send()
                .await;
            let (last, retry_after) = match sent {
                Err(e) => (
                    ClientError::Transport {
                        url: url.clone(),
                        reason: error_chain(&e),
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
                    let body = resp.text().await.map_err(|e| ClientError::Transport {
                        url: url.clone(),
                        reason: error_chain(&e),
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
                    let (error, description) = oauth_error(&body);
                    let err = ClientError::Exchange {
                        url: url.clone(),
                        status: status.as_u16(),
                        error,
                        description,
                    };
                    let transient =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
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
            tracing::warn!(attempt = failed, wait_ms = wait.as_millis() as u64, error = %last, "token exchange failed; retrying");
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
            reason: error_chain(&e),
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| ClientError::Transport {
            url: url.clone(),
            reason: error_chain(&e),
        })?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        // 204 No Content (a DELETE, a revoke): success with nothing to read.
        if status == StatusCode::NO_CONTENT || (status.is_success() && text.trim().is_empty()) {
            return Ok(Value::Null);
        }
        if status.is_success() {
            return json.ok_or_else(|| ClientError::BadResponse {
                url,
                reason: "the answer is not JSON".into(),
            });
        }
        let err = json.as_ref().and_then(|j| j.get("error"));
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
            .exchange(&dir.path().join("token"), &fast())
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
            .exchange(&dir.path().join("token"), &fast())
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
            .exchange(&dir.path().join("token"), &fast())
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
            .exchange(&dir.path().join("token"), &fast())
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
        std::fs::write(&path, "eyJ.one\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap(), "eyJ.one");
        std::fs::write(&path, "eyJ.two").unwrap();
        assert_eq!(read_token_file(&path).unwrap(), "eyJ.two");
        std::fs::write(&path, vec![b'a'; 70 * 1024]).unwrap();
        assert!(
            read_token_file(&path)
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
    }
}
