//! The SQL of every store operation, written once. `impl_sql_store!` expands
//! it for a store type holding `pool: sqlx::Pool<DB>`; SQLite and PostgreSQL
//! both accept `$n` placeholders, `ON CONFLICT`, and the types used here
//! (TEXT, BIGINT, BOOLEAN), so the two backends cannot drift apart.

macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn begin(&self) -> StoreResult<Box<dyn $crate::store::StoreTx>> {
                Ok(Box::new(self.begin_tx().await?))
            }
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn insert_org(&self, org: &OrgRow) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::insert_org(&mut tx, org).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn org_by_id(&self, id: &str) -> StoreResult<Option<OrgRow>> {
                Ok(sqlx::query_as("SELECT * FROM orgs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn org_by_name(&self, name: &str) -> StoreResult<Option<OrgRow>> {
                Ok(sqlx::query_as("SELECT * FROM orgs WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn count_orgs(&self) -> StoreResult<i64> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orgs")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n)
            }

            async fn insert_user(&self, u: &UserRow) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::insert_user(&mut tx, u).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRow>> {
                Ok(sqlx::query_as("SELECT * FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRow>> {
                Ok(sqlx::query_as("SELECT * FROM users WHERE username = $1")
                    .bind(username)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRow>> {
                Ok(sqlx::query_as("SELECT * FROM users WHERE email = $1")
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn users_of_org(&self, org_id: &str, after: &str, limit: i64) -> StoreResult<Vec<UserRow>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM users WHERE org_id = $1 AND username > $2 ORDER BY username LIMIT $3",
                )
                .bind(org_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }
            async fn update_user(&self, id: &str, email: &str, role: &str) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::update_user(&mut tx, id, email, role).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn set_user_disabled(&self, id: &str, disabled: bool, now: i64) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::set_user_disabled(&mut tx, id, disabled, now).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn count_enabled_admins(&self, org_id: &str) -> StoreResult<i64> {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM users WHERE org_id = $1 AND role = 'admin' AND disabled = $2",
                )
                .bind(org_id)
                .bind(false)
                .fetch_one(&self.pool)
                .await?;
                Ok(n)
            }
            async fn delete_user(&self, u: &UserRow, now: i64) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::delete_user(&mut tx, u, now).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn deleted_principal(&self, id: &str) -> StoreResult<Option<DeletedPrincipalRow>> {
                Ok(sqlx::query_as("SELECT * FROM deleted_principals WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn insert_team(&self, t: &TeamRow) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::insert_team(&mut tx, t).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn team_by_id(&self, id: &str) -> StoreResult<Option<TeamRow>> {
                Ok(sqlx::query_as("SELECT * FROM teams WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn team_by_name(&self, name: &str) -> StoreResult<Option<TeamRow>> {
                Ok(sqlx::query_as("SELECT * FROM teams WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn teams_of_org(&self, org_id: &str) -> StoreResult<Vec<TeamRow>> {
                Ok(sqlx::query_as("SELECT * FROM teams WHERE org_id = $1 ORDER BY name")
                    .bind(org_id)
                    .fetch_all(&self.pool)
                    .await?)
            }
            async fn teams_page(&self, org_id: &str, after: &str, limit: i64) -> StoreResult<Vec<TeamRow>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM teams WHERE org_id = $1 AND name > $2 ORDER BY name LIMIT $3",
                )
                .bind(org_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }
            async fn all_teams(&self) -> StoreResult<Vec<TeamRow>> {
                Ok(sqlx::query_as("SELECT * FROM teams").fetch_all(&self.pool).await?)
            }
            async fn all_orgs(&self) -> StoreResult<Vec<OrgRow>> {
                Ok(sqlx::query_as("SELECT * FROM orgs").fetch_all(&self.pool).await?)
            }
            async fn upsert_team_member(&self, team_id: &str, user_id: &str, role: &str, now: i64) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::upsert_team_member(&mut tx, team_id, user_id, role, now).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn memberships_of_user(&self, user_id: &str) -> StoreResult<Vec<MembershipRow>> {
                Ok(sqlx::query_as(
                    "SELECT m.team_id, t.name AS team_name, m.user_id, u.username, m.role, m.created_at
                     FROM team_members m JOIN teams t ON t.id = m.team_id JOIN users u ON u.id = m.user_id
                     WHERE m.user_id = $1 ORDER BY m.created_at, t.name",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?)
            }
            async fn remove_team_member(&self, team_id: &str, user_id: &str) -> StoreResult<bool> {
                let mut tx = self.begin_tx().await?;
                let out = $crate::store::StoreTx::remove_team_member(&mut tx, team_id, user_id).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(out)
            }
            async fn team_contents(&self, team_id: &str) -> StoreResult<TeamContents> {
                let projects: Vec<(String,)> =
                    sqlx::query_as("SELECT name FROM projects WHERE team_id = $1 ORDER BY name")
                        .bind(team_id)
                        .fetch_all(&self.pool)
                        .await?;
                let accounts: Vec<(String, String)> = sqlx::query_as(
                    "SELECT name, scope FROM service_accounts WHERE team_id = $1 ORDER BY name",
                )
                .bind(team_id)
                .fetch_all(&self.pool)
                .await?;
                let mut out = TeamContents {
                    projects: projects.into_iter().map(|(n,)| n).collect(),
                    ..TeamContents::default()
                };
                for (name, scope) in accounts {
                    if scope == "org" {
                        out.org_accounts_defaulting.push(name);
                    } else {
                        out.team_accounts.push(name);
                    }
                }
                Ok(out)
            }
            async fn delete_team(&self, team_id: &str, now: i64) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::delete_team(&mut tx, team_id, now).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn members_of_team(&self, team_id: &str) -> StoreResult<Vec<MembershipRow>> {
                Ok(sqlx::query_as(
                    "SELECT m.team_id, t.name AS team_name, m.user_id, u.username, m.role, m.created_at
                     FROM team_members m JOIN teams t ON t.id = m.team_id JOIN users u ON u.id = m.user_id
                     WHERE m.team_id = $1 ORDER BY u.username",
                )
                .bind(team_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn team_members_page(&self, team_id: &str, after: &str, limit: i64) -> StoreResult<Vec<MembershipRow>> {
                Ok(sqlx::query_as(
                    "SELECT m.team_id, t.name AS team_name, m.user_id, u.username, m.role, m.created_at
                     FROM team_members m JOIN teams t ON t.id = m.team_id JOIN users u ON u.id = m.user_id
                     WHERE m.team_id = $1 AND u.username > $2 ORDER BY u.username LIMIT $3",
                )
                .bind(team_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn insert_project(&self, p: &ProjectRow) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::insert_project(&mut tx, p).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn project_by_name(&self, team_id: &str, name: &str) -> StoreResult<Option<ProjectRow>> {
                Ok(sqlx::query_as("SELECT * FROM projects WHERE team_id = $1 AND name = $2")
                    .bind(team_id)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn projects_of_team(&self, team_id: &str) -> StoreResult<Vec<ProjectRow>> {
                Ok(sqlx::query_as("SELECT * FROM projects WHERE team_id = $1 ORDER BY name")
                    .bind(team_id)
                    .fetch_all(&self.pool)
                    .await?)
            }
            async fn set_project_visibility(&self, project_id: &str, visibility: &str) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::set_project_visibility(&mut tx, project_id, visibility).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn project_members(&self, project_id: &str) -> StoreResult<Vec<ProjectMemberRow>> {
                Ok(sqlx::query_as("SELECT * FROM project_members WHERE project_id = $1 ORDER BY created_at")
                    .bind(project_id)
                    .fetch_all(&self.pool)
                    .await?)
            }
            async fn project_members_page(
                &self,
                project_id: &str,
                after: &str,
                limit: i64,
            ) -> StoreResult<Vec<ProjectMemberListRow>> {
                Ok(sqlx::query_as(
                    "SELECT m.*, COALESCE(u.username, s.name, d.name, '') AS name
                     FROM project_members m
                     LEFT JOIN users u ON u.id = m.principal_id
                     LEFT JOIN service_accounts s ON s.id = m.principal_id
                     LEFT JOIN deleted_principals d ON d.id = m.principal_id
                     WHERE m.project_id = $1 AND m.principal_id > $2 ORDER BY m.principal_id LIMIT $3",
                )
                .bind(project_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }
            async fn upsert_project_member(&self, m: &ProjectMemberRow) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::upsert_project_member(&mut tx, m).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }

            async fn remove_project_member(&self, project_id: &str, principal_id: &str) -> StoreResult<bool> {
                let mut tx = self.begin_tx().await?;
                let out = $crate::store::StoreTx::remove_project_member(&mut tx, project_id, principal_id).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(out)
            }
            async fn delete_project(&self, project_id: &str) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::delete_project(&mut tx, project_id).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn projects_page(
                &self,
                team_id: &str,
                after: &str,
                limit: i64,
            ) -> StoreResult<(Vec<ProjectRow>, Vec<ProjectMemberRow>)> {
                let projects: Vec<ProjectRow> = sqlx::query_as(
                    "SELECT * FROM projects WHERE team_id = $1 AND name > $2 ORDER BY name LIMIT $3",
                )
                .bind(team_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let members: Vec<ProjectMemberRow> = sqlx::query_as(
                    "SELECT m.* FROM project_members m WHERE m.project_id IN
                       (SELECT id FROM projects WHERE team_id = $1 AND name > $2 ORDER BY name LIMIT $3)
                     ORDER BY m.created_at",
                )
                .bind(team_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok((projects, members))
            }

            async fn insert_issuer(&self, i: &IssuerRow) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::insert_issuer(&mut tx, i).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn update_issuer(&self, i: &IssuerRow) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::update_issuer(&mut tx, i).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn issuer_by_id(&self, id: &str) -> StoreResult<Option<IssuerRow>> {
                Ok(sqlx::query_as("SELECT * FROM trusted_issuers WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn issuers_of_org(&self, org_id: &str) -> StoreResult<Vec<IssuerRow>> {
                Ok(sqlx::query_as("SELECT * FROM trusted_issuers WHERE org_id = $1 ORDER BY created_at, id")
                    .bind(org_id)
                    .fetch_all(&self.pool)
                    .await?)
            }
            async fn issuers_page(&self, org_id: &str, after: &str, limit: i64) -> StoreResult<Vec<IssuerRow>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM trusted_issuers WHERE org_id = $1 AND issuer > $2 ORDER BY issuer LIMIT $3",
                )
                .bind(org_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }
            async fn all_issuers(&self) -> StoreResult<Vec<IssuerRow>> {
                Ok(sqlx::query_as("SELECT * FROM trusted_issuers ORDER BY created_at, id")
                    .fetch_all(&self.pool)
                    .await?)
            }
            async fn delete_issuer(&self, id: &str) -> StoreResult<bool> {
                let mut tx = self.begin_tx().await?;
                let out = $crate::store::StoreTx::delete_issuer(&mut tx, id).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(out)
            }

            async fn insert_service_account(&self, sa: &SaRow, binding: Option<&BindingRow>) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::insert_service_account(&mut tx, sa, binding).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn service_account_by_id(&self, id: &str) -> StoreResult<Option<SaRow>> {
                Ok(sqlx::query_as("SELECT * FROM service_accounts WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn service_account_by_name(&self, org_id: &str, name: &str) -> StoreResult<Option<SaRow>> {
                Ok(sqlx::query_as("SELECT * FROM service_accounts WHERE org_id = $1 AND name = $2")
                    .bind(org_id)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn service_accounts_of_org(&self, org_id: &str) -> StoreResult<Vec<SaRow>> {
                Ok(sqlx::query_as("SELECT * FROM service_accounts WHERE org_id = $1 ORDER BY name")
                    .bind(org_id)
                    .fetch_all(&self.pool)
                    .await?)
            }
            async fn service_accounts_of_team(&self, team_id: &str) -> StoreResult<Vec<SaRow>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM service_accounts WHERE team_id = $1 AND scope = 'team' ORDER BY name",
                )
                .bind(team_id)
                .fetch_all(&self.pool)
                .await?)
            }
            async fn service_accounts_page(
                &self,
                org_id: &str,
                team_id: Option<&str>,
                after: &str,
                limit: i64,
            ) -> StoreResult<Vec<SaListRow>> {
                const COLUMNS: &str = "SELECT s.*, t.name AS team_name, b.issuer_id AS binding_issuer_id,
                        b.spec AS binding_spec, b.mode AS binding_mode
                     FROM service_accounts s JOIN teams t ON t.id = s.team_id
                     LEFT JOIN federation_bindings b ON b.sa_id = s.id";
                let q = match team_id {
                    None => sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "{COLUMNS} WHERE s.org_id = $1 AND s.name > $2 ORDER BY s.name LIMIT $3"
                    )))
                    .bind(org_id)
                    .bind(after)
                    .bind(limit),
                    Some(team) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "{COLUMNS} WHERE s.org_id = $1 AND s.name > $2 AND s.team_id = $4 AND s.scope = 'team'
                         ORDER BY s.name LIMIT $3"
                    )))
                    .bind(org_id)
                    .bind(after)
                    .bind(limit)
                    .bind(team.to_string()),
                };
                Ok(q.fetch_all(&self.pool).await?)
            }
            async fn update_service_account(&self, sa: &SaRow, binding: Option<&BindingRow>) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::update_service_account(&mut tx, sa, binding).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn delete_service_account(&self, sa: &SaRow, now: i64) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::delete_service_account(&mut tx, sa, now).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn index_accounts(&self) -> StoreResult<Vec<$crate::store::IndexAccountRow>> {
                // Columns by position (a tuple), in no particular order: no
                // name lookup per column and row, no index walk for an ORDER BY.
                type Row = (String, String, String, String, bool, i64, String, String, String);
                let rows: Vec<Row> = sqlx::query_as(
                    "SELECT sa.id, sa.name, sa.org_id, sa.team_id, sa.disabled, sa.max_token_lifetime_s, \
                            b.issuer_id, b.spec, b.mode \
                     FROM federation_bindings b JOIN service_accounts sa ON sa.id = b.sa_id \
                     WHERE sa.auth = 'external'",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(sa_id, name, org_id, team_id, disabled, max_token_lifetime_s, issuer_id, spec, mode)| {
                        $crate::store::IndexAccountRow {
                            sa_id,
                            name,
                            org_id,
                            team_id,
                            disabled,
                            max_token_lifetime_s,
                            issuer_id,
                            spec,
                            mode,
                        }
                    })
                    .collect())
            }
            async fn set_service_account_disabled(&self, id: &str, disabled: bool, now: i64) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::set_service_account_disabled(&mut tx, id, disabled, now).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn binding_of(&self, sa_id: &str) -> StoreResult<Option<BindingRow>> {
                Ok(sqlx::query_as("SELECT * FROM federation_bindings WHERE sa_id = $1")
                    .bind(sa_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn insert_api_key(&self, k: &ApiKeyRow) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::insert_api_key(&mut tx, k).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn api_key_by_hash(&self, secret_hash: &str) -> StoreResult<Option<ApiKeyRow>> {
                Ok(sqlx::query_as("SELECT * FROM api_keys WHERE secret_hash = $1")
                    .bind(secret_hash)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn api_keys_of(&self, owner_id: &str) -> StoreResult<Vec<ApiKeyRow>> {
                Ok(sqlx::query_as("SELECT * FROM api_keys WHERE owner_id = $1 ORDER BY created_at, id")
                    .bind(owner_id)
                    .fetch_all(&self.pool)
                    .await?)
            }
            async fn revoke_api_key(&self, owner_id: &str, key_id: &str, now: i64) -> StoreResult<bool> {
                let mut tx = self.begin_tx().await?;
                let out = $crate::store::StoreTx::revoke_api_key(&mut tx, owner_id, key_id, now).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(out)
            }
            async fn touch_api_key(&self, key_id: &str, now: i64) -> StoreResult<()> {
                sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(key_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_signing_key(&self, k: &SigningKeyRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, private_key, created_at, retired_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&k.kid)
                .bind(&k.alg)
                .bind(&k.private_key)
                .bind(k.created_at)
                .bind(k.retired_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
            async fn signing_keys(&self, retired_after: i64) -> StoreResult<Vec<SigningKeyRow>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM signing_keys WHERE retired_at IS NULL OR retired_at > $1
                     ORDER BY created_at DESC, kid DESC",
                )
                .bind(retired_after)
                .fetch_all(&self.pool)
                .await?)
            }
            async fn update_signing_key(&self, kid: &str, private_key: &str) -> StoreResult<()> {
                sqlx::query("UPDATE signing_keys SET private_key = $1 WHERE kid = $2")
                    .bind(private_key)
                    .bind(kid)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
            async fn retire_signing_keys_except(&self, keep_kid: &str, now: i64) -> StoreResult<()> {
                sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL AND kid <> $2")
                    .bind(now)
                    .bind(keep_kid)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_run(&self, r: &RunRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO runs (id, project_id, created_by, created_by_kind, attributed_user_id, name, config, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&r.id)
                .bind(&r.project_id)
                .bind(&r.created_by)
                .bind(&r.created_by_kind)
                .bind(&r.attributed_user_id)
                .bind(&r.name)
                .bind(&r.config)
                .bind(r.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
            async fn insert_rows(&self, runs: &[&RunRow], traces: &[&TraceRow]) -> StoreResult<()> {
                match (runs, traces) {
                    ([], []) => return Ok(()),
                    // One row: one statement, committed by itself (a
                    // transaction around it would be two more round trips).
                    ([_], []) => {
                        Self::runs_insert(runs).build().execute(&self.pool).await?;
                        return Ok(());
                    }
                    ([], [_]) => {
                        Self::traces_insert(traces).build().execute(&self.pool).await?;
                        return Ok(());
                    }
                    _ => {}
                }
                let mut tx = self.pool.begin().await?;
                // Chunk sizes from a fixed set, so few distinct statements
                // get prepared (as for the audit log).
                let size = |n: usize| [64, 16, 4, 1].into_iter().find(|&c| c <= n).unwrap_or(1);
                let mut rest = runs;
                while !rest.is_empty() {
                    let (chunk, tail) = rest.split_at(size(rest.len()));
                    Self::runs_insert(chunk).build().execute(&mut *tx).await?;
                    rest = tail;
                }
                let mut rest = traces;
                while !rest.is_empty() {
                    let (chunk, tail) = rest.split_at(size(rest.len()));
                    Self::traces_insert(chunk).build().execute(&mut *tx).await?;
                    rest = tail;
                }
                tx.commit().await?;
                Ok(())
            }
            async fn runs_of_project(&self, project_id: &str, limit: i64) -> StoreResult<Vec<RunListRow>> {
                // Joined, not looked up per run: a user's or an account's
                // name, or the name it had when deleted.
                Ok(sqlx::query_as(
                    "SELECT r.*,
                        CASE WHEN r.created_by_kind = 'user' THEN cu.username ELSE cs.name END AS created_by_name,
                        cd.name AS created_by_deleted_name,
                        au.username AS attributed_name,
                        ad.name AS attributed_deleted_name
                     FROM runs r
                     LEFT JOIN users cu ON cu.id = r.created_by
                     LEFT JOIN service_accounts cs ON cs.id = r.created_by
                     LEFT JOIN deleted_principals cd ON cd.id = r.created_by
                     LEFT JOIN users au ON au.id = r.attributed_user_id
                     LEFT JOIN deleted_principals ad ON ad.id = r.attributed_user_id
                     WHERE r.project_id = $1 ORDER BY r.seq LIMIT $2",
                )
                .bind(project_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn insert_trace(&self, t: &TraceRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO traces (id, project_id, trace_id, parent_id, op_name, inputs, output,
                        started_at, ended_at, created_by, created_by_kind, attributed_user_id, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(&t.id)
                .bind(&t.project_id)
                .bind(&t.trace_id)
                .bind(&t.parent_id)
                .bind(&t.op_name)
                .bind(&t.inputs)
                .bind(&t.output)
                .bind(t.started_at)
                .bind(t.ended_at)
                .bind(&t.created_by)
                .bind(&t.created_by_kind)
                .bind(&t.attributed_user_id)
                .bind(t.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
            async fn trace_call(&self, project_id: &str, id: &str) -> StoreResult<Option<TraceRow>> {
                Ok(sqlx::query_as("SELECT * FROM traces WHERE project_id = $1 AND id = $2")
                    .bind(project_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn traces_of_project(
                &self,
                project_id: &str,
                trace_id: Option<&str>,
                after_seq: i64,
                limit: i64,
            ) -> StoreResult<Vec<TraceRow>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM traces WHERE project_id = $1 AND seq > $2 AND ($3 IS NULL OR trace_id = $3)
                     ORDER BY seq LIMIT $4",
                )
                .bind(project_id)
                .bind(after_seq)
                .bind(trace_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn use_jti(&self, issuer_id: &str, jti: &str, expires_at: i64, now: i64) -> StoreResult<bool> {
                sqlx::query("DELETE FROM used_jtis WHERE expires_at < $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                let done = sqlx::query(
                    "INSERT INTO used_jtis (issuer_id, jti, expires_at) VALUES ($1, $2, $3)
                     ON CONFLICT (issuer_id, jti) DO NOTHING",
                )
                .bind(issuer_id)
                .bind(jti)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_audit(&self, events: &[NewAudit]) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::insert_audit(&mut tx, events).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn publish_change(&self, change: &str) -> StoreResult<()> {
                $crate::store::ChangeBus::publish(self, change).await
            }
            fn change_feed(&self) -> Option<$crate::store::ChangeFeed> {
                $crate::store::ChangeBus::feed(self)
            }
            async fn poll_changes(&self, after: i64) -> StoreResult<Option<(i64, Vec<String>)>> {
                $crate::store::ChangeBus::poll(self, after).await
            }
            async fn change_log_end(&self) -> StoreResult<Option<i64>> {
                $crate::store::ChangeBus::log_end(self).await
            }
            async fn audit_of_org_filtered(
                &self,
                org_id: &str,
                after_seq: i64,
                limit: i64,
                filter: &AuditFilter,
            ) -> StoreResult<Vec<AuditRow>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM audit_events WHERE org_id = $1 AND seq > $2 \
                     AND ($4 = '' OR actor = $4) AND ($5 = '' OR action = $5) AND ($6 = '' OR outcome = $6) \
                     ORDER BY seq LIMIT $3",
                )
                .bind(org_id)
                .bind(after_seq)
                .bind(limit)
                .bind(&filter.actor)
                .bind(&filter.action)
                .bind(&filter.outcome)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn insert_session(&self, s: &SessionRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO console_sessions (id_hash, user_id, key_id, csrf, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&s.id_hash)
                .bind(&s.user_id)
                .bind(&s.key_id)
                .bind(&s.csrf)
                .bind(s.created_at)
                .bind(s.last_seen_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
            async fn session_by_hash(&self, id_hash: &str) -> StoreResult<Option<SessionRow>> {
                Ok(sqlx::query_as("SELECT * FROM console_sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn touch_session(&self, id_hash: &str, now: i64) -> StoreResult<()> {
                sqlx::query("UPDATE console_sessions SET last_seen_at = $2 WHERE id_hash = $1")
                    .bind(id_hash)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
            async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
            async fn delete_sessions_of_user(&self, user_id: &str) -> StoreResult<u64> {
                Ok(sqlx::query("DELETE FROM console_sessions WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }
            async fn delete_stale_sessions(&self, seen_before: i64, created_before: i64) -> StoreResult<u64> {
                let n = sqlx::query(
                    "DELETE FROM console_sessions WHERE last_seen_at < $1 OR created_at < $2",
                )
                .bind(seen_before)
                .bind(created_before)
                .execute(&self.pool)
                .await?
                .rows_affected();
                let m = sqlx::query("DELETE FROM sso_logins WHERE created_at < $1")
                    .bind(seen_before)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n + m)
            }

            async fn put_sso_config(&self, c: &SsoConfigRow) -> StoreResult<()> {
                let mut tx = self.begin_tx().await?;
                $crate::store::StoreTx::put_sso_config(&mut tx, c).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(())
            }
            async fn sso_config_of_org(&self, org_id: &str) -> StoreResult<Option<SsoConfigRow>> {
                Ok(sqlx::query_as("SELECT * FROM sso_configs WHERE org_id = $1")
                    .bind(org_id)
                    .fetch_optional(&self.pool)
                    .await?)
            }
            async fn delete_sso_config(&self, org_id: &str) -> StoreResult<bool> {
                let mut tx = self.begin_tx().await?;
                let out = $crate::store::StoreTx::delete_sso_config(&mut tx, org_id).await?;
                $crate::store::StoreTx::commit(Box::new(tx)).await?;
                Ok(out)
            }
            async fn insert_sso_login(&self, l: &SsoLoginRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO sso_logins (state_hash, org_id, nonce, pkce_verifier, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&l.state_hash)
                .bind(&l.org_id)
                .bind(&l.nonce)
                .bind(&l.pkce_verifier)
                .bind(l.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
            async fn take_sso_login(&self, state_hash: &str) -> StoreResult<Option<SsoLoginRow>> {
                Ok(sqlx::query_as("DELETE FROM sso_logins WHERE state_hash = $1 RETURNING *")
                    .bind(state_hash)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn audit_of_org(&self, org_id: &str, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
                Ok(sqlx::query_as(
                    "SELECT * FROM audit_events WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(org_id)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }
        }

        /// One transaction of admin writes (see [`$crate::store::StoreTx`]);
        /// the store's own single writes run through it too, so each SQL
        /// statement is written once.
        pub struct Tx(sqlx::Transaction<'static, $db>);

        impl Tx {
            /// Disables a principal (`table`: users or service_accounts)
            /// with a revocation watermark, so every credential issued
            /// before `now` stops working, or enables it again (the
            /// watermark stays: old credentials remain revoked).
            async fn set_disabled(&mut self, table: &'static str, id: &str, disabled: bool, now: i64) -> StoreResult<()> {
                if disabled {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE {table} SET disabled = $1, revoked_before = $2 WHERE id = $3"
                    )))
                    .bind(true)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *self.0)
                    .await?;
                } else {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE {table} SET disabled = $1 WHERE id = $2"
                    )))
                    .bind(false)
                    .bind(id)
                    .execute(&mut *self.0)
                    .await?;
                }
                Ok(())
            }
        }

        impl $store {
            async fn begin_tx(&self) -> StoreResult<Tx> {
                Ok(Tx(self.pool.begin().await?))
            }

            /// One multi-row `INSERT` of runs; an id stored already is skipped.
            fn runs_insert(chunk: &[&RunRow]) -> sqlx::QueryBuilder<$db> {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO runs (id, project_id, created_by, created_by_kind, attributed_user_id, name, config, created_at) ",
                );
                q.push_values(chunk, |mut row, r| {
                    row.push_bind(&r.id)
                        .push_bind(&r.project_id)
                        .push_bind(&r.created_by)
                        .push_bind(&r.created_by_kind)
                        .push_bind(&r.attributed_user_id)
                        .push_bind(&r.name)
                        .push_bind(&r.config)
                        .push_bind(r.created_at);
                });
                q.push(" ON CONFLICT (id) DO NOTHING");
                q
            }

            /// One multi-row `INSERT` of trace calls; an id stored already is skipped.
            fn traces_insert(chunk: &[&TraceRow]) -> sqlx::QueryBuilder<$db> {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO traces (id, project_id, trace_id, parent_id, op_name, inputs, output, \
                     started_at, ended_at, created_by, created_by_kind, attributed_user_id, created_at) ",
                );
                q.push_values(chunk, |mut row, t| {
                    row.push_bind(&t.id)
                        .push_bind(&t.project_id)
                        .push_bind(&t.trace_id)
                        .push_bind(&t.parent_id)
                        .push_bind(&t.op_name)
                        .push_bind(&t.inputs)
                        .push_bind(&t.output)
                        .push_bind(t.started_at)
                        .push_bind(t.ended_at)
                        .push_bind(&t.created_by)
                        .push_bind(&t.created_by_kind)
                        .push_bind(&t.attributed_user_id)
                        .push_bind(t.created_at);
                });
                q.push(" ON CONFLICT (id) DO NOTHING");
                q
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::StoreTx for Tx {
            async fn insert_org(&mut self, org: &OrgRow) -> StoreResult<()> {
                sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(&org.id)
                    .bind(&org.name)
                    .bind(org.created_at)
                    .execute(&mut *self.0)
                    .await?;
                Ok(())
            }
            async fn insert_user(&mut self, u: &UserRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO users (id, org_id, username, email, role, created_at, disabled, revoked_before)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&u.id)
                .bind(&u.org_id)
                .bind(&u.username)
                .bind(&u.email)
                .bind(&u.role)
                .bind(u.created_at)
                .bind(u.disabled)
                .bind(u.revoked_before)
                .execute(&mut *self.0)
                .await?;
                Ok(())
            }
            async fn insert_team(&mut self, t: &TeamRow) -> StoreResult<()> {
                sqlx::query("INSERT INTO teams (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&t.id)
                    .bind(&t.org_id)
                    .bind(&t.name)
                    .bind(t.created_at)
                    .execute(&mut *self.0)
                    .await?;
                Ok(())
            }
            async fn upsert_team_member(&mut self, team_id: &str, user_id: &str, role: &str, now: i64) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO team_members (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (team_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(team_id)
                .bind(user_id)
                .bind(role)
                .bind(now)
                .execute(&mut *self.0)
                .await?;
                Ok(())
            }
            async fn insert_project(&mut self, p: &ProjectRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO projects (id, team_id, name, visibility, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&p.id)
                .bind(&p.team_id)
                .bind(&p.name)
                .bind(&p.visibility)
                .bind(p.created_at)
                .execute(&mut *self.0)
                .await?;
                Ok(())
            }
            async fn set_project_visibility(&mut self, project_id: &str, visibility: &str) -> StoreResult<()> {
                sqlx::query("UPDATE projects SET visibility = $1 WHERE id = $2")
                    .bind(visibility)
                    .bind(project_id)
                    .execute(&mut *self.0)
                    .await?;
                Ok(())
            }
            async fn upsert_project_member(&mut self, m: &ProjectMemberRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO project_members (project_id, principal_id, principal_kind, role, created_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (project_id, principal_id) DO UPDATE SET role = excluded.role",
                )
                .bind(&m.project_id)
                .bind(&m.principal_id)
                .bind(&m.principal_kind)
                .bind(&m.role)
                .bind(m.created_at)
                .execute(&mut *self.0)
                .await?;
                Ok(())
            }
            async fn insert_issuer(&mut self, i: &IssuerRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO trusted_issuers (id, org_id, issuer, jwks_uri, static_jwks, audiences, allowed_algs,
                        max_token_age_s, leeway_s, single_use_jti, users, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&i.id)
                .bind(&i.org_id)
                .bind(&i.issuer)
                .bind(&i.jwks_uri)
                .bind(&i.static_jwks)
                .bind(&i.audiences)
                .bind(&i.allowed_algs)
                .bind(i.max_token_age_s)
                .bind(i.leeway_s)
                .bind(i.single_use_jti)
                .bind(i.users)
                .bind(i.created_at)
                .execute(&mut *self.0)
                .await?;
                Ok(())
            }
            async fn update_issuer(&mut self, i: &IssuerRow) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE trusted_issuers SET jwks_uri = $1, static_jwks = $2, audiences = $3,
                        allowed_algs = $4, max_token_age_s = $5, leeway_s = $6, single_use_jti = $7,
                        users = $8
                     WHERE id = $9",
                )
                .bind(&i.jwks_uri)
                .bind(&i.static_jwks)
                .bind(&i.audiences)
                .bind(&i.allowed_algs)
                .bind(i.max_token_age_s)
                .bind(i.leeway_s)
                .bind(i.single_use_jti)
                .bind(i.users)
                .bind(&i.id)
                .execute(&mut *self.0)
                .await?;
                Ok(())
            }
            async fn set_service_account_disabled(&mut self, id: &str, disabled: bool, now: i64) -> StoreResult<()> {
                self.set_disabled("service_accounts", id, disabled, now).await
            }
            async fn insert_api_key(&mut self, k: &ApiKeyRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO api_keys (id, owner_id, owner_kind, prefix, secret_hash, created_at, last_used_at, revoked_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&k.id)
                .bind(&k.owner_id)
                .bind(&k.owner_kind)
                .bind(&k.prefix)
                .bind(&k.secret_hash)
                .bind(k.created_at)
                .bind(k.last_used_at)
                .bind(k.revoked_at)
                .execute(&mut *self.0)
                .await?;
                Ok(())
            }
            async fn revoke_api_key(&mut self, owner_id: &str, key_id: &str, now: i64) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND owner_id = $3 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(key_id)
                .bind(owner_id)
                .execute(&mut *self.0)
                .await?;
                Ok(done.rows_affected() > 0)
            }
            async fn delete_issuer(&mut self, id: &str) -> StoreResult<bool> {
                // Starts with a write, not a read: on SQLite a transaction
                // that starts with a read cannot take the write lock once
                // another writer (the audit log) has committed, and fails
                // instead of waiting.
                let done = sqlx::query(
                    "DELETE FROM trusted_issuers WHERE id = $1
                     AND NOT EXISTS (SELECT 1 FROM federation_bindings WHERE issuer_id = $1)",
                )
                .bind(id)
                .execute(&mut *self.0)
                .await?;
                if done.rows_affected() > 0 {
                    return Ok(true);
                }
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM federation_bindings WHERE issuer_id = $1")
                    .bind(id)
                    .fetch_one(&mut *self.0)
                    .await?;
                if n > 0 {
                    return Err(StoreError::Conflict);
                }
                Ok(false)
            }
            async fn insert_service_account(&mut self, sa: &SaRow, binding: Option<&BindingRow>) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO service_accounts (id, org_id, name, scope, team_id, auth, disabled, revoked_before,
                        max_token_lifetime_s, created_at, description)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&sa.id)
                .bind(&sa.org_id)
                .bind(&sa.name)
                .bind(&sa.scope)
                .bind(&sa.team_id)
                .bind(&sa.auth)
                .bind(sa.disabled)
                .bind(sa.revoked_before)
                .bind(sa.max_token_lifetime_s)
                .bind(sa.created_at)
                .bind(&sa.description)
                .execute(&mut *self.0)
                .await?;
                if let Some(b) = binding {
                    sqlx::query("INSERT INTO federation_bindings (sa_id, issuer_id, spec, mode) VALUES ($1, $2, $3, $4)")
                        .bind(&b.sa_id)
                        .bind(&b.issuer_id)
                        .bind(&b.spec)
                        .bind(&b.mode)
                        .execute(&mut *self.0)
                        .await?;
                }
                Ok(())
            }
            async fn update_user(&mut self, id: &str, email: &str, role: &str) -> StoreResult<()> {
                sqlx::query("UPDATE users SET email = $1, role = $2 WHERE id = $3")
                    .bind(email)
                    .bind(role)
                    .bind(id)
                    .execute(&mut *self.0)
                    .await?;
                Ok(())
            }
            async fn set_user_disabled(&mut self, id: &str, disabled: bool, now: i64) -> StoreResult<()> {
                self.set_disabled("users", id, disabled, now).await
            }
            async fn delete_user(&mut self, u: &UserRow, now: i64) -> StoreResult<()> {
                sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE owner_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(&u.id)
                    .execute(&mut *self.0)
                    .await?;
                for q in [
                    "DELETE FROM team_members WHERE user_id = $1",
                    "DELETE FROM project_members WHERE principal_id = $1",
                    "DELETE FROM users WHERE id = $1",
                ] {
                    sqlx::query(q).bind(&u.id).execute(&mut *self.0).await?;
                }
                sqlx::query(
                    "INSERT INTO deleted_principals (id, org_id, kind, name, deleted_at) VALUES ($1, $2, 'user', $3, $4)",
                )
                .bind(&u.id)
                .bind(&u.org_id)
                .bind(&u.username)
                .bind(now)
                .execute(&mut *self.0)
                .await?;
                Ok(())
            }
            async fn remove_team_member(&mut self, team_id: &str, user_id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
                    .bind(team_id)
                    .bind(user_id)
                    .execute(&mut *self.0)
                    .await?;
                Ok(done.rows_affected() > 0)
            }
            async fn delete_team(&mut self, team_id: &str, now: i64) -> StoreResult<()> {
                // A write first: SQLite takes the write lock now (waiting up to
                // its busy timeout) instead of failing to upgrade a read
                // snapshot that another writer (the audit log) moved past.
                sqlx::query("UPDATE teams SET name = name WHERE id = $1")
                    .bind(team_id)
                    .execute(&mut *self.0)
                    .await?;
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM service_accounts WHERE team_id = $1 AND scope = 'org'",
                )
                .bind(team_id)
                .fetch_one(&mut *self.0)
                .await?;
                if n > 0 {
                    return Err(StoreError::Conflict);
                }
                const TEAM_SAS: &str = "SELECT id FROM service_accounts WHERE team_id = $1 AND scope = 'team'";
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO deleted_principals (id, org_id, kind, name, deleted_at)
                     SELECT id, org_id, 'service_account', name, $2 FROM service_accounts WHERE id IN ({TEAM_SAS})"
                )))
                .bind(team_id)
                .bind(now)
                .execute(&mut *self.0)
                .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE api_keys SET revoked_at = $2 WHERE revoked_at IS NULL AND owner_id IN ({TEAM_SAS})"
                )))
                .bind(team_id)
                .bind(now)
                .execute(&mut *self.0)
                .await?;
                for q in [
                    format!("DELETE FROM federation_bindings WHERE sa_id IN ({TEAM_SAS})"),
                    format!("DELETE FROM project_members WHERE principal_id IN ({TEAM_SAS})"),
                    "DELETE FROM service_accounts WHERE team_id = $1 AND scope = 'team'".to_string(),
                    "DELETE FROM runs WHERE project_id IN (SELECT id FROM projects WHERE team_id = $1)".to_string(),
                    "DELETE FROM traces WHERE project_id IN (SELECT id FROM projects WHERE team_id = $1)".to_string(),
                    "DELETE FROM project_members WHERE project_id IN (SELECT id FROM projects WHERE team_id = $1)".to_string(),
                    "DELETE FROM projects WHERE team_id = $1".to_string(),
                    "DELETE FROM team_members WHERE team_id = $1".to_string(),
                    "DELETE FROM teams WHERE id = $1".to_string(),
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(q)).bind(team_id).execute(&mut *self.0).await?;
                }
                Ok(())
            }
            async fn remove_project_member(&mut self, project_id: &str, principal_id: &str) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND principal_id = $2")
                    .bind(project_id)
                    .bind(principal_id)
                    .execute(&mut *self.0)
                    .await?;
                Ok(done.rows_affected() > 0)
            }
            async fn delete_project(&mut self, project_id: &str) -> StoreResult<()> {
                for q in [
                    "DELETE FROM runs WHERE project_id = $1",
                    "DELETE FROM traces WHERE project_id = $1",
                    "DELETE FROM project_members WHERE project_id = $1",
                    "DELETE FROM projects WHERE id = $1",
                ] {
                    sqlx::query(q).bind(project_id).execute(&mut *self.0).await?;
                }
                Ok(())
            }
            async fn update_service_account(&mut self, sa: &SaRow, binding: Option<&BindingRow>) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE service_accounts SET name = $1, description = $2, team_id = $3, max_token_lifetime_s = $4
                     WHERE id = $5",
                )
                .bind(&sa.name)
                .bind(&sa.description)
                .bind(&sa.team_id)
                .bind(sa.max_token_lifetime_s)
                .bind(&sa.id)
                .execute(&mut *self.0)
                .await?;
                if let Some(b) = binding {
                    sqlx::query("UPDATE federation_bindings SET issuer_id = $1, spec = $2, mode = $3 WHERE sa_id = $4")
                        .bind(&b.issuer_id)
                        .bind(&b.spec)
                        .bind(&b.mode)
                        .bind(&b.sa_id)
                        .execute(&mut *self.0)
                        .await?;
                }
                Ok(())
            }
            async fn delete_service_account(&mut self, sa: &SaRow, now: i64) -> StoreResult<()> {
                sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE owner_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(&sa.id)
                    .execute(&mut *self.0)
                    .await?;
                for q in [
                    "DELETE FROM federation_bindings WHERE sa_id = $1",
                    "DELETE FROM project_members WHERE principal_id = $1",
                    "DELETE FROM service_accounts WHERE id = $1",
                ] {
                    sqlx::query(q).bind(&sa.id).execute(&mut *self.0).await?;
                }
                sqlx::query(
                    "INSERT INTO deleted_principals (id, org_id, kind, name, deleted_at)
                     VALUES ($1, $2, 'service_account', $3, $4)",
                )
                .bind(&sa.id)
                .bind(&sa.org_id)
                .bind(&sa.name)
                .bind(now)
                .execute(&mut *self.0)
                .await?;
                Ok(())
            }
            async fn put_sso_config(&mut self, c: &SsoConfigRow) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO sso_configs (org_id, issuer, client_id, client_secret, create_users, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (org_id) DO UPDATE SET issuer = $2, client_id = $3, client_secret = $4, create_users = $5, updated_at = $6",
                )
                .bind(&c.org_id)
                .bind(&c.issuer)
                .bind(&c.client_id)
                .bind(&c.client_secret)
                .bind(c.create_users)
                .bind(c.updated_at)
                .execute(&mut *self.0)
                .await?;
                Ok(())
            }
            async fn delete_sso_config(&mut self, org_id: &str) -> StoreResult<bool> {
                Ok(sqlx::query("DELETE FROM sso_configs WHERE org_id = $1")
                    .bind(org_id)
                    .execute(&mut *self.0)
                    .await?
                    .rows_affected()
                    > 0)
            }
            async fn insert_audit(&mut self, events: &[NewAudit]) -> StoreResult<()> {
                // One multi-row statement per chunk, not one per event: each
                // statement is a round trip (to SQLite's worker thread, or to
                // PostgreSQL), which cost more than the row itself. Chunk sizes
                // come from a fixed set so few distinct statements get prepared.
                let mut rest = events;
                while !rest.is_empty() {
                    let n = [64, 16, 4, 1]
                        .into_iter()
                        .find(|&n| n <= rest.len())
                        .unwrap_or(1);
                    let (chunk, tail) = rest.split_at(n);
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO audit_events (id, org_id, at, actor, action, target, outcome, reason, request_id, client_request_id, details) ",
                    );
                    q.push_values(chunk, |mut row, e| {
                        row.push_bind(&e.id)
                            .push_bind(&e.org_id)
                            .push_bind(e.at)
                            .push_bind(&e.actor)
                            .push_bind(&e.action)
                            .push_bind(&e.target)
                            .push_bind(&e.outcome)
                            .push_bind(&e.reason)
                            .push_bind(&e.request_id)
                            .push_bind(&e.client_request_id)
                            .push_bind(&e.details);
                    });
                    q.push(" ON CONFLICT (id) DO NOTHING");
                    q.build().execute(&mut *self.0).await?;
                    rest = tail;
                }
                Ok(())
            }

            async fn commit(self: Box<Self>) -> StoreResult<()> {
                self.0.commit().await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_sql_store;
