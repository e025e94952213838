//! Service functions: each opens what it needs from the store, reads the
//! clock once, asks `authz` and records the audit event. No HTTP here: the
//! handlers in `crate::http` only translate.

pub mod admin;
pub mod auth;
pub mod exchange;
pub mod federation;
pub mod projects;
pub mod traces;

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
            ServiceError::Conflict(_) => "conflict",
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

/// Per-request facts the services record in the audit log.
#[derive(Clone, Debug, Default)]
pub struct RequestCtx {
    pub request_id: String,
    /// The client's address (behind `--trusted-proxies`, from
    /// `X-Forwarded-For`); `None` for in-process callers.
    pub client_addr: Option<std::net::IpAddr>,
}
