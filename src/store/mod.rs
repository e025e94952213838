//! Persistence behind one trait, with two implementations generated from the
//! same SQL ([`sql`]): embedded SQLite ([`sqlite`]) and PostgreSQL
//! ([`postgres`]). Rows are plain structs; the services turn them into domain
//! values. Times are unix milliseconds.

pub mod postgres;
mod sql;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub use self::postgres::PgStore;
pub use self::sqlite::SqliteStore;

/// What can go wrong in the store, in terms the services can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint: the thing already exists.
    #[error("already exists")]
    Conflict,
    /// The database cannot be reached right now (maps to 503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else; logged, never shown to clients.
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::BeginFailed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) => {
                // PostgreSQL: connection exceptions (class 08), operator
                // intervention such as `pg_terminate_backend` (57P01
                // admin_shutdown) and insufficient resources (53, e.g.
                // too_many_connections while replicas reconnect).
                let code = db.code().unwrap_or_default();
                if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") {
                    StoreError::Unavailable(e.to_string())
                } else {
                    StoreError::Other(e.to_string())
                }
            }
            _ => StoreError::Other(e.to_string()),
        }
    }
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub org_id: String,
    pub username: String,
    pub email: String,
    pub role: String,
    pub created_at: i64,
    /// A disabled person's every credential is refused.
    pub disabled: bool,
    /// Credentials issued before this instant (ms) are refused.
    pub revoked_before: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TeamRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub created_at: i64,
}

/// A user's membership, joined with the team's name.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MembershipRow {
    pub team_id: String,
    pub team_name: String,
    pub user_id: String,
    pub username: String,
    pub role: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ProjectRow {
    pub id: String,
    pub team_id: String,
    pub name: String,
    pub visibility: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ProjectMemberRow {
    pub project_id: String,
    pub principal_id: String,
    pub principal_kind: String,
    pub role: String,
    pub created_at: i64,
}

/// An explicit project member with its name, read in one query.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ProjectMemberListRow {
    #[sqlx(flatten)]
    pub member: ProjectMemberRow,
    /// The username or account name (a deleted principal's last name; empty if unknown).
    pub name: String,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct IssuerRow {
    pub id: String,
    pub org_id: String,
    pub issuer: String,
    pub jwks_uri: Option<String>,
    /// The static JWKS as JSON text.
    pub static_jwks: Option<String>,
    /// JSON array of strings.
    pub audiences: String,
    /// JSON array of algorithm names.
    pub allowed_algs: String,
    pub max_token_age_s: i64,
    pub leeway_s: i64,
    pub single_use_jti: bool,
    pub users: bool,
    pub created_at: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SaRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    /// `org` or `team`.
    pub scope: String,
    /// Default team (org scope) or parent team (team scope).
    pub team_id: String,
    /// `builtin` or `external`.
    pub auth: String,
    pub disabled: bool,
    /// Credentials issued before this instant (ms) are refused.
    pub revoked_before: i64,
    pub max_token_lifetime_s: i64,
    pub created_at: i64,
    /// Free text shown to admins.
    pub description: String,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct BindingRow {
    pub sa_id: String,
    pub issuer_id: String,
    /// `federation::policy::BindingSpec` as JSON.
    pub spec: String,
    /// `enforce`, or `shadow` (matches are audited, nothing is minted).
    pub mode: String,
}

/// An external service account joined with its binding: the columns the
/// federation index compiles, and nothing else (at start-up every column of
/// 10,000 rows costs time to copy and decode).
#[derive(Clone, Debug)]
pub struct IndexAccountRow {
    pub sa_id: String,
    pub name: String,
    pub org_id: String,
    pub team_id: String,
    pub disabled: bool,
    pub max_token_lifetime_s: i64,
    pub issuer_id: String,
    /// `federation::policy::BindingSpec` as JSON.
    pub spec: String,
    /// `enforce` or `shadow`.
    pub mode: String,
}

/// A service account with what its listing shows, read in one query.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SaListRow {
    #[sqlx(flatten)]
    pub sa: SaRow,
    pub team_name: String,
    pub binding_issuer_id: Option<String>,
    pub binding_spec: Option<String>,
    pub binding_mode: Option<String>,
}

/// What remains of a deleted user or service account: its name, for the
/// runs it logged.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeletedPrincipalRow {
    pub id: String,
    pub org_id: String,
    /// `user` or `service_account`.
    pub kind: String,
    pub name: String,
    pub deleted_at: i64,
}

/// What still lives in a team (refuses its deletion unless asked to delete it all).
#[derive(Clone, Debug, Default)]
pub struct TeamContents {
    pub projects: Vec<String>,
    /// Team-scoped service accounts (deleted with the team when asked).
    pub team_accounts: Vec<String>,
    /// Org-scoped accounts whose default team it is (never deleted with it).
    pub org_accounts_defaulting: Vec<String>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub owner_id: String,
    /// `user` or `service_account`.
    pub owner_kind: String,
    pub prefix: String,
    pub secret_hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    /// PKCS#8 DER, base64.
    pub private_key: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RunRow {
    /// Insertion order (set by the store; ignored on insert).
    #[sqlx(default)]
    pub seq: i64,
    pub id: String,
    pub project_id: String,
    pub created_by: String,
    pub created_by_kind: String,
    pub attributed_user_id: Option<String>,
    pub name: String,
    /// JSON text.
    pub config: String,
    pub created_at: i64,
}

/// A run with the names its listing shows, read in one query.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RunListRow {
    #[sqlx(flatten)]
    pub run: RunRow,
    /// The author's name while it exists.
    pub created_by_name: Option<String>,
    /// The name a deleted author had.
    pub created_by_deleted_name: Option<String>,
    /// The attributed user's name while they exist.
    pub attributed_name: Option<String>,
    /// The name a deleted attributed user had.
    pub attributed_deleted_name: Option<String>,
}

/// One call (span) of an LLM trace.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TraceRow {
    /// Insertion order (set by the store; ignored on insert); the page cursor.
    #[sqlx(default)]
    pub seq: i64,
    pub id: String,
    pub project_id: String,
    pub trace_id: String,
    pub parent_id: Option<String>,
    pub op_name: String,
    /// JSON text (an object).
    pub inputs: String,
    /// JSON text, if the call returned.
    pub output: Option<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub created_by: String,
    pub created_by_kind: String,
    pub attributed_user_id: Option<String>,
    pub created_at: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AuditRow {
    pub seq: i64,
    #[sqlx(flatten)]
    pub event: NewAudit,
}

/// An audit event before the store numbers it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct NewAudit {
    pub id: String,
    pub org_id: String,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub reason: String,
    /// fedgate's own id of the request.
    pub request_id: String,
    /// The caller's `X-Request-Id`, if it sent a sane one (else empty).
    pub client_request_id: String,
    pub details: String,
}

/// A console session (issue 13); the cookie holds the secret, the store its hash.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionRow {
    pub id_hash: String,
    pub user_id: String,
    /// The API key the session was signed in with (`None` for SSO).
    pub key_id: Option<String>,
    /// The form token checked when a request has neither Origin nor Sec-Fetch-Site.
    pub csrf: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// An org's OpenID Connect provider for console sign-in.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SsoConfigRow {
    pub org_id: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub create_users: bool,
    pub updated_at: i64,
}

/// An SSO sign-in between the redirect to the provider and its callback.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SsoLoginRow {
    pub state_hash: String,
    pub org_id: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub created_at: i64,
}

/// Audit filters; an empty string matches everything.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor: String,
    pub action: String,
    pub outcome: String,
}

/// Everything fedgate persists. One implementation per database, generated
/// from the same SQL so both backends behave alike.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    /// Opens a transaction for an admin change and its audit event.
    async fn begin(&self) -> StoreResult<Box<dyn StoreTx>>;

    async fn insert_org(&self, org: &OrgRow) -> StoreResult<()>;
    async fn org_by_id(&self, id: &str) -> StoreResult<Option<OrgRow>>;
    async fn org_by_name(&self, name: &str) -> StoreResult<Option<OrgRow>>;
    async fn count_orgs(&self) -> StoreResult<i64>;

    async fn insert_user(&self, user: &UserRow) -> StoreResult<()>;
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRow>>;
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRow>>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRow>>;
    /// One page of an org's users by username, after `after` (exclusive).
    async fn users_of_org(
        &self,
        org_id: &str,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<UserRow>>;
    /// Changes a user's email and org role.
    async fn update_user(&self, id: &str, email: &str, role: &str) -> StoreResult<()>;
    /// Disables (moving the revocation watermark to `now`) or enables a user.
    async fn set_user_disabled(&self, id: &str, disabled: bool, now: i64) -> StoreResult<()>;
    /// Enabled org admins of an org (to keep at least one).
    async fn count_enabled_admins(&self, org_id: &str) -> StoreResult<i64>;
    /// Deletes a user with its memberships, revokes its keys and keeps its
    /// name for its runs, atomically.
    async fn delete_user(&self, user: &UserRow, now: i64) -> StoreResult<()>;
    /// The name a deleted principal had.
    async fn deleted_principal(&self, id: &str) -> StoreResult<Option<DeletedPrincipalRow>>;

    async fn insert_team(&self, team: &TeamRow) -> StoreResult<()>;
    async fn team_by_id(&self, id: &str) -> StoreResult<Option<TeamRow>>;
    async fn team_by_name(&self, name: &str) -> StoreResult<Option<TeamRow>>;
    async fn teams_of_org(&self, org_id: &str) -> StoreResult<Vec<TeamRow>>;
    /// One page of an org's teams by name, after `after` (exclusive).
    async fn teams_page(&self, org_id: &str, after: &str, limit: i64) -> StoreResult<Vec<TeamRow>>;
    async fn all_teams(&self) -> StoreResult<Vec<TeamRow>>;
    async fn all_orgs(&self) -> StoreResult<Vec<OrgRow>>;
    /// Adds a member or changes the role of an existing one.
    async fn upsert_team_member(
        &self,
        team_id: &str,
        user_id: &str,
        role: &str,
        now: i64,
    ) -> StoreResult<()>;
    /// A user's teams, oldest membership first.
    async fn memberships_of_user(&self, user_id: &str) -> StoreResult<Vec<MembershipRow>>;
    async fn members_of_team(&self, team_id: &str) -> StoreResult<Vec<MembershipRow>>;
    /// One page of a team's members by username, after `after` (exclusive): one query.
    async fn team_members_page(
        &self,
        team_id: &str,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<MembershipRow>>;
    /// Removes a member; false when the user was not one.
    async fn remove_team_member(&self, team_id: &str, user_id: &str) -> StoreResult<bool>;
    /// What still lives in a team.
    async fn team_contents(&self, team_id: &str) -> StoreResult<TeamContents>;
    /// Deletes a team with its projects (their runs, traces and members), its
    /// memberships and its team-scoped service accounts (keys revoked, names
    /// kept for their runs), atomically. Org-scoped accounts defaulting to it
    /// make it a `Conflict`.
    async fn delete_team(&self, team_id: &str, now: i64) -> StoreResult<()>;

    async fn insert_project(&self, project: &ProjectRow) -> StoreResult<()>;
    async fn project_by_name(&self, team_id: &str, name: &str) -> StoreResult<Option<ProjectRow>>;
    async fn projects_of_team(&self, team_id: &str) -> StoreResult<Vec<ProjectRow>>;
    async fn set_project_visibility(&self, project_id: &str, visibility: &str) -> StoreResult<()>;
    async fn project_members(&self, project_id: &str) -> StoreResult<Vec<ProjectMemberRow>>;
    /// One page of a project's explicit members by principal id, after
    /// `after` (exclusive), with their names: one query.
    async fn project_members_page(
        &self,
        project_id: &str,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<ProjectMemberListRow>>;
    async fn upsert_project_member(&self, member: &ProjectMemberRow) -> StoreResult<()>;
    /// Removes an explicit member; false when it was not one.
    async fn remove_project_member(
        &self,
        project_id: &str,
        principal_id: &str,
    ) -> StoreResult<bool>;
    /// Deletes a project with its runs, traces and members, atomically.
    async fn delete_project(&self, project_id: &str) -> StoreResult<()>;
    /// One page of a team's projects by name, after `after` (exclusive), and
    /// the explicit members of those projects: two queries, whatever the page size.
    async fn projects_page(
        &self,
        team_id: &str,
        after: &str,
        limit: i64,
    ) -> StoreResult<(Vec<ProjectRow>, Vec<ProjectMemberRow>)>;

    async fn insert_issuer(&self, issuer: &IssuerRow) -> StoreResult<()>;
    /// Replaces every setting of an issuer but its id, org and URL.
    async fn update_issuer(&self, issuer: &IssuerRow) -> StoreResult<()>;
    async fn issuer_by_id(&self, id: &str) -> StoreResult<Option<IssuerRow>>;
    async fn issuers_of_org(&self, org_id: &str) -> StoreResult<Vec<IssuerRow>>;
    /// One page of an org's issuers by URL, after `after` (exclusive).
    async fn issuers_page(
        &self,
        org_id: &str,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<IssuerRow>>;
    async fn all_issuers(&self) -> StoreResult<Vec<IssuerRow>>;
    /// Deletes an issuer that no binding uses; `Conflict` if one does.
    async fn delete_issuer(&self, id: &str) -> StoreResult<bool>;

    /// Creates a service account and, for external ones, its binding, atomically.
    async fn insert_service_account(
        &self,
        sa: &SaRow,
        binding: Option<&BindingRow>,
    ) -> StoreResult<()>;
    async fn service_account_by_id(&self, id: &str) -> StoreResult<Option<SaRow>>;
    async fn service_account_by_name(&self, org_id: &str, name: &str)
    -> StoreResult<Option<SaRow>>;
    async fn service_accounts_of_org(&self, org_id: &str) -> StoreResult<Vec<SaRow>>;
    async fn service_accounts_of_team(&self, team_id: &str) -> StoreResult<Vec<SaRow>>;
    /// One page of an org's accounts (or one team's team-scoped accounts) by
    /// name, after `after` (exclusive), with team name and binding: one query.
    async fn service_accounts_page(
        &self,
        org_id: &str,
        team_id: Option<&str>,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<SaListRow>>;
    /// Replaces an account's name, description, team and lifetime, and its
    /// binding if given, atomically.
    async fn update_service_account(
        &self,
        sa: &SaRow,
        binding: Option<&BindingRow>,
    ) -> StoreResult<()>;
    /// Deletes an account with its binding and memberships, revokes its keys
    /// and keeps its name for its runs, atomically.
    async fn delete_service_account(&self, sa: &SaRow, now: i64) -> StoreResult<()>;
    /// Every external account that has a binding, joined with it: what the
    /// in-memory federation index needs, in one query.
    async fn index_accounts(&self) -> StoreResult<Vec<IndexAccountRow>>;
    /// Disables (moving the revocation watermark to `now`) or enables.
    async fn set_service_account_disabled(
        &self,
        id: &str,
        disabled: bool,
        now: i64,
    ) -> StoreResult<()>;
    async fn binding_of(&self, sa_id: &str) -> StoreResult<Option<BindingRow>>;

    async fn insert_api_key(&self, key: &ApiKeyRow) -> StoreResult<()>;
    async fn api_key_by_hash(&self, secret_hash: &str) -> StoreResult<Option<ApiKeyRow>>;
    async fn api_keys_of(&self, owner_id: &str) -> StoreResult<Vec<ApiKeyRow>>;
    /// Revokes one key of `owner_id`; false when there is no such live key.
    async fn revoke_api_key(&self, owner_id: &str, key_id: &str, now: i64) -> StoreResult<bool>;
    async fn touch_api_key(&self, key_id: &str, now: i64) -> StoreResult<()>;

    async fn insert_signing_key(&self, key: &SigningKeyRow) -> StoreResult<()>;
    /// Live keys and keys retired after `retired_after`, newest first.
    async fn signing_keys(&self, retired_after: i64) -> StoreResult<Vec<SigningKeyRow>>;
    /// Replaces the stored private key of `kid` (`fedgate keys rewrap`).
    async fn update_signing_key(&self, kid: &str, private_key: &str) -> StoreResult<()>;
    /// Retires every live key except `keep_kid`.
    async fn retire_signing_keys_except(&self, keep_kid: &str, now: i64) -> StoreResult<()>;

    async fn insert_run(&self, run: &RunRow) -> StoreResult<()>;
    /// A project's first `limit` runs, oldest first, with the names of
    /// their authors and attributed users (live or deleted): one query.
    async fn runs_of_project(&self, project_id: &str, limit: i64) -> StoreResult<Vec<RunListRow>>;
    /// Stores runs and trace calls in one transaction (`crate::writes`);
    /// a row whose id is stored already is skipped, so a retry is harmless.
    async fn insert_rows(&self, runs: &[&RunRow], traces: &[&TraceRow]) -> StoreResult<()>;

    async fn insert_trace(&self, trace: &TraceRow) -> StoreResult<()>;
    /// One call of a project by id (a new call's parent).
    async fn trace_call(&self, project_id: &str, id: &str) -> StoreResult<Option<TraceRow>>;
    /// A page of a project's calls after `after_seq`, oldest first; only
    /// those of one trace when `trace_id` is given.
    async fn traces_of_project(
        &self,
        project_id: &str,
        trace_id: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<TraceRow>>;

    /// Records a single-use `jti` of the issuer whose `iss` is `issuer`
    /// (the URL, stored in the `issuer_id` column), kept until
    /// `expires_at`; false when it was seen before (replay).
    async fn use_jti(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<bool>;

    async fn insert_audit(&self, events: &[NewAudit]) -> StoreResult<()>;

    /// Tells other replicas that cached state changed (PostgreSQL NOTIFY;
    /// nothing to do for the single-replica SQLite store).
    async fn publish_change(&self, change: &str) -> StoreResult<()>;
    /// Where `publish_change` sends, for `crate::replication` to subscribe;
    /// `None` for a store without push notifications (SQLite: see `poll_changes`).
    fn change_feed(&self) -> Option<ChangeFeed>;
    /// For a store without push notifications (SQLite): the changes other
    /// processes published after sequence number `after` (each
    /// `"<origin> <change>"`) and the last sequence number seen; `None` for a
    /// store whose changes are pushed ([`Store::change_feed`]).
    async fn poll_changes(&self, after: i64) -> StoreResult<Option<(i64, Vec<String>)>>;
    /// For a store without push notifications (SQLite): the sequence number
    /// of the last change published so far, where a poller that has just
    /// loaded its caches starts; `None` for a store whose changes are pushed.
    async fn change_log_end(&self) -> StoreResult<Option<i64>>;
    async fn audit_of_org(
        &self,
        org_id: &str,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditRow>>;

    /// Like `audit_of_org`, keeping only events that match `filter`.
    async fn audit_of_org_filtered(
        &self,
        org_id: &str,
        after_seq: i64,
        limit: i64,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditRow>>;

    async fn insert_session(&self, s: &SessionRow) -> StoreResult<()>;
    async fn session_by_hash(&self, id_hash: &str) -> StoreResult<Option<SessionRow>>;
    async fn touch_session(&self, id_hash: &str, now: i64) -> StoreResult<()>;
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Ends every console session of a user; returns how many.
    async fn delete_sessions_of_user(&self, user_id: &str) -> StoreResult<u64>;
    /// Deletes sessions idle since `seen_before` or created before
    /// `created_before`, and SSO sign-ins started before `seen_before`.
    async fn delete_stale_sessions(
        &self,
        seen_before: i64,
        created_before: i64,
    ) -> StoreResult<u64>;

    /// Creates or replaces an org's SSO settings.
    async fn put_sso_config(&self, c: &SsoConfigRow) -> StoreResult<()>;
    async fn sso_config_of_org(&self, org_id: &str) -> StoreResult<Option<SsoConfigRow>>;
    async fn delete_sso_config(&self, org_id: &str) -> StoreResult<bool>;
    async fn insert_sso_login(&self, l: &SsoLoginRow) -> StoreResult<()>;
    /// Removes and returns a sign-in in flight (each `state` is used once).
    async fn take_sso_login(&self, state_hash: &str) -> StoreResult<Option<SsoLoginRow>>;
}

/// One transaction of writes. An admin change and its audit event are
/// stored through one of these (`App::audit_change_in`), so the event is
/// durable exactly when the change is, before the change is acknowledged.
/// Dropped without [`StoreTx::commit`], it rolls back. The store's own
/// single writes of the same names run through it too.
#[async_trait]
pub trait StoreTx: Send {
    async fn insert_org(&mut self, org: &OrgRow) -> StoreResult<()>;
    async fn insert_user(&mut self, user: &UserRow) -> StoreResult<()>;
    async fn insert_team(&mut self, team: &TeamRow) -> StoreResult<()>;
    async fn upsert_team_member(
        &mut self,
        team_id: &str,
        user_id: &str,
        role: &str,
        now: i64,
    ) -> StoreResult<()>;
    async fn insert_project(&mut self, project: &ProjectRow) -> StoreResult<()>;
    async fn set_project_visibility(
        &mut self,
        project_id: &str,
        visibility: &str,
    ) -> StoreResult<()>;
    async fn upsert_project_member(&mut self, member: &ProjectMemberRow) -> StoreResult<()>;
    async fn insert_issuer(&mut self, issuer: &IssuerRow) -> StoreResult<()>;
    async fn update_issuer(&mut self, issuer: &IssuerRow) -> StoreResult<()>;
    /// `Conflict` if a binding uses it; false if there is no such issuer.
    async fn delete_issuer(&mut self, id: &str) -> StoreResult<bool>;
    async fn insert_service_account(
        &mut self,
        sa: &SaRow,
        binding: Option<&BindingRow>,
    ) -> StoreResult<()>;
    async fn set_service_account_disabled(
        &mut self,
        id: &str,
        disabled: bool,
        now: i64,
    ) -> StoreResult<()>;
    async fn insert_api_key(&mut self, key: &ApiKeyRow) -> StoreResult<()>;
    /// False when `owner_id` has no such live key.
    async fn revoke_api_key(&mut self, owner_id: &str, key_id: &str, now: i64)
    -> StoreResult<bool>;
    async fn update_user(&mut self, id: &str, email: &str, role: &str) -> StoreResult<()>;
    async fn set_user_disabled(&mut self, id: &str, disabled: bool, now: i64) -> StoreResult<()>;
    /// Deletes a user with its memberships, revokes its keys and keeps its name.
    async fn delete_user(&mut self, user: &UserRow, now: i64) -> StoreResult<()>;
    /// False when the user was not a member.
    async fn remove_team_member(&mut self, team_id: &str, user_id: &str) -> StoreResult<bool>;
    /// See [`Store::delete_team`]; `Conflict` while an org-scoped account defaults to it.
    async fn delete_team(&mut self, team_id: &str, now: i64) -> StoreResult<()>;
    /// False when it was not an explicit member.
    async fn remove_project_member(
        &mut self,
        project_id: &str,
        principal_id: &str,
    ) -> StoreResult<bool>;
    /// Deletes a project with its runs, traces and members.
    async fn delete_project(&mut self, project_id: &str) -> StoreResult<()>;
    /// Replaces an account's name, description, team and lifetime, and its binding if given.
    async fn update_service_account(
        &mut self,
        sa: &SaRow,
        binding: Option<&BindingRow>,
    ) -> StoreResult<()>;
    /// Deletes an account with its binding and memberships, revokes its keys, keeps its name.
    async fn delete_service_account(&mut self, sa: &SaRow, now: i64) -> StoreResult<()>;
    /// Creates or replaces an org's SSO settings.
    async fn put_sso_config(&mut self, c: &SsoConfigRow) -> StoreResult<()>;
    /// False when the org had none.
    async fn delete_sso_config(&mut self, org_id: &str) -> StoreResult<bool>;
    async fn insert_audit(&mut self, events: &[NewAudit]) -> StoreResult<()>;
    /// Makes every write of the transaction durable, or none.
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// The backend-specific half of change propagation.
#[async_trait]
pub trait ChangeBus {
    /// Publishes one encoded [`crate::change::Change`].
    async fn publish(&self, change: &str) -> StoreResult<()>;
    /// The feed replicas subscribe to; `None` when there are no other replicas.
    fn feed(&self) -> Option<ChangeFeed> {
        None
    }
    /// See [`Store::poll_changes`].
    async fn poll(&self, _after: i64) -> StoreResult<Option<(i64, Vec<String>)>> {
        Ok(None)
    }
    /// See [`Store::change_log_end`].
    async fn log_end(&self) -> StoreResult<Option<i64>> {
        Ok(None)
    }
}

/// A PostgreSQL NOTIFY channel carrying encoded [`crate::change::Change`]s,
/// and the store's pool, whose connect options (schema, `application_name`)
/// the listener's own connection reuses.
#[derive(Clone, Debug)]
pub struct ChangeFeed {
    pub pool: sqlx::PgPool,
    pub channel: String,
    /// The tag this store puts before the changes it publishes
    /// (`"<origin> <change>"`); a payload without one is a bare change.
    pub origin: String,
}

/// The store as the rest of fedgate holds it.
pub type DynStore = Arc<dyn Store>;

/// Opens the store named by `url` (`sqlite://…` or `postgres://…`) and runs
/// its migrations.
pub async fn open(url: &str) -> anyhow::Result<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PgStore::open(url).await?))
    } else {
        anyhow::bail!(
            "unsupported --database-url {:?}: use sqlite://PATH or postgres://…",
            crate::model::truncate(url, 40)
        )
    }
}
