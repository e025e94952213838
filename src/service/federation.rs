//! Trusted issuers and federation bindings as the admin API manages them.

use serde_json::json;

use crate::service::admin::NewTeamSa;
use crate::service::{ServiceError, ServiceResult};
use crate::state::App;
use crate::store::{BindingRow, IssuerRow, OrgRow};

/// Finds the org's trusted issuer named by id or exact issuer URL.
pub async fn issuer_of_org(app: &App, org: &OrgRow, key: &str) -> ServiceResult<IssuerRow> {
    let issuers = app.store.issuers_of_org(&org.id).await?;
    issuers
        .into_iter()
        .find(|i| i.id == key || i.issuer == key)
        .ok_or_else(|| {
            ServiceError::BadRequest(format!(
                "issuer {:?} is not a trusted issuer of organization \"{}\": register it first (POST /api/v1/orgs/{}/issuers)",
                crate::model::truncate(key, 200),
                org.name,
                org.name
            ))
        })
}

/// Validates and compiles the binding of a new external account.
pub async fn binding_for(
    app: &App,
    org: &OrgRow,
    sa_id: &str,
    req: &NewTeamSa,
) -> ServiceResult<BindingRow> {
    let Some(issuer) = req.issuer.as_deref() else {
        return Err(ServiceError::BadRequest(
            "an external service account needs \"issuer\"".into(),
        ));
    };
    let issuer = issuer_of_org(app, org, issuer).await?;
    let Some(subject) = req.subject.as_deref().filter(|s| !s.is_empty()) else {
        return Err(ServiceError::BadRequest(
            "an external service account needs \"subject\": the exact `sub` of the workload's token".into(),
        ));
    };
    let spec = json!({
        "subject": subject,
        "subject_pattern": req.subject_pattern,
        "claims": req.claims.clone().unwrap_or_default(),
    });
    Ok(BindingRow {
        sa_id: sa_id.to_string(),
        issuer_id: issuer.id,
        spec: spec.to_string(),
    })
}
