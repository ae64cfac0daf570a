//! `weft serve`: Arrow Flight SQL over every configured source, with Basic and Bearer auth.
//!
//! Every call passes the [`auth::Authenticator`] (a tonic interceptor) first; the
//! [`service::WeftFlightSqlService`] then answers it, on datafusion-flight-sql-server where
//! that crate is complete and on Weft's own code where it is not.

mod auth;
mod cancel;
mod execution;
mod http;
mod limits;
mod metadata;
mod params;
mod service;
mod sessions;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arrow_flight::flight_service_server::FlightServiceServer;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use weft_core::config::{Config, UserConfig};
use weft_planner::WeftContext;

pub(crate) use auth::{hash_password, new_token, token_hash};

/// The address served when neither `--listen` nor `[server] listen` gives one.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// How long in-flight queries may run on after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `weft` until Ctrl-C or SIGTERM.
pub(crate) async fn serve(
    weft: WeftContext,
    config: &Config,
    listen: Option<String>,
    demo: bool,
) -> anyhow::Result<()> {
    let mut users = config.users.clone();
    if demo && users.is_empty() && config.tokens.is_empty() {
        users.push(UserConfig::new("demo", hash_password("demo")));
        tracing::warn!("serving the built-in demo: log in as user `demo` with password `demo`");
    }
    if users.is_empty() && config.tokens.is_empty() {
        anyhow::bail!(
            "the config has no `[[users]]` and no `[[tokens]]`: nobody could log in \
             (add a user with a hash from `weft hash-password`)"
        );
    }
    let secret = match &config.server.token_secret_env {
        Some(var) => Some(
            std::env::var(var)
                .with_context(|| {
                    format!("`[server] token_secret_env` names `{var}`, which is not set")
                })?
                .into_bytes(),
        ),
        None => None,
    };
    let auth = auth::Authenticator::new(
        &users,
        &config.tokens,
        secret,
        Duration::from_secs(config.server.session_ttl_secs),
    )?;

    let listen = listen
        .or_else(|| config.server.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let addr: SocketAddr = tokio::net::lookup_host(&listen)
        .await
        .with_context(|| format!("cannot resolve the listen address `{listen}`"))?
        .next()
        .with_context(|| format!("the listen address `{listen}` resolves to nothing"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;

    let mut server = Server::builder();
    let scheme = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => {
            let read = |path: &std::path::Path| {
                let path = config.resolve(path);
                std::fs::read(&path).with_context(|| format!("cannot read `{}`", path.display()))
            };
            let identity = Identity::from_pem(read(cert)?, read(key)?);
            server = server
                .tls_config(ServerTlsConfig::new().identity(identity))
                .context("the TLS certificate or key is unusable")?;
            "grpc+tls"
        }
        _ => "grpc",
    };

    let sessions = Arc::new(build_sessions(&weft, config).await?);
    #[cfg(feature = "semantic")]
    if sessions.has_model() {
        tokio::spawn(watch_model(
            Arc::clone(&sessions),
            weft.clone(),
            config.clone(),
        ));
    }
    let limits = Arc::new(limits::Limits::new(&config.server));
    tracing::info!(limits = %limits.describe(), "query limits");
    let metrics = Arc::new(http::Metrics::new());
    if let Some(http_listen) = &config.server.http_listen {
        let local = http::serve(
            http_listen,
            Arc::clone(&metrics),
            Arc::clone(&limits),
            weft.sources().to_vec(),
        )
        .await?;
        eprintln!("Health and metrics on http://{local} (/health, /metrics)");
    }
    let executor = Arc::new(execution::Executor::new(config.server.execution_threads)?);
    tracing::info!(threads = executor.threads(), "query threads");
    let service = service::WeftFlightSqlService::new(
        sessions,
        auth.clone(),
        Arc::clone(&limits),
        metrics,
        executor,
    );
    let service = FlightServiceServer::new(service)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    let service = InterceptedService::new(service, move |request| auth.check(request));

    let sources = weft.sources().len();
    eprintln!("Listening on {scheme}://{local} ({sources} sources)");
    tracing::info!(%local, sources, "serving Flight SQL");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut grace_rx = stop_rx.clone();
    let signal = async move {
        shutdown_signal().await;
        eprintln!("Shutting down: no new queries; queries in flight get {SHUTDOWN_GRACE:?}");
        let _ = stop_tx.send(true);
    };
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let serving = server
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, signal);
    let grace = async move {
        let _ = grace_rx.wait_for(|stop| *stop).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = serving => result.context("the Flight SQL server failed")?,
        () = grace => tracing::warn!("queries still running after {SHUTDOWN_GRACE:?}: cancelled"),
    }
    drop(stop_rx);
    eprintln!("Stopped.");
    Ok(())
}

/// The storage session, and with a model (`[[tenants]]` or a `model` file) the semantic
/// layer over it, checked now: a model that does not fit the storage stops start-up, naming
/// tenant, table and column.
async fn build_sessions(weft: &WeftContext, config: &Config) -> anyhow::Result<sessions::Sessions> {
    if config.tenants.is_empty() && config.model.is_none() {
        return Ok(sessions::Sessions::storage(weft.session().clone()));
    }
    #[cfg(feature = "semantic")]
    {
        let layer = weft_semantic::SemanticLayer::new(weft.clone(), &config.tenants)
            .await
            .context("the semantic model does not fit the sources")?;
        let tenants = layer.tenants().count();
        tracing::info!(tenants, "semantic layer loaded");
        Ok(sessions::Sessions::semantic(
            weft.session().clone(),
            layer,
            config,
        ))
    }
    #[cfg(not(feature = "semantic"))]
    anyhow::bail!(
        "the config has a model ([[tenants]] or `model`), but this `weft` was built without \
         the `semantic` feature"
    )
}

/// How often the model's files are checked for changes.
#[cfg(feature = "semantic")]
const MODEL_POLL: Duration = Duration::from_secs(1);

/// Reloads the model on SIGHUP and whenever one of its files changes. A model that does not
/// load or does not fit the sources is reported and the previous one stays; a good one serves
/// the sessions opened from then on (connections and queries in flight are not touched).
#[cfg(feature = "semantic")]
async fn watch_model(sessions: Arc<sessions::Sessions>, weft: WeftContext, config: Config) {
    let files = config.model_files();
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut seen = stamps(&files);
    loop {
        let hangup = async {
            #[cfg(unix)]
            if let Some(hangup) = hangup.as_mut() {
                hangup.recv().await;
                return;
            }
            std::future::pending::<()>().await
        };
        let reason = tokio::select! {
            () = hangup => "SIGHUP",
            () = tokio::time::sleep(MODEL_POLL) => {
                if stamps(&files) == seen {
                    continue;
                }
                "a model file changed"
            }
        };
        seen = stamps(&files);
        let started = std::time::Instant::now();
        let loaded = match config.reload_model() {
            Ok(tenants) => weft_semantic::SemanticLayer::new(weft.clone(), &tenants)
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        match loaded {
            Ok(layer) => {
                let tenants = layer.tenants().count();
                sessions.swap_model(layer);
                eprintln!(
                    "Model reloaded ({reason}): {tenants} tenants, checked in {:.0?}",
                    started.elapsed()
                );
                tracing::info!(tenants, reason, "model reloaded");
            }
            Err(e) => {
                eprintln!("Model not reloaded ({reason}); the previous model stays: {e:#}");
                tracing::error!(reason, error = %format!("{e:#}"), "model reload failed");
            }
        }
    }
}

/// When and how big each file was last written, to notice changes.
#[cfg(feature = "semantic")]
fn stamps(files: &[std::path::PathBuf]) -> Vec<Option<(std::time::SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
