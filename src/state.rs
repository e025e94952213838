//! The application state shared by every request. Everything `App` holds is
//! defined below the services (store, caches, signer, federation index), so
//! the services import this module and this module imports none of them.
//! Applying a [`Change`] to the caches is the services' job
//! (`crate::service::sync`).

use std::sync::Arc;

use crate::audit::AuditSink;
use crate::auth_cache::AuthCache;
use crate::clock::Clock;
use crate::config::ServeConfig;
use crate::federation::index::FederationIndex;
use crate::federation::jwks::KeyCache;
use crate::store::DynStore;
use crate::tokens::Signer;

pub use crate::change::Change;

/// Everything a request can reach.
pub struct App {
    pub config: ServeConfig,
    pub store: DynStore,
    pub clock: Arc<dyn Clock>,
    pub audit: AuditSink,
    /// Runs and trace calls, group-committed (`crate::writes`).
    pub writes: crate::writes::Writes,
    /// Projects as writes find them, by team and project name.
    pub targets: crate::auth_cache::WriteTargets,
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
