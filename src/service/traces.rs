//! LLM traces (the platform's Weave calls), under exactly the rules of runs:
//! the same write target (default entity, project created on first write),
//! the same attribution, the same `authz::decide`. A trace is the calls
//! that share a `trace_id`; `parent_id` links a call to the call it is
//! nested in.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::instrument;

use crate::clock::rfc3339;
use crate::model::{Principal, truncate};
use crate::secrets::new_id;
use crate::service::projects::{
    AttributeTo, Attribution, PrincipalRef, attribute, authorship, principal_ref, readable_project,
    write_target,
};
use crate::service::{RequestCtx, ServiceError, ServiceResult};
use crate::state::App;
use crate::store::TraceRow;

/// Largest `inputs` and `output`, each, as JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Page size bounds of `GET …/traces`.
pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1000;

/// `POST /api/v1/traces`: one call of a trace.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTrace {
    /// The team (WANDB_ENTITY); default: the caller's default entity.
    pub entity: Option<String>,
    pub project: String,
    /// The operation called, e.g. `openai.chat.completions.create`.
    pub op_name: String,
    /// The trace this call belongs to; default: its parent's trace, else a new trace.
    pub trace_id: Option<String>,
    /// The id of the call this one is nested in (same project).
    pub parent_id: Option<String>,
    /// A JSON object; default `{}`.
    pub inputs: Option<Value>,
    /// Any JSON value.
    pub output: Option<Value>,
    /// RFC 3339; default: now.
    pub started_at: Option<String>,
    /// RFC 3339, not before `started_at`.
    pub ended_at: Option<String>,
    pub attribute_to: Option<AttributeTo>,
}

/// A logged call, with the same authorship fields as a run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TraceOut {
    pub id: String,
    pub entity: String,
    pub project: String,
    pub trace_id: String,
    pub parent_id: Option<String>,
    pub op_name: String,
    pub inputs: Value,
    pub output: Option<Value>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub created_by: PrincipalRef,
    pub attributed_to: PrincipalRef,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,
}

/// One page of a project's calls, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TracePage {
    pub traces: Vec<TraceOut>,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next: Option<String>,
}

fn bad(m: impl Into<String>) -> ServiceError {
    ServiceError::BadRequest(m.into())
}

fn timestamp(field: &str, v: &str) -> ServiceResult<i64> {
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            bad(format!(
                "{field} {:?} is not an RFC 3339 time, e.g. 2026-12-01T21:30:00Z",
                truncate(v, 40)
            ))
        })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| bad(format!("{field} is out of range")))
}

fn json_text(field: &str, v: &Value) -> ServiceResult<String> {
    let text = v.to_string();
    if text.len() > MAX_PAYLOAD_BYTES {
        return Err(bad(format!(
            "{field} is larger than {MAX_PAYLOAD_BYTES} bytes"
        )));
    }
    Ok(text)
}

fn check_trace_id(id: &str) -> ServiceResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "trace_id must be 1-128 letters, digits, '-', '_', '.' or ':'",
        ))
    }
}

/// The body, checked before anything is written (a project is created on
/// first write only for a call that will be stored).
struct Checked {
    inputs: (Value, String),
    output: Option<(Value, String)>,
    started_at: i64,
    ended_at: Option<i64>,
}

fn check(req: &NewTrace, now: i64) -> ServiceResult<Checked> {
    let op = req.op_name.trim();
    if op.is_empty() || op.len() > 256 || op.chars().any(char::is_control) {
        return Err(bad(
            "op_name must be 1-256 characters without control characters",
        ));
    }
    if let Some(t) = &req.trace_id {
        check_trace_id(t)?;
    }
    let inputs = req.inputs.clone().unwrap_or_else(|| json!({}));
    if !inputs.is_object() {
        return Err(bad("inputs must be a JSON object"));
    }
    let inputs_text = json_text("inputs", &inputs)?;
    let output = match &req.output {
        Some(o) => Some((o.clone(), json_text("output", o)?)),
        None => None,
    };
    let started_at = match &req.started_at {
        Some(v) => timestamp("started_at", v)?,
        None => now,
    };
    let ended_at = match &req.ended_at {
        Some(v) => Some(timestamp("ended_at", v)?),
        None => None,
    };
    if ended_at.is_some_and(|e| e < started_at) {
        return Err(bad("ended_at is before started_at"));
    }
    Ok(Checked {
        inputs: (inputs, inputs_text),
        output,
        started_at,
        ended_at,
    })
}

/// Logs one call (DESIGN §4): the write rules, default entity and
/// attribution of runs.
#[instrument(skip_all)]
pub async fn create_trace(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    req: NewTrace,
) -> ServiceResult<TraceOut> {
    let now = app.clock.now_ms();
    let checked = check(&req, now)?;
    let (team, project) = write_target(app, ctx, p, req.entity.as_deref(), &req.project).await?;
    let trace_id = match &req.parent_id {
        Some(parent_id) => {
            let parent = app
                .store
                .trace_call(&project.id, parent_id)
                .await?
                .ok_or_else(|| {
                    bad(format!(
                        "parent_id {:?} is not a call of \"{}/{}\"",
                        truncate(parent_id, 64),
                        team.name,
                        project.name
                    ))
                })?;
            match &req.trace_id {
                Some(t) if *t != parent.trace_id => {
                    return Err(bad(format!(
                        "parent_id {:?} belongs to trace {:?}, not {:?}",
                        parent.id,
                        parent.trace_id,
                        truncate(t, 64)
                    )));
                }
                _ => parent.trace_id,
            }
        }
        None => req.trace_id.clone().unwrap_or_else(|| new_id("trace")),
    };
    let (attributed_user, attribution) =
        attribute(app, p, &project, req.attribute_to.as_ref(), "trace").await?;
    let row = TraceRow {
        seq: 0,
        id: new_id("call"),
        project_id: project.id.clone(),
        trace_id,
        parent_id: req.parent_id.clone(),
        op_name: req.op_name.trim().to_string(),
        inputs: checked.inputs.1,
        output: checked.output.as_ref().map(|o| o.1.clone()),
        started_at: checked.started_at,
        ended_at: checked.ended_at,
        created_by: p.id.clone(),
        created_by_kind: p.kind_str().into(),
        attributed_user_id: attributed_user.as_ref().map(|u| u.0.clone()),
        created_at: now,
    };
    let (id, trace_id, parent_id, op_name, started_at, ended_at, created_at) = (
        row.id.clone(),
        row.trace_id.clone(),
        row.parent_id.clone(),
        row.op_name.clone(),
        row.started_at,
        row.ended_at,
        row.created_at,
    );
    app.writes.insert(crate::writes::Row::Trace(row)).await?;
    let (created_by, attributed_to) = authorship(p, attributed_user);
    Ok(TraceOut {
        id,
        entity: team.name,
        project: project.name,
        trace_id,
        parent_id,
        op_name,
        inputs: checked.inputs.0,
        output: checked.output.map(|o| o.0),
        started_at: rfc3339(started_at),
        ended_at: ended_at.map(rfc3339),
        created_by,
        attributed_to,
        created_at: rfc3339(created_at),
        attribution: Some(attribution),
    })
}

/// Which calls of a project to list: a page after a cursor, optionally of
/// one trace.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TraceQuery {
    /// Only the calls of this trace.
    pub trace_id: Option<String>,
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// Page size, 1-1000 (default 100).
    pub limit: Option<i64>,
}

/// A page of the calls of a project the caller may read, oldest first.
pub async fn list_traces(
    app: &App,
    ctx: &RequestCtx,
    p: Option<&Principal>,
    entity_name: &str,
    project: &str,
    q: TraceQuery,
) -> ServiceResult<TracePage> {
    let TraceQuery {
        trace_id,
        after,
        limit,
    } = q;
    if let Some(t) = &trace_id {
        check_trace_id(t)?;
    }
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(bad(format!(
            "limit must be between 1 and {MAX_PAGE}, got {limit}"
        )));
    }
    let after = match after.as_deref() {
        None => 0,
        Some(a) => a.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            bad(format!(
                "after {:?} is not a cursor from a previous page's \"next\"",
                truncate(a, 40)
            ))
        })?,
    };
    let (v, team) = readable_project(app, ctx, p, entity_name, project).await?;
    let mut rows = app
        .store
        .traces_of_project(&v.id, trace_id.as_deref(), after, limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more {
        rows.last().map(|r| r.seq.to_string())
    } else {
        None
    };
    // Each author's name is looked up once per page.
    let mut names: HashMap<(String, String), PrincipalRef> = HashMap::new();
    let mut traces = Vec::with_capacity(rows.len());
    for r in rows {
        let created_by = named(app, &mut names, &r.created_by, &r.created_by_kind).await?;
        let attributed_to = match &r.attributed_user_id {
            Some(uid) => named(app, &mut names, uid, "user").await?,
            None => created_by.clone(),
        };
        traces.push(TraceOut {
            id: r.id,
            entity: team.name.clone(),
            project: v.name.clone(),
            trace_id: r.trace_id,
            parent_id: r.parent_id,
            op_name: r.op_name,
            inputs: serde_json::from_str(&r.inputs).unwrap_or_default(),
            output: r.output.and_then(|o| serde_json::from_str(&o).ok()),
            started_at: rfc3339(r.started_at),
            ended_at: r.ended_at.map(rfc3339),
            created_by,
            attributed_to,
            created_at: rfc3339(r.created_at),
            attribution: None,
        });
    }
    Ok(TracePage { traces, next })
}

async fn named(
    app: &App,
    names: &mut HashMap<(String, String), PrincipalRef>,
    id: &str,
    kind: &str,
) -> ServiceResult<PrincipalRef> {
    let key = (id.to_string(), kind.to_string());
    if let Some(r) = names.get(&key) {
        return Ok(r.clone());
    }
    let r = principal_ref(app, id, kind).await?;
    names.insert(key, r.clone());
    Ok(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn req(v: Value) -> NewTrace {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn bodies_are_checked_before_anything_is_written() {
        let now = 1_700_000_000_000;
        let ok = check(&req(json!({"project": "p", "op_name": "llm"})), now).unwrap();
        assert_eq!(ok.started_at, now);
        assert_eq!(ok.inputs.0, json!({}));
        let ok = check(
            &req(json!({"project": "p", "op_name": "llm",
                "started_at": "2026-12-01T21:30:00Z", "ended_at": "2026-12-01T21:30:01.5+00:00"})),
            now,
        )
        .unwrap();
        assert_eq!(ok.ended_at.unwrap() - ok.started_at, 1500);
        for (body, needle) in [
            (json!({"project": "p", "op_name": ""}), "op_name"),
            (json!({"project": "p", "op_name": "a\u{7}b"}), "op_name"),
            (
                json!({"project": "p", "op_name": "x", "inputs": [1]}),
                "inputs",
            ),
            (
                json!({"project": "p", "op_name": "x", "trace_id": "a b"}),
                "trace_id",
            ),
            (
                json!({"project": "p", "op_name": "x", "started_at": "yesterday"}),
                "RFC 3339",
            ),
            (
                json!({"project": "p", "op_name": "x", "started_at": "2026-12-01T21:30:00Z", "ended_at": "2026-12-01T21:29:00Z"}),
                "before",
            ),
            (
                json!({"project": "p", "op_name": "x", "output": "y".repeat(MAX_PAYLOAD_BYTES)}),
                "output",
            ),
        ] {
            let e = check(&req(body.clone()), now).err().unwrap().to_string();
            assert!(e.contains(needle), "{body}: {e}");
        }
    }
}
