//! Listing 10,000 service accounts in one request (issue 12): the page is
//! one query (`Store::service_accounts_page`: accounts joined with their team
//! and binding), beside what the listing did before, a team and a binding
//! lookup per row (`service::admin::sa_out` for each account).
//!
//! The store is SQLite in a temp dir, filled directly through the store (5,000
//! built-in and 5,000 external accounts over 10 teams), then
//! `GET /api/v1/orgs/default/service-accounts?limit=10000` goes through the
//! whole router in-process (authentication, JSON).
//!
//! `cargo bench --bench listing`; `cargo test --benches` runs it once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use criterion::Criterion;
use fedgate::state::AppState;
use fedgate::store::{BindingRow, IssuerRow, SaRow, TeamRow};
use tower::ServiceExt as _;

/// The allocator the binary uses (src/main.rs), so the figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ACCOUNTS: usize = 10_000;

/// How many accounts the store gets: [`ACCOUNTS`] under `cargo bench`; a
/// few hundred when `cargo test --all-targets` runs the bench once as a
/// test, where filling 10,000 one insert at a time in a debug build took
/// 12 s of the test command's time and proved nothing more.
fn accounts() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        ACCOUNTS
    } else {
        300
    }
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    state: AppState,
    router: axum::Router,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = fedgate::config::ServeArgs {
            database_url: Some(format!(
                "sqlite://{}",
                dir.path().join("bench.db").display()
            )),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let built = rt.block_on(fedgate::build(config)).unwrap();
        let admin = built.bootstrapped.as_ref().unwrap().api_key.clone();
        let state = built.state.clone();
        drop(built);
        rt.block_on(fill(&state));
        let router = fedgate::router(state.clone());
        Fixture {
            rt,
            state,
            router,
            admin,
            _dir: dir,
        }
    }

    /// The whole request; returns how many accounts came back.
    fn list(&self) -> usize {
        self.rt.block_on(async {
            let req = Request::get(format!(
                "/api/v1/orgs/default/service-accounts?limit={}",
                accounts()
            ))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin))
            .body(Body::empty())
            .unwrap();
            let resp = self.router.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            v["service_accounts"].as_array().unwrap().len()
        })
    }

    /// The old way: the same rows, then a team and a binding lookup per row.
    fn list_per_row(&self) -> usize {
        self.rt.block_on(async {
            let org = self
                .state
                .store
                .org_by_name("default")
                .await
                .unwrap()
                .unwrap();
            let rows = self
                .state
                .store
                .service_accounts_of_org(&org.id)
                .await
                .unwrap();
            let mut out = Vec::with_capacity(rows.len());
            for sa in &rows {
                out.push(
                    fedgate::service::admin::sa_out(&self.state, sa, &org.name, None)
                        .await
                        .unwrap(),
                );
            }
            std::hint::black_box(serde_json::to_vec(&out).unwrap());
            out.len()
        })
    }
}

async fn fill(state: &AppState) {
    let store = &state.store;
    let org = store.org_by_name("default").await.unwrap().unwrap();
    let issuer = IssuerRow {
        id: "iss_bench".into(),
        org_id: org.id.clone(),
        issuer: "https://token.actions.githubusercontent.com".into(),
        jwks_uri: None,
        static_jwks: Some(r#"{"keys":[]}"#.into()),
        audiences: r#"["default"]"#.into(),
        allowed_algs: r#"["RS256"]"#.into(),
        max_token_age_s: 3600,
        leeway_s: 60,
        single_use_jti: false,
        users: false,
        created_at: 0,
    };
    store.insert_issuer(&issuer).await.unwrap();
    let teams: Vec<TeamRow> = (0..10)
        .map(|t| TeamRow {
            id: format!("team_{t}"),
            org_id: org.id.clone(),
            name: format!("team-{t}"),
            created_at: 0,
        })
        .collect();
    for t in &teams {
        store.insert_team(t).await.unwrap();
    }
    for i in 0..accounts() {
        let external = i % 2 == 1;
        let sa = SaRow {
            id: format!("sa_{i:05}"),
            org_id: org.id.clone(),
            name: format!("acct-{i:05}"),
            scope: "team".into(),
            team_id: teams[i % teams.len()].id.clone(),
            auth: if external { "external" } else { "builtin" }.into(),
            disabled: false,
            revoked_before: 0,
            max_token_lifetime_s: 3600,
            created_at: i as i64,
            description: String::new(),
        };
        let binding = external.then(|| BindingRow {
            sa_id: sa.id.clone(),
            issuer_id: issuer.id.clone(),
            spec: format!(
                r#"{{"subject":"repo:acme/svc-{i}:ref:refs/heads/main","claims":{{"repository_id":"{i}"}}}}"#
            ),
            mode: "enforce".into(),
        });
        store
            .insert_service_account(&sa, binding.as_ref())
            .await
            .unwrap();
    }
    // The index gives each binding its issuer's URL, as in a running server.
    state.apply(&fedgate::state::Change::Federation).await;
}

fn main() {
    let fx = Fixture::new();
    assert_eq!(fx.list(), accounts());
    assert_eq!(fx.list_per_row(), accounts());
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    c.bench_function("GET service-accounts?limit=10000 (one query)", |b| {
        b.iter(|| fx.list())
    });
    c.bench_function("10,000 accounts with per-row lookups (before)", |b| {
        b.iter(|| fx.list_per_row())
    });
    c.final_summary();
}
