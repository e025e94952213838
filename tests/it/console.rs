//! The admin console (issue 13). Three browser scenarios drive Debian's
//! headless Chromium through chromedriver (one chromedriver for the suite)
//! against the real server; the rest checks the console's HTTP contract
//! (sessions, forgery checks, SSO settings, reserved team names) with reqwest.
//!
//! Each page visited in a browser is saved as a PNG under
//! `$FEDGATE_SCREENSHOTS` (docs/console/ when refreshing the docs), else the
//! test's temporary directory.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use thirtyfour::prelude::*;

use crate::support::idp::TestIdp;
use crate::support::{TestApp, message};

// ------------------------------------------------------------ the browser

/// The one chromedriver of the suite: started by the first browser test,
/// stopped when the last one holding it finishes.
struct ChromeDriver {
    child: std::process::Child,
    url: String,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static DRIVER: Mutex<Weak<ChromeDriver>> = Mutex::new(Weak::new());

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

fn chromedriver() -> Arc<ChromeDriver> {
    let mut slot = DRIVER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = slot.upgrade() {
        return d;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let child = std::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {CHROMEDRIVER} ({e}): install chromium and chromium-driver (scripts/test-deps.sh does)")
        });
    let driver = Arc::new(ChromeDriver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    });
    // Wait until it listens (explicitly, up to a minute on a loaded machine).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "chromedriver did not listen on port {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    *slot = Arc::downgrade(&driver);
    driver
}

/// A headless Chromium session and the chromedriver it runs on.
struct Browser {
    driver: WebDriver,
    _chromedriver: Arc<ChromeDriver>,
    base: String,
}

impl Browser {
    async fn open(app: &TestApp) -> Browser {
        let chromedriver = chromedriver();
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(CHROMIUM).unwrap();
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1100,800",
            "--no-first-run",
            "--disable-extensions",
        ] {
            caps.add_arg(arg).unwrap();
        }
        let driver = WebDriver::new(&chromedriver.url, caps)
            .await
            .expect("start a Chromium session");
        Browser {
            driver,
            _chromedriver: chromedriver,
            base: app.base.clone(),
        }
    }

    async fn goto(&self, path: &str) {
        self.driver
            .goto(format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// The current path (no host).
    async fn path(&self) -> String {
        self.driver.current_url().await.unwrap().path().to_string()
    }

    /// Waits for an element (explicit wait; no sleeps).
    async fn wait(&self, by: By) -> WebElement {
        let found = self
            .driver
            .query(by.clone())
            .wait(Duration::from_secs(30), Duration::from_millis(100))
            .first()
            .await;
        match found {
            Ok(e) => e,
            Err(e) => {
                let url = self.driver.current_url().await.map(|u| u.to_string());
                let source = self.driver.source().await.unwrap_or_default();
                panic!("waiting for {by:?} on {url:?}: {e}\n{source}")
            }
        }
    }

    /// The input a `<label>` with exactly this text names.
    async fn field(&self, label: &str) -> WebElement {
        let l = self
            .wait(By::XPath(format!("//label[normalize-space()='{label}']")))
            .await;
        let id = l.attr("for").await.unwrap().expect("label has for=");
        self.wait(By::Id(id)).await
    }

    async fn fill(&self, label: &str, text: &str) {
        let f = self.field(label).await;
        f.clear().await.unwrap();
        f.send_keys(text).await.unwrap();
    }

    async fn choose(&self, label: &str, option: &str) {
        let f = self.field(label).await;
        let select = thirtyfour::components::SelectElement::new(&f)
            .await
            .unwrap();
        select.select_by_exact_text(option).await.unwrap();
    }

    /// Clicks the button (or summary) whose text is exactly `text`.
    async fn click(&self, text: &str) {
        self.wait(By::XPath(format!(
            "//button[normalize-space()='{text}'] | //summary[normalize-space()='{text}']"
        )))
        .await
        .click()
        .await
        .unwrap();
    }

    /// Opens the `<details>` whose summary is `text` (if it is not open yet).
    async fn disclose(&self, text: &str) {
        let summary = self
            .wait(By::XPath(format!("//summary[normalize-space()='{text}']")))
            .await;
        let details = summary.parent().await.unwrap();
        if details.attr("open").await.unwrap().is_none() {
            summary.click().await.unwrap();
        }
    }

    /// Waits until the page says `text` (the innermost element saying it).
    async fn wait_text(&self, text: &str) -> WebElement {
        self.wait(By::XPath(format!(
            "//*[contains(normalize-space(), \"{text}\") and not(*[contains(normalize-space(), \"{text}\")])]"
        )))
            .await
    }

    async fn exists(&self, xpath: &str) -> bool {
        !self
            .driver
            .find_all(By::XPath(xpath.to_string()))
            .await
            .unwrap()
            .is_empty()
    }

    /// The row of a table that shows `name`.
    async fn row(&self, name: &str) -> WebElement {
        self.wait(By::XPath(format!("//tr[@data-name='{name}']")))
            .await
    }

    /// Saves the page as `<name>.png`.
    async fn shot(&self, name: &str) {
        let dir = std::env::var("FEDGATE_SCREENSHOTS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| {
                std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console")
            });
        std::fs::create_dir_all(&dir).unwrap();
        self.driver
            .screenshot(&dir.join(format!("{name}.png")))
            .await
            .unwrap();
    }

    async fn cookie(&self, name: &str) -> String {
        self.driver.get_named_cookie(name).await.unwrap().value
    }

    async fn sign_in_with_key(&self, key: &str) {
        self.fill("API key", key).await;
        self.click("Sign in").await;
        self.wait(By::XPath("//button[normalize-space()='Sign out']"))
            .await;
    }

    async fn close(self) {
        self.driver.quit().await.unwrap();
    }
}

// ------------------------------------------------------------ scenario 1

/// The bootstrap admin signs in with an API key, creates an org-scoped
/// account through the platform's flow, copies the key, and that key logs a
/// run to the default team. Also: trusted issuers on the Settings tab and the
/// other tabs, each saved as a screenshot.
#[tokio::test]
async fn admin_creates_an_org_service_account_in_the_browser() {
    let app = TestApp::start().await;
    app.team("vision").await;
    app.team("nlp").await;
    let b = Browser::open(&app).await;

    // Signed out, the dashboard leads to sign-in, then back to the dashboard.
    b.goto("/org/default").await;
    b.wait_text("Sign in with an API key").await;
    assert_eq!(b.path().await, "/login");
    b.shot("login").await;
    b.sign_in_with_key(&app.admin_key).await;
    assert_eq!(b.path().await, "/org/default");

    // Service Accounts tab → New service account → Name → Default team → Create.
    b.disclose("New service account").await;
    b.fill("Name", "ci-org-bot").await;
    b.choose("Default team", "nlp").await;
    b.click("Create").await;
    let row = b.row("ci-org-bot").await;
    let key_field = row
        .find(By::XPath(
            ".//label[normalize-space()='New API key']/following-sibling::input",
        ))
        .await
        .unwrap();
    assert_eq!(
        key_field.attr("readonly").await.unwrap().as_deref(),
        Some("true")
    );
    let key = key_field.value().await.unwrap().unwrap();
    assert!(key.starts_with("fgk_"), "{key}");
    row.find(By::XPath(".//button[normalize-space()='Copy API key']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text("Copied to the clipboard.").await;
    b.shot("org-service-accounts").await;

    // The copied key logs a run over the API, to the default team.
    let (s, run) = app.run(&key, json!({"project": "console-demo"})).await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    assert_eq!(run["entity"], "nlp");

    // The key is shown once: a reload of the dashboard never shows it again.
    b.goto("/org/default").await;
    b.row("ci-org-bot").await;
    assert!(!b.exists("//label[normalize-space()='New API key']").await);

    // Row actions: Disable is refused at the API at once, Enable again.
    let row = b.row("ci-org-bot").await;
    row.find(By::XPath(".//button[normalize-space()='Disable']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text("Disabled service account ci-org-bot.").await;
    let (s, _) = app.run(&key, json!({"project": "console-demo"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Settings → Authentication → Set up JWT issuer; a lint failure inline.
    let idp = TestIdp::start().await;
    b.goto("/org/default/settings").await;
    b.disclose("Set up JWT issuer").await;
    b.fill("Issuer URL", "http://127.0.0.1:9/nothing-here")
        .await;
    b.click("Create").await;
    b.wait(By::Css("p.error")).await;
    b.disclose("Set up JWT issuer").await;
    b.fill("Issuer URL", &idp.issuer()).await;
    b.fill("Audiences", "default").await;
    b.click("Create").await;
    b.wait_text("Trusted issuer").await;
    let row = b.row(&idp.issuer()).await;
    let text = row.text().await.unwrap();
    assert!(text.contains("rsa-a"), "kids listed: {text}");
    row.find(By::XPath(".//button[normalize-space()='Refresh keys']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text("Fetched the issuer's keys.").await;
    b.shot("org-settings").await;

    for (path, name) in [
        ("/org/default/teams", "org-teams"),
        ("/org/default/users", "org-users"),
        ("/org/default/audit", "org-audit"),
    ] {
        b.goto(path).await;
        b.wait(By::Css("nav.tabs a[aria-current='page']")).await;
        b.shot(name).await;
    }
    // Audit: filtered by action, the creation is there.
    b.goto("/org/default/audit?action=service_account.create")
        .await;
    b.wait_text("service_account:ci-org-bot").await;

    b.click("Sign out").await;
    b.wait_text("You signed out.").await;
    b.goto("/org/default").await;
    b.wait_text("Sign in with an API key").await;
    b.close().await;
    app.stop().await;
}

// ------------------------------------------------------------ scenario 2

/// A team admin signs in with SSO through an OIDC provider started by the
/// test, opens `/<team>/service-accounts`, creates a built-in account and a
/// Federated Identity one, and a token of that provider for the latter
/// exchanges at `/oidc/token`.
#[tokio::test]
async fn team_admin_signs_in_with_sso_and_creates_accounts() {
    let app = TestApp::start().await;
    app.team("vision").await;
    app.user("tina", "member").await;
    app.member("vision", "tina", "admin").await;
    let (idp, b) = sso_provider(&app, "tina@example.com").await;
    assert_eq!(b["redirect_uri"], format!("{}/sso/callback", app.base));
    app.trust_with(json!({"issuer": idp.issuer(), "audiences": ["default"]}))
        .await;

    let b = Browser::open(&app).await;
    b.goto("/vision/service-accounts").await;
    b.fill("Organization", "default").await;
    b.click("Sign in with SSO").await;
    // Provider → /sso/callback → back where tina was going.
    b.wait(By::XPath("//button[normalize-space()='Sign out']"))
        .await;
    assert_eq!(b.path().await, "/vision/service-accounts");
    let who = b.wait_text("Signed in as user").await.text().await.unwrap();
    assert!(who.contains("\"tina\""), "{who}");

    // Built-in.
    b.disclose("New service account").await;
    b.fill("Name", "vision-bot").await;
    b.field("Generate API key (Built-in)")
        .await
        .click()
        .await
        .unwrap();
    b.click("Create").await;
    let row = b.row("vision-bot").await;
    let key = row
        .find(By::XPath(
            ".//label[normalize-space()='New API key']/following-sibling::input",
        ))
        .await
        .unwrap()
        .value()
        .await
        .unwrap()
        .unwrap();
    let (s, run) = app.run(&key, json!({"project": "sso-demo"})).await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    assert_eq!(run["entity"], "vision");

    // Federated Identity.
    let subject = "repo:acme/vision-train:ref:refs/heads/main";
    b.disclose("New service account").await;
    b.fill("Name", "vision-ci").await;
    b.field("Federated Identity").await.click().await.unwrap();
    b.choose("Issuer", &idp.issuer()).await;
    b.fill("Subject", subject).await;
    b.fill("Claim conditions", "repository_owner=acme").await;
    b.click("Create").await;
    let row = b.row("vision-ci").await;
    let text = row.text().await.unwrap();
    assert!(text.contains("Federated Identity"), "{text}");
    assert!(!text.contains("New API key"), "{text}");
    b.shot("team-service-accounts").await;

    let token = idp.mint(json!({"sub": subject, "aud": "default", "repository_owner": "acme"}));
    let access = app.exchange_ok(&token).await;
    let (s, run) = app.run(&access, json!({"project": "sso-demo"})).await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    assert_eq!(run["created_by"]["name"], "vision-ci");

    b.goto("/vision").await;
    b.wait(By::XPath("//h2[normalize-space()='Projects']"))
        .await;
    b.shot("team-settings").await;

    // A team admin is not offered Turn off SSO; the org admin is: after the
    // typed confirmation, the Settings tab says SSO is not configured and
    // Sign in with SSO stays on fedgate's sign-in page.
    b.goto("/org/default/settings").await;
    b.wait_text("Denied").await;
    assert!(!b.exists("//button[normalize-space()='Turn off SSO']").await);
    b.click("Sign out").await;
    b.sign_in_with_key(&app.admin_key).await;
    b.goto("/org/default/settings").await;
    b.wait_text("Single sign-on is on").await;
    b.click("Turn off SSO").await;
    b.wait_text("Turn off single sign-on for default").await;
    b.fill("Type the name to confirm", "default").await;
    b.shot("confirm-turn-off-sso").await;
    b.click("Turn off SSO").await;
    b.wait_text("Single sign-on is not configured.").await;
    assert!(!b.exists("//button[normalize-space()='Turn off SSO']").await);
    b.click("Sign out").await;
    b.fill("Organization", "default").await;
    b.click("Sign in with SSO").await;
    b.wait_text("is not set up for organization").await;
    let url = b.driver.current_url().await.unwrap().to_string();
    assert!(
        url.starts_with(&app.base),
        "not sent to the provider: {url}"
    );
    b.close().await;
    app.stop().await;
}

// ------------------------------------------------------------ scenario 4

/// The rows' lifecycle actions in a browser, one server and one session: a
/// list longer than a page is paged (Next page / First page); a Federated
/// Identity account's binding is edited (a lint failure shown in the form,
/// then saved) and the next exchange at `/oidc/token` follows it; an account
/// is deleted after a typed confirmation (a mistyped one deletes nothing) and
/// its key is refused over the API at once.
#[tokio::test]
async fn admin_pages_edits_and_deletes_accounts_in_the_browser() {
    let app = TestApp::start().await;
    app.team("vision").await;
    let idp = TestIdp::start().await;
    app.trust(&idp).await;
    let old_subject = "repo:acme/vision-train:ref:refs/heads/main";
    let new_subject = "repo:acme/vision-deploy:ref:refs/heads/main";
    app.external_sa(
        "vision",
        "vision-ci",
        json!({"issuer": idp.issuer(), "subject": old_subject}),
    )
    .await;
    let (_, key_a) = app.team_sa("vision", "bot-a").await;
    app.team_sa("vision", "bot-b").await;
    app.team_sa("vision", "bot-c").await;
    app.user("uma", "member").await;
    app.user("vic", "member").await;
    // Enough teams, team members and issuers for two pages of two.
    app.team("atlas").await;
    app.team("zebra").await;
    app.user("wes", "member").await;
    for who in ["uma", "vic", "wes"] {
        app.member("vision", who, "member").await;
    }
    for host in ["issuer-b", "issuer-c"] {
        app.trust_with(json!({"issuer": format!("https://{host}.example"), "jwks": idp.jwks_json(), "audiences": ["fedgate"]}))
            .await;
    }
    // A restricted project with three members (its creator, the admin, is
    // one), for its own pages of two.
    app.project("vision", "imagenet", "restricted").await;
    for who in ["uma", "vic"] {
        let (s, b) = app
            .post(
                "/api/v1/projects/vision/imagenet/members",
                Some(&app.admin_key),
                json!({"username": who, "role": "member"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let token = |sub: &str| idp.mint(json!({"sub": sub, "aud": "default"}));
    app.exchange_ok(&token(old_subject)).await;

    let b = Browser::open(&app).await;
    b.goto("/login").await;
    b.sign_in_with_key(&app.admin_key).await;

    // Paging: two accounts a page; Next page shows the others, by name.
    b.goto("/vision/service-accounts?limit=2").await;
    b.row("bot-b").await;
    assert!(b.exists("//tr[@data-name='bot-a']").await);
    assert!(!b.exists("//tr[@data-name='bot-c']").await);
    assert!(!b.exists("//a[normalize-space()='First page']").await);
    b.wait(By::LinkText("Next page"))
        .await
        .click()
        .await
        .unwrap();
    b.row("vision-ci").await;
    assert!(b.exists("//tr[@data-name='bot-c']").await);
    assert!(!b.exists("//tr[@data-name='bot-a']").await);
    b.wait(By::LinkText("First page")).await;
    b.shot("team-service-accounts-page-2").await;
    // The Users tab pages the same way (admin, uma, vic).
    b.goto("/org/default/users?limit=2").await;
    b.row("admin").await;
    assert!(!b.exists("//tr[@data-name='vic']").await);
    b.wait(By::LinkText("Next page"))
        .await
        .click()
        .await
        .unwrap();
    b.row("vic").await;
    assert!(!b.exists("//tr[@data-name='admin']").await);
    // So do the Teams tab (atlas, vision | zebra), the Settings tab's
    // issuers (the test IdP's http URL, issuer-b | issuer-c) and a team's
    // members (…, uma | …, wes), each a page of two with Next page.
    let second_page = |path: &'static str, first: &'static str, second: &'static str| {
        let b = &b;
        async move {
            b.goto(path).await;
            b.row(first).await;
            assert!(
                !b.exists(&format!("//tr[@data-name='{second}']")).await,
                "{path}"
            );
            b.wait(By::LinkText("Next page"))
                .await
                .click()
                .await
                .unwrap();
            b.row(second).await;
            assert!(
                !b.exists(&format!("//tr[@data-name='{first}']")).await,
                "{path}"
            );
            b.wait(By::LinkText("First page")).await;
        }
    };
    second_page("/org/default/teams?limit=2", "atlas", "zebra").await;
    second_page(
        "/org/default/settings?limit=2",
        "https://issuer-b.example",
        "https://issuer-c.example",
    )
    .await;
    second_page("/vision?limit=2", "uma", "wes").await;
    // A project's members page on the same page, by their own parameters:
    // paging one list moves neither the other nor back.
    b.goto("/vision?limit=2&project.imagenet.limit=2").await;
    let project_members = || async {
        let mut names = Vec::new();
        for row in b
            .driver
            .find_all(By::XPath(
                "//section[@data-name='imagenet']//tr[@data-member]".to_string(),
            ))
            .await
            .unwrap()
        {
            names.push(row.attr("data-member").await.unwrap().unwrap());
        }
        names
    };
    let project_link = |text: &str| {
        By::XPath(format!(
            "//section[@data-name='imagenet']//a[normalize-space()='{text}']"
        ))
    };
    b.row("uma").await;
    let first = project_members().await;
    assert_eq!(first.len(), 2, "{first:?}");
    b.wait(project_link("Next page"))
        .await
        .click()
        .await
        .unwrap();
    b.wait(project_link("First page")).await;
    let second = project_members().await;
    assert_eq!(second.len(), 1, "{second:?}");
    let mut all = [first, second.clone()].concat();
    all.sort();
    assert_eq!(all, ["admin", "uma", "vic"]);
    // The team's member list stayed on its first page, and its own Next
    // page keeps the project's page.
    b.row("uma").await;
    assert!(!b.exists("//tr[@data-name='wes']").await);
    b.wait(By::XPath(
        "//nav[@aria-label='Pages']//a[normalize-space()='Next page']".to_string(),
    ))
    .await
    .click()
    .await
    .unwrap();
    b.row("wes").await;
    assert!(!b.exists("//tr[@data-name='uma']").await);
    assert_eq!(project_members().await, second);

    // Edit binding: the form holds the current binding.
    b.goto("/vision/service-accounts").await;
    b.row("vision-ci")
        .await
        .find(By::XPath(".//button[normalize-space()='Edit binding']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text("Edit binding of vision-ci").await;
    assert_eq!(
        b.field("Subject").await.value().await.unwrap().as_deref(),
        Some(old_subject)
    );
    // A pattern the lint refuses: the API's words, in the form; nothing changes.
    b.fill("Subject pattern", "*").await;
    b.click("Save").await;
    let error = b.wait(By::Id("edit-error")).await.text().await.unwrap();
    assert!(error.contains("Binding refused"), "{error}");
    assert_eq!(
        b.field("Subject pattern")
            .await
            .value()
            .await
            .unwrap()
            .as_deref(),
        Some("*"),
        "what was typed is kept"
    );
    b.shot("edit-binding-refused").await;
    app.exchange_ok(&token(old_subject)).await;
    // The new subject, no pattern, a claim condition: saved.
    b.field("Subject pattern").await.clear().await.unwrap();
    b.fill("Subject", new_subject).await;
    b.fill("Claim conditions", "repository_owner=acme").await;
    b.fill("Token lifetime (seconds)", "900").await;
    b.shot("edit-binding").await;
    b.click("Save").await;
    b.wait_text("Saved service account vision-ci").await;
    let text = b.row("vision-ci").await.text().await.unwrap();
    assert!(text.contains(new_subject), "{text}");
    // The next exchange follows the new binding.
    let (s, body) = app.exchange(&token(old_subject)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "old subject: {body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    let new_token =
        idp.mint(json!({"sub": new_subject, "aud": "default", "repository_owner": "acme"}));
    app.exchange_ok(&new_token).await;
    let (s, _) = app.exchange(&token(new_subject)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "the claim condition holds too");

    // Delete, confirmed by typing the name; a mistyped name deletes nothing.
    b.row("bot-a")
        .await
        .find(By::XPath(".//button[normalize-space()='Delete']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text("Delete service account bot-a").await;
    b.shot("confirm-delete").await;
    b.fill("Type the name to confirm", "bot-b").await;
    b.click("Delete").await;
    b.wait_text("Nothing was deleted").await;
    let (s, run) = app.run(&key_a, json!({"project": "still-here"})).await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    b.fill("Type the name to confirm", "bot-a").await;
    b.click("Delete").await;
    b.wait_text("Deleted service account bot-a").await;
    assert!(!b.exists("//tr[@data-name='bot-a']").await);
    b.row("bot-b").await;
    let (s, _) = app.run(&key_a, json!({"project": "gone"})).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a deleted account's key is refused"
    );
    b.close().await;
    app.stop().await;
}

// ------------------------------------------------------------ scenario 3

/// A member sees no "New service account" and the service still refuses the
/// hidden form; a request with a foreign Origin is refused; signed-out pages
/// lead to sign-in; revoking the key a person signed in with, or disabling
/// the person, ends the session at once.
#[tokio::test]
async fn member_sees_read_only_pages_and_sessions_end() {
    let app = TestApp::start().await;
    app.team("vision").await;
    let mia_key = app.user("mia", "member").await;
    app.member("vision", "mia", "member").await;
    let (bot_id, _) = app.team_sa("vision", "bot").await;
    let b = Browser::open(&app).await;

    for path in [
        "/org/default/settings",
        "/vision/service-accounts",
        "/vision",
    ] {
        b.goto(path).await;
        b.wait_text("Sign in with an API key").await;
        assert_eq!(b.path().await, "/login", "{path}");
    }
    b.sign_in_with_key(&mia_key).await;
    // `next` brought mia back to the last page she asked for.
    assert_eq!(b.path().await, "/vision");

    b.goto("/vision/service-accounts").await;
    b.wait_text("Denied").await;
    assert!(
        !b.exists("//summary[normalize-space()='New service account']")
            .await
    );
    b.shot("member-team-service-accounts").await;
    // Neither Delete nor Edit for a member, and their pages say why not.
    for button in ["Delete", "Edit", "Edit binding"] {
        assert!(
            !b.exists(&format!("//button[normalize-space()='{button}']"))
                .await,
            "{button}"
        );
    }
    for action in ["edit", "delete"] {
        b.goto(&format!("/vision/service-accounts/{bot_id}/{action}"))
            .await;
        b.wait_text("Denied").await;
        assert!(!b.exists("//input[@name='confirm']").await, "{action}");
        assert!(!b.exists("//input[@name='subject']").await, "{action}");
    }
    b.goto("/org/default").await;
    b.wait(By::Css("nav.tabs")).await;
    assert!(
        !b.exists("//summary[normalize-space()='New service account']")
            .await
    );

    // The hidden form, posted anyway from the console's own origin: the
    // service refuses it with its rule; nothing is created.
    let session = b.cookie("fedgate_session").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |origin: &str| {
        http.post(app.url("/vision/service-accounts"))
            .header("cookie", format!("fedgate_session={session}"))
            .header("origin", origin.to_string())
            .form(&[("name", "sneaky"), ("auth", "builtin")])
    };
    let resp = post(&app.base).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("Denied (admin."));
    // The confirmed deletion, posted anyway: refused with the rule, the account stays.
    let resp = http
        .post(app.url(&format!("/vision/service-accounts/{bot_id}/delete")))
        .header("cookie", format!("fedgate_session={session}"))
        .header("origin", app.base.clone())
        .form(&[("confirm", "bot")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("Denied (admin."));
    // A foreign Origin is refused before any service runs.
    let resp = post("http://evil.example").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("cross-site"));
    let (_, sas) = app
        .get(
            "/api/v1/teams/vision/service-accounts",
            Some(&app.admin_key),
        )
        .await;
    let names: Vec<&str> = sas["service_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|sa| sa["name"].as_str())
        .collect();
    assert_eq!(names, ["bot"], "nothing created, nothing deleted");

    // Revoking the key mia signed in with ends her session at once.
    let (_, keys) = app
        .get("/api/v1/users/mia/api-keys", Some(&app.admin_key))
        .await;
    let key_id = keys["api_keys"][0]["id"].as_str().unwrap().to_string();
    let (s, _) = app
        .delete(
            &format!("/api/v1/users/mia/api-keys/{key_id}"),
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    b.goto("/org/default").await;
    b.wait_text("the API key you signed in with was revoked")
        .await;
    assert_eq!(b.path().await, "/login");

    // Disabling mia ends her session at once (a new key signed her in).
    let (s, k) = app
        .post(
            "/api/v1/users/mia/api-keys",
            Some(&app.admin_key),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    b.sign_in_with_key(k["api_key"].as_str().unwrap()).await;
    let (s, d) = app
        .post("/api/v1/users/mia/disable", Some(&app.admin_key), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    b.goto("/vision").await;
    b.wait_text("Your session ended").await;
    assert_eq!(b.path().await, "/login");
    b.close().await;
    app.stop().await;
}

// ------------------------------------------------------------ HTTP contract

/// A client that keeps no cookies and follows no redirects.
fn raw() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in with `key` over HTTP; returns the session cookie's value.
async fn sign_in(app: &TestApp, key: &str) -> String {
    let resp = raw()
        .post(app.url("/login"))
        .header("origin", app.base.clone())
        .form(&[("api_key", key)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("fedgate_session="))
        .expect("session cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "http public URL: {cookie}");
    cookie
        .trim_start_matches("fedgate_session=")
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn forms_without_origin_headers_need_the_session_token() {
    let app = TestApp::start().await;
    app.team("vision").await;
    let session = sign_in(&app, &app.admin_key).await;
    let page = raw()
        .get(app.url("/org/default/teams"))
        .header("cookie", format!("fedgate_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let post = |csrf: &str| {
        raw()
            .post(app.url("/org/default/teams"))
            .header("cookie", format!("fedgate_session={session}"))
            .form(&[("name", "made-by-form"), ("csrf", csrf)])
    };
    // No Origin, no Sec-Fetch-Site: a wrong or missing token is refused.
    let resp = post("wrong").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = post("").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Sec-Fetch-Site from another site is refused even with the token.
    let resp = post(&token)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (_, teams) = app
        .get("/api/v1/orgs/default/teams", Some(&app.admin_key))
        .await;
    assert_eq!(teams["teams"].as_array().unwrap().len(), 1);
    // The session's token passes.
    let resp = post(&token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, teams) = app
        .get("/api/v1/orgs/default/teams", Some(&app.admin_key))
        .await;
    assert_eq!(teams["teams"].as_array().unwrap().len(), 2);

    // Sign out ends the session server-side: the old cookie is dead.
    let resp = raw()
        .post(app.url("/logout"))
        .header("cookie", format!("fedgate_session={session}"))
        .header("origin", app.base.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = raw()
        .get(app.url("/org/default"))
        .header("cookie", format!("fedgate_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
    app.stop().await;
}

#[tokio::test]
async fn console_sign_in_refuses_service_accounts_and_bad_keys() {
    let app = TestApp::start().await;
    app.team("vision").await;
    let (_, sa_key) = app.team_sa("vision", "bot").await;
    for (key, status, words) in [
        (
            sa_key.as_str(),
            StatusCode::FORBIDDEN,
            "cannot sign in to the console",
        ),
        ("fgk_not-a-key", StatusCode::UNAUTHORIZED, "nvalid API key"),
        ("", StatusCode::BAD_REQUEST, "Enter an API key"),
    ] {
        let resp = raw()
            .post(app.url("/login"))
            .header("origin", app.base.clone())
            .form(&[("api_key", key)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{key:?}");
        assert!(
            resp.headers()
                .get_all("set-cookie")
                .iter()
                .all(|c| !c.to_str().unwrap().starts_with("fedgate_session="))
        );
        assert!(resp.text().await.unwrap().contains(words), "{key}");
    }
    // Another org's pages are 404 for a signed-in person.
    let session = sign_in(&app, &app.admin_key).await;
    let resp = raw()
        .get(app.url("/org/elsewhere"))
        .header("cookie", format!("fedgate_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = raw()
        .get(app.url("/no-such-team/service-accounts"))
        .header("cookie", format!("fedgate_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn teams_cannot_shadow_console_or_api_paths() {
    let app = TestApp::start().await;
    for name in [
        "org", "api", "oidc", "sso", "static", "login", "logout", "healthz", "readyz", "metrics",
        "graphql", "oauth", "Login",
    ] {
        let (s, b) = app
            .post(
                "/api/v1/orgs/default/teams",
                Some(&app.admin_key),
                json!({"name": name}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{name}: {b}");
        assert!(message(&b).contains("reserved"), "{name}: {b}");
    }
    // Every first path segment the API serves is reserved too.
    let (_, doc) = app.get("/openapi.json", None).await;
    for path in doc["paths"].as_object().unwrap().keys() {
        let first = path.trim_start_matches('/').split('/').next().unwrap();
        if first.starts_with('.') {
            continue; // not a valid team name anyway
        }
        let (s, b) = app
            .post(
                "/api/v1/orgs/default/teams",
                Some(&app.admin_key),
                json!({"name": first}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "/{first} is served: {b}");
    }
    app.stop().await;
}

#[tokio::test]
async fn sso_settings_are_checked_and_for_org_admins_only() {
    let app = TestApp::start().await;
    let member = app.user("sam", "member").await;
    let idp = TestIdp::start().await;
    idp.enable_sso("c", "s");
    let body = json!({"issuer": idp.issuer(), "client_id": "c", "client_secret": "s"});
    let (s, b) = app
        .put("/api/v1/orgs/default/sso", Some(&member), body.clone())
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    // No provider there: refused with the reason.
    let (s, b) = app
        .put(
            "/api/v1/orgs/default/sso",
            Some(&app.admin_key),
            json!({"issuer": "http://127.0.0.1:9", "client_id": "c", "client_secret": "s"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("cannot be used for sign-in"), "{b}");
    // Not https, not loopback.
    let (s, b) = app
        .put(
            "/api/v1/orgs/default/sso",
            Some(&app.admin_key),
            json!({"issuer": "http://idp.example.com", "client_id": "c", "client_secret": "s"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    // The first save needs a secret.
    let (s, b) = app
        .put(
            "/api/v1/orgs/default/sso",
            Some(&app.admin_key),
            json!({"issuer": idp.issuer(), "client_id": "c"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = app
        .put("/api/v1/orgs/default/sso", Some(&app.admin_key), body)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .get("/api/v1/orgs/default/sso", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["client_id"], "c");
    assert!(b.get("client_secret").is_none(), "never shown: {b}");

    // A person the org does not know is not created (create_users is off).
    idp.sign_in_as("stranger@example.com");
    let (status, text) = sso_round_trip(&app).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(text.contains("o user of organization"), "{text}");

    let (s, _) = app
        .delete("/api/v1/orgs/default/sso", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .get("/api/v1/orgs/default/sso", Some(&app.admin_key))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// A test IdP set up (by the org admin, over the API) as the default org's
/// SSO provider, where `email` signs in; also the API's answer.
async fn sso_provider(app: &TestApp, email: &str) -> (TestIdp, Value) {
    let idp = TestIdp::start().await;
    idp.enable_sso("fedgate-console", "console-secret");
    idp.sign_in_as(email);
    let (s, b) = app
        .put(
            "/api/v1/orgs/default/sso",
            Some(&app.admin_key),
            json!({"issuer": idp.issuer(), "client_id": "fedgate-console", "client_secret": "console-secret"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    (idp, b)
}

/// Runs an SSO sign-in for org `default` with reqwest, following the
/// redirects by hand and carrying the `state` cookie; returns the callback's
/// answer.
async fn sso_round_trip(app: &TestApp) -> (StatusCode, String) {
    let (status, _, text) = sso_sign_in(app).await;
    (status, text)
}

/// [`sso_round_trip`], also returning the session cookie's value it set, if any.
async fn sso_sign_in(app: &TestApp) -> (StatusCode, Option<String>, String) {
    let http = raw();
    let resp = http
        .post(app.url("/login/sso"))
        .header("origin", app.base.clone())
        .form(&[("org", "default")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "start");
    let state_cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("fedgate_sso="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let to_idp = resp.headers()["location"].to_str().unwrap().to_string();
    let resp = http.get(&to_idp).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND, "authorize");
    let back = resp.headers()["location"].to_str().unwrap().to_string();
    let resp = http
        .get(&back)
        .header("cookie", state_cookie)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("fedgate_session="))
        .and_then(|v| v.trim_start_matches("fedgate_session=").split(';').next())
        .map(String::from);
    (status, session, resp.text().await.unwrap())
}

/// Turn off SSO on the Settings tab: shown to org admins only, a typed
/// confirmation, refused without the forgery checks or to a member who posts
/// it anyway, and then the same as `DELETE …/sso`: audited, Sign in with SSO
/// stops redirecting to the provider, and sessions already open are kept.
#[tokio::test]
async fn org_admins_turn_off_sso_in_the_console() {
    let app = TestApp::start().await;
    let member_key = app.user("sam", "member").await;
    app.user("ola", "member").await;
    let (_idp, _) = sso_provider(&app, "ola@example.com").await;
    let sso_is_on = || async {
        app.get("/api/v1/orgs/default/sso", Some(&app.admin_key))
            .await
            .0
            == StatusCode::OK
    };
    // ola signs in with SSO before it is turned off.
    let (s, ola, text) = sso_sign_in(&app).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{text}");
    let ola = ola.expect("an SSO session");
    const PATH: &str = "/org/default/settings/sso/turn-off";

    // A member sees neither the button nor the confirmation page, and a
    // forced POST is refused by the service with its rule.
    let sam = sign_in(&app, &member_key).await;
    let (s, page) = console_get(&app, &sam, "/org/default/settings").await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(!page.contains("Turn off SSO"), "{page}");
    let (s, page) = console_get(&app, &sam, PATH).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{page}");
    assert!(!page.contains("name=\"confirm\""), "{page}");
    let (s, page) = console_post(&app, &sam, PATH, &[("confirm", "default")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("Denied (admin."), "{page}");
    assert!(sso_is_on().await, "a member's POST changes nothing");

    // The org admin sees Turn off SSO, which leads to the confirmation page.
    let admin = sign_in(&app, &app.admin_key).await;
    let (s, page) = console_get(&app, &admin, "/org/default/settings").await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains("Single sign-on is on"), "{page}");
    assert!(page.contains(&format!("action=\"{PATH}\"")), "{page}");
    let (s, page) = console_get(&app, &admin, PATH).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains("Type the name to confirm"), "{page}");
    assert!(page.contains(">Turn off SSO</button>"), "{page}");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the form's token")
        .to_string();

    // Without Origin, Sec-Fetch-Site or the form's token: refused before
    // any service runs; so is another site's Origin, and a mistyped name.
    let forged = |origin: Option<&str>, csrf: &str| {
        let mut req = raw()
            .post(app.url(PATH))
            .header("cookie", format!("fedgate_session={admin}"))
            .form(&[("confirm", "default"), ("csrf", csrf)]);
        if let Some(o) = origin {
            req = req.header("origin", o.to_string());
        }
        req
    };
    for (origin, token) in [
        (None, ""),
        (None, "stale"),
        (Some("http://evil.example"), csrf.as_str()),
    ] {
        let resp = forged(origin, token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{origin:?} {token:?}");
        assert!(resp.text().await.unwrap().contains("cross-site"));
    }
    let (s, page) = console_post(&app, &admin, PATH, &[("confirm", "defaul")]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("Single sign-on stays on"), "{page}");
    assert!(sso_is_on().await, "nothing refused changed anything");

    // Confirmed (here with the form's token and no Origin, as a browser
    // that sends neither would).
    let resp = forged(None, &csrf).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("Turned off single sign-on for default"),
        "{page}"
    );
    assert!(page.contains("Single sign-on is not configured."), "{page}");
    assert!(!page.contains("Turn off SSO"), "{page}");
    assert!(!sso_is_on().await);
    // Audited as the API's DELETE is.
    let (s, audit) = app
        .get(
            "/api/v1/orgs/default/audit?action=sso.delete&outcome=success",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(events[0]["actor"], "user:admin", "{audit}");
    // Once off, there is nothing to turn off.
    let (s, page) = console_get(&app, &admin, PATH).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{page}");
    let (s, page) = console_post(&app, &admin, PATH, &[("confirm", "default")]).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{page}");

    // Sign in with SSO no longer goes to the provider.
    let resp = raw()
        .post(app.url("/login/sso"))
        .header("origin", app.base.clone())
        .form(&[("org", "default")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());
    assert!(resp.text().await.unwrap().contains("not set up"));
    // A session opened with SSO is kept, as after `DELETE …/sso`.
    let (s, page) = console_get(&app, &ola, "/org/default").await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains(">Sign out</button>"), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn sso_callbacks_are_bound_to_the_browser_and_used_once() {
    let app = TestApp::start().await;
    app.user("ola", "member").await;
    let (_idp, _) = sso_provider(&app, "ola@example.com").await;
    let (status, _) = sso_round_trip(&app).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a known, verified email signs in"
    );

    // A callback without the browser's state cookie (login CSRF) is refused,
    // and so is a replayed one.
    let http = raw();
    let resp = http
        .post(app.url("/login/sso"))
        .header("origin", app.base.clone())
        .form(&[("org", "default")])
        .send()
        .await
        .unwrap();
    let to_idp = resp.headers()["location"].to_str().unwrap().to_string();
    let state_cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("fedgate_sso="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let back = http.get(&to_idp).send().await.unwrap().headers()["location"]
        .to_str()
        .unwrap()
        .to_string();
    let resp = http.get(&back).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = http
        .get(&back)
        .header("cookie", state_cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = http
        .get(&back)
        .header("cookie", state_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "replayed");
    assert!(resp.text().await.unwrap().contains("already used"));
    // Unknown org: the same words as an org without SSO.
    let resp = http
        .post(app.url("/login/sso"))
        .header("origin", app.base.clone())
        .form(&[("org", "nowhere")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("not set up"));
    let _: Value = json!(null);
    app.stop().await;
}

/// A console form posted from the console's own origin with a session.
async fn console_post(
    app: &TestApp,
    session: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let resp = raw()
        .post(app.url(path))
        .header("cookie", format!("fedgate_session={session}"))
        .header("origin", app.base.clone())
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

async fn console_get(app: &TestApp, session: &str, path: &str) -> (StatusCode, String) {
    let resp = raw()
        .get(app.url(path))
        .header("cookie", format!("fedgate_session={session}"))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

/// Every other row action the API offers, over the console's forms: a user
/// edited and deleted, a team member and a project member removed, a project,
/// a team (refused while not empty unless its contents go too) and a trusted
/// issuer (refused while an account is bound to it) deleted. Each deletion
/// needs the typed name; a mistyped one changes nothing.
#[tokio::test]
async fn row_actions_delete_and_edit_only_after_confirmation() {
    let app = TestApp::start().await;
    app.team("vision").await;
    app.team("audio").await;
    let uma_key = app.user("uma", "member").await;
    app.member("vision", "uma", "member").await;
    app.project("vision", "imagenet", "restricted").await;
    let (s, b) = app
        .post(
            "/api/v1/projects/vision/imagenet/members",
            Some(&app.admin_key),
            json!({"username": "uma", "role": "member"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    app.project("audio", "speech", "team").await;
    let idp = TestIdp::start().await;
    let issuer_id = app.trust(&idp).await;
    app.external_sa(
        "vision",
        "vision-ci",
        json!({"issuer": idp.issuer(), "subject": "repo:acme/x:ref:refs/heads/main"}),
    )
    .await;
    let session = sign_in(&app, &app.admin_key).await;

    // A user: Edit (email, role), then Delete.
    let (s, page) = console_get(&app, &session, "/org/default/users/uma/edit").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("uma@example.com"), "prefilled");
    let (s, page) = console_post(
        &app,
        &session,
        "/org/default/users/uma/edit",
        &[("email", "not-an-email"), ("role", "member")],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("id=\"edit-error\""), "inline: {page}");
    let (s, page) = console_post(
        &app,
        &session,
        "/org/default/users/uma/edit",
        &[("email", "uma@acme.example"), ("role", "admin")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let (_, u) = app.get("/api/v1/users/uma", Some(&app.admin_key)).await;
    assert_eq!(
        (u["email"].as_str(), u["role"].as_str()),
        (Some("uma@acme.example"), Some("admin"))
    );

    // A user's API key minted in the console (shown once) and revoked.
    let (s, page) = console_post(&app, &session, "/org/default/users/uma/keys", &[]).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let new_key = page
        .split("id=\"newkey-uma\" readonly value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the new key, shown once")
        .to_string();
    assert_eq!(
        app.get("/api/v1/viewer", Some(&new_key)).await.0,
        StatusCode::OK
    );
    let (_, keys) = app
        .get("/api/v1/users/uma/api-keys", Some(&app.admin_key))
        .await;
    let newest = keys["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| new_key.starts_with(k["prefix"].as_str().unwrap_or("-")))
        .and_then(|k| k["id"].as_str())
        .expect("listed")
        .to_string();
    let (s, page) = console_post(
        &app,
        &session,
        &format!("/org/default/users/uma/keys/{newest}/revoke"),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(
        app.get("/api/v1/viewer", Some(&new_key)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/viewer", Some(&uma_key)).await.0,
        StatusCode::OK
    );

    // A project member and a team member removed.
    let (s, page) = console_post(
        &app,
        &session,
        "/vision/projects/imagenet/members/uma/remove",
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains("Removed uma from project imagenet"), "{page}");
    let (s, page) = console_post(&app, &session, "/vision/members/uma/remove", &[]).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let (_, m) = app
        .get("/api/v1/teams/vision/members", Some(&app.admin_key))
        .await;
    assert!(!m.to_string().contains("\"uma\""), "{m}");

    // Deletions: the confirmation page first, then the typed name.
    let (s, page) = console_get(&app, &session, "/org/default/users/uma/delete").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("Type the name to confirm"), "{page}");
    let (s, page) = console_post(
        &app,
        &session,
        "/org/default/users/uma/delete",
        &[("confirm", "um")],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(page.contains("Nothing was deleted"), "{page}");
    assert_eq!(
        app.get("/api/v1/viewer", Some(&uma_key)).await.0,
        StatusCode::OK
    );
    let (s, page) = console_post(
        &app,
        &session,
        "/org/default/users/uma/delete",
        &[("confirm", "uma")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains("Deleted user uma"), "{page}");
    assert_eq!(
        app.get("/api/v1/viewer", Some(&uma_key)).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (s, page) = console_post(
        &app,
        &session,
        "/vision/projects/imagenet/delete",
        &[("confirm", "imagenet")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(
        app.get("/api/v1/projects/vision/imagenet", Some(&app.admin_key))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // The issuer's Edit: its settings prefilled; a bad value refused in the
    // form; a saved change is the API's.
    let edit = format!("/org/default/settings/issuers/{issuer_id}/edit");
    let (s, page) = console_get(&app, &session, &edit).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains("name=\"leeway_s\""), "{page}");
    let (s, page) = console_post(
        &app,
        &session,
        &edit,
        &[
            ("audiences", "default"),
            ("max_token_age_s", "3600"),
            ("leeway_s", "soon"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("Leeway must be a whole number"), "{page}");
    let (s, page) = console_post(
        &app,
        &session,
        &edit,
        &[
            ("audiences", "default fedgate-ci"),
            ("max_token_age_s", "3600"),
            ("leeway_s", "30"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let (_, i) = app
        .get(
            &format!("/api/v1/orgs/default/issuers/{issuer_id}"),
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(i["audiences"], json!(["default", "fedgate-ci"]), "{i}");
    assert_eq!(i["leeway_s"], 30, "{i}");

    // The issuer is still bound to vision-ci: refused with the reason.
    let path = format!("/org/default/settings/issuers/{issuer_id}/delete");
    let (s, page) = console_get(&app, &session, &path).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains(&idp.issuer()),
        "names what is deleted: {page}"
    );
    let (s, page) = console_post(&app, &session, &path, &[("confirm", &idp.issuer())]).await;
    assert_eq!(s, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("still bound"), "{page}");

    // A team with a project: refused unless its contents go too.
    let (s, page) = console_post(
        &app,
        &session,
        "/org/default/teams/audio/delete",
        &[("confirm", "audio")],
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("speech"), "names what lives in it: {page}");
    let (s, page) = console_post(
        &app,
        &session,
        "/org/default/teams/audio/delete",
        &[("confirm", "audio"), ("option", "true")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains("Projects deleted with it: speech"), "{page}");
    assert_eq!(
        app.get("/api/v1/teams/audio", Some(&app.admin_key)).await.0,
        StatusCode::NOT_FOUND
    );
    // Deleting vision with its accounts frees the issuer.
    let (s, page) = console_post(
        &app,
        &session,
        "/org/default/teams/vision/delete",
        &[("confirm", "vision"), ("option", "true")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let (s, page) = console_post(&app, &session, &path, &[("confirm", &idp.issuer())]).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains("Deleted the trusted issuer"), "{page}");
    app.stop().await;
}
