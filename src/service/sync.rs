//! Applying a [`Change`] to this replica's caches, and publishing it to the
//! others. It lives with the services because reloading an issuer or a
//! binding is service work; `crate::state` only holds the caches.

use crate::state::{App, Change};

impl App {
    /// Applies a change to this replica's caches.
    pub async fn apply(&self, change: &Change) {
        // Projects are cached with their team and members; any change
        // (a principal deleted, a project's members) may touch one.
        self.targets.invalidate_all();
        let result = match change {
            Change::Projects => Ok(()),
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
