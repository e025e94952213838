//! The seed rules of DESIGN §2, one scenario each, over HTTP against the real
//! server. Every scenario is one function over a [`Seed`]: the world below
//! seen through one kind of credential and one kind of object written.
//! `Principal` is the only input the rules see, so API keys and exchanged
//! tokens, runs and traces, must get the same answers; the `suite!` at the
//! end runs each scenario in each combination (one suite, not copies).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::idp::TestIdp;
use crate::support::{TestApp, message};

/// Two teams, users in each, projects of every visibility in both.
pub async fn world() -> TestApp {
    let app = TestApp::start().await;
    app.team("vision").await;
    app.team("nlp").await;
    for (team, vis) in [
        ("vision", "team"),
        ("vision", "restricted"),
        ("vision", "open"),
        ("vision", "public"),
    ] {
        app.project(team, &format!("v-{vis}"), vis).await;
    }
    for (team, vis) in [
        ("nlp", "team"),
        ("nlp", "restricted"),
        ("nlp", "open"),
        ("nlp", "public"),
    ] {
        app.project(team, &format!("n-{vis}"), vis).await;
    }
    app
}

/// How the scenario's principals authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cred {
    /// API keys of built-in accounts and of users.
    ApiKey,
    /// Access tokens exchanged at /oidc/token: external team-scoped
    /// accounts, and users through an issuer trusted for people.
    Token,
}

/// What a write creates and a read lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    Run,
    Trace,
}

/// The world of the seed rules, through one credential kind and one object.
pub struct Seed {
    pub app: TestApp,
    pub cred: Cred,
    pub object: Object,
    /// Token mode: the IdP whose tokens are exchanged, and its issuer id.
    idp: Option<(TestIdp, String)>,
}

impl std::ops::Deref for Seed {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl Seed {
    pub async fn new(cred: Cred, object: Object) -> Seed {
        let app = world().await;
        let idp = match cred {
            Cred::ApiKey => None,
            Cred::Token => {
                let idp = TestIdp::start().await;
                let issuer = app
                    .trust_with(json!({"issuer": idp.issuer(), "users": true}))
                    .await;
                Some((idp, issuer))
            }
        };
        Seed {
            app,
            cred,
            object,
            idp,
        }
    }

    /// A team-scoped account of `team` named `name`: (id, credential) — a
    /// built-in account's API key, or a token exchanged for an external
    /// account bound to subject `ci:<team>/<name>`.
    pub async fn team_account(&self, team: &str, name: &str) -> (String, String) {
        match &self.idp {
            None => self.app.team_sa(team, name).await,
            Some((_, issuer)) => {
                let id = self
                    .app
                    .external_sa(
                        team,
                        name,
                        json!({"issuer": issuer, "subject": format!("ci:{team}/{name}")}),
                    )
                    .await;
                (id, self.account_token(team, name).await)
            }
        }
    }

    /// A fresh token for the external account of [`Seed::team_account`].
    pub async fn account_token(&self, team: &str, name: &str) -> String {
        self.exchanged(&format!("ci:{team}/{name}")).await
    }

    async fn exchanged(&self, sub: &str) -> String {
        let Some((idp, _)) = &self.idp else {
            panic!("tokens exist only in Cred::Token mode")
        };
        self.app
            .exchange_ok(&idp.mint(json!({"sub": sub, "aud": "default"})))
            .await
    }

    /// An org-scoped account: (id, API key). External accounts are
    /// team-scoped only (DESIGN §1), so this is a key in both modes.
    pub async fn org_account(&self, name: &str, default_team: &str) -> (String, String) {
        self.app.org_sa(name, default_team).await
    }

    /// A user of org `default` (`<name>@example.com`) and a credential: its
    /// API key, or a token exchanged for it.
    pub async fn user(&self, name: &str, role: &str) -> String {
        let key = self.app.user(name, role).await;
        match self.cred {
            Cred::ApiKey => key,
            Cred::Token => self.exchanged(&format!("{name}@example.com")).await,
        }
    }

    /// The write path of the object.
    pub fn write_path(&self) -> &'static str {
        match self.object {
            Object::Run => "/api/v1/runs",
            Object::Trace => "/api/v1/traces",
        }
    }

    /// A run body, turned into a trace body (an `op_name` added) for traces.
    fn body(&self, mut body: Value) -> Value {
        if self.object == Object::Trace {
            body["op_name"] = json!("llm.complete");
        }
        body
    }

    /// Writes one object: `POST /api/v1/runs` or `/api/v1/traces`.
    pub async fn write(&self, cred: &str, body: Value) -> (StatusCode, Value) {
        self.app
            .post(self.write_path(), Some(cred), self.body(body))
            .await
    }

    /// Writes one object with extra headers (the SDK's attribution headers).
    pub async fn write_with(
        &self,
        cred: &str,
        headers: &[(&str, &str)],
        body: Value,
    ) -> (StatusCode, Value) {
        let mut req = self
            .app
            .client
            .post(self.app.url(self.write_path()))
            .bearer_auth(cred)
            .json(&self.body(body));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Lists a project's objects: (status, the runs or the traces).
    pub async fn list(
        &self,
        cred: Option<&str>,
        entity: &str,
        project: &str,
    ) -> (StatusCode, Value) {
        let what = match self.object {
            Object::Run => "runs",
            Object::Trace => "traces",
        };
        let (s, b) = self
            .app
            .get(&format!("/api/v1/projects/{entity}/{project}/{what}"), cred)
            .await;
        if s == StatusCode::OK {
            (s, b[what].clone())
        } else {
            (s, b)
        }
    }
}

async fn who_may_create_service_accounts(app: Seed) {
    let lead = app.user("lead", "member").await;
    let dev = app.user("dev", "member").await;
    app.member("vision", "lead", "admin").await;
    app.member("vision", "dev", "member").await;

    // Org admin: org-scoped account.
    let (s, b) = app
        .post(
            "/api/v1/orgs/default/service-accounts",
            Some(&app.admin_key),
            json!({"name": "org-bot", "default_team": "vision"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["scope"], "org");
    assert_eq!(b["default_team"], "vision");
    assert_eq!(b["auth"], "builtin");
    assert!(b["api_key"].as_str().unwrap().starts_with("fgk_"));

    // Team admin: team-scoped account of its team.
    let (s, b) = app
        .post(
            "/api/v1/teams/vision/service-accounts",
            Some(&lead),
            json!({"name": "vision-bot", "auth": "builtin"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["scope"], "team");
    assert_eq!(b["team"], "vision");

    // Team admin cannot create org-scoped accounts, nor accounts of another team.
    let (s, b) = app
        .post(
            "/api/v1/orgs/default/service-accounts",
            Some(&lead),
            json!({"name": "x1", "default_team": "vision"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(message(&b).contains("org admin"), "{b}");
    assert_eq!(b["error"]["rule"], "admin.not_org_admin");
    let (s, b) = app
        .post(
            "/api/v1/teams/nlp/service-accounts",
            Some(&lead),
            json!({"name": "x2"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(message(&b).contains("admin of team \"nlp\""), "{b}");

    // A plain member cannot.
    let (s, b) = app
        .post(
            "/api/v1/teams/vision/service-accounts",
            Some(&dev),
            json!({"name": "x3"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(message(&b).contains("user \"dev\""), "{b}");

    // A service account cannot administer anything.
    let (_, bot_key) = app.team_account("vision", "helper").await;
    let (s, b) = app
        .post(
            "/api/v1/teams/vision/service-accounts",
            Some(&bot_key),
            json!({"name": "x4"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(
        message(&b).contains("service accounts have no admin rights"),
        "{b}"
    );

    // Lists: the team admin sees its team's accounts, never secrets.
    let (s, b) = app
        .get("/api/v1/teams/vision/service-accounts", Some(&lead))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let names: Vec<&str> = b["service_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sa| sa["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["helper", "vision-bot"]);
    assert!(
        !b.to_string().contains("fgk_"),
        "a list must never carry a key: {b}"
    );

    // Every denial is in the audit log with its rule.
    let audit = app.audit().await;
    let denials: Vec<_> = audit.iter().filter(|e| e["outcome"] == "denied").collect();
    assert!(denials.len() >= 4, "{audit:?}");
    assert!(
        denials
            .iter()
            .all(|e| !e["reason"].as_str().unwrap().is_empty())
    );
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "service_account.create" && e["outcome"] == "success")
    );
}

async fn org_scoped_account_needs_a_default_team_and_reaches_every_team(app: Seed) {
    let (s, b) = app
        .post(
            "/api/v1/orgs/default/service-accounts",
            Some(&app.admin_key),
            json!({"name": "orphan"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("default team"), "{b}");
    let (s, b) = app
        .post(
            "/api/v1/orgs/default/service-accounts",
            Some(&app.admin_key),
            json!({"name": "orphan", "default_team": "no-such-team"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

    let (_, key) = app.org_account("org-bot", "vision").await;
    // Reads and writes every non-restricted project of every team.
    for (entity, project) in [
        ("vision", "v-team"),
        ("vision", "v-open"),
        ("nlp", "n-team"),
        ("nlp", "n-open"),
        ("nlp", "n-public"),
    ] {
        let (s, b) = app
            .write(&key, json!({"entity": entity, "project": project}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{entity}/{project}: {b}");
        let (s, b) = app.list(Some(&key), entity, project).await;
        assert_eq!(s, StatusCode::OK, "{entity}/{project}: {b}");
    }
    // Except restricted ones.
    for (entity, project) in [("vision", "v-restricted"), ("nlp", "n-restricted")] {
        let (s, b) = app
            .write(&key, json!({"entity": entity, "project": project}))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(message(&b).contains("restricted"), "{b}");
    }
    // No entity: its default team (creating the project on first write).
    let (s, b) = app.write(&key, json!({"project": "fresh"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["entity"], "vision");
    let (s, b) = app
        .get("/api/v1/projects/vision/fresh", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["visibility"], "team");
    // With an entity (WANDB_ENTITY): that team.
    let (s, b) = app
        .write(&key, json!({"entity": "nlp", "project": "fresh"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["entity"], "nlp");
}

async fn team_scoped_account_reaches_its_team_and_open_projects_elsewhere(app: Seed) {
    let (_, key) = app.team_account("vision", "ci-bot").await;
    for project in ["v-team", "v-open", "v-public"] {
        let (s, b) = app
            .write(&key, json!({"entity": "vision", "project": project}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{project}: {b}");
        let (s, _) = app
            .get(&format!("/api/v1/projects/vision/{project}"), Some(&key))
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, b) = app
        .write(&key, json!({"entity": "vision", "project": "v-restricted"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");

    // Another team: open → write and read; public → read only; team/restricted → nothing.
    let (s, b) = app
        .write(&key, json!({"entity": "nlp", "project": "n-open"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = app.list(Some(&key), "nlp", "n-open").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.get("/api/v1/projects/nlp/n-public", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = app
        .write(&key, json!({"entity": "nlp", "project": "n-public"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = app
        .write(&key, json!({"entity": "nlp", "project": "n-team"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(
        message(&b),
        "service account \"ci-bot\" (team-scoped to \"vision\") cannot write to \"nlp/n-team\": project visibility is \"team\" and \"nlp\" is not its parent team"
    );
    let (s, _) = app.get("/api/v1/projects/nlp/n-team", Some(&key)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = app
        .write(&key, json!({"entity": "nlp", "project": "n-restricted"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    // Nor create a project there.
    let (s, b) = app
        .write(&key, json!({"entity": "nlp", "project": "brand-new"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");

    // No entity: its parent team.
    let (s, b) = app.write(&key, json!({"project": "v-team"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["entity"], "vision");
    assert_eq!(b["created_by"]["name"], "ci-bot");
}

async fn restricted_projects_need_an_explicit_membership(app: Seed) {
    let (_, key) = app.team_account("vision", "ci-bot").await;
    let (_, org_key) = app.org_account("org-bot", "nlp").await;
    let owner = app.user("owner", "member").await;
    app.member("vision", "owner", "member").await;

    let (s, b) = app
        .write(&key, json!({"entity": "vision", "project": "v-restricted"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(
        message(&b).contains("an admin of the project can add it"),
        "{b}"
    );

    // A team member who is not a project admin cannot grant it.
    let (s, b) = app
        .post(
            "/api/v1/projects/vision/v-restricted/members",
            Some(&owner),
            json!({"service_account": "ci-bot"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");

    // The project's admin (its creator, the org admin here) grants it.
    for sa in ["ci-bot", "org-bot"] {
        let (s, b) = app
            .post(
                "/api/v1/projects/vision/v-restricted/members",
                Some(&app.admin_key),
                json!({"service_account": sa, "role": "member"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, b) = app
        .write(&key, json!({"entity": "vision", "project": "v-restricted"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = app
        .write(
            &org_key,
            json!({"entity": "vision", "project": "v-restricted"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = app.list(Some(&key), "vision", "v-restricted").await;
    assert_eq!(s, StatusCode::OK);

    // A service account can never be made a project admin, and a team-scoped
    // account cannot be granted another team's project.
    let (s, b) = app
        .post(
            "/api/v1/projects/vision/v-restricted/members",
            Some(&app.admin_key),
            json!({"service_account": "ci-bot", "role": "admin"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = app
        .post(
            "/api/v1/projects/nlp/n-restricted/members",
            Some(&app.admin_key),
            json!({"service_account": "ci-bot"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
}

async fn attribution_applies_only_to_members_of_the_right_team(app: Seed) {
    app.user("alice", "member").await;
    app.user("bob", "member").await;
    app.member("vision", "alice", "member").await;
    app.member("nlp", "bob", "member").await;
    let (_, team_key) = app.team_account("vision", "ci-bot").await;
    let (_, org_key) = app.org_account("org-bot", "vision").await;

    // Team-scoped: a member of its parent team, by username or by email.
    let (s, b) = app
        .write(
            &team_key,
            json!({"project": "v-team", "attribute_to": {"username": "alice"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["attribution"]["applied"], true, "{b}");
    assert_eq!(b["attributed_to"]["name"], "alice");
    assert_eq!(b["created_by"]["name"], "ci-bot");
    let (s, b) = app
        .write(
            &team_key,
            json!({"project": "v-team", "attribute_to": {"email": "alice@example.com"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["attribution"]["applied"], true, "{b}");

    // Not a member of the parent team: logged anyway, attributed to the account.
    let (s, b) = app
        .write(
            &team_key,
            json!({"project": "v-team", "attribute_to": {"username": "bob"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["attribution"]["applied"], false);
    assert!(
        b["attribution"]["reason"]
            .as_str()
            .unwrap()
            .contains("not a member of team \"vision\""),
        "{b}"
    );
    assert_eq!(b["attributed_to"]["name"], "ci-bot");
    // Even when writing to bob's team's open project: the parent team decides.
    let (s, b) = app
        .write(
            &team_key,
            json!({"entity": "nlp", "project": "n-open", "attribute_to": {"username": "bob"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["attribution"]["applied"], false, "{b}");
    // An unknown user: same, nothing leaks.
    let (s, b) = app
        .write(
            &team_key,
            json!({"project": "v-team", "attribute_to": {"username": "nobody"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["attribution"]["applied"], false);

    // The SDK's headers work like attribute_to.
    let (s, b) = app
        .write_with(
            &team_key,
            &[("X-WANDB-USERNAME", "alice")],
            json!({"project": "v-team"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["attribution"]["applied"], true, "{b}");

    // Org-scoped: the team that owns the project decides.
    let (s, b) = app
        .write(
            &org_key,
            json!({"entity": "nlp", "project": "n-team", "attribute_to": {"username": "bob"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["attribution"]["applied"], true, "{b}");
    let (s, b) = app
        .write(
            &org_key,
            json!({"entity": "nlp", "project": "n-team", "attribute_to": {"username": "alice"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["attribution"]["applied"], false, "{b}");
    assert!(
        b["attribution"]["reason"]
            .as_str()
            .unwrap()
            .contains("team that owns the project"),
        "{b}"
    );

    // The objects are there, with their attribution.
    let (s, b) = app.list(Some(&app.admin_key), "vision", "v-team").await;
    assert_eq!(s, StatusCode::OK);
    let items = b.as_array().unwrap();
    assert_eq!(items.len(), 5, "{b}");
    assert_eq!(items[0]["attributed_to"]["name"], "alice");
    assert_eq!(items[0]["created_by"]["name"], "ci-bot");
    assert_eq!(items[2]["attributed_to"]["name"], "ci-bot");
}

async fn nothing_crosses_organizations(app: Seed) {
    let (_, key) = app.team_account("vision", "ci-bot").await;
    // A second tenant with its own admin, team and account.
    let out = fedgate::service::admin::bootstrap(&app.state, "acme", "acme-admin", "root@acme.io")
        .await
        .unwrap();
    let other = out.api_key;
    let (s, b) = app
        .post(
            "/api/v1/orgs/acme/teams",
            Some(&other),
            json!({"name": "acme-ml"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = app
        .post(
            "/api/v1/teams/acme-ml/service-accounts",
            Some(&other),
            json!({"name": "acme-bot"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let acme_bot = b["api_key"].as_str().unwrap().to_string();
    let acme_bot_id = b["id"].as_str().unwrap().to_string();

    // Every project of org default is "not found" to acme, even public ones.
    for creds in [&other, &acme_bot] {
        for project in ["v-team", "v-open", "v-public", "v-restricted"] {
            let (s, b) = app
                .get(&format!("/api/v1/projects/vision/{project}"), Some(creds))
                .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{project}: {b}");
            let (s, b) = app
                .write(creds, json!({"entity": "vision", "project": project}))
                .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{project}: {b}");
        }
    }
    // And the other way round, for admin endpoints too.
    let (s, _) = app
        .get(
            "/api/v1/teams/acme-ml/service-accounts",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .get("/api/v1/orgs/acme/audit", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .post(
            &format!("/api/v1/service-accounts/{acme_bot_id}/disable"),
            Some(&app.admin_key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .write(&key, json!({"entity": "acme-ml", "project": "x"}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The admin check answers "not found", not "forbidden".
    let (s, b) = app
        .post(
            "/api/v1/authz/check",
            Some(&key),
            json!({"action": "read", "entity": "acme-ml", "project": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["allowed"], false);
}

async fn no_service_account_has_admin(app: Seed) {
    let (_, team_key) = app.team_account("vision", "ci-bot").await;
    let (_, org_key) = app.org_account("org-bot", "vision").await;
    for key in [&team_key, &org_key] {
        let (s, b) = app
            .patch(
                "/api/v1/projects/vision/v-team",
                Some(key),
                json!({"visibility": "public"}),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(message(&b).contains("no service account has admin"), "{b}");
        let (s, b) = app
            .post(
                "/api/v1/projects/vision/v-team/members",
                Some(key),
                json!({"username": "admin"}),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        let (s, b) = app
            .post(
                "/api/v1/authz/check",
                Some(key),
                json!({"action": "admin", "entity": "vision", "project": "v-team"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b["allowed"], false, "{b}");
        assert_eq!(b["rule"], "sa.no_admin");
    }
}

async fn disabled_accounts_are_refused_at_once(app: Seed) {
    let (id, cred) = app.team_account("vision", "ci-bot").await;
    let (s, _) = app.write(&cred, json!({"project": "v-team"})).await;
    assert_eq!(s, StatusCode::CREATED);

    let (s, b) = app
        .post(
            &format!("/api/v1/service-accounts/{id}/disable"),
            Some(&app.admin_key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["disabled"], true);
    let resp = app
        .client
        .post(app.url(app.write_path()))
        .bearer_auth(&cred)
        .json(&app.body(json!({"project": "v-team"})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key("www-authenticate"));
    let b: serde_json::Value = resp.json().await.unwrap();
    assert!(message(&b).contains("disabled"), "{b}");
    let (s, _) = app.get("/api/v1/viewer", Some(&cred)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app.list(Some(&cred), "vision", "v-team").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Re-enabling does not revive credentials issued before the disable:
    // mint a new key, or exchange again.
    let (s, _) = app
        .post(
            &format!("/api/v1/service-accounts/{id}/enable"),
            Some(&app.admin_key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = app.get("/api/v1/viewer", Some(&cred)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    let fresh = match app.cred {
        Cred::ApiKey => {
            let (s, b) = app
                .post(
                    &format!("/api/v1/service-accounts/{id}/api-keys"),
                    Some(&app.admin_key),
                    json!({}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            b["api_key"].as_str().unwrap().to_string()
        }
        Cred::Token => app.account_token("vision", "ci-bot").await,
    };
    let (s, b) = app.write(&fresh, json!({"project": "v-team"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // The refusals of a known account's credentials are audited.
    let audit = app.audit().await;
    assert!(
        audit.iter().any(|e| e["action"] == "authenticate"
            && e["actor"] == "service_account:ci-bot"
            && e["reason"].as_str().unwrap().contains("disabled")),
        "{audit:?}"
    );
}

async fn revoking_one_key_leaves_the_others(app: Seed) {
    let (id, key) = app.team_account("vision", "ci-bot").await;
    let mut keys = Vec::new();
    for _ in 0..2 {
        let (s, b) = app
            .post(
                &format!("/api/v1/service-accounts/{id}/api-keys"),
                Some(&app.admin_key),
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        keys.push((
            b["id"].as_str().unwrap().to_string(),
            b["api_key"].as_str().unwrap().to_string(),
        ));
    }
    let (key2_id, key2) = &keys[0];
    let (_, key3) = &keys[1];
    let (s, _) = app
        .delete(
            &format!("/api/v1/service-accounts/{id}/api-keys/{key2_id}"),
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = app.write(key2, json!({"project": "v-team"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert!(message(&b).contains("revoked"), "{b}");
    for k in [&key, key3] {
        let (s, _) = app.write(k, json!({"project": "v-team"})).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let audit = app.audit().await;
    assert!(
        audit.iter().any(|e| e["action"] == "authenticate"
            && e["actor"] == "service_account:ci-bot"
            && e["reason"].as_str().unwrap().contains("revoked")),
        "{audit:?}"
    );

    // Keys are listed without secrets, with their state.
    let (s, b) = app
        .get(
            &format!("/api/v1/service-accounts/{id}/api-keys"),
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["api_keys"].as_array().unwrap().len(), 3);
    assert!(!b.to_string().contains(key3.as_str()));
}

async fn api_keys_work_as_bearer_and_as_basic_auth(app: Seed) {
    let (_, key) = app.team_account("vision", "ci-bot").await;
    let resp = app
        .client
        .get(app.url("/api/v1/viewer"))
        .basic_auth("api", Some(&key))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let b: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(b["name"], "ci-bot");
    assert_eq!(b["kind"], "service_account");
    assert_eq!(b["default_entity"], "vision");
    assert_eq!(b["org"], "default");
    let (s, b) = app.get("/api/v1/viewer", Some(&key)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["name"], "ci-bot");

    // The store keeps only the hash.
    let hash = fedgate::secrets::sha256_hex(key.as_bytes());
    let row = app
        .state
        .store
        .api_key_by_hash(&hash)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(row.secret_hash, key);
    assert!(key.starts_with(&row.prefix));
}

async fn users_follow_team_and_project_rules(app: Seed) {
    let alice = app.user("alice", "member").await;
    let carol = app.user("carol", "member").await;
    app.member("vision", "alice", "member").await;
    // Team member: team projects yes, restricted no, admin no.
    let (s, _) = app.write(&alice, json!({"project": "v-team"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app
        .write(
            &alice,
            json!({"entity": "vision", "project": "v-restricted"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .patch(
            "/api/v1/projects/vision/v-team",
            Some(&alice),
            json!({"visibility": "open"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Org member outside the team: open read+write, public read, team nothing.
    let (s, _) = app
        .write(&carol, json!({"entity": "vision", "project": "v-open"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app
        .get("/api/v1/projects/vision/v-public", Some(&carol))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .write(&carol, json!({"entity": "vision", "project": "v-public"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .get("/api/v1/projects/vision/v-team", Some(&carol))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Without a credential: public read only.
    let (s, _) = app.list(None, "vision", "v-public").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.get("/api/v1/projects/vision/v-open", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Org admin changes visibility; the change takes effect.
    let (s, b) = app
        .patch(
            "/api/v1/projects/vision/v-team",
            Some(&app.admin_key),
            json!({"visibility": "open"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = app
        .write(&carol, json!({"entity": "vision", "project": "v-team"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
}

/// `scenarios!([cases] scenario, …)`: each scenario becomes a module named
/// after it with one test per case (`case => (Cred, Object)`).
macro_rules! scenarios {
    (@one $scenario:ident [$($case:ident => ($cred:ident, $object:ident)),+ $(,)?]) => {
        mod $scenario {
            use super::*;
            $(#[tokio::test]
            async fn $case() {
                super::$scenario(Seed::new(Cred::$cred, Object::$object).await).await;
            })+
        }
    };
    ($cases:tt $($scenario:ident),+ $(,)?) => {
        $(scenarios!(@one $scenario $cases);)+
    };
}

// Writes and reads: runs and traces, with keys and with tokens.
scenarios!(
    [
        run_api_key => (ApiKey, Run),
        run_token => (Token, Run),
        trace_api_key => (ApiKey, Trace),
        trace_token => (Token, Trace),
    ]
    team_scoped_account_reaches_its_team_and_open_projects_elsewhere,
    restricted_projects_need_an_explicit_membership,
    attribution_applies_only_to_members_of_the_right_team,
    nothing_crosses_organizations,
    users_follow_team_and_project_rules,
    disabled_accounts_are_refused_at_once,
);

// Administration writes no object: keys and tokens.
scenarios!(
    [api_key => (ApiKey, Run), token => (Token, Run)]
    no_service_account_has_admin,
    who_may_create_service_accounts,
);

// Org-scoped accounts have API keys only (external accounts are
// team-scoped, DESIGN §1); and what is about API keys themselves.
scenarios!(
    [run_api_key => (ApiKey, Run), trace_api_key => (ApiKey, Trace)]
    org_scoped_account_needs_a_default_team_and_reaches_every_team,
    revoking_one_key_leaves_the_others,
);
scenarios!([api_key => (ApiKey, Run)] api_keys_work_as_bearer_and_as_basic_auth);

/// `tenant.isolation` on projects that exist and that the caller could
/// reach if the org boundary were not there: a public, open project of
/// another org is "not found" exactly like a missing entity, and the
/// decision names the rule.
#[tokio::test]
async fn tenant_isolation_hides_real_projects_of_another_org() {
    let app = world().await;
    let (_, sa_key) = app.team_sa("vision", "ci-bot").await;
    let acme = fedgate::service::admin::bootstrap(&app.state, "acme", "acme-admin", "root@acme.io")
        .await
        .unwrap()
        .api_key;
    let (s, b) = app
        .post(
            "/api/v1/orgs/acme/teams",
            Some(&acme),
            json!({"name": "acme-ml"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    for (name, vis) in [("pub", "public"), ("open", "open")] {
        let (s, b) = app
            .post(
                "/api/v1/teams/acme-ml/projects",
                Some(&acme),
                json!({"name": name, "visibility": vis}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    // Control: the projects exist and are readable, even anonymously.
    let (s, _) = app.get("/api/v1/projects/acme-ml/pub", Some(&acme)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = app.get("/api/v1/projects/acme-ml/pub", None).await;
    assert_eq!(s, StatusCode::OK, "public to the world: {b}");

    // Org default's admin and its account: not found, the rule named.
    for key in [&app.admin_key, &sa_key] {
        for project in ["pub", "open"] {
            let (s, b) = app
                .get(&format!("/api/v1/projects/acme-ml/{project}"), Some(key))
                .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{project}: {b}");
            assert_eq!(message(&b), "entity \"acme-ml\" not found");
            let (s, b) = app
                .run(key, json!({"entity": "acme-ml", "project": project}))
                .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{project}: {b}");
            assert_eq!(message(&b), "entity \"acme-ml\" not found");
            for action in ["read", "write"] {
                let (s, b) = app
                    .post(
                        "/api/v1/authz/check",
                        Some(key),
                        json!({"action": action, "entity": "acme-ml", "project": project}),
                    )
                    .await;
                assert_eq!(s, StatusCode::OK);
                assert_eq!(
                    b,
                    json!({"allowed": false, "rule": "tenant.isolation", "reason": "entity \"acme-ml\" not found"}),
                    "{action} {project}"
                );
            }
        }
        // Indistinguishable from an entity that does not exist anywhere.
        let (s, b) = app
            .get("/api/v1/projects/no-such-team/pub", Some(key))
            .await;
        assert_eq!(
            (s, message(&b)),
            (
                StatusCode::NOT_FOUND,
                "entity \"no-such-team\" not found".into()
            )
        );
    }
}

/// Admin refusals over HTTP (issue 10): a member minting a key for another
/// user, and a team admin acting on an org-scoped account.
#[tokio::test]
async fn admin_refusals_name_their_rule() {
    let app = world().await;
    let alice = app.user("alice", "member").await;
    app.user("bob", "member").await;
    let lead = app.user("lead", "member").await;
    app.member("vision", "lead", "admin").await;
    let (org_sa, _) = app.org_sa("org-bot", "vision").await;

    let (s, b) = app
        .post("/api/v1/users/bob/api-keys", Some(&alice), json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["error"]["rule"], "admin.not_org_admin");
    assert_eq!(
        message(&b),
        "user \"alice\" cannot administer organization \"default\": it takes an org admin"
    );
    // Her own key she may mint.
    let (s, b) = app
        .post("/api/v1/users/alice/api-keys", Some(&alice), json!({}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    for (method, path) in [
        (
            "POST",
            format!("/api/v1/service-accounts/{org_sa}/api-keys"),
        ),
        ("GET", format!("/api/v1/service-accounts/{org_sa}/api-keys")),
        ("POST", format!("/api/v1/service-accounts/{org_sa}/disable")),
    ] {
        let (s, b) = if method == "GET" {
            app.get(&path, Some(&lead)).await
        } else {
            app.post(&path, Some(&lead), json!({})).await
        };
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {b}");
        assert_eq!(b["error"]["rule"], "admin.not_org_admin", "{path}");
        assert_eq!(
            message(&b),
            "user \"lead\" cannot administer service account \"org-bot\": it takes an org admin"
        );
    }
}
