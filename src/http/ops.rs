//! Operator endpoints: liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness",
    responses((status = 200, description = "success", body = serde_json::Value)),
    security(())
)]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the store answers and a signing key is loaded.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: store reachable, signing key loaded",
    responses((status = 200, description = "success", body = serde_json::Value), (status = 503, description = "a dependency is down", body = crate::http::openapi::ErrorBody)),
    security(())
)]
pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let store = app.store.ping().await;
    let kid = app.signer.current().kid.clone();
    match store {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "store": "ok", "signing_key": kid})),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "store not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not_ready", "store": "unavailable", "signing_key": kid})),
            )
        }
    }
}
