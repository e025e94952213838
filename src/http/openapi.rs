//! The OpenAPI 3 document of the whole HTTP surface, served at
//! `/openapi.json`. Every route is registered through `utoipa_axum`'s
//! `routes!` together with its `#[utoipa::path]` annotation (see
//! `http::router`), so the document and the router cannot drift apart.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// `{"error": {"code", "message", "rule"?}}`: every error outside `/oidc/token`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct ErrorDetail {
    /// `bad_request`, `unauthenticated`, `forbidden`, `not_found`, `conflict`,
    /// `payload_too_large`, `temporarily_unavailable`, …
    code: String,
    /// What went wrong, for a person.
    message: String,
    /// For 403: the name of the rule that denied.
    rule: Option<String>,
}

/// RFC 6749 §5.2: `invalid_request`, `invalid_grant`, `invalid_scope`,
/// `invalid_target`, `unsupported_grant_type`, `invalid_client` (a client
/// assertion that fails, RFC 7523 §3.2), `slow_down` (429),
/// `temporarily_unavailable` (503).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OAuthErrorBody {
    error: String,
    error_description: String,
}

/// The token request (`application/x-www-form-urlencoded`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523),
    /// `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693) or
    /// `client_credentials` with a client assertion (RFC 7523 §2.2).
    grant_type: String,
    /// RFC 7523: the workload's JWT.
    assertion: Option<String>,
    /// RFC 8693: the workload's JWT.
    subject_token: Option<String>,
    /// RFC 8693: `urn:ietf:params:oauth:token-type:jwt` or `:id_token`.
    subject_token_type: Option<String>,
    /// RFC 8693: `urn:ietf:params:oauth:token-type:access_token` if given.
    requested_token_type: Option<String>,
    /// client_credentials: the account, `sa:<org>/<team>/<name>` or its id.
    client_id: Option<String>,
    /// client_credentials: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    client_assertion_type: Option<String>,
    /// client_credentials: the workload's JWT.
    client_assertion: Option<String>,
    /// Down-scoping: a subset of `read write` (client_credentials also
    /// takes `<fedgate URL>/.default`, the full scope).
    scope: Option<String>,
    /// `sa:<org>/<team>/<name>` when several accounts could match.
    audience: Option<String>,
    /// Same as `audience`.
    resource: Option<String>,
}

/// RFC 7662 request.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IntrospectForm {
    token: String,
    token_type_hint: Option<String>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// The document's fixed parts; paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "fedgate",
        description = "Identity-federation token exchange gateway (STS): trade a workload's OIDC token for a short-lived platform token. Credentials: `Authorization: Bearer <api key or access token>` or HTTP Basic with user `api`."
    ),
    modifiers(&Security),
    components(schemas(ErrorBody, OAuthErrorBody, TokenForm, IntrospectForm)),
    tags(
        (name = "federation", description = "Token exchange, trusted issuers, fedgate's metadata"),
        (name = "platform", description = "Projects, runs, the caller's view and decisions"),
        (name = "admin", description = "Users, teams, service accounts, API keys, audit"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;
