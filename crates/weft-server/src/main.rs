//! The `weft` binary: runs, explains and inspects federated queries over the sources of a
//! config file, or over the built-in demo data when no config is given.
//!
//! Knows the connectors (each behind its cargo feature), the planner and the command line;
//! the Flight SQL server is in `serve`.
//!
//! # Features
//!
//! - `sqlite` (default): the SQLite connector.
//! - `parquet` (default): the Parquet connector.
//! - `postgres` (default): the PostgreSQL connector.
//! - `flightsql` (default): the Flight SQL connector (a remote Flight SQL server, another Weft
//!   included, as a source).
//! - `server` (default): `weft serve`, the Arrow Flight SQL server, with `weft hash-password`
//!   and `weft hash-token` for its credentials.
//! - `semantic` (default): the semantic layer (`[[tenants]]` model catalogs) for `weft serve`,
//!   and `--tenant`/`--roles` for `weft query` and `weft explain`.

mod output;
mod registry;
#[cfg(feature = "server")]
mod serve;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use weft_core::config::Config;
use weft_planner::WeftContext;

/// Weft: one SQL interface over SQLite, Parquet and more, with whole sub-plans pushed into
/// each source.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about)]
struct Cli {
    /// The config file; without it Weft serves its built-in demo data.
    #[arg(long, short, global = true, env = "WEFT_CONFIG")]
    config: Option<PathBuf>,

    /// Where the demo data is written on first use.
    #[arg(long, global = true, env = "WEFT_DATA_DIR")]
    data_dir: Option<PathBuf>,

    /// How log lines are written on stderr: `text` for people, `json` (one object per line)
    /// for log collectors.
    #[arg(long, global = true, env = "WEFT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one query and prints the result (timing on stderr).
    Query {
        /// How to print the result.
        #[arg(long, short, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        scope: Scope,
        /// The SQL query.
        sql: String,
    },
    /// Prints the plan of a query and the exact SQL sent to each source.
    Explain {
        #[command(flatten)]
        scope: Scope,
        /// The SQL query.
        sql: String,
    },
    /// Lists every source, its tables and their columns.
    Sources,
    /// Serves Arrow Flight SQL over every source until Ctrl-C or SIGTERM.
    #[cfg(feature = "server")]
    Serve {
        /// The address to listen on (default: `[server] listen`, else 127.0.0.1:50051).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Reads a password on stdin and prints its argon2 hash for a `[[users]]` entry.
    #[cfg(feature = "server")]
    HashPassword,
    /// Makes a new random API token and prints it with its hash for a `[[tokens]]` entry;
    /// with `--existing`, prints the hash of an existing token read on stdin.
    #[cfg(feature = "server")]
    HashToken {
        /// Hash a token read on stdin instead of making a new one.
        #[arg(long)]
        existing: bool,
    },
}

/// Whose view of the data a query runs in: the storage catalogs, or a tenant's model.
#[derive(Debug, Clone, Args)]
struct Scope {
    /// Run as a user of this tenant: its model tables, not the storage catalogs.
    #[arg(long)]
    tenant: Option<String>,
    /// The tenant user's roles, comma-separated (which hidden or masked columns they see).
    #[arg(long, value_delimiter = ',', requires = "tenant")]
    roles: Vec<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the fields of each event.
    Json,
}

/// Output formats of `weft query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "server")]
    let default_filter = match cli.command {
        Command::Serve { .. } => "warn,weft=info",
        _ => "warn",
    };
    #[cfg(not(feature = "server"))]
    let default_filter = "warn";
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`weft explain ... | head`): nothing more to say.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", output::describe_error(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    #[cfg(feature = "server")]
    match &cli.command {
        Command::HashPassword => {
            let password = read_stdin_line("Password: ")?;
            if password.is_empty() {
                anyhow::bail!("the password is empty");
            }
            println!("{}", serve::hash_password(&password));
            return Ok(());
        }
        Command::HashToken { existing: true } => {
            let token = read_stdin_line("Token: ")?;
            println!("{}", serve::token_hash(&token));
            return Ok(());
        }
        Command::HashToken { existing: false } => {
            let (token, hash) = serve::new_token();
            println!("token: {token}");
            println!("hash:  {hash}");
            return Ok(());
        }
        _ => {}
    }
    #[cfg_attr(not(feature = "server"), allow(unused_variables))]
    let (weft, config, demo) = open(&cli).await?;
    let weft = match &cli.command {
        Command::Query { scope, .. } | Command::Explain { scope, .. } => {
            in_scope(weft, &config, scope).await?
        }
        _ => weft,
    };
    match cli.command {
        Command::Query { format, sql, .. } => {
            let started = Instant::now();
            let df = weft.sql(&sql).await?;
            let batches = df.collect().await?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            output::print(&batches, format)?;
            let remote: usize = weft
                .sources()
                .iter()
                .filter_map(|s| s.query_log())
                .map(|log| log.queries().len())
                .sum();
            eprintln!(
                "{rows} row{} in {:.3} s ({remote} remote quer{})",
                if rows == 1 { "" } else { "s" },
                started.elapsed().as_secs_f64(),
                if remote == 1 { "y" } else { "ies" },
            );
        }
        Command::Explain { sql, .. } => {
            let explanation = weft.explain(&sql).await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "Remote queries:")?;
            if explanation.remote.is_empty() {
                writeln!(out, "  (none: everything runs in DataFusion)")?;
            }
            for remote in &explanation.remote {
                writeln!(out, "  {}: {}", remote.source, remote.sql)?;
            }
            writeln!(out, "\nPlan:")?;
            for line in explanation.plan.lines() {
                writeln!(out, "  {line}")?;
            }
        }
        Command::Sources => {
            let mut out = std::io::stdout().lock();
            for source in weft.sources() {
                writeln!(out, "{} ({})", source.name(), source.kind())?;
                for table in source.tables() {
                    writeln!(out, "  {}.{}.{}", source.name(), table.schema, table.name)?;
                    for field in table.provider.schema().fields() {
                        writeln!(out, "    {:<24} {}", field.name(), field.data_type())?;
                    }
                }
            }
        }
        #[cfg(feature = "server")]
        Command::Serve { listen } => serve::serve(weft, &config, listen, demo).await?,
        #[cfg(feature = "server")]
        Command::HashPassword | Command::HashToken { .. } => unreachable!("handled above"),
    }
    Ok(())
}

/// The session `scope` asks for: `storage` itself, or a tenant's model over it (checked first,
/// like `weft serve` does at start-up).
async fn in_scope(
    storage: WeftContext,
    config: &Config,
    scope: &Scope,
) -> anyhow::Result<WeftContext> {
    let Some(tenant) = &scope.tenant else {
        return Ok(storage);
    };
    #[cfg(feature = "semantic")]
    {
        let layer = weft_semantic::SemanticLayer::new(storage, &config.tenants)
            .await
            .context("the semantic model does not fit the sources")?;
        Ok(layer.tenant_session(tenant, &scope.roles).await?)
    }
    #[cfg(not(feature = "semantic"))]
    {
        let _ = (storage, config);
        anyhow::bail!("`--tenant {tenant}`: this `weft` was built without the `semantic` feature")
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Reads one line from stdin (prompting on stderr when it is a terminal), without its end.
#[cfg(feature = "server")]
fn read_stdin_line(prompt: &str) -> anyhow::Result<String> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Opens every source of the config (or of the demo) into a federated session; also returns
/// the config and whether it is the demo's.
async fn open(cli: &Cli) -> anyhow::Result<(WeftContext, Config, bool)> {
    let (config, demo) = match &cli.config {
        Some(path) => (Config::load(path)?, false),
        None => {
            let dir = match &cli.data_dir {
                Some(dir) => dir.clone(),
                None => dirs::data_local_dir()
                    .or_else(dirs::cache_dir)
                    .unwrap_or_else(std::env::temp_dir)
                    .join("weft")
                    .join("demo"),
            };
            if !dir.join("v1").join("complete").exists() {
                eprintln!("Writing the demo data to {} ...", dir.display());
            }
            let demo = weft_demo::ensure(&dir)?;
            let text = demo.config_toml();
            let config = Config::parse(&text, std::path::Path::new("<demo>"), dir)
                .context("the built-in demo config is invalid")?;
            (config, true)
        }
    };
    let mut weft = WeftContext::new();
    for source in &config.sources {
        match registry::open_source(source, &config).await {
            Ok(opened) => weft.register(opened)?,
            // The demo skips what this build cannot read; a user's config never does.
            Err(registry::OpenError::NotBuilt(message)) if demo => {
                tracing::warn!("{message}; the demo goes on without it");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((weft, config, demo))
}
