//! The admin console: a third face over `crate::service`, beside `crate::http`
//! (the API) and `crate::client`. Server-rendered HTML (askama templates in
//! `templates/`), one stylesheet and one small script embedded in the binary
//! (`assets/`), forms that work without JavaScript. A page handler reads the
//! session, calls the same service function the API handler calls, and renders
//! the result or the denial's reason; no rule lives here. Routes are below;
//! sessions and cookies in [`session`], SSO in [`sso`], one module per page.

pub mod accounts;
pub mod audit;
pub mod login;
pub mod session;
pub mod settings;
pub mod sso;
pub mod team;
pub mod teams;
pub mod users;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::service::ServiceError;
use crate::state::AppState;

use self::session::Console;

/// The console's routes; merged into the one router by `crate::http::router`.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .route("/favicon.ico", get(no_icon))
        .route("/login", get(login::page).post(login::with_api_key))
        .route("/login/sso", post(sso::start))
        .route("/sso/callback", get(sso::callback))
        .route("/logout", post(login::sign_out))
        .route("/org/{org}", get(accounts::org_page))
        .route("/org/{org}/service-accounts", post(accounts::org_create))
        .route(
            "/org/{org}/service-accounts/{id}/{action}",
            post(accounts::org_action),
        )
        .route(
            "/org/{org}/service-accounts/{id}/edit",
            get(accounts::org_edit_page).post(accounts::org_edit),
        )
        .route(
            "/org/{org}/service-accounts/{id}/delete",
            get(accounts::org_delete_page).post(accounts::org_delete),
        )
        .route(
            "/org/{org}/service-accounts/{id}/keys/{key}/revoke",
            post(accounts::org_revoke),
        )
        .route("/org/{org}/teams", get(teams::page).post(teams::create))
        .route("/org/{org}/users", get(users::page).post(users::create))
        .route("/org/{org}/users/{username}/{action}", post(users::toggle))
        .route(
            "/org/{org}/users/{username}/keys/{key}/revoke",
            post(users::revoke_key),
        )
        .route(
            "/org/{org}/users/{username}/edit",
            get(users::edit_page).post(users::edit),
        )
        .route(
            "/org/{org}/users/{username}/delete",
            get(users::delete_page).post(users::delete),
        )
        .route(
            "/org/{org}/teams/{team}/delete",
            get(teams::delete_page).post(teams::delete),
        )
        .route("/org/{org}/settings", get(settings::page))
        .route("/org/{org}/settings/issuers", post(settings::create_issuer))
        .route(
            "/org/{org}/settings/issuers/{id}/{action}",
            post(settings::issuer_action),
        )
        .route(
            "/org/{org}/settings/issuers/{id}/edit",
            get(settings::edit_issuer_page).post(settings::edit_issuer),
        )
        .route(
            "/org/{org}/settings/issuers/{id}/delete",
            get(settings::delete_issuer_page).post(settings::delete_issuer),
        )
        .route("/org/{org}/settings/sso", post(settings::save_sso))
        .route(
            "/org/{org}/settings/sso/turn-off",
            get(settings::turn_off_sso_page).post(settings::turn_off_sso),
        )
        .route("/org/{org}/settings/explain", post(settings::explain))
        .route("/org/{org}/audit", get(audit::page))
        .route("/{team}", get(team::page))
        .route("/{team}/members", post(team::add_member))
        .route(
            "/{team}/members/{username}/remove",
            post(team::remove_member),
        )
        .route("/{team}/projects", post(team::create_project))
        .route(
            "/{team}/projects/{project}/visibility",
            post(team::set_visibility),
        )
        .route(
            "/{team}/projects/{project}/members",
            post(team::add_project_member),
        )
        .route(
            "/{team}/projects/{project}/members/{member}/remove",
            post(team::remove_project_member),
        )
        .route(
            "/{team}/projects/{project}/delete",
            get(team::delete_project_page).post(team::delete_project),
        )
        .route(
            "/{team}/service-accounts",
            get(accounts::team_page).post(accounts::team_create),
        )
        .route(
            "/{team}/service-accounts/{id}/{action}",
            post(accounts::team_action),
        )
        .route(
            "/{team}/service-accounts/{id}/keys/{key}/revoke",
            post(accounts::team_revoke),
        )
        .route(
            "/{team}/service-accounts/{id}/edit",
            get(accounts::team_edit_page).post(accounts::team_edit),
        )
        .route(
            "/{team}/service-accounts/{id}/delete",
            get(accounts::team_delete_page).post(accounts::team_delete),
        )
        .layer(middleware::from_fn_with_state(state, forgery_guard))
}

/// What every page's frame shows.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    pub title: String,
    /// The signed-in person (`None` on the sign-in page).
    pub who: Option<String>,
    pub org: String,
    pub csrf: String,
    pub notice: Option<String>,
    pub error: Option<String>,
}

impl Console {
    /// The frame of a page for this person.
    pub fn layout(&self, title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            who: Some(self.principal.describe()),
            org: self.principal.org_name.clone(),
            csrf: self.csrf.clone(),
            notice: None,
            error: None,
        }
    }
}

/// The outcome of a form: a notice or an error shown above the page.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub notice: Option<String>,
    pub error: Option<String>,
    pub status: Option<StatusCode>,
}

impl Outcome {
    pub fn done(notice: impl Into<String>) -> Self {
        Outcome {
            notice: Some(notice.into()),
            ..Outcome::default()
        }
    }
    /// A refused form: the service's reason, and the status the API would answer.
    pub fn failed(e: &ServiceError) -> Self {
        Outcome {
            notice: None,
            error: Some(denial(e)),
            status: Some(status_of(e)),
        }
    }
    pub fn apply(&self, layout: &mut Layout) {
        layout.notice.clone_from(&self.notice);
        layout.error.clone_from(&self.error);
    }
    /// A tab's answer: its page with this outcome's status (200 unless a
    /// form was refused), or the error page when the page itself failed.
    pub fn respond<T: askama::Template>(
        &self,
        c: &Console,
        page: Result<T, ServiceError>,
    ) -> Response {
        match page {
            Ok(p) => render_status(self.status.unwrap_or(StatusCode::OK), &p),
            Err(e) => error_page(Some(c), e),
        }
    }
}

/// A service error in words: denials name their rule.
pub fn denial(e: &ServiceError) -> String {
    match e {
        ServiceError::Forbidden { rule, reason } => format!("Denied ({rule}): {reason}"),
        ServiceError::Unavailable(_) => {
            "A dependency of fedgate is unavailable; try again shortly.".into()
        }
        other => {
            let text = other.to_string();
            let mut chars = text.chars();
            match chars.next() {
                Some(c) => c.to_uppercase().collect::<String>() + chars.as_str(),
                None => text,
            }
        }
    }
}

/// The HTTP status the API gives the same error.
pub fn status_of(e: &ServiceError) -> StatusCode {
    match e {
        ServiceError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ServiceError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        ServiceError::Forbidden { .. } => StatusCode::FORBIDDEN,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::Conflict(_) | ServiceError::Exists { .. } => StatusCode::CONFLICT,
        ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

// ---------------------------------------------------------------- confirmation

/// The confirmation step of a destructive row action, without JavaScript:
/// a page that says what will go, and a form where the person types the
/// name of what they delete. The POST checks the typed name again.
#[derive(askama::Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub layout: Layout,
    /// E.g. "Delete service account ci-bot".
    pub heading: String,
    /// What happens, in plain words.
    pub consequences: Vec<String>,
    /// Where the form posts.
    pub action: String,
    /// What must be typed.
    pub name: String,
    /// The page to go back to.
    pub back: String,
    /// The label of an extra checkbox (field `option`), e.g. a team's contents.
    pub option: Option<String>,
    /// The submit button's words, e.g. "Delete".
    pub button: &'static str,
}

impl ConfirmPage {
    /// Renders the page (400 with the error after a mistyped name).
    pub fn show(mut self, error: Option<String>) -> Response {
        let status = if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        self.layout.error = error;
        render_status(status, &self)
    }
}

/// The confirmation form's fields.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    pub confirm: String,
    /// The confirmation page's extra checkbox, when it has one.
    #[serde(default)]
    pub option: Option<String>,
}

impl ConfirmForm {
    /// Whether the person typed `name` exactly (surrounding spaces aside).
    pub fn confirms(&self, name: &str) -> bool {
        self.confirm.trim() == name
    }
}

/// The refusal shown when the typed name does not match.
pub fn not_confirmed(name: &str) -> String {
    format!("Nothing was deleted: type {name} exactly to confirm.")
}

// ---------------------------------------------------------------- paging

/// Rows per page of a console list (the API's own default is larger).
pub const PAGE_SIZE: i64 = 50;

/// `?after=&limit=` of a list page: `after` is the last name of the previous
/// page (the API's `next_after`), `limit` the page size (default [`PAGE_SIZE`]).
/// A page with several paged lists reads each list's pair under its own
/// prefix ([`PageParams::list`]).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub after: String,
    #[serde(default)]
    pub limit: String,
    /// Prefixed to `after` and `limit` in this list's links (`""` for a
    /// page's main list).
    #[serde(skip)]
    pub prefix: String,
    /// The other lists' parameters, kept in this list's links so paging it
    /// moves no other list.
    #[serde(skip)]
    pub keep: Vec<(String, String)>,
}

impl ListQuery {
    /// The service's page; a limit that is not a number is refused in words
    /// (the service checks the range).
    pub fn page(&self) -> Result<crate::service::Page, ServiceError> {
        let limit = match self.limit.trim() {
            "" => PAGE_SIZE,
            text => text.parse::<i64>().map_err(|_| {
                ServiceError::BadRequest(format!(
                    "limit must be a whole number, got {:?}",
                    crate::model::truncate(text, 20)
                ))
            })?,
        };
        Ok(crate::service::Page {
            limit: Some(limit),
            after: Some(self.after.clone()).filter(|a| !a.is_empty()),
        })
    }

    /// The First page / Next page links of a list at `path`, given the
    /// service's `next_after`.
    pub fn pager(&self, path: &str, next_after: Option<&str>) -> Pager {
        let href = |after: Option<&str>| {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &self.keep {
                q.append_pair(k, v);
            }
            if !self.limit.trim().is_empty() {
                q.append_pair(&format!("{}limit", self.prefix), self.limit.trim());
            }
            if let Some(a) = after {
                q.append_pair(&format!("{}after", self.prefix), a);
            }
            let q = q.finish();
            if q.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{q}")
            }
        };
        Pager {
            first: (!self.after.is_empty()).then(|| href(None)),
            next: next_after.map(|a| href(Some(a))),
            label: None,
        }
    }
}

/// The query of a page that shows several paged lists (a team's members and
/// each project's members): every list has its own `<prefix>after` and
/// `<prefix>limit`, so one list's position never pages another, and each
/// list's links carry the others' positions along.
#[derive(Clone, Debug, Default)]
pub struct PageParams(Vec<(String, String)>);

impl PageParams {
    /// Keeps only paging parameters (`after`, `limit`, `<prefix>after`,
    /// `<prefix>limit`), first occurrence of each.
    pub fn new(raw: Vec<(String, String)>) -> Self {
        let mut kept: Vec<(String, String)> = Vec::new();
        for (k, v) in raw {
            let paging = ["after", "limit"]
                .iter()
                .any(|n| k == *n || k.ends_with(&format!(".{n}")));
            if paging && !kept.iter().any(|(seen, _)| *seen == k) {
                kept.push((k, v));
            }
        }
        PageParams(kept)
    }

    fn get(&self, key: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// The list whose parameters are `<prefix>after` and `<prefix>limit`.
    pub fn list(&self, prefix: &str) -> ListQuery {
        let (after, limit) = (format!("{prefix}after"), format!("{prefix}limit"));
        ListQuery {
            after: self.get(&after),
            limit: self.get(&limit),
            prefix: prefix.to_string(),
            keep: self
                .0
                .iter()
                .filter(|(k, _)| *k != after && *k != limit)
                .cloned()
                .collect(),
        }
    }
}

/// The links under a paged list (the Audit tab's, for names instead of sequence numbers).
#[derive(Clone, Debug, Default)]
pub struct Pager {
    pub first: Option<String>,
    pub next: Option<String>,
    /// The links' accessible name when a page has several lists ("Pages" otherwise).
    pub label: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    heading: String,
    message: String,
}

/// A whole-page error: 404 for what is missing or another org's, the
/// denial's reason for 403, "internal error" for bugs (logged, never shown).
pub fn error_page(c: Option<&Console>, e: ServiceError) -> Response {
    if let ServiceError::Internal(m) = &e {
        tracing::error!(error = %m, "internal error on a console page");
    }
    let status = status_of(&e);
    let heading = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::BAD_REQUEST => "Cannot do that",
        StatusCode::SERVICE_UNAVAILABLE => "Temporarily unavailable",
        _ => "Something went wrong",
    };
    let mut layout = match c {
        Some(c) => c.layout(heading),
        None => Layout {
            title: heading.into(),
            ..Layout::default()
        },
    };
    layout.error = None;
    let page = ErrorPage {
        layout,
        heading: heading.into(),
        message: denial(&e),
    };
    render_status(status, &page)
}

/// The pages' Content-Security-Policy: nothing but this site's stylesheet and script.
const CSP_PAGES: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// The sign-in page's: "Sign in with SSO" is a form whose answer redirects to
/// the org's provider, which `form-action 'self'` would block.
pub const CSP_SIGN_IN: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Renders a template as a 200 HTML page.
pub fn render<T: askama::Template>(t: &T) -> Response {
    render_status(StatusCode::OK, t)
}

/// Renders a template with a status; a template failure is a logged 500.
pub fn render_status<T: askama::Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(html) => {
            let mut resp = (status, Html(html)).into_response();
            let h = resp.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                "content-security-policy",
                HeaderValue::from_static(CSP_PAGES),
            );
            h.insert("x-frame-options", HeaderValue::from_static("DENY"));
            h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// `GET /`: the person's org dashboard, or the sign-in page.
async fn home(c: Result<Console, Response>) -> Response {
    match c {
        Ok(c) => Redirect::to(&format!("/org/{}", c.principal.org_name)).into_response(),
        Err(_) => Redirect::to("/login").into_response(),
    }
}

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

/// Browsers ask for it on every site; there is none.
async fn no_icon() -> StatusCode {
    StatusCode::NOT_FOUND
}

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

// ---------------------------------------------------------------- forgery

/// What the browser's own headers say about where a request comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum Origin {
    SameOrigin,
    /// Another site (the reason names the header).
    Foreign(String),
    /// Neither `Origin` nor `Sec-Fetch-Site`: the form token decides.
    Unknown,
}

/// Reads `Origin` and `Sec-Fetch-Site` against the public URL's origin.
pub fn origin_of(headers: &HeaderMap, public_url: &str) -> Origin {
    let ours = url::Url::parse(public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        if origin != ours {
            return Origin::Foreign(format!(
                "the request comes from {:?}, not from {ours}",
                crate::model::truncate(origin, 100)
            ));
        }
        return Origin::SameOrigin;
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("same-origin") => Origin::SameOrigin,
        Some(other) => Origin::Foreign(format!(
            "the browser says the request comes from a {:?} page",
            crate::model::truncate(other, 30)
        )),
        None => Origin::Unknown,
    }
}

/// Every state-changing console request must come from the console itself:
/// `Origin` (or `Sec-Fetch-Site`) must name this site; when a browser sends
/// neither, the form's `csrf` field must match the session's (or, before
/// sign-in, the sign-in page's) token.
async fn forgery_guard(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    match origin_of(req.headers(), &app.config.public_url) {
        Origin::SameOrigin => next.run(req).await,
        Origin::Foreign(reason) => forged(&reason),
        Origin::Unknown => {
            let expected = match session::cookie(req.headers(), session::SESSION_COOKIE) {
                Some(secret) => {
                    let hash = crate::secrets::sha256_hex(secret.as_bytes());
                    match app.store.session_by_hash(&hash).await {
                        Ok(Some(row)) => Some(row.csrf),
                        Ok(None) => None,
                        Err(e) => return error_page(None, e.into()),
                    }
                }
                None => session::cookie(req.headers(), session::LOGIN_COOKIE).map(String::from),
            };
            let (parts, body) = req.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, crate::http::MAX_BODY_BYTES).await else {
                return error_page(
                    None,
                    ServiceError::BadRequest("the form is too large".into()),
                );
            };
            let sent = url::form_urlencoded::parse(&bytes)
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v.into_owned());
            let ok = match (&expected, &sent) {
                (Some(e), Some(s)) => {
                    !e.is_empty()
                        && crate::secrets::sha256_hex(e.as_bytes())
                            == crate::secrets::sha256_hex(s.as_bytes())
                }
                _ => false,
            };
            if !ok {
                return forged(
                    "the form's token is missing or stale; reload the page and try again",
                );
            }
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

fn forged(reason: &str) -> Response {
    error_page(
        None,
        ServiceError::Forbidden {
            rule: "console.same_origin",
            reason: format!("refused as a possible cross-site request forgery: {reason}"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> PageParams {
        PageParams::new(
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    #[test]
    fn each_list_reads_only_its_own_paging_parameters() {
        let p = params("after=bob&limit=2&project.a.after=sa_1&project.a.b.limit=5&q=x");
        let team = p.list("");
        assert_eq!((team.after.as_str(), team.limit.as_str()), ("bob", "2"));
        let a = p.list("project.a.");
        assert_eq!((a.after.as_str(), a.limit.as_str()), ("sa_1", ""));
        // A project whose name starts like another's has its own keys.
        let ab = p.list("project.a.b.");
        assert_eq!((ab.after.as_str(), ab.limit.as_str()), ("", "5"));
        let none = p.list("project.after.");
        assert_eq!((none.after.as_str(), none.limit.as_str()), ("", ""));
    }

    #[test]
    fn a_lists_links_keep_the_other_lists_positions() {
        let p = params("after=bob&limit=2&project.a.after=sa_1&project.a.limit=1&other=dropped");
        let a = p.list("project.a.");
        let pager = a.pager("/vision", Some("sa_2"));
        assert_eq!(
            pager.next.as_deref(),
            Some("/vision?after=bob&limit=2&project.a.limit=1&project.a.after=sa_2")
        );
        assert_eq!(
            pager.first.as_deref(),
            Some("/vision?after=bob&limit=2&project.a.limit=1")
        );
        let team = p.list("");
        let pager = team.pager("/vision", Some("carl"));
        assert_eq!(
            pager.next.as_deref(),
            Some("/vision?project.a.after=sa_1&project.a.limit=1&limit=2&after=carl")
        );
        // A page's main list without other lists: the links as before.
        let plain = ListQuery::default().pager("/org/default/teams", Some("atlas"));
        assert_eq!(
            plain.next.as_deref(),
            Some("/org/default/teams?after=atlas")
        );
        assert_eq!(plain.first, None);
    }
}
