//! A service account after its creation: read, change, delete (issue 12).
//! The same rules as creation decide who may (`authz::decide_admin` on the
//! account's scope); every change is audited and reaches every replica.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::json;
use tracing::instrument;

use crate::federation::policy::BindingSpec;
use crate::model::{Principal, check_name, truncate};
use crate::service::admin::{SaOut, check_description, check_lifetime, sa_admin_target, sa_out};
use crate::service::federation::{author_of, binding_row, check_mode, issuer_of_org};
use crate::service::{RequestCtx, ServiceError, ServiceResult, conflict};
use crate::state::{App, Change};
use crate::store::SaRow;

/// `Some(None)` for an explicit `null` (remove), `None` when absent (keep).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /api/v1/service-accounts/{id}`: only the fields given change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaUpdate {
    /// A new name (unique in the organization).
    pub name: Option<String>,
    pub description: Option<String>,
    /// Org-scoped accounts: the team their runs go to without an entity.
    pub default_team: Option<String>,
    /// Ceiling of a minted token's lifetime, 60-43200 s.
    pub max_token_lifetime_s: Option<i64>,
    /// External accounts: the trusted issuer (id or URL).
    pub issuer: Option<String>,
    /// External accounts: the exact `sub`.
    pub subject: Option<String>,
    /// External accounts: a glob on `sub`; `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub subject_pattern: Option<Option<String>>,
    /// External accounts: a `subject_pattern` wider than one owner (org admins only, audited).
    pub allow_broad_subject_pattern: Option<bool>,
    /// External accounts: claim conditions, replacing the old ones (`{}`
    /// removes all). Values: strings (exact or glob), numbers or booleans.
    #[serde(default, deserialize_with = "crate::federation::policy::scalar_claims")]
    #[schema(value_type = Option<Object>)]
    pub claims: Option<BTreeMap<String, String>>,
    /// External accounts: `enforce` or `shadow`.
    pub mode: Option<String>,
}

impl SaUpdate {
    fn touches_binding(&self) -> bool {
        self.issuer.is_some()
            || self.subject.is_some()
            || self.subject_pattern.is_some()
            || self.claims.is_some()
            || self.allow_broad_subject_pattern.is_some()
            || self.mode.is_some()
    }
}

/// One account of the caller's org (admins of its scope).
pub async fn get_sa(app: &App, ctx: &RequestCtx, p: &Principal, id: &str) -> ServiceResult<SaOut> {
    let sa = sa_admin_target(app, ctx, p, id, "service_account.read").await?;
    sa_out(app, &sa, &p.org_name, None).await
}

/// Changes an account's display fields, default team, lifetime or binding.
/// A binding is compiled with the same rules as at creation and applies to
/// the next exchange on every replica.
#[instrument(skip_all, fields(id = %id))]
pub async fn update_sa(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    id: &str,
    upd: SaUpdate,
) -> ServiceResult<SaOut> {
    let old = sa_admin_target(app, ctx, p, id, "service_account.update").await?;
    let mut sa = old.clone();
    let mut changes = serde_json::Map::new();
    if let Some(name) = &upd.name {
        check_name("service account", name).map_err(ServiceError::BadRequest)?;
        sa.name = name.clone();
    }
    if upd.description.is_some() {
        sa.description = check_description(upd.description.clone())?;
    }
    if upd.max_token_lifetime_s.is_some() {
        sa.max_token_lifetime_s = check_lifetime(upd.max_token_lifetime_s)?;
    }
    if let Some(team) = &upd.default_team {
        if sa.scope != "org" {
            return Err(ServiceError::BadRequest(format!(
                "service account \"{}\" is team-scoped: only an org-scoped account has a default team (a team-scoped account stays in its parent team)",
                old.name
            )));
        }
        sa.team_id = match app.store.team_by_name(team).await? {
            Some(t) if t.org_id == sa.org_id => t.id,
            _ => {
                return Err(ServiceError::BadRequest(format!(
                    "default_team \"{}\" is not a team of organization \"{}\"",
                    truncate(team, 64),
                    p.org_name
                )));
            }
        };
        changes.insert("default_team".into(), json!(team));
    }
    let binding = if upd.touches_binding() {
        if sa.auth != "external" {
            return Err(ServiceError::BadRequest(format!(
                "service account \"{}\" is built-in: issuer, subject, subject_pattern, claims and mode belong to an external account's binding",
                old.name
            )));
        }
        let current = app.store.binding_of(&sa.id).await?.ok_or_else(|| {
            ServiceError::Internal(format!("external account {} has no binding", sa.id))
        })?;
        let mut spec: BindingSpec = serde_json::from_str(&current.spec)
            .map_err(|e| ServiceError::Internal(format!("stored binding: {e}")))?;
        let org = app
            .store
            .org_by_id(&sa.org_id)
            .await?
            .ok_or_else(|| ServiceError::Internal("account without org".into()))?;
        let issuer = issuer_of_org(
            app,
            &org,
            upd.issuer.as_deref().unwrap_or(&current.issuer_id),
        )
        .await?;
        if let Some(s) = &upd.subject {
            spec.subject = s.clone();
        }
        if let Some(pattern) = &upd.subject_pattern {
            spec.subject_pattern = pattern.clone();
        }
        if let Some(claims) = &upd.claims {
            spec.claims = claims.clone();
        }
        if let Some(broad) = upd.allow_broad_subject_pattern {
            spec.allow_broad_subject_pattern = broad;
        }
        let mode = check_mode(Some(upd.mode.as_deref().unwrap_or(&current.mode)))?;
        // A team admin's edit of a broad pattern an org admin allowed is
        // checked as the team admin's: they cannot keep or widen it.
        let row = binding_row(&sa.id, &issuer, &spec, mode, author_of(p))?;
        changes.insert(
            "binding".into(),
            json!({
                "from": {"issuer_id": current.issuer_id, "spec": serde_json::from_str::<serde_json::Value>(&current.spec).unwrap_or_default(), "mode": current.mode},
                "to": {"issuer_id": row.issuer_id, "spec": spec, "mode": row.mode},
            }),
        );
        Some(row)
    } else {
        None
    };
    for (field, from, to) in [
        ("name", json!(old.name), json!(sa.name)),
        ("description", json!(old.description), json!(sa.description)),
        (
            "max_token_lifetime_s",
            json!(old.max_token_lifetime_s),
            json!(sa.max_token_lifetime_s),
        ),
    ] {
        if from != to {
            changes.insert(field.into(), json!({"from": from, "to": to}));
        }
    }
    let mut tx = app.store.begin().await?;
    tx.update_service_account(&sa, binding.as_ref())
        .await
        .map_err(ServiceError::from)
        .map_err(conflict(format!("a service account named \"{}\"", sa.name)))?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "service_account.update",
        &format!("service_account:{}", old.name),
        json!({"id": sa.id, "changes": changes}),
    )
    .await?;
    tx.commit().await?;
    account_changed(app, &sa).await;
    sa_out(app, &sa, &p.org_name, None).await
}

/// Every replica forgets what it cached of the account (and re-reads an
/// external account's binding into its federation index).
async fn account_changed(app: &App, sa: &SaRow) {
    if sa.auth == "external" {
        app.changed(Change::ExternalAccount(sa.id.clone())).await;
    } else {
        app.changed(Change::Principal(sa.id.clone())).await;
    }
}

/// Deletes an account: every key revoked and every token refused at once on
/// every replica; its audit history and the runs it logged stay (the runs
/// keep its name). The name can be used again, by a new account.
#[instrument(skip_all, fields(id = %id))]
pub async fn delete_sa(app: &App, ctx: &RequestCtx, p: &Principal, id: &str) -> ServiceResult<()> {
    let sa = sa_admin_target(app, ctx, p, id, "service_account.delete").await?;
    let mut tx = app.store.begin().await?;
    tx.delete_service_account(&sa, app.clock.now_ms()).await?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "service_account.delete",
        &format!("service_account:{}", sa.name),
        json!({"id": sa.id, "scope": sa.scope, "auth": sa.auth}),
    )
    .await?;
    tx.commit().await?;
    account_changed(app, &sa).await;
    app.changed(Change::ApiKeys).await;
    Ok(())
}
