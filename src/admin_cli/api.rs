//! fedgate's admin API as the CLI calls it: one credential, the caller's
//! organization, and paths built from escaped segments. Only HTTP: the CLI
//! never opens the store.

use reqwest::Method;
use serde_json::Value;

use crate::admin_cli::error::{CliError, CliResult};
use crate::client::ClientError;
use crate::client::http::{Api, Auth};

/// A connection to one fedgate as one admin.
pub struct AdminApi {
    api: Api,
    key: String,
    org: Option<String>,
}

/// `/a/b/c` from raw segments, each percent-escaped (RFC 3986 §2.3: only
/// unreserved characters stay as they are), so a name or id given on the
/// command line can never reach another path; `.` and `..` are escaped too.
pub fn path(segments: &[&str]) -> String {
    let mut out = String::new();
    for seg in segments {
        out.push('/');
        let dots = seg.bytes().all(|b| b == b'.');
        for b in seg.bytes() {
            let unreserved = b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_' | b'~')
                || (b == b'.' && !dots);
            if unreserved {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Whether a credential is a JWT (an access token) rather than an API key:
/// three base64url parts, the first a JSON object.
fn looks_like_jwt(key: &str) -> bool {
    key.starts_with("eyJ") && key.split('.').count() == 3
}

impl AdminApi {
    /// A client of `base_url` with `key` (an API key, or a fedgate access
    /// token); `org` pins the organization, else it is the credential's own.
    pub fn new(base_url: &str, key: Option<&str>, org: Option<String>) -> CliResult<AdminApi> {
        let base = base_url.trim().trim_end_matches('/');
        match url::Url::parse(base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(CliError::Usage(format!(
                    "FEDGATE_URL {:?} is not an http(s) URL, e.g. https://fedgate.example.com",
                    crate::model::truncate(base, 200)
                )));
            }
        }
        let key = key
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                CliError::Usage(
                    "no credential: set FEDGATE_API_KEY (or --api-key) to an org admin's API key"
                        .into(),
                )
            })?;
        Ok(AdminApi {
            api: Api::new(base)?,
            key: key.to_string(),
            org,
        })
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        self.api.base_url()
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> CliResult<Value> {
        let auth = if looks_like_jwt(&self.key) {
            Auth::Bearer(&self.key)
        } else {
            Auth::ApiKey(&self.key)
        };
        Ok(self.api.call(method, path, auth, body, &[]).await?)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> CliResult<Value> {
        self.call(Method::GET, path, None).await
    }
    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> CliResult<Value> {
        self.call(Method::POST, path, Some(body)).await
    }
    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> CliResult<Value> {
        self.call(Method::PATCH, path, Some(body)).await
    }
    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> CliResult<Value> {
        self.call(Method::DELETE, path, None).await
    }

    /// The organization commands act on: `--org`, else the credential's own
    /// (asked once from `/api/v1/viewer`).
    pub async fn org(&mut self) -> CliResult<String> {
        if let Some(o) = &self.org {
            return Ok(o.clone());
        }
        let viewer = self.get("/api/v1/viewer").await?;
        let org = viewer
            .get("org")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                CliError::Client(ClientError::BadResponse {
                    url: format!("{}/api/v1/viewer", self.base_url()),
                    reason: "no \"org\" in the viewer".into(),
                })
            })?
            .to_string();
        self.org = Some(org.clone());
        Ok(org)
    }

    /// A whole paged list: follows `next_after` until the last page (one
    /// request per page of up to 1,000; servers without paging answer one).
    pub async fn list_all(&self, path: &str, field: &str) -> CliResult<Vec<Value>> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page_path = match &next {
                None => path.to_string(),
                Some(after) => format!(
                    "{path}{}after={}",
                    if path.contains('?') { '&' } else { '?' },
                    url::form_urlencoded::byte_serialize(after.as_bytes()).collect::<String>()
                ),
            };
            let v = self.get(&page_path).await?;
            out.extend(list_field(&v, field).ok_or_else(|| self.no_list(path, field))?);
            match v.get("next_after").and_then(Value::as_str) {
                Some(a) if next.as_deref() != Some(a) => next = Some(a.to_string()),
                _ => return Ok(out),
            }
        }
    }

    fn no_list(&self, path: &str, field: &str) -> CliError {
        CliError::Client(ClientError::BadResponse {
            url: format!("{}{path}", self.base_url()),
            reason: format!("no \"{field}\" list in the answer"),
        })
    }

    /// A list field (`{"<field>": [...]}`) of a GET answer.
    pub async fn list(&self, path: &str, field: &str) -> CliResult<Vec<Value>> {
        let v = self.get(path).await?;
        list_field(&v, field).ok_or_else(|| self.no_list(path, field))
    }
}

/// `{"<field>": [...]}` or a bare array.
fn list_field(v: &Value, field: &str) -> Option<Vec<Value>> {
    match v.get(field).and_then(Value::as_array) {
        Some(a) => Some(a.clone()),
        None => v.as_array().cloned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        assert_eq!(
            path(&["api", "v1", "teams", "vision", "service-accounts"]),
            "/api/v1/teams/vision/service-accounts"
        );
        assert_eq!(
            path(&["api", "v1", "service-accounts", "../../orgs/x"]),
            "/api/v1/service-accounts/..%2F..%2Forgs%2Fx"
        );
        assert_eq!(path(&["a", "b c?d#e"]), "/a/b%20c%3Fd%23e");
        assert_eq!(path(&["a", "..", "sa_1.x"]), "/a/%2E%2E/sa_1.x");
    }

    #[test]
    fn credentials_are_required_and_urls_checked() {
        assert!(matches!(
            AdminApi::new("http://127.0.0.1:1", None, None),
            Err(CliError::Usage(m)) if m.contains("FEDGATE_API_KEY")
        ));
        assert!(matches!(
            AdminApi::new("ftp://x", Some("k"), None),
            Err(CliError::Usage(m)) if m.contains("FEDGATE_URL")
        ));
        assert!(looks_like_jwt("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.sig"));
        assert!(!looks_like_jwt("fgk_abcdef"));
    }
}
