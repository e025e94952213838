//! Issue 15: runs and trace calls are group-committed (`fedgate::writes`)
//! and writes find their project in a cache. A write is acknowledged only
//! once its transaction committed; one bad row fails only its own write;
//! and every change to a project's rules reaches the cached copy.

use std::sync::Arc;

use fedgate::store::RunRow;
use fedgate::writes::Row;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::TestApp;

fn run_row(project_id: &str, i: usize) -> RunRow {
    RunRow {
        seq: 0,
        id: fedgate::secrets::new_id("run"),
        project_id: project_id.into(),
        created_by: "u_test".into(),
        created_by_kind: "user".into(),
        attributed_user_id: None,
        name: format!("r{i}"),
        config: "{}".into(),
        created_at: i as i64,
    }
}

#[tokio::test]
async fn a_write_is_acknowledged_after_its_commit_and_a_bad_row_fails_alone() {
    let app = TestApp::start().await;
    app.team("ml").await;
    app.project("ml", "p", "team").await;
    let store = app.state.store.clone();
    let team = store.team_by_name("ml").await.unwrap().unwrap();
    let project = store.project_by_name(&team.id, "p").await.unwrap().unwrap();
    let state = Arc::new(app.state.clone());
    // 200 writers at once (so batches form), one of them for a project
    // that does not exist.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let state = state.clone();
        let pid = if i == 77 {
            "proj_missing".to_string()
        } else {
            project.id.clone()
        };
        tasks.push(tokio::spawn(async move {
            let row = run_row(&pid, i);
            let id = row.id.clone();
            let result = state.writes.insert(Row::Run(row)).await;
            if result.is_ok() {
                // Acknowledged means committed: another connection sees it now.
                let stored = state.store.runs_of_project(&pid, 1000).await.unwrap();
                assert!(
                    stored.iter().any(|r| r.run.id == id),
                    "run {i} acknowledged before it was stored"
                );
            }
            (i, result.is_ok())
        }));
    }
    for t in tasks {
        let (i, ok) = t.await.unwrap();
        assert_eq!(ok, i != 77, "write {i}");
    }
    let stored = store.runs_of_project(&project.id, 1000).await.unwrap();
    assert_eq!(stored.len(), 199);
    app.stop().await;
}

#[tokio::test]
async fn cached_write_targets_follow_visibility_members_and_deletion() {
    let app = TestApp::start().await;
    app.team("ml").await;
    let alice = app.user("alice", "member").await;
    app.member("ml", "alice", "member").await;
    app.project("ml", "p", "team").await;
    let run = |key: String| {
        let app = &app;
        async move { app.run(&key, json!({"entity": "ml", "project": "p"})).await }
    };
    // Twice: the second decision is made on the cached project.
    for _ in 0..2 {
        let (s, b) = run(alice.clone()).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    // Restricted: alice is no explicit member, so her next write is denied.
    let (s, b) = app
        .patch(
            "/api/v1/projects/ml/p",
            Some(&app.admin_key),
            json!({"visibility": "restricted"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = run(alice.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    // An explicit membership lets her write again.
    let (s, b) = app
        .post(
            "/api/v1/projects/ml/p/members",
            Some(&app.admin_key),
            json!({"username": "alice"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = run(alice.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // Removed again: denied again.
    let (s, b) = app
        .delete("/api/v1/projects/ml/p/members/alice", Some(&app.admin_key))
        .await;
    assert!(s.is_success(), "{s} {b}");
    let (s, b) = run(alice.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    // Deleted: the next write creates a new project (visibility team),
    // which she may write to, and the old runs are gone with the old one.
    let (s, b) = app
        .delete("/api/v1/projects/ml/p", Some(&app.admin_key))
        .await;
    assert!(s.is_success(), "{s} {b}");
    let (s, b) = run(alice.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = app.get("/api/v1/projects/ml/p/runs", Some(&alice)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["runs"].as_array().map(Vec::len), Some(1), "{b}");
    app.stop().await;
}
