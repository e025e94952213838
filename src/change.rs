//! The changes that may make a replica's cached state stale. Its text form
//! travels between replicas (see `crate::replication`); applying one is the
//! services' job (`crate::service::sync`). Defined here, below both the
//! state and the services, so that neither has to import the other for it.

/// A change that may make cached state stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A user or service account changed (membership, disable, enable, delete).
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
    /// A project's visibility or members changed, or a project or team was
    /// deleted: forget the cached write targets.
    Projects,
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
            Change::Projects => "projects".into(),
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
            ("projects", true) => Change::Projects,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips() {
        for c in [
            Change::Principal("u_1".into()),
            Change::ApiKeys,
            Change::Issuer("iss_1".into()),
            Change::ExternalAccount("sa_1".into()),
            Change::Federation,
            Change::SigningKeys,
            Change::Projects,
        ] {
            assert_eq!(Change::decode(&c.encode()), Some(c));
        }
        assert_eq!(Change::decode("principal:"), None);
        assert_eq!(Change::decode("nonsense"), None);
    }
}
