//! Real `weft serve` processes on free loopback ports, and clients for them.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::RecordBatch;
use futures::TryStreamExt as _;
use tonic::transport::Channel;

/// The demo data, written once per test process.
pub(crate) fn demo() -> &'static weft_demo::Demo {
    static DEMO: OnceLock<weft_demo::Demo> = OnceLock::new();
    DEMO.get_or_init(|| {
        weft_demo::ensure(&std::env::temp_dir().join("weft-serve-tests-demo")).expect("demo data")
    })
}

/// The argon2 hash `weft hash-password` prints for `password`.
pub(crate) fn hash_password(password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run weft hash-password");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A running `weft serve`; killed when dropped.
pub(crate) struct Server {
    child: Child,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Serves the built-in demo (user `demo`, password `demo`).
    pub(crate) fn demo() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = demo()
            .sqlite
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf();
        Self::spawn(dir, &["--data-dir".as_ref(), data_dir.as_os_str()], &[])
    }

    /// Serves `config` (TOML), written to a file in a fresh folder, with `env` set.
    pub(crate) fn with_config(config: &str, env: &[(&str, &str)]) -> Server {
        Self::with_files(config, &[], env)
    }

    /// Serves `config`, with more `(name, text)` files beside it.
    pub(crate) fn with_files(config: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.toml");
        std::fs::write(&path, config).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Self::spawn(dir, &["--config".as_ref(), path.as_os_str()], env)
    }

    /// The folder holding the server's config file.
    pub(crate) fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Sends the process `signal` (`HUP`, `TERM`, ...).
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {pid}");
    }

    fn spawn(dir: tempfile::TempDir, args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
        command
            .args(args)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("WEFT_CONFIG")
            .env("WEFT_LOG", "warn,weft=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start weft serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("Listening on ") {
                    let url = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(url.to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "weft serve did not start:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Server {
            child,
            url,
            log,
            _dir: dir,
        }
    }

    /// `grpc://127.0.0.1:<port>` (`grpc+tls://` when serving TLS).
    pub(crate) fn url(&self) -> String {
        self.url.clone()
    }

    /// The server's stderr so far.
    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log has `count` lines containing `needle` (log lines are written when
    /// a result stream ends, just after the client saw its end).
    pub(crate) fn wait_for_log(&self, needle: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found: Vec<String> = self
                .log()
                .into_iter()
                .filter(|l| l.contains(needle))
                .collect();
            if found.len() >= count || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server process's peak resident memory, in bytes (Linux).
    pub(crate) fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/<pid>/status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM in /proc/<pid>/status");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap();
        kib * 1024
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "weft serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Flight SQL client connected to `url`, not logged in.
pub(crate) async fn client(url: &str) -> FlightSqlServiceClient<Channel> {
    let endpoint = url.replace("grpc://", "http://");
    let channel = Channel::from_shared(endpoint)
        .unwrap()
        .connect()
        .await
        .expect("connect");
    FlightSqlServiceClient::new(channel)
}

/// A client logged in as `user`.
pub(crate) async fn login(
    url: &str,
    user: &str,
    password: &str,
) -> FlightSqlServiceClient<Channel> {
    let mut client = client(url).await;
    client.handshake(user, password).await.expect("log in");
    assert!(client.token().is_some(), "the handshake returned no token");
    client
}

/// Runs `sql` and collects the result.
pub(crate) async fn query(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
) -> Result<Vec<RecordBatch>, arrow_flight::error::FlightError> {
    let info = client.execute(sql.to_string(), None).await?;
    fetch(client, info).await
}

/// Reads every endpoint of `info`.
pub(crate) async fn fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: arrow_flight::FlightInfo,
) -> Result<Vec<RecordBatch>, arrow_flight::error::FlightError> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket");
        let mut stream = client.do_get(ticket).await?;
        while let Some(batch) = stream.try_next().await? {
            batches.push(batch);
        }
    }
    Ok(batches)
}

/// The batches as text, one line per row, for comparing.
pub(crate) fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = batch
                .columns()
                .iter()
                .map(|c| datafusion::arrow::util::display::array_value_to_string(c, row).unwrap())
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

/// A config serving the demo's sources with `extra` appended.
pub(crate) fn demo_config(extra: &str) -> String {
    format!("{}\n{extra}", demo().config_toml())
}

/// The folder a test may write files to, removed at the end.
pub(crate) fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[allow(dead_code)]
pub(crate) fn cache_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".cache")
        .join("weft")
}
