//! The command line.
//!
//! Exit codes (also in `--help`): 0 every requested cell measured (or unsupported), no
//! expectation broken, nothing changed against the baseline; 1 at least one cell is `error` or
//! the run was interrupted (or a `--confirm` cell could not be measured); 2 bad input (scenario,
//! name, flag, missing folder); 3 a confirmed change against the baseline (`--baseline`,
//! `diff`); 4 an expectation broke. When several apply, 1 wins over 4 and 4 over 3, and the
//! `outcomes` block printed at the end lists every one of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use backends::{BackendName, Concurrency, ConnectionPolicy, ServerSpec, TlsPin};
use certs::{CertBundle, CertKind};
use clap::{Args, Parser, Subcommand, ValueEnum};
use model::TlsVersion;
use results::{Environment, Format, RunResults, SCHEMA_VERSION, ToolVersions};

use crate::browser::{BrowserBinaries, BrowserKind, binary_version};
use crate::progress::Progress;
use crate::runner::{RunPlan, cells, run};
use crate::scenario::{self, Scenario};

const EXIT_INCOMPLETE: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_CHANGED: u8 = 3;
const EXIT_EXPECTATION: u8 = 4;

/// Counts the TLS handshakes each browser burns before it shows a page served with an
/// untrusted certificate — per TLS library, TLS version and way of accepting the certificate.
///
/// Every trial starts a real TLS server (rustls, OpenSSL or Mbed TLS 3.6) on loopback, drives a
/// fresh headless Chromium or Firefox through WebDriver, performs the scenario's steps (visit,
/// click through the warning, revisit), and attributes each connection the server saw to the
/// step that caused it.
///
/// Examples:
///   harness --matrix all                       every scenario, every cell
///   harness --matrix report-close --browser chromium --tls 1.3 --repeat 5
///   harness list                                scenarios, backends and browsers
///   harness serve --backend mbedtls --tls 1.3   reproduce the report by hand
///   harness report results/runs/<run-id>        re-render a run
///   harness diff OLD NEW                        what changed between two runs
///   harness diff OLD NEW --confirm              ... measuring flagged cells again first
///
/// Exit codes: 0 all measured, nothing broken or changed; 1 a cell is `error` or the run was
/// interrupted; 2 bad input; 3 a confirmed change against the baseline; 4 an expectation
/// broke. Every outcome that applies is listed at the end, whatever the code.
#[derive(Debug, Parser)]
#[command(
    name = "harness",
    version,
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List scenarios, backends (with library versions) and browsers (with versions, or why missing).
    List(ListArgs),
    /// Start one backend and print every connection record as a JSON line, until Ctrl-C.
    Serve(ServeArgs),
    /// Re-render a run folder's matrix.md, matrix.html and junit.xml from its matrix.json.
    Report {
        /// The run folder (or its matrix.json).
        run_dir: PathBuf,
    },
    /// Compare two runs: changed, added and removed cells, and version changes. Exit 3 if a
    /// cell changed. Per cell an exact permutation test on the trials; a cell is *flagged* when
    /// a median moved by at least one handshake and p ≤ 0.4, and *changed* only when, measured
    /// again (`--confirm`), the move holds and Holm's procedure over every cell compared
    /// rejects at 0.05. A status change (measured ↔ error ↔ unsupported, page ↔ no page) is a
    /// change. Prints each flagged cell's trial values and p-value.
    Diff(DiffArgs),
    /// Combine slices of one matrix run on different machines into one run folder. Slices
    /// whose cells were measured with different browser, driver or library versions are not one
    /// run: exit 2, naming both versions, and nothing is written.
    Merge {
        /// Run folders (or matrix.json files) to combine.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Where the merged run is written.
        #[arg(long)]
        out: PathBuf,
    },
    /// The trend of every cell across runs (oldest first): terminal table and history.html.
    History {
        /// Run folders, or a folder of run folders (default: results/runs).
        #[arg(default_value = "results/runs")]
        runs: Vec<PathBuf>,
        /// Where to write history.html (default: inside the first folder given).
        #[arg(long)]
        html: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct DiffArgs {
    /// The earlier run folder (or matrix.json): the accepted baseline.
    old: PathBuf,
    /// The later run folder (or matrix.json).
    new: PathBuf,
    /// Measure the flagged cells of NEW again (NEW's folder gets the trials) and diff with all
    /// trials; only confirmed changes exit 3. Needs the browsers (and, for NEW's build, the
    /// same binary flags as NEW's run).
    #[arg(long)]
    confirm: bool,
    /// Trials per flagged cell and side when confirming.
    #[arg(long, default_value_t = crate::confirm::DEFAULT_CONFIRM_TRIALS)]
    confirm_trials: u32,
    /// Both builds are available: measure OLD's flagged cells again too (OLD's folder gets the
    /// trials), with `--old-scenarios` and `--old-chromium-binary`/`--old-chromedriver`.
    #[arg(long, requires = "confirm")]
    confirm_old: bool,
    /// Folder of scenario files for NEW's confirmation.
    #[arg(long, default_value = "scenarios")]
    scenarios: PathBuf,
    /// Folder of scenario files for OLD's confirmation (default: `--scenarios`).
    #[arg(long, requires = "confirm_old")]
    old_scenarios: Option<PathBuf>,
    /// OLD's Chromium (default: NEW's).
    #[arg(long, requires = "confirm_old")]
    old_chromium_binary: Option<PathBuf>,
    /// OLD's chromedriver (default: NEW's).
    #[arg(long, requires = "confirm_old")]
    old_chromedriver: Option<PathBuf>,
    /// Trials run at once when confirming.
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
    /// A step is settled once no new connection arrived for this many milliseconds (at least
    /// 1; 0 would end every step at once and count its late connections — preconnects, the
    /// favicon — in the next step or the teardown). A step still busy after 10 s is cut off
    /// and flagged.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    quiet_ms: u64,
    #[command(flatten)]
    binaries: BinaryArgs,
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    binaries: BinaryArgs,
    /// Folder of scenario files.
    #[arg(long, default_value = "scenarios")]
    scenarios: PathBuf,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// TLS library.
    #[arg(long, value_enum)]
    backend: BackendArg,
    /// Pin the server to this TLS version (default: accept 1.2 and 1.3).
    #[arg(long, value_enum)]
    tls: Option<TlsArg>,
    /// Certificate kind.
    #[arg(long, value_enum, default_value = "self-signed")]
    cert: CertArg,
    /// Close after every response (like `ssl_server`) or keep connections alive.
    #[arg(long, value_enum, default_value = "close")]
    connection: ConnectionArg,
    /// Serve connections in parallel, or one at a time like Mbed TLS's `ssl_server` (accept,
    /// handshake, one request answered HTTP/1.0 with the body ending at close, close; the next
    /// connection waits in the kernel's accept queue). `one-at-a-time` needs `--connection close`.
    #[arg(long, value_enum, default_value = "parallel")]
    concurrency: ConcurrencyArg,
    /// The listen(2) backlog (default: the standard library's for parallel, 10 — Mbed TLS's —
    /// for one-at-a-time).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::scenario::MAX_BACKLOG)))]
    listen_backlog: Option<u32>,
    /// Offer session resumption.
    #[arg(long)]
    resumption: bool,
    /// Where to write the certificate files (default: a temporary folder).
    #[arg(long)]
    cert_dir: Option<PathBuf>,
    /// Listen on this loopback port (default: a free one), e.g. for `tcpdump -i lo port N`.
    #[arg(long)]
    port: Option<u16>,
}

#[derive(Debug, Args, Clone)]
struct BinaryArgs {
    /// Chromium executable (default: `chromium` on PATH). Point it at a new Chromium build.
    #[arg(long, env = "HM_CHROMIUM")]
    chromium_binary: Option<PathBuf>,
    /// chromedriver executable matching that Chromium (default: `chromedriver` on PATH).
    #[arg(long, env = "HM_CHROMEDRIVER")]
    chromedriver: Option<PathBuf>,
    /// Firefox executable (default: `firefox-esr` or `firefox` on PATH).
    #[arg(long, env = "HM_FIREFOX")]
    firefox_binary: Option<PathBuf>,
    /// geckodriver executable (default: `geckodriver` on PATH or in ~/.cargo/bin).
    #[arg(long, env = "HM_GECKODRIVER")]
    geckodriver: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Scenarios to run: `all`, or names (file stems in the scenarios folder) separated by commas.
    #[arg(long, value_name = "all|NAME[,NAME…]")]
    matrix: Option<String>,
    /// Only these backends.
    #[arg(long, value_enum, value_delimiter = ',')]
    backend: Vec<BackendArg>,
    /// Only these browsers.
    #[arg(long, value_enum, value_delimiter = ',')]
    browser: Vec<BrowserArg>,
    /// Only these TLS versions.
    #[arg(long, value_enum, value_delimiter = ',')]
    tls: Vec<TlsArg>,
    /// Trials per cell (default: each scenario's `repeat`).
    #[arg(long)]
    repeat: Option<u32>,
    /// Trials run at once; each has its own server, driver and browser.
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
    /// Run folder (default: results/runs/<UTC time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Folder of scenario files.
    #[arg(long, default_value = "scenarios")]
    scenarios: PathBuf,
    /// A step is settled once no new connection arrived for this many milliseconds (at least
    /// 1; 0 would end every step at once and count its late connections — preconnects, the
    /// favicon — in the next step or the teardown). A step still busy after 10 s is cut off
    /// and flagged.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    quiet_ms: u64,
    /// Keep each trial's browser profile and HOME (large) next to its logs.
    #[arg(long)]
    keep_profiles: bool,
    /// Serve every trial on this loopback port, e.g. to capture with `tcpdump -i lo port N`
    /// (needs `--jobs 1`). A port another program holds makes those trials `error`.
    #[arg(long, value_name = "PORT")]
    server_port: Option<u16>,
    /// Compare the finished run with this earlier run (folder or matrix.json): the accepted
    /// baseline. Exit 3 on a confirmed change (see `harness diff --help`).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// With `--baseline`: measure the cells the comparison flags again with more trials
    /// (added to this run as confirmation trials) before the verdict.
    #[arg(long, requires = "baseline")]
    confirm: bool,
    /// Trials per flagged cell when confirming.
    #[arg(long, default_value_t = crate::confirm::DEFAULT_CONFIRM_TRIALS)]
    confirm_trials: u32,
    #[command(flatten)]
    binaries: BinaryArgs,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

macro_rules! value_enum {
    ($name:ident => $target:ty { $($variant:ident = $value:literal => $to:expr),* $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
        enum $name { $(#[value(name = $value)] $variant),* }
        impl From<$name> for $target {
            fn from(v: $name) -> Self { match v { $($name::$variant => $to),* } }
        }
    };
}
value_enum!(BackendArg => BackendName { Rustls = "rustls" => BackendName::Rustls, Openssl = "openssl" => BackendName::Openssl, Mbedtls = "mbedtls" => BackendName::Mbedtls });
value_enum!(BrowserArg => BrowserKind { Chromium = "chromium" => BrowserKind::Chromium, Firefox = "firefox" => BrowserKind::Firefox });
value_enum!(TlsArg => TlsVersion { Tls12 = "1.2" => TlsVersion::Tls12, Tls13 = "1.3" => TlsVersion::Tls13 });
value_enum!(CertArg => CertKind { SelfSigned = "self-signed" => CertKind::SelfSigned, PrivateCa = "private-ca" => CertKind::PrivateCa, Expired = "expired" => CertKind::Expired, WrongHost = "wrong-host" => CertKind::WrongHost });
value_enum!(ConnectionArg => ConnectionPolicy { KeepAlive = "keep-alive" => ConnectionPolicy::KeepAlive, Close = "close" => ConnectionPolicy::Close });
value_enum!(ConcurrencyArg => Concurrency { Parallel = "parallel" => Concurrency::Parallel, OneAtATime = "one-at-a-time" => Concurrency::OneAtATime });

/// A failure that maps to an exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

fn usage(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: EXIT_USAGE,
        error: error.into(),
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self {
            code: EXIT_INCOMPLETE,
            error,
        }
    }
}

/// Parses the command line, runs it, and returns the exit code.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("RUST_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::List(args)) => list(args),
            Some(Command::Serve(args)) => serve(args).await,
            Some(Command::Report { run_dir }) => report(&run_dir),
            Some(Command::Diff(args)) => diff_runs(args).await,
            Some(Command::Merge { runs, out }) => merge_runs(&runs, &out),
            Some(Command::History { runs, html }) => history(&runs, html.as_deref()),
            None => run_matrix(cli.run).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn resolve_binaries(args: &BinaryArgs) -> BTreeMap<BrowserKind, Result<BrowserBinaries, String>> {
    let find = |kind, browser: &Option<PathBuf>, driver: &Option<PathBuf>| {
        BrowserBinaries::find(kind, browser.as_deref(), driver.as_deref())
            .map_err(|e| e.to_string())
    };
    BTreeMap::from([
        (
            BrowserKind::Chromium,
            find(
                BrowserKind::Chromium,
                &args.chromium_binary,
                &args.chromedriver,
            ),
        ),
        (
            BrowserKind::Firefox,
            find(
                BrowserKind::Firefox,
                &args.firefox_binary,
                &args.geckodriver,
            ),
        ),
    ])
}

fn tool_versions(
    binaries: &BTreeMap<BrowserKind, Result<BrowserBinaries, String>>,
) -> BTreeMap<String, ToolVersions> {
    binaries
        .iter()
        .map(|(kind, b)| {
            let v = match b {
                Ok(b) => match (binary_version(&b.browser), binary_version(&b.driver)) {
                    (Ok(browser), Ok(driver)) => ToolVersions {
                        browser: Some(browser),
                        driver: Some(driver),
                        unavailable: None,
                    },
                    (browser, driver) => ToolVersions {
                        browser: browser.as_ref().ok().cloned(),
                        driver: driver.as_ref().ok().cloned(),
                        unavailable: browser.err().or(driver.err()),
                    },
                },
                Err(e) => ToolVersions {
                    unavailable: Some(e.clone()),
                    ..Default::default()
                },
            };
            (kind.as_str().to_owned(), v)
        })
        .collect()
}

fn load_scenarios(dir: &Path) -> Result<Vec<Scenario>, Failure> {
    scenario::load_dir(dir).map_err(|errors| {
        usage(anyhow::anyhow!(
            "{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\nerror: ")
        ))
    })
}

fn os_description() -> String {
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| std::env::consts::OS.into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{pretty}, Linux {} ({})",
        kernel.trim(),
        std::env::consts::ARCH
    )
}

fn git_revision() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn environment(binaries: &BTreeMap<BrowserKind, Result<BrowserBinaries, String>>) -> Environment {
    Environment {
        harness_version: env!("CARGO_PKG_VERSION").into(),
        git_revision: git_revision(),
        command: std::env::args().collect(),
        os: os_description(),
        started_at: rfc3339_now(),
        ended_at: None,
        browsers: tool_versions(binaries),
        chromium_netlog: None,
        backends: BackendName::ALL
            .iter()
            .map(|b| (b.as_str().to_owned(), b.backend().library_version()))
            .collect(),
    }
}

async fn run_matrix(args: RunArgs) -> Result<u8, Failure> {
    let Some(matrix) = args.matrix.as_deref() else {
        return Err(usage(anyhow::anyhow!(
            "nothing to run: give `--matrix all` (or scenario names), or a subcommand; see `harness --help`"
        )));
    };
    let all = load_scenarios(&args.scenarios)?;
    let scenarios = scenario::select(all, matrix).map_err(usage)?;
    let binaries = resolve_binaries(&args.binaries);
    let out = args.out.clone().unwrap_or_else(|| {
        let stamp = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .unwrap_or_default();
        PathBuf::from("results/runs").join(stamp)
    });
    // Absolute from here on: geckodriver and Firefox resolve a relative profile path
    // differently, and Firefox then never reports its Marionette port (every Firefox trial of
    // a relative `--out` failed, as the nightly's slices use).
    let out = std::path::absolute(&out)
        .with_context(|| format!("resolving {}", out.display()))
        .map_err(usage)?;
    let plan = RunPlan {
        scenarios,
        backends: args.backend.iter().map(|&b| b.into()).collect(),
        browsers: args.browser.iter().map(|&b| b.into()).collect(),
        tls: args.tls.iter().map(|&t| t.into()).collect(),
        repeat: args.repeat,
        jobs: args.jobs.max(1),
        out: out.clone(),
        binaries: binaries.clone(),
        quiet: Duration::from_millis(args.quiet_ms),
        keep_profiles: args.keep_profiles,
        server_port: args.server_port,
        only: None,
    };
    if args.server_port.is_some() && plan.jobs > 1 {
        return Err(usage(anyhow::anyhow!(
            "--server-port serves every trial on one port, so trials cannot overlap: add `--jobs 1`"
        )));
    }
    if cells(&plan).is_empty() {
        return Err(usage(anyhow::anyhow!(
            "the selection is empty: no scenario has a cell for the given --backend/--browser/--tls"
        )));
    }
    let baseline = match &args.baseline {
        Some(b) => Some(read_run(b)?),
        None => None,
    };
    if args.repeat == Some(0) {
        return Err(usage(anyhow::anyhow!("--repeat must be at least 1")));
    }
    // Only now, with valid input, is a run folder created.
    if out.join("matrix.json").exists() {
        return Err(usage(anyhow::anyhow!(
            "{} already holds a run; choose another --out",
            out.display()
        )));
    }
    std::fs::create_dir_all(&out)
        .with_context(|| format!("creating {}", out.display()))
        .map_err(usage)?;
    let leftovers = crate::process::stop_leftovers();
    if !leftovers.is_empty() {
        eprintln!(
            "stopped {} leftover processes of earlier runs whose harness is gone: {}",
            leftovers.len(),
            leftovers.join(", ")
        );
    }
    for (kind, b) in &binaries {
        if let Err(e) = b {
            eprintln!("warning: {kind} cells will be `error`: {e}");
        }
    }
    for b in BackendName::ALL {
        if let Some(why) = b.backend().unavailable() {
            eprintln!("warning: {b} cells will be `error`: {why}");
        }
    }
    let results = RunResults {
        schema_version: SCHEMA_VERSION,
        environment: environment(&binaries),
        cells: Vec::new(),
        // Known now, so that a run killed before its first cell still says what it lacks.
        cells_requested: cells(&plan).len(),
    };
    // An empty but valid matrix.json first: a folder we cannot write to stops the run before
    // any browser starts, and an interrupt from here on always leaves a readable file.
    results::write_all(&results, &out)
        .with_context(|| format!("{} is not writable", out.display()))
        .map_err(usage)?;
    let progress = Progress::new();
    let run_future = run(plan, results, &progress);
    tokio::pin!(run_future);
    let mut results = tokio::select! {
        r = &mut run_future => r,
        _ = shutdown_signal() => {
            progress.finish();
            eprintln!("interrupted: {} keeps every cell finished so far", out.join("matrix.json").display());
            // Returning drops the run future and with it every trial's browser session, whose
            // driver processes are killed with their process groups.
            return Ok(EXIT_INCOMPLETE);
        }
    };
    progress.finish();
    results.environment.ended_at = Some(rfc3339_now());
    let written = results::write_all(&results, &out);
    println!("{}", results::render(&results, Format::Terminal));
    if let Err(e) = written {
        // The table above is then the only complete copy; say so rather than lose it silently.
        eprintln!(
            "error: the results could not be written to {} ({e}); the table above is the complete result, the files there hold the last cells written",
            out.display()
        );
        return Ok(EXIT_INCOMPLETE);
    }
    println!("results: {}", out.display());
    let mut problems = Vec::new();
    let d = match baseline {
        Some(mut b) if args.confirm => {
            let side = crate::confirm::Side {
                dir: out.clone(),
                scenarios: load_scenarios(&args.scenarios)?,
                binaries: binaries.clone(),
            };
            let settings = crate::confirm::Settings {
                trials: args.confirm_trials.max(1),
                jobs: args.jobs.max(1),
                quiet: Duration::from_millis(args.quiet_ms),
                rule: results::Rule::default(),
            };
            let c = crate::confirm::confirm(&mut b, None, &mut results, &side, &settings).await;
            problems = c.problems;
            Some(c.diff)
        }
        Some(b) => Some(results::diff(&b, &results)),
        None => None,
    };
    if let Some(d) = &d {
        println!("against the baseline:\n{}", d.render());
        write_comparison(d, args.baseline.as_deref().unwrap_or(Path::new("")), &out);
    }
    Ok(report_outcomes(&results, d.as_ref(), &problems))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn list(args: ListArgs) -> Result<u8, Failure> {
    let scenarios = load_scenarios(&args.scenarios)?;
    println!("scenarios ({}):", args.scenarios.display());
    for s in &scenarios {
        let f = &s.file;
        println!(
            "  {:<28} {} / {} / {} / {} — {}",
            s.name,
            f.cert.as_str(),
            f.trust.as_str(),
            f.connection.as_str(),
            f.concurrency.as_str(),
            f.description
        );
    }
    println!("backends:");
    for b in BackendName::ALL {
        let backend = b.backend();
        match backend.unavailable() {
            Some(why) => println!("  {:<10} unavailable: {why}", b.as_str()),
            None => println!("  {:<10} {}", b.as_str(), backend.library_version()),
        }
    }
    println!("browsers:");
    for (name, v) in tool_versions(&resolve_binaries(&args.binaries)) {
        match v.unavailable {
            Some(why) => println!("  {name:<10} unavailable: {why}"),
            None => println!(
                "  {name:<10} {} with {}",
                v.browser.unwrap_or_default(),
                v.driver.unwrap_or_default()
            ),
        }
    }
    Ok(0)
}

async fn serve(args: ServeArgs) -> Result<u8, Failure> {
    let backend: BackendName = args.backend.into();
    if args.concurrency == ConcurrencyArg::OneAtATime && args.connection == ConnectionArg::KeepAlive
    {
        return Err(usage(anyhow::anyhow!(
            "--concurrency one-at-a-time answers HTTP/1.0 and closes after every response, like ssl_server; it needs --connection close"
        )));
    }
    let bundle = CertBundle::generate(args.cert.into()).context("generating the certificate")?;
    let (dir, _temp) = match &args.cert_dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("handshake-matrix-serve-")
                .tempdir()
                .context("temporary folder")?;
            (t.path().to_owned(), Some(t))
        }
    };
    let files = bundle.write_to(&dir).context("writing the certificate")?;
    let tls = args
        .tls
        .map(|t| TlsPin::Only(t.into()))
        .unwrap_or(TlsPin::Both);
    let mut spec = ServerSpec::new(
        bundle.chain_pem.clone(),
        bundle.key_pem.clone(),
        tls,
        args.connection.into(),
    );
    spec.resumption = args.resumption;
    spec.concurrency = args.concurrency.into();
    spec.listen_backlog = args.listen_backlog;
    spec.port = args.port;
    let b = backend.backend();
    let server = b.start(spec).context("starting the server")?;
    let log = server.log().subscribe();
    eprintln!(
        "{} serving {}",
        b.library_version(),
        server.url("localhost")
    );
    eprintln!(
        "  listening on {} ({})",
        server
            .addrs()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" and "),
        match server.listen_queues() {
            Ok(q) => format!(
                "{}, listen backlog {}",
                server.concurrency(),
                q.first().map_or(0, |q| q.backlog)
            ),
            Err(_) => server.concurrency().to_string(),
        }
    );
    eprintln!("  certificate chain: {}", files.chain.display());
    eprintln!("  private key:       {}", files.key.display());
    eprintln!(
        "  trust anchor:      {} (SPKI sha256 {})",
        files.trust_anchor.display(),
        bundle.leaf_spki_sha256
    );
    eprintln!("  one JSON connection record per line on stdout; Ctrl-C stops");
    let printer = tokio::task::spawn_blocking(move || {
        for record in log {
            println!(
                "{}",
                serde_json::to_string(&record).expect("record serialises")
            );
        }
    });
    shutdown_signal().await;
    let stopped = tokio::task::spawn_blocking(move || server.stop())
        .await
        .context("stopping")?;
    let _ = printer.await;
    match stopped {
        Ok(records) => {
            eprintln!("stopped after {} connections", records.len());
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}

fn report(run_dir: &Path) -> Result<u8, Failure> {
    if !run_dir.exists() {
        return Err(usage(anyhow::anyhow!(
            "{} does not exist",
            run_dir.display()
        )));
    }
    let results = RunResults::read(run_dir).map_err(usage)?;
    let dir = if run_dir.is_dir() {
        run_dir.to_owned()
    } else {
        run_dir.parent().unwrap_or(Path::new(".")).to_owned()
    };
    results::write_all(&results, &dir).context("writing results")?;
    println!("{}", results::render(&results, Format::Terminal));
    if results.environment.ended_at.is_none() {
        println!(
            "this run did not finish: it was interrupted or killed (or is still running); {} of {} cells are in it",
            results.cells.len(),
            results.cells_requested
        );
    }
    Ok(exit_code(&results, false, false))
}

fn exit_code(results: &RunResults, changed: bool, failed: bool) -> u8 {
    if !results.complete() || failed {
        EXIT_INCOMPLETE
    } else if !results.broken_expectations().is_empty() {
        EXIT_EXPECTATION
    } else if changed {
        EXIT_CHANGED
    } else {
        0
    }
}

fn read_run(path: &Path) -> Result<RunResults, Failure> {
    if !path.exists() {
        return Err(usage(anyhow::anyhow!("{} does not exist", path.display())));
    }
    RunResults::read(path).map_err(usage)
}

async fn diff_runs(args: DiffArgs) -> Result<u8, Failure> {
    let (mut old, mut new) = (read_run(&args.old)?, read_run(&args.new)?);
    let mut problems = Vec::new();
    let d = if args.confirm {
        // Absolute, as for a run: Firefox needs an absolute profile path.
        let folder = |p: &Path| {
            let dir = if p.is_dir() {
                p.to_owned()
            } else {
                p.parent().unwrap_or(Path::new(".")).to_owned()
            };
            std::path::absolute(&dir).unwrap_or(dir)
        };
        let settings = crate::confirm::Settings {
            trials: args.confirm_trials.max(1),
            jobs: args.jobs.max(1),
            quiet: Duration::from_millis(args.quiet_ms),
            rule: results::Rule::default(),
        };
        let new_side = crate::confirm::Side {
            dir: folder(&args.new),
            scenarios: load_scenarios(&args.scenarios)?,
            binaries: resolve_binaries(&args.binaries),
        };
        let old_side = if args.confirm_old {
            let mut b = args.binaries.clone();
            if args.old_chromium_binary.is_some() {
                b.chromium_binary = args.old_chromium_binary.clone();
            }
            if args.old_chromedriver.is_some() {
                b.chromedriver = args.old_chromedriver.clone();
            }
            Some(crate::confirm::Side {
                dir: folder(&args.old),
                scenarios: load_scenarios(
                    args.old_scenarios.as_deref().unwrap_or(&args.scenarios),
                )?,
                binaries: resolve_binaries(&b),
            })
        } else {
            None
        };
        let c =
            crate::confirm::confirm(&mut old, old_side.as_ref(), &mut new, &new_side, &settings)
                .await;
        problems = c.problems;
        c.diff
    } else {
        results::diff(&old, &new)
    };
    print!("{}", d.render());
    if args.new.is_dir() {
        write_comparison(&d, &args.old, &args.new);
    }
    Ok(report_outcomes(&new, Some(&d), &problems))
}

/// Writes `comparison.html` into the new run's folder (next to its `matrix.html`).
fn write_comparison(d: &results::Diff, old: &Path, new_dir: &Path) {
    let page = d.render_html(&old.display().to_string(), &new_dir.display().to_string());
    match results::write_atomically(&new_dir.join("comparison.html"), page.as_bytes()) {
        Ok(()) => println!("comparison: {}", new_dir.join("comparison.html").display()),
        Err(e) => eprintln!("warning: could not write comparison.html: {e}"),
    }
}

/// Prints every outcome that applies — whatever the single exit code says — as `outcome:` lines
/// (and as GitHub annotations under GitHub Actions), then returns the exit code.
fn report_outcomes(results: &RunResults, diff: Option<&results::Diff>, problems: &[String]) -> u8 {
    let mut lines: Vec<(&str, String)> = Vec::new();
    if results.cells.len() < results.cells_requested {
        lines.push((
            "incomplete",
            format!(
                "{} of {} requested cells are in the run",
                results.cells.len(),
                results.cells_requested
            ),
        ));
    }
    for c in &results.cells {
        if let results::CellStatus::Error { reason, .. } = &c.status {
            lines.push(("error", format!("{}: {reason}", c.key)));
        }
    }
    for p in problems {
        lines.push(("error", p.clone()));
    }
    for c in results.broken_expectations() {
        for e in c.expectations.iter().filter(|e| e.broken.is_some()) {
            lines.push((
                "expectation broken",
                format!(
                    "{}: {} ({}): {}",
                    c.key,
                    e.rule,
                    e.reason,
                    e.broken.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    if let Some(d) = diff {
        for c in &d.changed {
            lines.push(("changed", format!("{}: {}", c.key, c.what)));
        }
        for k in &d.added {
            lines.push(("added", k.to_string()));
        }
        for k in &d.removed {
            lines.push(("removed", k.to_string()));
        }
        for t in &d.tested {
            match t.verdict {
                results::Verdict::Flagged => lines.push((
                    "flagged, not confirmed",
                    format!(
                        "{} (p = {:.3e}; measure again with --confirm)",
                        t.key, t.test.p
                    ),
                )),
                results::Verdict::NotConfirmed => lines.push((
                    "not confirmed (noise)",
                    format!("{} (p = {:.3e})", t.key, t.test.p),
                )),
                results::Verdict::Confirmed => {}
            }
        }
    }
    let code = exit_code(
        results,
        diff.is_some_and(results::Diff::has_changes),
        !problems.is_empty(),
    );
    println!("outcomes (exit {code}):");
    if lines.is_empty() {
        println!("  none: every requested cell measured or unsupported, nothing changed or broken");
    }
    let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    for (kind, text) in &lines {
        println!("  {kind}: {text}");
        if github {
            let level = if kind.starts_with("flagged") || kind.starts_with("not confirmed") {
                "notice"
            } else {
                "error"
            };
            println!("::{level} title=handshake-matrix {kind}::{text}");
        }
    }
    code
}

fn merge_runs(runs: &[PathBuf], out: &Path) -> Result<u8, Failure> {
    let slices = runs
        .iter()
        .map(|r| Ok((r.display().to_string(), read_run(r)?)))
        .collect::<Result<Vec<_>, Failure>>()?;
    if out.join("matrix.json").exists() {
        return Err(usage(anyhow::anyhow!(
            "{} already holds a run; choose another --out",
            out.display()
        )));
    }
    let (merged, notes) = match results::merge(&slices) {
        Ok(m) => m,
        Err(e) => {
            // A merged run names one version per browser and library; slices that disagree
            // would make it misstate what some cells measured. Nothing is written.
            if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
                let one_line = e.to_string().replace('\n', " ");
                println!("::error title=handshake-matrix merge::{one_line}");
            }
            return Err(usage(e));
        }
    };
    for n in &notes {
        eprintln!("note: {n}");
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    results::write_all(&merged, out).context("writing the merged run")?;
    println!("{}", results::render(&merged, Format::Terminal));
    println!("merged {} runs into {}", runs.len(), out.display());
    Ok(exit_code(&merged, false, false))
}

/// Run folders in `paths`: each a run folder, or a folder whose subfolders are run folders.
fn run_folders(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut out = Vec::new();
    for p in paths {
        if !p.exists() {
            return Err(usage(anyhow::anyhow!("{} does not exist", p.display())));
        }
        if p.join("matrix.json").is_file() || p.is_file() {
            out.push(p.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(p)
            .with_context(|| format!("reading {}", p.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|d| d.join("matrix.json").is_file())
            .collect();
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

fn history(paths: &[PathBuf], html: Option<&Path>) -> Result<u8, Failure> {
    let folders = run_folders(paths)?;
    if folders.is_empty() {
        let given: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(usage(anyhow::anyhow!(
            "no run folders (with matrix.json) in {}",
            given.join(", ")
        )));
    }
    let mut entries = Vec::new();
    for f in &folders {
        let results = read_run(f)?;
        let label = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        entries.push(results::HistoryEntry { label, results });
    }
    entries.sort_by(|a, b| {
        a.results
            .environment
            .started_at
            .cmp(&b.results.environment.started_at)
    });
    let (headers, rows) = results::history_table(&entries);
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(std::iter::once("cell".to_owned()).chain(headers.iter().cloned()));
    for (key, values) in &rows {
        table.add_row(std::iter::once(key.to_string()).chain(values.iter().cloned()));
    }
    println!("{table}");
    let html_path = html.map(Path::to_path_buf).unwrap_or_else(|| {
        let base = if paths[0].is_dir() {
            paths[0].clone()
        } else {
            PathBuf::from(".")
        };
        base.join("history.html")
    });
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>handshake-matrix history</title>\
         <style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #bbb;padding:4px 8px}.changed{background:#ffd2a0}</style></head>\
         <body><h1>handshake-matrix history</h1><table><tr><th>cell</th>",
    );
    for h in &headers {
        page += &format!("<th>{}</th>", html_escape(h));
    }
    page += "</tr>";
    for (key, values) in &rows {
        page += &format!("<tr><td>{}</td>", html_escape(&key.to_string()));
        for (i, v) in values.iter().enumerate() {
            let class = if i > 0 && values[i - 1] != *v {
                " class=\"changed\""
            } else {
                ""
            };
            page += &format!("<td{class}>{}</td>", html_escape(v));
        }
        page += "</tr>";
    }
    page += "</table><p>Each cell: median retries of the step that first shows the page, then of \
             each revisit. Orange: different from the run before.</p></body></html>\n";
    results::write_atomically(&html_path, page.as_bytes()).context("writing history.html")?;
    println!("history: {}", html_path.display());
    Ok(0)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
