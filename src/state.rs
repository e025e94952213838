//! The application state shared by every request, and the changes that
//! invalidate its caches (locally, and on other replicas through the store).

use std::sync::Arc;

use crate::audit::AuditSink;
use crate::clock::Clock;
use crate::config::ServeConfig;
use crate::federation::index::FederationIndex;
use crate::federation::jwks::KeyCache;
use crate::service::auth::AuthCache;
use crate::store::DynStore;
use crate::tokens::Signer;

/// Everything a request can reach.
pub struct App {
    pub config: ServeConfig,
    pub store: DynStore,
    pub clock: Arc<dyn Clock>,
    pub audit: AuditSink,
    /// API keys and principals by id.
    pub auth: AuthCache,
    /// fedgate's own signing keys and the verified-token cache.
    pub signer: Signer,
    /// Trusted issuers and compiled bindings.
    pub index: FederationIndex,
    /// Each trusted issuer's JWKS.
    pub keys: KeyCache,
    /// Exchanges per client address.
    pub limiter: crate::ratelimit::ExchangeLimiter,
}

/// What axum hands to handlers.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// A change that may make cached state stale. Its text form travels between
/// replicas (see `crate::replication`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A user or service account changed (membership, disable, enable).
    Principal(String),
    /// An API key was revoked.
    ApiKeys,
    /// A trusted issuer was created, changed or deleted.
    Issuer(String),
    /// An external service account (its binding or state) changed.
    ExternalAccount(String),
    /// Anything about federation: reload the whole index.
    Federation,
    /// fedgate's signing keys changed (rotation).
    SigningKeys,
}

impl Change {
    /// The wire form, e.g. `principal:sa_…`.
    pub fn encode(&self) -> String {
        match self {
            Change::Principal(id) => format!("principal:{id}"),
            Change::ApiKeys => "api_keys".into(),
            Change::Issuer(id) => format!("issuer:{id}"),
            Change::ExternalAccount(id) => format!("external:{id}"),
            Change::Federation => "federation".into(),
            Change::SigningKeys => "signing_keys".into(),
        }
    }
    /// Parses the wire form; `None` for anything else.
    pub fn decode(s: &str) -> Option<Change> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        Some(match (kind, arg.is_empty()) {
            ("principal", false) => Change::Principal(arg.into()),
            ("api_keys", true) => Change::ApiKeys,
            ("issuer", false) => Change::Issuer(arg.into()),
            ("external", false) => Change::ExternalAccount(arg.into()),
            ("federation", true) => Change::Federation,
            ("signing_keys", true) => Change::SigningKeys,
            _ => return None,
        })
    }
}

impl App {
    /// Applies a change to this replica's caches.
    pub async fn apply(&self, change: &Change) {
        let result = match change {
            Change::Principal(id) => {
                self.auth.invalidate_principal(id);
                Ok(())
            }
            Change::ApiKeys => {
                self.auth.invalidate_keys();
                Ok(())
            }
            Change::Issuer(id) => crate::service::federation::reload_issuer(self, id).await,
            Change::ExternalAccount(id) => {
                self.auth.invalidate_principal(id);
                crate::service::federation::reload_account(self, id).await
            }
            Change::Federation => crate::service::federation::load_index(self).await,
            Change::SigningKeys => self
                .signer
                .reload(&self.store, self.clock.now_ms())
                .await
                .map_err(|e| crate::service::ServiceError::Unavailable(e.to_string())),
        };
        if let Err(e) = result {
            tracing::warn!(change = %change.encode(), error = %e, "could not apply change; caches resync later");
        }
    }

    /// Records a change: applies it here and tells the other replicas.
    pub async fn changed(&self, change: Change) {
        self.apply(&change).await;
        if let Err(e) = self.store.publish_change(&change.encode()).await {
            tracing::warn!(change = %change.encode(), error = %e, "could not notify other replicas");
        }
    }
}
