//! Weft's developer tasks, run the same way by people and CI: `cargo xtask <task>`.
//!
//! Wraps the tools that already exist (cargo fmt, clippy, cargo-hack, cargo-deny) rather
//! than rewriting them; installs cargo-hack and cargo-deny into a cache folder when they
//! are missing.

mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Weft's developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Everything CI checks: format, clippy, the test suite, feature combinations, deny.
    Ci,
    /// Builds and tests feature combinations through cargo-hack: the binary's features one
    /// by one, none and all; `--powerset` every combination of every crate.
    Features {
        /// Every combination of features, not only each feature on its own.
        #[arg(long)]
        powerset: bool,
    },
    /// Checks dependency bans, licences and sources with cargo-deny.
    Deny,
    /// Runs sqllogictest `.test` files (SQLite's corpus) through Weft in several placements
    /// and checks that federation never changes an answer local DataFusion gets right.
    Corpus {
        /// The arguments of `weft-corpus`: `[--placements local,sqlite,postgres]
        /// [--json FILE] [--show N] PATH...`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// TPC-H across placements and engines (Weft, Weft without pushdown, DuckDB,
    /// PostgreSQL), every answer checked, and a whole PostgreSQL table read into Arrow
    /// (Weft, DuckDB's scanner, ConnectorX, ADBC); writes a Markdown table, JSON and an SVG
    /// chart under target/bench. Sets up the peers in a virtual environment and PostgreSQL
    /// if needed.
    Bench {
        /// The arguments of `weft-bench`: `[--sf 1] [--runs 3] [--queries 1,3]
        /// [--placements local,mixed] [--engines weft,duckdb] [--read weft,duckdb|none]
        /// [--pg-url URL]`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Concurrent Flight SQL clients against `weft serve` on the demo data for a fixed time:
    /// throughput, latency percentiles and errors; fails on any error or wrong answer.
    Load {
        /// `[--clients 32] [--seconds 30] [--json FILE] [--release]` (`--release` builds in
        /// release mode, for real figures).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match cli.task {
        Task::Ci => ci(),
        Task::Features { powerset } => features(powerset),
        Task::Deny => deny(),
        Task::Corpus { args } => corpus(&args),
        Task::Bench { args } => bench(&root, &args),
        Task::Load { args } => load(&root, &args),
    }
}

/// DuckDB and its scanner extensions, pinned to one version: the extension wheels are built
/// for exactly that DuckDB.
/// The benchmark's peers, from PyPI: DuckDB with its scanners, and the PostgreSQL readers of
/// the table read (ConnectorX, ADBC's driver; pyarrow for their Arrow tables).
const PEERS: [&str; 7] = [
    "duckdb==1.5.5",
    "duckdb-extension-postgres==1.5.5",
    "duckdb-extension-sqlite==1.5.5",
    "pyarrow==26.0.1",
    "connectorx==0.4.6",
    "adbc-driver-manager==1.13.0",
    "adbc-driver-postgresql==1.13.0",
];

fn bench(root: &Path, args: &[String]) -> Result<()> {
    let cache = cache_dir();
    let venv = cache.join("venv-bench");
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        println!(
            "xtask: creating a Python virtual environment for the peers in {}",
            venv.display()
        );
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    let installed = Command::new(&python)
        .args([
            "-c",
            "import duckdb, duckdb_extension_postgres, duckdb_extension_sqlite, pyarrow, \
             connectorx, adbc_driver_postgresql; assert duckdb.__version__ == '1.5.5'",
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        run(Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(PEERS))?;
    }
    let given_postgres = args.iter().any(|a| a.starts_with("--pg-url"));
    let have_postgres = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().any(|e| e.path().join("bin/initdb").is_file()))
        .unwrap_or(false);
    if !given_postgres && !have_postgres {
        println!("xtask: installing PostgreSQL from Debian's packages");
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "postgresql"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let linked = args.iter().any(|a| a.starts_with("--link"));
    let have_tc = ["/usr/sbin/tc", "/sbin/tc", "/usr/bin/tc"]
        .iter()
        .any(|p| Path::new(p).is_file());
    if linked && !have_tc {
        println!("xtask: installing iproute2 (ip, tc) for --link");
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "iproute2"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    // `weft` (the Flight SQL server, with substrait and the server crates) is built only for
    // --via-server: a first run on a fresh machine spends most of its time compiling. When
    // it is, it is built in the same invocation as weft-bench: cargo unifies features per
    // invocation, so building them apart would compile DataFusion twice. weft-bench finds
    // `weft` beside itself.
    let mut build = cargo_command();
    build.args([
        "build",
        "--release",
        "--package",
        "integration-tests",
        "--bin",
        "weft-bench",
    ]);
    if args.iter().any(|a| a == "--via-server") {
        build.args(["--package", "weft-server", "--bin", "weft"]);
    }
    let started = Instant::now();
    println!("xtask: building weft-bench in release mode (a first build takes a while)");
    run(&mut build)?;
    println!("xtask: built in {}", elapsed(started));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let mut command = Command::new(target.join("release").join("weft-bench"));
    command.env("CARGO_MANIFEST_DIR", root.join("integration-tests"));
    command.arg("--python");
    command
        .arg(&python)
        .arg("--cache")
        .arg(cache.join("tpch"))
        .arg("--out")
        .arg(root.join("target").join("bench"))
        .args(args);
    run(&mut command)
}

/// `weft-load` against the `weft` binary, both built in one invocation: in debug, by the
/// test build itself (`cargo test --no-run` builds the binaries the tests use, with the
/// features cargo unifies for the tests), so that after `cargo test` (as in CI) nothing is
/// compiled again; with `--release`, by `cargo build --release`.
fn load(root: &Path, args: &[String]) -> Result<()> {
    let release = args.iter().any(|a| a == "--release");
    let args: Vec<&String> = args.iter().filter(|a| *a != "--release").collect();
    let mut build = cargo_command();
    if release {
        build.args([
            "build",
            "--release",
            "--all-features",
            "--package",
            "weft-server",
            "--bin",
            "weft",
            "--package",
            "integration-tests",
            "--bin",
            "weft-load",
        ]);
    } else {
        build.args(["test", "--workspace", "--all-features", "--no-run"]);
    }
    run(&mut build)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let profile = if release { "release" } else { "debug" };
    run(Command::new(target.join(profile).join("weft-load")).args(args))
}

/// `weft-corpus` (in `integration-tests`), built in the same profile as the tests. Relative
/// paths are relative to the workspace root.
fn corpus(args: &[String]) -> Result<()> {
    let mut command = cargo_command();
    command.args([
        "run",
        "--quiet",
        "--package",
        "integration-tests",
        "--bin",
        "weft-corpus",
        "--",
    ]);
    command.args(args);
    run(&mut command)
}

/// The workspace's root, from the directory cargo runs xtask for (the compile-time one may
/// be a checkout that no longer exists: target directories are shared between clones).
fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

/// Debian packages the test suite needs beyond a Rust toolchain and gcc, each with the
/// check that says it is there: `protoc` (substrait, under the Flight SQL server, runs it at
/// build time), PostgreSQL's binaries (the tests start their own throwaway cluster), Python's
/// `venv` (the ADBC test installs the Flight SQL driver from PyPI) and `openssl` (the TLS
/// test makes a throwaway certificate).
fn missing_packages() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if which("protoc").is_err() {
        missing.push("protobuf-compiler");
    }
    let initdb = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().any(|e| e.path().join("bin/initdb").is_file()))
        .unwrap_or(false);
    if !initdb {
        missing.push("postgresql");
    }
    let venv = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !venv {
        missing.extend(["python3", "python3-venv"]);
    }
    if which("openssl").is_err() {
        missing.push("openssl");
    }
    missing
}

/// Installs what [`missing_packages`] finds missing with apt-get, as root; otherwise fails
/// with the command to run.
fn ensure_packages() -> Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        bail!(
            "the tests need these Debian packages: {0}; install them with              `sudo apt-get install {0}`",
            missing.join(" ")
        );
    }
    println!(
        "xtask: installing {} from Debian's packages",
        missing.join(", ")
    );
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn ci() -> Result<()> {
    let started = Instant::now();
    ensure_packages()?;
    step("format", || cargo(&["fmt", "--all", "--check"]))?;
    step("clippy", || {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    step("tests", || {
        cargo(&["test", "--workspace", "--all-features"])
    })?;
    step("sqllogictest corpus", || {
        corpus(&["integration-tests/corpus".to_string()])
    })?;
    step("load smoke", || {
        let root = workspace_root();
        load(
            &root,
            &["--clients", "8", "--seconds", "10"].map(String::from),
        )
    })?;
    step("feature combinations", || features(false))?;
    step("dependencies", deny)?;
    println!("\nxtask ci: all checks passed in {}", elapsed(started));
    Ok(())
}

fn features(powerset: bool) -> Result<()> {
    let hack = tool("cargo-hack", "0.6.46")?;
    if powerset {
        // Every combination of every crate's features, built and tested.
        run(cargo_tool(&hack).args(["hack", "test", "--workspace", "--feature-powerset"]))?;
        return Ok(());
    }
    // The binary's features (the connectors): no features, each alone, default, all; built
    // and tested. weft-parquet: no features and all features. Its object-store features
    // (`s3`, `gcs`, `azure`, `http`) only switch on object_store's own, and each alone is a
    // rebuild of DataFusion, so one by one they are left to `--powerset`.
    run(cargo_tool(&hack).args(["hack", "test", "--package", "weft-server", "--each-feature"]))?;
    run(cargo_tool(&hack).args([
        "hack",
        "check",
        "--package",
        "weft-parquet",
        "--all-targets",
        "--no-default-features",
    ]))?;
    run(cargo_tool(&hack).args([
        "hack",
        "check",
        "--package",
        "weft-parquet",
        "--all-targets",
        "--all-features",
    ]))?;
    Ok(())
}

fn deny() -> Result<()> {
    let deny = tool("cargo-deny", "0.20.2")?;
    println!(
        "note: the advisories check needs the RustSec database, which cannot be fetched here; \
         it is skipped, bans, licences and sources are checked"
    );
    run(Command::new(deny).args([
        "deny",
        "--all-features",
        "check",
        "bans",
        "licenses",
        "sources",
    ]))
}

/// Finds a cargo subcommand binary, installing it into the tool cache when missing.
fn tool(name: &str, version: &str) -> Result<PathBuf> {
    if let Ok(path) = which(name) {
        return Ok(path);
    }
    let root = tools_dir();
    let path = root.join("bin").join(name);
    if path.is_file() {
        return Ok(path);
    }
    println!("xtask: installing {name} {version} into {}", root.display());
    run(cargo_command()
        .args(["install", name, "--version", version, "--locked", "--root"])
        .arg(&root)
        // Installed tools build in their own target folder, not the workspace's.
        .env_remove("CARGO_TARGET_DIR"))?;
    Ok(path)
}

fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEFT_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    cache_dir().join("tools")
}

/// `~/.cache/weft`: tools, virtual environments and benchmark data kept between runs.
fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("weft")
}

fn which(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("`{name}` is not on PATH")
}

fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// A cargo command without the variables `cargo run` set for xtask itself. A build script
/// that reads one (ring's reads `CARGO_MANIFEST_DIR` through its rerun-if-env-changed helper)
/// would otherwise see it change between a build through xtask and a plain `cargo build`,
/// and rebuild itself and everything above it (ring, rustls, tonic, arrow-flight: minutes).
fn cargo_command() -> Command {
    cargo_tool(cargo_bin())
}

/// `program` (cargo, or a cargo subcommand such as cargo-hack that runs cargo) without the
/// variables `cargo run` set for xtask: see [`cargo_command`].
fn cargo_tool(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || matches!(
                name,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_RUSTC_CURRENT_DIR"
            )
        {
            command.env_remove(name);
        }
    }
    command
}

fn cargo(args: &[&str]) -> Result<()> {
    run(cargo_command().args(args))
}

fn run(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    println!("$ {shown}");
    let status = command
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("\n=== xtask: {name}");
    let started = Instant::now();
    f().with_context(|| format!("xtask ci: {name} failed"))?;
    println!("=== xtask: {name} passed in {}", elapsed(started));
    Ok(())
}

fn elapsed(started: Instant) -> String {
    let secs = started.elapsed().as_secs();
    format!("{}m{:02}s", secs / 60, secs % 60)
}
