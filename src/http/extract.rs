//! Extractors whose rejections are fedgate's JSON errors: a body that is not
//! the expected JSON is a 400 that says why, an oversized one a 413, and a
//! credential is read from `Authorization: Bearer` or HTTP Basic (user `api`,
//! the key as password, as the W&B SDK sends).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use base64::Engine;
use serde::de::DeserializeOwned;

use crate::http::error::ApiError;
use crate::service::RequestCtx;
use crate::service::auth::{Authenticated, Credential};
use crate::state::AppState;

/// A JSON body with fedgate's rejections.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(JsonRejection::BytesRejection(r))
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::too_large("request body is too large"))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::bad_request(
                "send the body as JSON with Content-Type: application/json",
            )),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::bad_request(format!(
                "invalid request body: {}",
                e.body_text().trim_start_matches(
                    "Failed to deserialize the JSON body into the target type: "
                )
            ))),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::bad_request(format!(
                "request body is not valid JSON: {}",
                e.body_text()
                    .trim_start_matches("Failed to parse the request body as JSON: ")
            ))),
            Err(e) => {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Err(ApiError::too_large("request body is too large"))
                } else {
                    Err(ApiError::bad_request(e.body_text()))
                }
            }
        }
    }
}

/// Path parameters with fedgate's rejections.
pub struct P<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| P(v))
            .map_err(|e: PathRejection| ApiError::bad_request(e.body_text()))
    }
}

/// Query parameters with fedgate's rejections.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Q(v))
            .map_err(|e: QueryRejection| ApiError::bad_request(e.body_text()))
    }
}

/// The request's id (set by the request-id middleware).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The client's address (set by the same middleware; see `crate::proxy`).
/// Absent for in-process callers, which have no peer.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for RequestCtx {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(RequestCtx {
            request_id: parts
                .extensions
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
            client_addr: parts.extensions.get::<ClientAddr>().map(|c| c.0),
        })
    }
}

/// Reads the credential from the `Authorization` header, if any.
pub fn credential(parts: &Parts) -> Result<Option<Credential>, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthenticated("the Authorization header is not valid text"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(Some(Credential::parse(rest)));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                ApiError::unauthenticated("the Basic credential is not valid base64 text")
            })?;
        return match decoded.split_once(':') {
            Some((_, key)) if !key.is_empty() => Ok(Some(Credential::parse(key))),
            _ => Err(ApiError::unauthenticated(
                "HTTP Basic needs user \"api\" and the API key as password",
            )),
        };
    }
    Err(ApiError::unauthenticated(
        "unsupported Authorization scheme: use \"Bearer <api key or access token>\" or HTTP Basic with user \"api\"",
    ))
}

/// A caller that must be authenticated.
pub struct Auth(pub Authenticated);

/// A caller that may be anonymous; a credential that is present must be valid.
pub struct MaybeAuth(pub Option<Authenticated>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(cred) = credential(parts)? else {
            return Ok(MaybeAuth(None));
        };
        let ctx = RequestCtx::from_request_parts(parts, state).await?;
        match crate::service::auth::authenticate(state, &ctx, &cred).await {
            Ok(a) => Ok(MaybeAuth(Some(a))),
            Err(e) => Err(e.into()),
        }
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match MaybeAuth::from_request_parts(parts, state).await? {
            MaybeAuth(Some(a)) => Ok(Auth(a)),
            MaybeAuth(None) => Err(ApiError::unauthenticated(
                "a credential is required: send \"Authorization: Bearer <api key or access token>\"",
            )),
        }
    }
}
