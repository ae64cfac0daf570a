//! Which session a caller's statements run in: the storage catalogs, or, with the semantic
//! layer, the model catalog of the caller's tenant with the caller's roles.
//!
//! Users and tokens without a `tenant` see the storage catalogs (operators); those with one
//! see only their tenant's model tables. Tenant sessions are built on first use and shared by
//! every caller with the same tenant and roles.

use std::collections::HashMap;
#[cfg(feature = "semantic")]
use std::sync::Arc;

use datafusion::execution::context::SessionContext;
use tonic::{Request, Status};
use weft_core::config::Config;

use super::auth::Principal;

/// A principal's place in the model.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "semantic"), allow(dead_code))]
struct Member {
    tenant: String,
    roles: Vec<String>,
}

/// The sessions of a server.
pub(crate) struct Sessions {
    storage: SessionContext,
    #[cfg(feature = "semantic")]
    semantic: Option<Arc<weft_semantic::SemanticLayer>>,
    /// Principals that belong to a tenant, by name.
    members: HashMap<String, Member>,
    #[cfg(feature = "semantic")]
    tenant_sessions: tokio::sync::Mutex<HashMap<(String, Vec<String>), SessionContext>>,
}

impl Sessions {
    /// Every caller sees the storage catalogs.
    pub(crate) fn storage(storage: SessionContext) -> Self {
        Self {
            storage,
            #[cfg(feature = "semantic")]
            semantic: None,
            members: HashMap::new(),
            #[cfg(feature = "semantic")]
            tenant_sessions: tokio::sync::Mutex::default(),
        }
    }

    /// Callers in a tenant see its model; the others the storage catalogs.
    #[cfg(feature = "semantic")]
    pub(crate) fn semantic(
        storage: SessionContext,
        layer: weft_semantic::SemanticLayer,
        config: &Config,
    ) -> Self {
        Self {
            semantic: Some(Arc::new(layer)),
            members: members(config),
            ..Self::storage(storage)
        }
    }

    /// The session for the caller of `request`.
    pub(crate) async fn for_request<T>(
        &self,
        request: &Request<T>,
    ) -> Result<SessionContext, Status> {
        let Some(principal) = request.extensions().get::<Principal>() else {
            return Err(Status::unauthenticated("log in first"));
        };
        let Some(member) = self.members.get(&principal.name) else {
            return Ok(self.storage.clone());
        };
        self.tenant_session(member).await
    }

    #[cfg(feature = "semantic")]
    async fn tenant_session(&self, member: &Member) -> Result<SessionContext, Status> {
        let Some(layer) = &self.semantic else {
            return Err(Status::permission_denied(
                "this server has no semantic layer for tenants",
            ));
        };
        let mut roles = member.roles.clone();
        roles.sort();
        roles.dedup();
        let key = (member.tenant.clone(), roles);
        let mut sessions = self.tenant_sessions.lock().await;
        if let Some(session) = sessions.get(&key) {
            return Ok(session.clone());
        }
        let weft = layer
            .tenant_session(&key.0, &key.1)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let session = weft.session().clone();
        sessions.insert(key, session.clone());
        Ok(session)
    }

    #[cfg(not(feature = "semantic"))]
    async fn tenant_session(&self, _member: &Member) -> Result<SessionContext, Status> {
        Err(Status::permission_denied(
            "this server was built without the semantic layer; tenants cannot log in",
        ))
    }
}

/// Users and tokens that belong to a tenant.
#[cfg_attr(not(feature = "semantic"), allow(dead_code))]
fn members(config: &Config) -> HashMap<String, Member> {
    let users = config.users.iter().map(|u| (&u.name, &u.tenant, &u.roles));
    let tokens = config.tokens.iter().map(|t| (&t.name, &t.tenant, &t.roles));
    users
        .chain(tokens)
        .filter_map(|(name, tenant, roles)| {
            let tenant = tenant.clone()?;
            Some((
                name.clone(),
                Member {
                    tenant,
                    roles: roles.clone(),
                },
            ))
        })
        .collect()
}
