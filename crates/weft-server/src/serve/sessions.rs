//! Which session a caller's statements run in: the storage catalogs, or, with the semantic
//! layer, the model catalog of the caller's tenant with the caller's roles.
//!
//! Users and tokens without a `tenant` see the storage catalogs (operators); those with one
//! see only their tenant's model tables. Tenant sessions are built on first use and shared by
//! every caller with the same tenant and roles, until a reload swaps the model: sessions
//! already handed out (queries in flight) keep the model they started with.

use std::collections::HashMap;
#[cfg(feature = "semantic")]
use std::sync::{Arc, RwLock};

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

/// One version of the model, with the tenant sessions built from it.
#[cfg(feature = "semantic")]
struct Model {
    layer: weft_semantic::SemanticLayer,
    sessions: tokio::sync::Mutex<HashMap<(String, Vec<String>), SessionContext>>,
}

/// The sessions of a server.
pub(crate) struct Sessions {
    storage: SessionContext,
    /// Principals that belong to a tenant, by name.
    members: HashMap<String, Member>,
    #[cfg(feature = "semantic")]
    model: RwLock<Option<Arc<Model>>>,
}

impl Sessions {
    /// Every caller sees the storage catalogs.
    pub(crate) fn storage(storage: SessionContext) -> Self {
        Self {
            storage,
            members: HashMap::new(),
            #[cfg(feature = "semantic")]
            model: RwLock::new(None),
        }
    }

    /// Callers in a tenant see its model; the others the storage catalogs.
    #[cfg(feature = "semantic")]
    pub(crate) fn semantic(
        storage: SessionContext,
        layer: weft_semantic::SemanticLayer,
        config: &Config,
    ) -> Self {
        let sessions = Self {
            members: members(config),
            ..Self::storage(storage)
        };
        sessions.swap_model(layer);
        sessions
    }

    /// Whether callers in tenants are served a model (which can then be reloaded).
    #[cfg(feature = "semantic")]
    pub(crate) fn has_model(&self) -> bool {
        self.model
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Serves `layer` to sessions opened from now on.
    #[cfg(feature = "semantic")]
    pub(crate) fn swap_model(&self, layer: weft_semantic::SemanticLayer) {
        let model = Arc::new(Model {
            layer,
            sessions: tokio::sync::Mutex::default(),
        });
        *self.model.write().unwrap_or_else(|e| e.into_inner()) = Some(model);
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
        let model = self.model.read().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(model) = model else {
            return Err(Status::permission_denied(
                "this server has no semantic layer for tenants",
            ));
        };
        let mut roles = member.roles.clone();
        roles.sort();
        roles.dedup();
        let key = (member.tenant.clone(), roles);
        let mut sessions = model.sessions.lock().await;
        if let Some(session) = sessions.get(&key) {
            return Ok(session.clone());
        }
        let weft = model
            .layer
            .tenant_session(&key.0, &key.1)
            .await
            .map_err(|e| match e {
                weft_semantic::Error::UnknownTenant(_) => Status::permission_denied(format!(
                    "tenant `{}` is not in the current model",
                    key.0
                )),
                e => Status::internal(e.to_string()),
            })?;
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
