//! Weft's semantic layer: each tenant sees its own catalog of *model* tables, mapped onto the
//! *storage* tables of the sources, and nothing else.
//!
//! A model table is a view over one storage table (or a query over several): its columns are
//! storage columns or SQL expressions over them, under the model's names; its row filter is
//! always applied; columns limited to some roles are hidden from the others or replaced by a
//! mask. [`SemanticLayer::tenant_session`] builds a federated session whose only catalog is
//! the tenant's, holding each model table as a DataFusion view whose plan reads the storage
//! tables. DataFusion inlines views while analyzing a query, before any optimizer rule, so
//! the row filter, the column mapping and the tenant's own predicates are optimized together
//! and reach the sources' SQL through Weft's federation rule like any other filter.
//!
//! Storage catalogs are not registered in a tenant session: a tenant's SQL cannot name them.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::datasource::ViewTable;
use datafusion::logical_expr::LogicalPlan;
use weft_core::config::{ModelColumnConfig, ModelTableConfig, TenantConfig};
use weft_planner::{session_config, with_filters_in_the_decoder, WeftContext};

/// The schema of a tenant's catalog that holds its model tables (and the session's default).
pub const MODEL_SCHEMA: &str = "public";

/// Marks a tenant's session (a [`SessionConfig`](datafusion::prelude::SessionConfig)
/// extension): whose it is and with which roles. Servers use it to refuse what only operators
/// may see, such as `EXPLAIN`, whose plan shows the storage tables under the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    /// The tenant.
    pub tenant: String,
    /// The roles the session was built for.
    pub roles: Vec<String>,
}

impl TenantScope {
    /// The tenant scope of a session, if it is a tenant's.
    pub fn of(state: &datafusion::execution::SessionState) -> Option<Arc<TenantScope>> {
        state.config().get_extension::<TenantScope>()
    }
}

/// A model that does not fit the storage, named down to the column.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model table (or one of its columns) does not plan over the storage tables.
    #[error("tenant `{tenant}`, model table `{table}`{}: {message}", .column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
    Model {
        /// The tenant.
        tenant: String,
        /// The model table.
        table: String,
        /// The column, when the error is in one.
        column: Option<String>,
        /// DataFusion's message.
        message: String,
    },
    /// A user or token names a tenant the model does not define.
    #[error("no tenant `{0}` in the model")]
    UnknownTenant(String),
}

/// The result type of the semantic layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The tenants' models over one storage session.
#[derive(Debug, Clone)]
pub struct SemanticLayer {
    storage: WeftContext,
    tenants: BTreeMap<String, TenantConfig>,
}

impl SemanticLayer {
    /// Checks the model against `storage` (the session with every source registered): each
    /// model table's storage table and columns must exist, and every expression, filter and
    /// mask must plan. The first problem is returned with the tenant, table and column.
    pub async fn new(storage: WeftContext, tenants: &[TenantConfig]) -> Result<Self> {
        let layer = Self {
            storage,
            tenants: tenants
                .iter()
                .map(|t| (t.name.clone(), t.clone()))
                .collect(),
        };
        for tenant in tenants {
            for table in &tenant.tables {
                layer.check_table(&tenant.name, table).await?;
            }
        }
        Ok(layer)
    }

    /// The storage session the model reads.
    pub fn storage(&self) -> &WeftContext {
        &self.storage
    }

    /// The names of the tenants.
    pub fn tenants(&self) -> impl Iterator<Item = &str> {
        self.tenants.keys().map(String::as_str)
    }

    /// A federated session for a user of `tenant` with `roles`: one catalog, named after the
    /// tenant, whose `public` schema (the default) holds the model tables the roles may read,
    /// with hidden columns left out and masked ones masked.
    pub async fn tenant_session(&self, tenant: &str, roles: &[String]) -> Result<WeftContext> {
        let config = self
            .tenants
            .get(tenant)
            .ok_or_else(|| Error::UnknownTenant(tenant.to_string()))?;
        let scope = TenantScope {
            tenant: tenant.to_string(),
            roles: roles.to_vec(),
        };
        let session_config = with_filters_in_the_decoder(session_config())
            .with_default_catalog_and_schema(tenant, MODEL_SCHEMA)
            .with_extension(Arc::new(scope));
        let weft = WeftContext::without_catalogs(session_config, self.storage.sources().to_vec());
        let schema = weft
            .session()
            .catalog(tenant)
            .and_then(|c| c.schema(MODEL_SCHEMA))
            .expect("the session creates its default catalog and schema");
        for table in &config.tables {
            let plan = self.view_plan(tenant, table, roles).await?;
            // No definition: it would show the storage tables and the row filter in
            // `information_schema.views` and `SHOW CREATE TABLE`.
            let view = ViewTable::new(plan, None);
            schema
                .register_table(table.name.clone(), Arc::new(view))
                .map_err(|e| model_error(tenant, table, None, e))?;
        }
        Ok(weft)
    }

    /// Plans each column on its own (so an error names it), then the whole table as the
    /// roles that see everything read it, and as a user with no roles.
    async fn check_table(&self, tenant: &str, table: &ModelTableConfig) -> Result<()> {
        let from = from_clause(table);
        for column in &table.columns {
            for expr in [Some(column_expr(column)), column.mask.clone()]
                .into_iter()
                .flatten()
            {
                let sql = format!("SELECT {expr} AS {} FROM {from}", quote(&column.name));
                self.plan(&sql)
                    .await
                    .map_err(|e| model_error(tenant, table, Some(&column.name), e))?;
            }
        }
        if let Some(filter) = &table.filter {
            let sql = format!("SELECT 1 FROM {from} WHERE ({filter})");
            self.plan(&sql)
                .await
                .map_err(|e| model_error(tenant, table, None, format!("row filter: {e}")))?;
        }
        let all_roles: Vec<String> = table
            .columns
            .iter()
            .flat_map(|c| c.roles.iter().flatten().cloned())
            .collect();
        self.view_plan(tenant, table, &all_roles).await?;
        self.view_plan(tenant, table, &[]).await?;
        Ok(())
    }

    /// The model table as the roles see it: a plan over the storage tables.
    async fn view_plan(
        &self,
        tenant: &str,
        table: &ModelTableConfig,
        roles: &[String],
    ) -> Result<LogicalPlan> {
        let select: Vec<String> = table
            .columns
            .iter()
            .filter_map(|column| {
                let allowed = column
                    .roles
                    .as_ref()
                    .is_none_or(|allowed| allowed.iter().any(|r| roles.contains(r)));
                let expr = if allowed {
                    column_expr(column)
                } else {
                    column.mask.clone()?
                };
                Some(format!("{expr} AS {}", quote(&column.name)))
            })
            .collect();
        if select.is_empty() {
            return Err(model_error(
                tenant,
                table,
                None,
                "no column is visible to these roles",
            ));
        }
        let mut sql = format!("SELECT {} FROM {}", select.join(", "), from_clause(table));
        if let Some(filter) = &table.filter {
            sql.push_str(&format!(" WHERE ({filter})"));
        }
        self.plan(&sql)
            .await
            .map_err(|e| model_error(tenant, table, None, e))
    }

    async fn plan(&self, sql: &str) -> datafusion::error::Result<LogicalPlan> {
        self.storage
            .session()
            .state()
            .create_logical_plan(sql)
            .await
    }
}

fn column_expr(column: &ModelColumnConfig) -> String {
    column.expr.clone().unwrap_or_else(|| quote(&column.name))
}

fn from_clause(table: &ModelTableConfig) -> String {
    match (&table.from, &table.sql) {
        (Some(from), _) => from.clone(),
        (None, Some(sql)) => format!("({sql}) AS __weft_model"),
        (None, None) => unreachable!("the config checks that a model table has a source"),
    }
}

/// A SQL identifier, quoted: model names keep their case.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn model_error(
    tenant: &str,
    table: &ModelTableConfig,
    column: Option<&str>,
    message: impl std::fmt::Display,
) -> Error {
    Error::Model {
        tenant: tenant.to_string(),
        table: table.name.clone(),
        column: column.map(str::to_string),
        message: message.to_string(),
    }
}
