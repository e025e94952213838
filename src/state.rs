//! The application state shared by every request, and the changes that
//! invalidate its caches (locally, and on other replicas through the store).

use std::sync::Arc;

use crate::audit::AuditSink;
use crate::clock::Clock;
use crate::config::ServeConfig;
use crate::service::auth::AuthCache;
use crate::store::DynStore;
use crate::tokens::Signer;

/// Everything a request can reach.
pub struct App {
    pub config: ServeConfig,
    pub store: DynStore,
    pub clock: Arc<dyn Clock>,
    pub audit: AuditSink,
    pub auth: AuthCache,
    pub signer: Signer,
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

/// A change that may make cached state stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A user or service account changed (membership, disable, enable).
    Principal(String),
    /// An API key was revoked.
    ApiKeys,
    /// Trusted issuers or federation bindings changed.
    Federation,
    /// fedgate's signing keys changed.
    SigningKeys,
}

impl App {
    /// Applies a change to this replica's caches.
    pub fn apply(&self, change: &Change) {
        match change {
            Change::Principal(id) => self.auth.invalidate_principal(id),
            Change::ApiKeys => self.auth.invalidate_keys(),
            Change::Federation | Change::SigningKeys => {}
        }
    }

    /// Records a change: applies it here and tells the other replicas.
    pub async fn changed(&self, change: Change) {
        self.apply(&change);
    }
}
