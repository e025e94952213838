//! What is particular to traces: calls nest into traces, a project's calls
//! are read a page at a time, bad bodies are refused before anything is
//! written. (The rules, default entity and attribution are the seed-rule
//! suite's, which runs for traces too.)

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::seed_rules::world;
use crate::support::message;

#[tokio::test]
async fn calls_nest_into_traces() {
    let app = world().await;
    let (_, key) = app.team_sa("vision", "ci-bot").await;
    let trace = |body: Value| {
        let app = &app;
        let key = key.clone();
        async move { app.post("/api/v1/traces", Some(&key), body).await }
    };
    let (s, root) = trace(json!({
        "project": "v-team", "op_name": "agent.run",
        "inputs": {"question": "why?"}, "output": {"answer": 42},
        "started_at": "2026-12-01T21:30:00Z", "ended_at": "2026-12-01T21:30:05.250Z",
    }))
    .await;
    assert_eq!(s, StatusCode::CREATED, "{root}");
    assert!(root["id"].as_str().unwrap().starts_with("call_"));
    assert!(root["trace_id"].as_str().unwrap().starts_with("trace_"));
    assert_eq!(root["parent_id"], Value::Null);
    assert_eq!(root["output"], json!({"answer": 42}));
    assert_eq!(root["started_at"], "2026-12-01T21:30:00Z");
    assert_eq!(root["ended_at"], "2026-12-01T21:30:05.25Z");

    // A child inherits its parent's trace; naming that trace is fine too.
    let (s, child) =
        trace(json!({"project": "v-team", "op_name": "llm", "parent_id": root["id"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{child}");
    assert_eq!(child["trace_id"], root["trace_id"]);
    assert_eq!(child["parent_id"], root["id"]);
    assert_eq!(child["inputs"], json!({}));
    let (s, b) = trace(json!({"project": "v-team", "op_name": "tool",
        "parent_id": child["id"], "trace_id": root["trace_id"]}))
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    // A client-chosen trace id starts a trace of its own.
    let (s, b) =
        trace(json!({"project": "v-team", "op_name": "x", "trace_id": "run-7:step.1"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["trace_id"], "run-7:step.1");

    // A parent of another trace, another project or nowhere: 400, nothing written.
    for (body, needle) in [
        (
            json!({"project": "v-team", "op_name": "x", "parent_id": root["id"], "trace_id": "other"}),
            "belongs to trace",
        ),
        (
            json!({"project": "v-open", "op_name": "x", "parent_id": root["id"]}),
            "is not a call of \"vision/v-open\"",
        ),
        (
            json!({"project": "v-team", "op_name": "x", "parent_id": "call_nope"}),
            "is not a call of",
        ),
    ] {
        let (s, b) = trace(body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert!(message(&b).contains(needle), "{body}: {b}");
    }
    let (_, page) = app
        .get("/api/v1/projects/vision/v-team/traces", Some(&key))
        .await;
    assert_eq!(page["traces"].as_array().unwrap().len(), 4, "{page}");
    // One trace's calls: the root and its two descendants, in order.
    let (s, page) = app
        .get(
            &format!(
                "/api/v1/projects/vision/v-team/traces?trace_id={}",
                root["trace_id"].as_str().unwrap()
            ),
            Some(&key),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let ops: Vec<&str> = page["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["op_name"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["agent.run", "llm", "tool"]);
    let (s, _) = app
        .get(
            "/api/v1/projects/vision/v-team/traces?trace_id=a%20b",
            Some(&key),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_project_s_calls_are_read_a_page_at_a_time() {
    let app = world().await;
    let (_, key) = app.team_sa("vision", "ci-bot").await;
    for i in 0..5 {
        let (s, b) = app
            .post(
                "/api/v1/traces",
                Some(&key),
                json!({"project": "v-open", "op_name": format!("op{i}")}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/api/v1/projects/vision/v-open/traces?limit=2&after={a}"),
            None => "/api/v1/projects/vision/v-open/traces?limit=2".to_string(),
        };
        let (s, b) = app.get(&path, Some(&key)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        pages += 1;
        for t in b["traces"].as_array().unwrap() {
            seen.push(t["op_name"].as_str().unwrap().to_string());
        }
        match b["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["op0", "op1", "op2", "op3", "op4"]);
    // Default page: all five, no next.
    let (_, b) = app
        .get("/api/v1/projects/vision/v-open/traces", Some(&key))
        .await;
    assert_eq!(b["traces"].as_array().unwrap().len(), 5);
    assert_eq!(b["next"], Value::Null);
    // An org member outside the team reads the open project too; bad paging is 400.
    let carol = app.user("carol", "member").await;
    let (s, _) = app
        .get(
            "/api/v1/projects/vision/v-open/traces?limit=1",
            Some(&carol),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for q in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "after=-1",
        "after=abc",
        "page=2",
    ] {
        let (s, b) = app
            .get(
                &format!("/api/v1/projects/vision/v-open/traces?{q}"),
                Some(&key),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {b}");
    }
}

#[tokio::test]
async fn a_bad_trace_creates_no_project() {
    let app = world().await;
    let (_, key) = app.team_sa("vision", "ci-bot").await;
    for body in [
        json!({"project": "fresh", "op_name": ""}),
        json!({"project": "fresh", "op_name": "x", "inputs": "text"}),
        json!({"project": "fresh", "op_name": "x", "started_at": "noon"}),
        json!({"project": "fresh", "op_name": "x", "unknown": 1}),
        json!({"project": "fresh"}),
    ] {
        let (s, b) = app.post("/api/v1/traces", Some(&key), body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
    }
    let (s, _) = app
        .get("/api/v1/projects/vision/fresh", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no project was created");
    // The same for runs.
    let (s, _) = app
        .run(&key, json!({"project": "fresh", "config": [1]}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app
        .get("/api/v1/projects/vision/fresh", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no project was created");
}
