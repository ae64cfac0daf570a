//! A real PostgreSQL server for the tests: the one in `WEFT_TEST_PG_URL`, or else a
//! throwaway cluster started from the installed PostgreSQL (`initdb` and `postgres`, run as
//! the `postgres` user when the tests run as root) on a free loopback port, stopped when the
//! test process exits.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A running server the tests may create databases in.
#[derive(Debug)]
pub struct PgServer {
    /// `host:port`.
    pub host: String,
    /// The port.
    pub port: u16,
    /// A superuser.
    pub user: String,
    /// Its password, if any.
    pub password: Option<String>,
    cluster: Option<Cluster>,
}

#[derive(Debug)]
struct Cluster {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    /// The network namespace it runs in (`ip netns`), if not this process's.
    netns: Option<String>,
    /// The address it listens on.
    listen: String,
    child: Mutex<Option<Child>>,
}

/// The shared server, started on first use.
pub fn server() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("WEFT_TEST_PG_URL") {
        Ok(url) => from_url(&url),
        Err(_) => PgServer::start()
            .unwrap_or_else(|e| panic!("cannot start PostgreSQL for the tests: {e}")),
    })
}

fn from_url(url: &str) -> PgServer {
    let parsed = url::Url::parse(url).expect("WEFT_TEST_PG_URL is a postgres:// URL");
    PgServer {
        host: parsed.host_str().unwrap_or("localhost").to_string(),
        port: parsed.port().unwrap_or(5432),
        user: match parsed.username() {
            "" => "postgres".to_string(),
            u => u.to_string(),
        },
        password: parsed.password().map(str::to_string),
        cluster: None,
    }
}

fn find_bin_dir() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut candidates: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev());
    }
    candidates
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
        .ok_or_else(|| {
            "no `initdb` and `postgres` found (install PostgreSQL, or set WEFT_TEST_PG_URL)"
                .to_string()
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// Starts `postgres` under a shell that stops it when this process is gone, so a test
    /// run never leaves a server behind, and then deletes the cluster's directory: a cluster
    /// held in a `static` (the tests' shared server) is never dropped, and each test run
    /// would otherwise leave its data in the temporary directory.
    fn spawn(&self, port: u16) -> Result<Child, String> {
        let script = format!(
            "\"$0\" -D \"$1\" -p {port} -k \"$2\" -c listen_addresses={listen} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off & pid=$!; \
             while [ -d /proc/{parent} ] && kill -0 $pid 2>/dev/null; do sleep 1; done; \
             kill -INT $pid 2>/dev/null; wait $pid; \
             [ -d /proc/{parent} ] || rm -rf \"$2\"",
            parent = std::process::id(),
            listen = self.listen,
        );
        let mut argv: Vec<&str> = Vec::new();
        if let Some(netns) = &self.netns {
            argv.extend(["ip", "netns", "exec", netns]);
        }
        if self.as_postgres {
            argv.extend(["runuser", "-u", "postgres", "--"]);
        }
        argv.extend(["sh", "-c"]);
        let mut command = Command::new(argv[0]);
        command.args(&argv[1..]);
        command
            .arg(script)
            .arg(self.bin.join("postgres"))
            .arg(&self.data)
            .arg(self.data.parent().unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start postgres: {e}"))
    }
}

impl PgServer {
    /// Starts a new throwaway cluster.
    pub fn start() -> Result<PgServer, String> {
        Self::start_in(None, "127.0.0.1")
    }

    /// Starts a new throwaway cluster listening on `listen`, inside the network namespace
    /// `netns` when one is given (made with `ip netns add`; needs root).
    pub fn start_in(netns: Option<&str>, listen: &str) -> Result<PgServer, String> {
        let bin = find_bin_dir()?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("weft-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()))?;
        }
        let cluster = Cluster {
            _dir: dir,
            data: data.clone(),
            bin,
            as_postgres,
            netns: netns.map(str::to_string),
            listen: listen.to_string(),
            child: Mutex::new(None),
        };
        run(cluster.command("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]))?;
        if listen != "127.0.0.1" {
            // initdb trusts loopback only; trust the namespace's own subnet too.
            let hba = data.join("pg_hba.conf");
            let mut text = std::fs::read_to_string(&hba).map_err(|e| e.to_string())?;
            text.push_str("host all all samenet trust\n");
            std::fs::write(&hba, text).map_err(|e| e.to_string())?;
        }
        let port = free_port();
        let child = cluster.spawn(port)?;
        *cluster.child.lock().unwrap() = Some(child);
        let server = PgServer {
            host: listen.to_string(),
            port,
            user: "postgres".to_string(),
            password: None,
            cluster: Some(cluster),
        };
        server.wait_ready(Duration::from_secs(60))?;
        Ok(server)
    }

    fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if std::net::TcpStream::connect((self.host.as_str(), self.port)).is_ok() {
                // Accepting TCP is not yet accepting queries; give startup a moment.
                std::thread::sleep(Duration::from_millis(300));
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "PostgreSQL did not accept connections on port {} within {timeout:?}",
            self.port
        ))
    }

    /// Stops the server (fast shutdown), as an outage would.
    pub fn stop(&self) {
        let cluster = self
            .cluster
            .as_ref()
            .expect("only a cluster the tests started can be stopped");
        let _ = run(cluster
            .command("pg_ctl")
            .arg("-D")
            .arg(&cluster.data)
            .args(["-m", "fast", "-w", "stop"]));
        if let Some(mut child) = cluster.child.lock().unwrap().take() {
            let _ = child.wait();
        }
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port.
    pub fn restart(&self) {
        let cluster = self
            .cluster
            .as_ref()
            .expect("only a cluster the tests started can be restarted");
        let child = cluster.spawn(self.port).expect("restart postgres");
        *cluster.child.lock().unwrap() = Some(child);
        self.wait_ready(Duration::from_secs(60))
            .expect("postgres restarted");
    }

    /// A `postgres://` URL for a database on this server.
    pub fn url(&self, database: &str) -> String {
        match &self.password {
            Some(p) => format!(
                "postgres://{}:{p}@{}:{}/{database}?sslmode=disable",
                self.user, self.host, self.port
            ),
            None => format!(
                "postgres://{}@{}:{}/{database}?sslmode=disable",
                self.user, self.host, self.port
            ),
        }
    }

    /// A `postgres://` URL for a database on this server as another user, without a password
    /// (the throwaway cluster trusts every local user).
    pub fn url_as(&self, user: &str, database: &str) -> String {
        format!(
            "postgres://{user}@{}:{}/{database}?sslmode=disable",
            self.host, self.port
        )
    }

    /// Runs SQL with `psql`-free plumbing: a short-lived tokio-postgres connection.
    pub async fn execute(&self, database: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
        let (client, handle) = self.connect(database).await?;
        let result = client.batch_execute(sql).await;
        drop(client);
        let _ = handle.await;
        result
    }

    /// The first column of the first row `sql` returns, as an integer (a count, say).
    pub async fn query_i64(&self, database: &str, sql: &str) -> Result<i64, tokio_postgres::Error> {
        let (client, handle) = self.connect(database).await?;
        let result = client
            .query_one(sql, &[])
            .await
            .map(|row| row.get::<_, i64>(0));
        drop(client);
        let _ = handle.await;
        result
    }

    async fn connect(
        &self,
        database: &str,
    ) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::connect(
            &format!(
                "host={} port={} user={} dbname={database}{}",
                self.host,
                self.port,
                self.user,
                self.password
                    .as_ref()
                    .map(|p| format!(" password={p}"))
                    .unwrap_or_default()
            ),
            tokio_postgres::NoTls,
        )
        .await?;
        let handle = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok((client, handle))
    }

    /// Statements running now in `database` other than the asking one, whose text contains
    /// `needle` (from `pg_stat_activity`).
    pub async fn running(&self, database: &str, needle: &str) -> i64 {
        let needle = needle.replace('\'', "''");
        self.query_i64(
            database,
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state = 'active' AND pid <> pg_backend_pid() AND query LIKE '%{needle}%'"
            ),
        )
        .await
        .expect("read pg_stat_activity")
    }

    /// A fresh database with `big(n, k)`: 200 000 rows, `k` in 0..4, so that the `count(*)`
    /// of a self-join on `k` ([`HOPELESS`], 10^10 rows) runs for hours in Postgres.
    pub async fn database_with_a_hopeless_join(&self) -> String {
        let database = self.create_database("hopeless").await;
        self.execute(
            &database,
            "CREATE TABLE big AS SELECT g AS n, g % 4 AS k FROM generate_series(1, 200000) g",
        )
        .await
        .expect("create big");
        database
    }

    /// Creates a fresh database and returns its name.
    pub async fn create_database(&self, prefix: &str) -> String {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{prefix}_{}_{n}", std::process::id());
        // One statement at a time: CREATE DATABASE cannot run in a transaction block.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            self.execute("postgres", &sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        }
        name
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let output = command.output().map_err(|e| format!("{shown}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{shown} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

#[allow(dead_code)]
fn _unused(_: &Path) {}

/// A query over [`PgServer::database_with_a_hopeless_join`]'s source `pg` that never ends.
pub const HOPELESS: &str = "SELECT count(*) FROM pg.public.big a JOIN pg.public.big b ON a.k = b.k";
