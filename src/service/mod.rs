//! Service functions: each opens what it needs from the store, reads the
//! clock once, asks `authz` and records the audit event. No HTTP here: the
//! handlers in `crate::http` only translate.

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod exchange;
pub mod federation;
pub mod projects;
pub mod sso;
pub mod sync;
pub mod teams;
pub mod traces;
pub mod users;

use crate::authz::{Decision, Verdict};
use crate::store::StoreError;

/// A domain failure, named for what the client can do about it.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// 400: the input is wrong; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no credential, or one that is not (or no longer) valid.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: the rule named by `rule` denies it.
    #[error("{reason}")]
    Forbidden { rule: &'static str, reason: String },
    /// 404: unknown, or another organization's.
    #[error("{0}")]
    NotFound(String),
    /// 409: it exists already.
    #[error("{0}")]
    Conflict(String),
    /// 409: it exists already as `existing_id`; `update` is the request that changes it.
    #[error("{message}")]
    Exists {
        message: String,
        existing_id: String,
        update: String,
    },
    /// 503: a dependency is down.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or a store failure; details are logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => ServiceError::Conflict("it already exists".into()),
            StoreError::Unavailable(m) => ServiceError::Unavailable(m),
            StoreError::Other(m) => ServiceError::Internal(m),
        }
    }
}

impl ServiceError {
    /// The error a denial turns into.
    pub fn from_decision(d: Decision) -> Self {
        match d.verdict {
            Verdict::Allow => ServiceError::Internal("allowed decision used as an error".into()),
            Verdict::Forbidden => ServiceError::Forbidden {
                rule: d.rule,
                reason: d.reason,
            },
            Verdict::NotFound => ServiceError::NotFound(d.reason),
            Verdict::Unauthenticated => ServiceError::Unauthenticated(d.reason),
        }
    }
    /// A short name for the audit log.
    pub fn outcome(&self) -> &'static str {
        match self {
            ServiceError::BadRequest(_) => "bad_request",
            ServiceError::Unauthenticated(_) => "unauthenticated",
            ServiceError::Forbidden { .. } => "denied",
            ServiceError::NotFound(_) => "not_found",
            ServiceError::Conflict(_) | ServiceError::Exists { .. } => "conflict",
            ServiceError::Unavailable(_) => "unavailable",
            ServiceError::Internal(_) => "error",
        }
    }
}

/// Result alias for services.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// Maps a store conflict to a message that names the thing.
pub fn conflict(what: String) -> impl FnOnce(ServiceError) -> ServiceError {
    move |e| match e {
        ServiceError::Conflict(_) => ServiceError::Conflict(format!("{what} already exists")),
        other => other,
    }
}

/// Default and largest page of a list: one request can list 10,000 accounts.
pub const DEFAULT_PAGE_SIZE: i64 = 1000;
pub const MAX_PAGE_SIZE: i64 = 10_000;

/// `?limit=&after=`: lists are ordered by name; `after` is the last name of
/// the previous page (the answer's `next_after`).
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// 1-10000, default 1000.
    pub limit: Option<i64>,
    /// Start after this name (exclusive).
    pub after: Option<String>,
}

impl Page {
    /// The checked page size.
    pub fn limit(&self) -> ServiceResult<i64> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if (1..=MAX_PAGE_SIZE).contains(&limit) {
            Ok(limit)
        } else {
            Err(ServiceError::BadRequest(format!(
                "limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}"
            )))
        }
    }
    /// Where the page starts ("" for the first).
    pub fn after(&self) -> &str {
        self.after.as_deref().unwrap_or("")
    }
}

/// The cursor of the page after `rows` (the last row's key), or `None`
/// when `rows` is the last page (shorter than `limit`).
pub fn next_after<T>(rows: &[T], limit: i64, key: impl Fn(&T) -> &String) -> Option<String> {
    if rows.len() as i64 == limit {
        rows.last().map(|r| key(r).clone())
    } else {
        None
    }
}

/// Per-request facts the services record in the audit log.
#[derive(Clone, Debug, Default)]
pub struct RequestCtx {
    pub request_id: String,
    /// The client's address (behind `--trusted-proxies`, from
    /// `X-Forwarded-For`); `None` for in-process callers.
    pub client_addr: Option<std::net::IpAddr>,
}
