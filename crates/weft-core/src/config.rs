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
    /// The folder relative paths are resolved against: the config file's folder.
    #[serde(skip)]
    pub base_dir: PathBuf,
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: None,
            tls_cert: None,
            tls_key: None,
            session_ttl_secs: default_session_ttl_secs(),
            token_secret_env: None,
        }
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
}

impl UserConfig {
    /// A user with an argon2 password hash.
    pub fn new(name: impl Into<String>, password_hash: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            password_hash: password_hash.into(),
        }
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
}

impl TokenConfig {
    /// A token entry with its `sha256:<hex>` hash.
    pub fn new(name: impl Into<String>, hash: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            hash: hash.into(),
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
        Self::parse(&text, path, base_dir)
    }

    /// Parses a config from text; `origin` names it in errors, `base_dir` anchors relative
    /// paths.
    pub fn parse(text: &str, origin: &Path, base_dir: PathBuf) -> Result<Self> {
        let mut config: Config = toml::from_str(text).map_err(|e| Error::ParseConfig {
            path: origin.to_path_buf(),
            message: describe_toml_error(text, &e),
        })?;
        config.base_dir = base_dir;
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

    fn validate(&self) -> Result<()> {
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
}
