//! The config file model: `[[sources]]` and their kinds.
//!
//! The file is a public interface that users, scripts and later features write, so its shape
//! only grows. Every kind Weft knows is described here, whether or not the running binary was
//! built with its connector, so that a config naming a missing connector gets a clear error
//! rather than a parse failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};

/// A whole config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The data sources; each becomes a catalog named after it.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// `[server]`: how `weft serve` listens.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[[users]]`: who may log in to `weft serve` with a password.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// `[[tokens]]`: API tokens `weft serve` accepts as Bearer tokens.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// `[[tenants]]`: the semantic layer's model, one catalog of model tables per tenant.
    /// With `model`, the tenants of that file follow these.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// A file holding more `[[tenants]]` (the model), so it can be managed apart from this
    /// file. Relative to the config.
    pub model: Option<PathBuf>,
    /// The folder relative paths are resolved against: the config file's folder.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file the config was loaded from, if any.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// A model file: `[[tenants]]` only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    #[serde(default)]
    tenants: Vec<TenantConfig>,
}

/// `[server]`: the Flight SQL server's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The address to listen on, `host:port` (default `127.0.0.1:50051`; `--listen` wins).
    pub listen: Option<String>,
    /// A PEM certificate (chain) to serve TLS with; needs `tls_key`. Relative to the config.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`. Relative to the config.
    pub tls_key: Option<PathBuf>,
    /// How long a token issued at login stays valid, in seconds (default 12 hours).
    #[serde(default = "default_session_ttl_secs")]
    pub session_ttl_secs: u64,
    /// The environment variable holding the secret that signs login tokens. Servers sharing
    /// it accept each other's tokens; without it each process makes its own at start-up.
    pub token_secret_env: Option<String>,
    /// The longest a query may take, waiting for a slot included, in seconds (default 900;
    /// 0 for no limit). A client's shorter gRPC deadline wins.
    #[serde(default = "default_query_timeout_secs")]
    pub query_timeout_secs: u64,
    /// How many queries run at once (default 32); more wait in a queue.
    #[serde(default = "default_max_concurrent_queries")]
    pub max_concurrent_queries: usize,
    /// How many queries may wait for a slot (default 256); past that a query is refused at
    /// once with "server busy".
    #[serde(default = "default_max_queued_queries")]
    pub max_queued_queries: usize,
    /// The memory all queries together may hold, e.g. `"8 GiB"` or a number of bytes
    /// (default: three quarters of the machine's memory). Sorts and aggregations spill to
    /// disk past it; what cannot spill fails with "resources exhausted".
    pub memory_limit: Option<ByteSize>,
    /// The memory one query may hold (default: half of `memory_limit`).
    pub query_memory_limit: Option<ByteSize>,
    /// `host:port` of a small HTTP endpoint serving `/health` and `/metrics` (Prometheus);
    /// off when not set.
    pub http_listen: Option<String>,
    /// Threads that run queries (default: one per core). They are apart from the threads
    /// that answer clients, so a busy engine never delays a deadline, a cancel or `/health`.
    pub execution_threads: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: None,
            tls_cert: None,
            tls_key: None,
            session_ttl_secs: default_session_ttl_secs(),
            token_secret_env: None,
            query_timeout_secs: default_query_timeout_secs(),
            max_concurrent_queries: default_max_concurrent_queries(),
            max_queued_queries: default_max_queued_queries(),
            memory_limit: None,
            query_memory_limit: None,
            http_listen: None,
            execution_threads: None,
        }
    }
}

fn default_query_timeout_secs() -> u64 {
    15 * 60
}

fn default_max_concurrent_queries() -> usize {
    32
}

fn default_max_queued_queries() -> usize {
    256
}

/// A number of bytes, written as a number or as a string with a unit (`"512 MiB"`, `"2GB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bytes(u64),
            Text(String),
        }
        match Written::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("expected a size: a number of bytes, or text such as \"512 MiB\"")
        })? {
            Written::Bytes(bytes) => Ok(ByteSize(bytes)),
            Written::Text(text) => text
                .parse::<bytesize::ByteSize>()
                .map(|size| ByteSize(size.as_u64()))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "`{text}` is not a size: write e.g. \"512 MiB\", \"2 GB\" or a number of bytes"
                    ))
                }),
        }
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", bytesize::ByteSize(self.0).display().iec())
    }
}

fn default_session_ttl_secs() -> u64 {
    12 * 60 * 60
}

/// One `[[users]]` entry: a user who logs in with a password.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct UserConfig {
    /// The user name.
    pub name: String,
    /// The password's argon2 hash in PHC form (`$argon2id$...`), as `weft hash-password`
    /// prints it. Never the password itself.
    pub password_hash: String,
    /// The tenant whose model catalog the user sees (with the semantic layer).
    pub tenant: Option<String>,
    /// The user's roles, for column access rules.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl UserConfig {
    /// A user with an argon2 password hash.
    pub fn new(name: impl Into<String>, password_hash: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            password_hash: password_hash.into(),
            tenant: None,
            roles: Vec::new(),
        }
    }

    /// The same user, in a tenant with roles.
    pub fn in_tenant(mut self, tenant: impl Into<String>, roles: &[&str]) -> Self {
        self.tenant = Some(tenant.into());
        self.roles = roles.iter().map(|r| r.to_string()).collect();
        self
    }
}

/// One `[[tenants]]` entry: what a tenant's users see.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TenantConfig {
    /// The tenant's name, which is also its catalog's: `<tenant>.public.<table>`.
    pub name: String,
    /// `[[tenants.tables]]`: the model tables.
    #[serde(default)]
    pub tables: Vec<ModelTableConfig>,
}

impl TenantConfig {
    /// A tenant with no tables yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            tables: Vec::new(),
        }
    }

    /// The same tenant with one more model table.
    pub fn with_table(mut self, table: ModelTableConfig) -> Self {
        self.tables.push(table);
        self
    }
}

/// A model table: a tenant's table defined on storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ModelTableConfig {
    /// The table's name in the tenant's catalog.
    pub name: String,
    /// The storage table it reads, `<source>.<schema>.<table>`; or use `sql`.
    pub from: Option<String>,
    /// A query over storage tables it reads instead of `from`.
    pub sql: Option<String>,
    /// A SQL condition over the storage columns that every read applies (`org_id = 42`).
    pub filter: Option<String>,
    /// `[[tenants.tables.columns]]`: the model's columns, in order.
    #[serde(default)]
    pub columns: Vec<ModelColumnConfig>,
}

impl ModelTableConfig {
    /// A model table over a storage table, with no columns yet.
    pub fn from_table(name: impl Into<String>, from: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            from: Some(from.into()),
            sql: None,
            filter: None,
            columns: Vec::new(),
        }
    }

    /// A model table over a query on storage tables.
    pub fn from_sql(name: impl Into<String>, sql: impl Into<String>) -> Self {
        Self {
            sql: Some(sql.into()),
            from: None,
            ..Self::from_table(name, "")
        }
    }

    /// The same table with a row filter.
    pub fn with_filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// The same table with one more column.
    pub fn with_column(mut self, column: ModelColumnConfig) -> Self {
        self.columns.push(column);
        self
    }
}

/// A model column: a storage column or a SQL expression over the storage columns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ModelColumnConfig {
    /// The column's name in the model.
    pub name: String,
    /// A SQL expression over the storage table's columns; the storage column of the same
    /// name when absent.
    pub expr: Option<String>,
    /// Roles that may read the column; everyone when absent.
    pub roles: Option<Vec<String>>,
    /// What other roles see instead (a SQL expression, e.g. `'***'`); without it the column
    /// is hidden from them.
    pub mask: Option<String>,
}

impl ModelColumnConfig {
    /// A column that is the storage column of the same name.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            expr: None,
            roles: None,
            mask: None,
        }
    }

    /// The same column computed by an expression over the storage columns.
    pub fn with_expr(mut self, expr: impl Into<String>) -> Self {
        self.expr = Some(expr.into());
        self
    }

    /// The same column, readable only by these roles (others get the mask, or nothing).
    pub fn for_roles(mut self, roles: &[&str], mask: Option<&str>) -> Self {
        self.roles = Some(roles.iter().map(|r| r.to_string()).collect());
        self.mask = mask.map(str::to_string);
        self
    }
}

/// One `[[tokens]]` entry: an API token for a service, accepted as a Bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TokenConfig {
    /// Who the token acts as, in logs (and later for access rules).
    pub name: String,
    /// The token's SHA-256 as `sha256:<hex>`, as `weft hash-token` prints it. Never the
    /// token itself.
    pub hash: String,
    /// The tenant whose model catalog the token sees (with the semantic layer).
    pub tenant: Option<String>,
    /// The token's roles, for column access rules.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl TokenConfig {
    /// A token entry with its `sha256:<hex>` hash.
    pub fn new(name: impl Into<String>, hash: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            hash: hash.into(),
            tenant: None,
            roles: Vec::new(),
        }
    }
}

/// One `[[sources]]` entry, tagged by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum SourceConfig {
    /// `kind = "sqlite"`: a SQLite file, opened read-only.
    Sqlite(SqliteConfig),
    /// `kind = "parquet"`: Parquet files under an object-store URL.
    Parquet(ParquetConfig),
    /// `kind = "postgres"`: a PostgreSQL database.
    Postgres(PostgresConfig),
    /// `kind = "flightsql"`: a remote Flight SQL server.
    Flightsql(FlightSqlConfig),
}

/// `kind = "sqlite"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// The source's name: its catalog is `<name>.main.<table>`.
    pub name: String,
    /// The database file; relative to the config file's folder.
    pub path: PathBuf,
    /// How long a query waits for a lock held by a writer, in milliseconds.
    #[serde(default = "default_busy_timeout_ms")]
    pub busy_timeout_ms: u64,
}

fn default_busy_timeout_ms() -> u64 {
    5_000
}

/// `kind = "parquet"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ParquetConfig {
    /// The source's name: its catalog is `<name>.public.<table>`.
    pub name: String,
    /// The root URL: `file:///srv/lake`, `s3://bucket/prefix`, or a plain (relative) path.
    pub url: String,
    /// Table name → a file, a directory (hive partitions allowed) or a glob under `url`.
    #[serde(default)]
    pub tables: BTreeMap<String, String>,
    /// Object-store options (credentials, region, endpoint, ...), passed to the store builder.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// `kind = "postgres"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// The source's name.
    pub name: String,
    /// A libpq-style URL, `postgres://user@host:5432/db`.
    pub url: String,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// `disable`, `prefer` or `require`, ...
    pub sslmode: Option<String>,
    /// The largest number of connections to keep.
    pub pool_size: Option<u32>,
    /// The most concurrent `ctid` ranges one large scan is read in (1: every statement is
    /// read whole); the machine's cores, at most 8, when absent.
    pub read_ranges: Option<usize>,
    /// The schemas to expose; all but the system ones when absent.
    pub schemas: Option<Vec<String>>,
    /// What to do with a column whose type has no Arrow mapping.
    #[serde(default)]
    pub unsupported_types: UnsupportedTypes,
}

/// What a connector does with a column whose type has no Arrow mapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum UnsupportedTypes {
    /// Opening the source fails with an error naming the table, column and type.
    #[default]
    Error,
    /// The column is left out of the table, with a warning in the log.
    Skip,
}

/// `kind = "flightsql"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FlightSqlConfig {
    /// The source's name.
    pub name: String,
    /// The server, `grpc://host:port` or `grpc+tls://host:port`.
    pub url: String,
    /// The environment variable holding a Bearer token.
    pub token_env: Option<String>,
    /// The user for Basic auth.
    pub user: Option<String>,
    /// The environment variable holding the password for Basic auth.
    pub password_env: Option<String>,
    /// The one remote catalog to expose, as `<name>.<schema>.<table>`; without it every
    /// remote catalog is exposed, as `<name>.<catalog>_<schema>.<table>`.
    pub catalog: Option<String>,
}

impl SourceConfig {
    /// The source's name from the config.
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Sqlite(c) => &c.name,
            SourceConfig::Parquet(c) => &c.name,
            SourceConfig::Postgres(c) => &c.name,
            SourceConfig::Flightsql(c) => &c.name,
        }
    }

    /// The `kind` as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Sqlite(_) => "sqlite",
            SourceConfig::Parquet(_) => "parquet",
            SourceConfig::Postgres(_) => "postgres",
            SourceConfig::Flightsql(_) => "flightsql",
        }
    }
}

impl SqliteConfig {
    /// A SQLite source config for `path` with default settings.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            busy_timeout_ms: default_busy_timeout_ms(),
        }
    }
}

impl ParquetConfig {
    /// A Parquet source config rooted at `url` with no tables yet.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            tables: BTreeMap::new(),
            options: BTreeMap::new(),
        }
    }

    /// Adds a table: a file, directory or glob under the source's URL.
    pub fn with_table(mut self, name: impl Into<String>, location: impl Into<String>) -> Self {
        self.tables.insert(name.into(), location.into());
        self
    }
}

impl Config {
    /// Reads and checks a config file. Relative paths in it are relative to its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut config = Self::parse(&text, path, base_dir)?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// The files the model is read from: the model file, if any, and the config file.
    pub fn model_files(&self) -> Vec<PathBuf> {
        let model = self.model.as_deref().map(|m| self.resolve(m));
        model.into_iter().chain(self.path.clone()).collect()
    }

    /// Reads the model again from the files it came from, checked as at load (the users and
    /// tokens must still find their tenants). A config given as text keeps its model.
    pub fn reload_model(&self) -> Result<Vec<TenantConfig>> {
        let fresh = match &self.path {
            Some(path) => Self::load(path)?,
            None => return Ok(self.tenants.clone()),
        };
        let config = Config {
            tenants: fresh.tenants,
            ..self.clone()
        };
        config.validate_tenants()?;
        Ok(config.tenants)
    }

    /// Parses a config from text; `origin` names it in errors, `base_dir` anchors relative
    /// paths.
    pub fn parse(text: &str, origin: &Path, base_dir: PathBuf) -> Result<Self> {
        let mut config: Config = toml::from_str(text).map_err(|e| Error::ParseConfig {
            path: origin.to_path_buf(),
            message: describe_toml_error(text, &e),
        })?;
        config.base_dir = base_dir;
        if let Some(model) = &config.model {
            let path = config.resolve(model);
            let text = std::fs::read_to_string(&path).map_err(|source| Error::ReadConfig {
                path: path.clone(),
                source,
            })?;
            let file: ModelFile = toml::from_str(&text).map_err(|e| Error::ParseConfig {
                path: path.clone(),
                message: describe_toml_error(&text, &e),
            })?;
            config.tenants.extend(file.tenants);
        }
        config.validate()?;
        Ok(config)
    }

    /// Resolves a path from the config against the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    fn validate_tenants(&self) -> Result<()> {
        let mut tenants = std::collections::HashSet::new();
        for tenant in &self.tenants {
            if tenant.name.is_empty() {
                return Err(Error::InvalidConfig("a tenant has an empty name".into()));
            }
            if !tenants.insert(tenant.name.to_ascii_lowercase()) {
                return Err(Error::InvalidConfig(format!(
                    "two tenants are named `{}`; tenant names become catalog names and must be unique",
                    tenant.name
                )));
            }
            let mut tables = std::collections::HashSet::new();
            for table in &tenant.tables {
                let at = format!("tenant `{}`, model table `{}`", tenant.name, table.name);
                if !tables.insert(table.name.to_ascii_lowercase()) {
                    return Err(Error::InvalidConfig(format!("{at}: defined twice")));
                }
                match (&table.from, &table.sql) {
                    (Some(_), None) | (None, Some(_)) => {}
                    _ => {
                        return Err(Error::InvalidConfig(format!(
                            "{at}: give exactly one of `from` (a storage table) and `sql` (a query)"
                        )))
                    }
                }
                if table.columns.is_empty() {
                    return Err(Error::InvalidConfig(format!("{at}: no columns")));
                }
                let mut columns = std::collections::HashSet::new();
                for column in &table.columns {
                    if !columns.insert(column.name.to_ascii_lowercase()) {
                        return Err(Error::InvalidConfig(format!(
                            "{at}: column `{}` is defined twice",
                            column.name
                        )));
                    }
                    if column.mask.is_some() && column.roles.is_none() {
                        return Err(Error::InvalidConfig(format!(
                            "{at}, column `{}`: a `mask` needs `roles` (who sees the column unmasked)",
                            column.name
                        )));
                    }
                }
            }
        }
        let principals = self
            .users
            .iter()
            .map(|u| (&u.name, &u.tenant))
            .chain(self.tokens.iter().map(|t| (&t.name, &t.tenant)));
        for (name, tenant) in principals {
            if let Some(tenant) = tenant {
                if !self.tenants.iter().any(|t| &t.name == tenant) {
                    return Err(Error::InvalidConfig(format!(
                        "`{name}` belongs to tenant `{tenant}`, which no [[tenants]] entry defines"
                    )));
                }
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        self.validate_tenants()?;
        let mut seen = std::collections::HashSet::new();
        for source in &self.sources {
            let name = source.name();
            if name.is_empty() {
                return Err(Error::InvalidConfig(format!(
                    "a source of kind `{}` has an empty name",
                    source.kind()
                )));
            }
            if !seen.insert(name.to_ascii_lowercase()) {
                return Err(Error::InvalidConfig(format!(
                    "two sources are named `{name}`; source names become catalog names and must be unique"
                )));
            }
        }
        let mut principals = std::collections::HashSet::new();
        for name in self
            .users
            .iter()
            .map(|u| &u.name)
            .chain(self.tokens.iter().map(|t| &t.name))
        {
            if name.is_empty() {
                return Err(Error::InvalidConfig(
                    "a `[[users]]` or `[[tokens]]` entry has an empty name".into(),
                ));
            }
            if !principals.insert(name.as_str()) {
                return Err(Error::InvalidConfig(format!(
                    "`{name}` is named twice in `[[users]]` and `[[tokens]]`; names must be unique"
                )));
            }
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err(Error::InvalidConfig(
                "`[server]` needs both `tls_cert` and `tls_key` for TLS, or neither".into(),
            ));
        }
        if self.server.execution_threads == Some(0) {
            return Err(Error::InvalidConfig(
                "`[server] execution_threads` is 0: no query could ever run".into(),
            ));
        }
        if self.server.max_concurrent_queries == 0 {
            return Err(Error::InvalidConfig(
                "`[server] max_concurrent_queries` is 0: no query could ever run".into(),
            ));
        }
        if let (Some(query), Some(server)) =
            (self.server.query_memory_limit, self.server.memory_limit)
        {
            if query > server {
                return Err(Error::InvalidConfig(format!(
                    "`[server] query_memory_limit` ({query}) is above `memory_limit` ({server})"
                )));
            }
        }
        Ok(())
    }
}

/// toml's message with the line and column of the error spelled out.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end().to_string();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("weft.toml"), PathBuf::from("/etc/weft"))
    }

    #[test]
    fn parses_the_documented_shape() {
        let config = parse(
            r#"
[[sources]]
name = "shop"
kind = "sqlite"
path = "data/shop.db"

[[sources]]
name = "lake"
kind = "parquet"
url = "file:///srv/lake"
[sources.tables]
events = "events/"
"#,
        )
        .unwrap();
        assert_eq!(config.sources.len(), 2);
        let SourceConfig::Sqlite(shop) = &config.sources[0] else {
            panic!("expected sqlite")
        };
        assert_eq!(
            config.resolve(&shop.path),
            PathBuf::from("/etc/weft/data/shop.db")
        );
        let SourceConfig::Parquet(lake) = &config.sources[1] else {
            panic!("expected parquet")
        };
        assert_eq!(lake.tables["events"], "events/");
    }

    #[test]
    fn postgres_unsupported_types_is_error_or_skip() {
        let source = |extra: &str| {
            parse(&format!(
                "[[sources]]\nname = \"crm\"\nkind = \"postgres\"\nurl = \"postgres://u@h/db\"\n{extra}"
            ))
        };
        let SourceConfig::Postgres(crm) = &source("").unwrap().sources[0] else {
            panic!("expected postgres")
        };
        assert_eq!(crm.unsupported_types, UnsupportedTypes::Error);
        let SourceConfig::Postgres(crm) =
            &source("unsupported_types = \"skip\"").unwrap().sources[0]
        else {
            panic!("expected postgres")
        };
        assert_eq!(crm.unsupported_types, UnsupportedTypes::Skip);
        let err = source("unsupported_types = \"drop\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`drop`") && err.contains("`error` or `skip`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_kind_names_the_kind_and_the_line() {
        let err = parse("[[sources]]\nname = \"x\"\nkind = \"mysql\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mysql"), "{err}");
        assert!(err.contains("line 3, column 8"), "{err}");
    }

    #[test]
    fn typo_in_a_field_is_reported_with_its_position() {
        let err = parse("[[sources]]\nname = \"x\"\nkind = \"sqlite\"\npaht = \"a.db\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("paht"), "{err}");
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn duplicate_source_names_are_refused() {
        let err = parse(
            "[[sources]]\nname = \"x\"\nkind = \"sqlite\"\npath = \"a.db\"\n\
             [[sources]]\nname = \"X\"\nkind = \"sqlite\"\npath = \"b.db\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("two sources are named `X`"), "{err}");
    }

    #[test]
    fn parses_server_users_and_tokens() {
        let config = parse(
            r#"
[server]
listen = "0.0.0.0:50051"
session_ttl_secs = 60

[[users]]
name = "ana"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"

[[tokens]]
name = "etl"
hash = "sha256:00"

[[sources]]
name = "b"
kind = "flightsql"
url = "grpc://127.0.0.1:50051"
token_env = "B_TOKEN"
catalog = "shop"
"#,
        )
        .unwrap();
        assert_eq!(config.server.listen.as_deref(), Some("0.0.0.0:50051"));
        assert_eq!(config.server.session_ttl_secs, 60);
        assert_eq!(config.users[0].name, "ana");
        assert_eq!(config.tokens[0].name, "etl");
        let SourceConfig::Flightsql(b) = &config.sources[0] else {
            panic!("expected flightsql")
        };
        assert_eq!(b.catalog.as_deref(), Some("shop"));
        assert_eq!(parse("").unwrap().server.session_ttl_secs, 12 * 60 * 60);
        assert_eq!(parse("").unwrap().server.query_timeout_secs, 900);
    }

    #[test]
    fn parses_limits_with_units_and_refuses_impossible_ones() {
        let config = parse(
            "[server]\nmemory_limit = \"2 GiB\"\nquery_memory_limit = 1048576\n\
             max_concurrent_queries = 4\nmax_queued_queries = 0\nquery_timeout_secs = 0\n",
        )
        .unwrap();
        assert_eq!(config.server.memory_limit, Some(ByteSize(2 << 30)));
        assert_eq!(config.server.query_memory_limit, Some(ByteSize(1 << 20)));
        assert_eq!(config.server.max_concurrent_queries, 4);
        assert_eq!(config.server.max_queued_queries, 0);
        let err = parse("[server]\nmemory_limit = \"1 MiB\"\nquery_memory_limit = \"2 MiB\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("query_memory_limit` (2.0 MiB) is above"),
            "{err}"
        );
        let err = parse("[server]\nmax_concurrent_queries = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no query could ever run"), "{err}");
        let err = parse("[server]\nmemory_limit = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`lots` is not a size"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn rejects_duplicate_principals_and_half_tls() {
        let err = parse(
            "[[users]]\nname = \"x\"\npassword_hash = \"h\"\n\n\
             [[tokens]]\nname = \"x\"\nhash = \"sha256:00\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`x` is named twice"), "{err}");
        let err = parse("[server]\ntls_cert = \"c.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("both `tls_cert` and `tls_key`"), "{err}");
        let err = parse("[[users]]\nname = \"x\"\npassword = \"clear\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("password"), "{err}");
    }

    #[test]
    fn the_model_file_adds_tenants_and_reloads_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.toml");
        let model = dir.path().join("model.toml");
        let tenant = |name: &str| {
            format!(
                "[[tenants]]\nname = \"{name}\"\n[[tenants.tables]]\nname = \"t\"\n\
                 from = \"a.b.c\"\n[[tenants.tables.columns]]\nname = \"x\"\n"
            )
        };
        std::fs::write(
            &path,
            format!(
                "model = \"model.toml\"\n[[users]]\nname = \"ann\"\npassword_hash = \"h\"\n\
                 tenant = \"globex\"\n{}",
                tenant("acme")
            ),
        )
        .unwrap();
        std::fs::write(&model, tenant("globex")).unwrap();
        let config = Config::load(&path).unwrap();
        let names = |tenants: &[TenantConfig]| -> Vec<String> {
            tenants.iter().map(|t| t.name.clone()).collect()
        };
        assert_eq!(names(&config.tenants), ["acme", "globex"]);
        assert_eq!(config.model_files(), [model.clone(), path.clone()]);

        std::fs::write(&model, format!("{}{}", tenant("globex"), tenant("initech"))).unwrap();
        assert_eq!(
            names(&config.reload_model().unwrap()),
            ["acme", "globex", "initech"]
        );
        // ann's tenant must stay; a file that does not parse names itself.
        std::fs::write(&model, tenant("initech")).unwrap();
        let err = config.reload_model().unwrap_err().to_string();
        assert!(err.contains("tenant `globex`"), "{err}");
        std::fs::write(&model, "[[tenants]\n").unwrap();
        let err = config.reload_model().unwrap_err().to_string();
        assert!(err.contains("model.toml"), "{err}");
        std::fs::write(&model, format!("{}[server]\n", tenant("globex"))).unwrap();
        let err = config.reload_model().unwrap_err().to_string();
        assert!(
            err.contains("server"),
            "only tenants belong in a model file: {err}"
        );
    }

    #[test]
    fn parses_tenants_with_model_tables_and_users_in_them() {
        let config = parse(
            r#"
[[users]]
name = "ann"
password_hash = "$argon2id$x"
tenant = "acme"
roles = ["support"]

[[tenants]]
name = "acme"

[[tenants.tables]]
name = "customers"
from = "crm.public.accounts"
filter = "org_id = 42"

[[tenants.tables.columns]]
name = "customer_id"
expr = "id"

[[tenants.tables.columns]]
name = "email"
roles = ["support"]
mask = "'***'"
"#,
        )
        .unwrap();
        assert_eq!(config.users[0].tenant.as_deref(), Some("acme"));
        assert_eq!(config.users[0].roles, ["support"]);
        let table = &config.tenants[0].tables[0];
        assert_eq!(table.from.as_deref(), Some("crm.public.accounts"));
        assert_eq!(table.filter.as_deref(), Some("org_id = 42"));
        assert_eq!(table.columns[0].expr.as_deref(), Some("id"));
        assert_eq!(table.columns[1].mask.as_deref(), Some("'***'"));
    }

    #[test]
    fn model_mistakes_are_refused_with_their_tenant_and_table() {
        let base = "[[tenants]]\nname = \"acme\"\n[[tenants.tables]]\nname = \"t\"\n";
        let both = format!("{base}from = \"a.b.c\"\nsql = \"SELECT 1\"\n[[tenants.tables.columns]]\nname = \"x\"\n");
        let err = parse(&both).unwrap_err().to_string();
        assert!(
            err.contains("tenant `acme`, model table `t`") && err.contains("exactly one"),
            "{err}"
        );
        let no_columns = format!("{base}from = \"a.b.c\"\n");
        let err = parse(&no_columns).unwrap_err().to_string();
        assert!(err.contains("no columns"), "{err}");
        let mask_without_roles = format!(
            "{base}from = \"a.b.c\"\n[[tenants.tables.columns]]\nname = \"x\"\nmask = \"'*'\"\n"
        );
        let err = parse(&mask_without_roles).unwrap_err().to_string();
        assert!(err.contains("needs `roles`"), "{err}");
        let unknown = "[[users]]\nname = \"ann\"\npassword_hash = \"h\"\ntenant = \"nope\"\n";
        let err = parse(unknown).unwrap_err().to_string();
        assert!(err.contains("tenant `nope`"), "{err}");
    }
}
