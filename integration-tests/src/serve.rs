//! A real `weft serve` process on a free loopback port, for the tools that drive one: the
//! benchmark's `--via-server` and the load test.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use arrow_flight::sql::client::FlightSqlServiceClient;
use tonic::transport::Channel;

/// A running `weft serve`; killed when dropped.
pub struct WeftServe {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

/// The `weft` binary beside the running one (cargo puts the workspace's binaries together;
/// a test runs from `deps/` below them), unless `given`.
pub fn weft_binary(given: Option<&Path>) -> Result<PathBuf> {
    let bin = match given {
        Some(bin) => bin.to_path_buf(),
        None => {
            let exe = std::env::current_exe()?;
            let beside = exe.with_file_name("weft");
            match exe.parent() {
                Some(deps) if !beside.is_file() && deps.ends_with("deps") => {
                    deps.with_file_name("weft")
                }
                _ => beside,
            }
        }
    };
    if !bin.is_file() {
        bail!(
            "no `weft` binary at {} (build it with `cargo build -p weft-server`, or name one)",
            bin.display()
        );
    }
    Ok(bin)
}

/// The argon2 hash `weft hash-password` makes of `password`.
pub fn hash_password(bin: &Path, password: &str) -> Result<String> {
    let mut child = Command::new(bin)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {} hash-password", bin.display()))?;
    writeln!(child.stdin.take().expect("piped"), "{password}")?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{} hash-password failed", bin.display());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

impl WeftServe {
    /// Starts `bin serve` with `config` (TOML) on a free loopback port, and waits until it
    /// listens. Its log lines go to stderr, prefixed.
    pub fn start(bin: &Path, config: &str, log_filter: &str) -> Result<WeftServe> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("weft.toml");
        std::fs::write(&path, config)?;
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&path)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("WEFT_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {} serve", bin.display()))?;
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                match line.strip_prefix("Listening on ") {
                    Some(rest) => {
                        if let Some(tx) = tx.take() {
                            let url = rest.split_whitespace().next().unwrap_or_default();
                            let _ = tx.send(url.to_string());
                        }
                    }
                    None => eprintln!("  weft serve: {line}"),
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                bail!("weft serve did not start listening within 120 s");
            }
        };
        eprintln!("weft serve: {url} (pid {})", child.id());
        Ok(WeftServe {
            child,
            url,
            _dir: dir,
        })
    }

    /// `grpc://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A Flight SQL client logged in as `user`.
    pub async fn client(
        &self,
        user: &str,
        password: &str,
    ) -> Result<FlightSqlServiceClient<Channel>> {
        let channel = tonic::transport::Endpoint::from_shared(self.url.clone())?
            .connect()
            .await
            .with_context(|| format!("connect to {}", self.url))?;
        let mut client = FlightSqlServiceClient::new(channel);
        client
            .handshake(user, password)
            .await
            .context("log in to weft serve")?;
        Ok(client)
    }
}

impl Drop for WeftServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
