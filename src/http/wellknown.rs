//! fedgate's own metadata (RFC 8414 / OIDC Discovery) and public keys (RFC 7517).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::service::exchange::{GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER, GRANT_TOKEN_EXCHANGE};
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "federation",
    summary = "fedgate's metadata (RFC 8414 / OIDC Discovery)",
    responses((status = 200, description = "success", body = serde_json::Value)),
    security(())
)]
pub async fn openid_configuration(State(app): State<AppState>) -> impl IntoResponse {
    let base = app.signer.issuer().to_string();
    Json(json!({
        "issuer": base,
        "token_endpoint": format!("{base}/oidc/token"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{base}/oauth/introspect"),
        "grant_types_supported": [GRANT_JWT_BEARER, GRANT_TOKEN_EXCHANGE, GRANT_CLIENT_CREDENTIALS],
        // `private_key_jwt` is RFC 7523 §2.2 client authentication, which
        // the client_credentials grant takes (the workload's JWT).
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": crate::federation::DEFAULT_ALGS
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>(),
        "introspection_endpoint_auth_methods_supported": ["bearer"],
        "scopes_supported": ["read", "write"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "EdDSA"],
        "access_token_signing_alg_values_supported": ["ES256", "EdDSA"],
    }))
}

#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "federation",
    summary = "fedgate's public signing keys (RFC 7517)",
    responses((status = 200, description = "success", body = serde_json::Value)),
    security(())
)]
pub async fn jwks(State(app): State<AppState>) -> Response {
    let mut resp = Json(app.signer.jwks()).into_response();
    // Short enough that verifiers see a rotation soon; retired keys stay
    // published for as long as their tokens live.
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}
