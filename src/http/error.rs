//! The one HTTP error type: `{"error": {"code", "message"}}` with the status
//! of DESIGN §4. Internal details are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::service::ServiceError;

/// An error answer outside `/oidc/token`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub rule: Option<&'static str>,
}

impl ApiError {
    /// 400 with a message saying what is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
            rule: None,
        }
    }
    /// 401.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthenticated",
            message: message.into(),
            rule: None,
        }
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            rule: None,
        }
    }
    /// 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: message.into(),
            rule: None,
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let (status, code, rule) = match &e {
            ServiceError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request", None),
            ServiceError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated", None),
            ServiceError::Forbidden { rule, .. } => {
                (StatusCode::FORBIDDEN, "forbidden", Some(*rule))
            }
            ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            ServiceError::Conflict(_) | ServiceError::Exists { .. } => {
                (StatusCode::CONFLICT, "conflict", None)
            }
            ServiceError::Unavailable(m) => {
                tracing::warn!(error = %m, "dependency unavailable");
                return ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "temporarily_unavailable",
                    message: "a dependency of fedgate is unavailable; retry shortly".into(),
                    rule: None,
                };
            }
            ServiceError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                return ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "internal",
                    message: "internal error".into(),
                    rule: None,
                };
            }
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
            rule,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        if let Some(rule) = self.rule {
            body["error"]["rule"] = json!(rule);
        }
        let mut resp = (self.status, Json(body)).into_response();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"fedgate\", Basic realm=\"fedgate\""),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
