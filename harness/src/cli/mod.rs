//! The command line.
//!
//! Exit codes (also in `--help`): 0 every requested cell measured (or unsupported), no
//! expectation broken, nothing changed against the baseline; 1 at least one cell is `error` or
//! the run was interrupted (or a `--confirm` cell could not be measured); 2 bad input (scenario,
//! name, flag, missing folder); 3 a confirmed change against the baseline (`--baseline`,
//! `diff`); 4 an expectation broke. When several apply, 1 wins over 4 and 4 over 3, and the
//! `outcomes` block printed at the end lists every one of them.
//!
//! One module per subcommand (`run` is the bare `harness --matrix …`); what several of them
//! share — reading runs and scenarios, the exit code and the `outcomes` block — is here.

mod diff;
mod environment;
mod history;
mod list;
mod merge;
mod report;
mod run;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use backends::{BackendName, Concurrency, ConnectionPolicy};
use certs::CertKind;
use clap::{Parser, Subcommand, ValueEnum};
use model::TlsVersion;
use results::RunResults;

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
///   harness --matrix report-close --chromium stable=/usr/bin/chromium,/usr/bin/chromedriver \
///           --chromium candidate=/opt/new/chrome,/opt/new/chromedriver
///                                               two Chromium builds side by side, labelled
///   harness diff RUN --labels stable,candidate  candidate vs stable, cell by cell
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
    run: run::RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List scenarios, backends (with library versions) and browsers (with versions, or why missing).
    List(list::ListArgs),
    /// Start one backend and print every connection record as a JSON line, until Ctrl-C.
    Serve(serve::ServeArgs),
    /// Re-render a run folder's matrix.md, matrix.html and junit.xml from its matrix.json.
    Report {
        /// The run folder (or its matrix.json).
        run_dir: PathBuf,
    },
    /// Compare two runs (or, with `--labels OLD,NEW`, two labelled builds of one run):
    /// changed, added and removed cells, and version changes. Exit 3 if a
    /// cell changed. Per cell an exact permutation test on the trials; a cell is *flagged* when
    /// a median moved by at least one handshake and p ≤ 0.4, and *changed* only when, measured
    /// again (`--confirm`), the move holds and Holm's procedure over every cell compared
    /// rejects at 0.05. A status change (measured ↔ error ↔ unsupported, page ↔ no page) is a
    /// change. Prints each flagged cell's trial values and p-value.
    Diff(diff::DiffArgs),
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
    /// How far the recording relay's records agree with the servers' own, over a run made with
    /// `--relay only` or `--relay both` (built-in backends, which know the truth): per TLS
    /// version and outcome kind, and every step's retries. Exit 1 if any connection or step
    /// disagrees, or the run has no relayed trial.
    RelayAccuracy {
        /// The run folder.
        run_dir: PathBuf,
    },
    /// Where a run's time went: per browser, the median of each part of a trial (certificate,
    /// server, driver, session start, each step's action and settle wait, close, logs) and its
    /// share of the trials' wall time, and the harness's own CPU time (runs since schema 6).
    Timings {
        /// The run folder (or its matrix.json).
        run_dir: PathBuf,
    },
    /// The trend of every cell across runs (oldest first): terminal table and history.html.
    /// A labelled build's cells (`chromium@candidate`) are rows of their own.
    History {
        /// Run folders, or a folder of run folders (default: results/runs).
        #[arg(default_value = "results/runs")]
        runs: Vec<PathBuf>,
        /// Where to write history.html (default: inside the first folder given).
        #[arg(long)]
        html: Option<PathBuf>,
    },
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
            Some(Command::List(args)) => list::list(args),
            Some(Command::Serve(args)) => serve::serve(args).await,
            Some(Command::Report { run_dir }) => report::report(&run_dir),
            Some(Command::Diff(args)) => diff::diff_runs(args).await,
            Some(Command::Merge { runs, out }) => merge::merge_runs(&runs, &out),
            Some(Command::History { runs, html }) => history::history(&runs, html.as_deref()),
            Some(Command::RelayAccuracy { run_dir }) => relay_accuracy(&run_dir),
            Some(Command::Timings { run_dir }) => {
                print!("{}", results::timings_summary(&read_run(&run_dir)?));
                Ok(0)
            }
            None => run::run_matrix(cli.run).await,
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

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Prints every outcome that applies — whatever the single exit code says — as `outcome:` lines
/// (and as GitHub annotations under GitHub Actions), then returns the exit code.
fn report_outcomes(results: &RunResults, diff: Option<&results::Diff>, problems: &[String]) -> u8 {
    report_outcomes_of(results, diff, problems, None)
}

/// As [`report_outcomes`]; a diff's changes start with `build` when it is given (e.g.
/// `chromium@beta Chromium 157.0.… vs chromium@stable Chromium 156.0.…`), so that an
/// annotation alone says which build moved.
fn report_outcomes_of(
    results: &RunResults,
    diff: Option<&results::Diff>,
    problems: &[String],
    build: Option<&str>,
) -> u8 {
    let about = |text: String| match build {
        Some(b) => format!("{b}: {text}"),
        None => text,
    };
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
            lines.push(("changed", about(format!("{}: {}", c.key, c.what))));
        }
        for k in &d.added {
            lines.push(("added", about(k.to_string())));
        }
        for k in &d.removed {
            lines.push(("removed", about(k.to_string())));
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

fn relay_accuracy(run_dir: &Path) -> Result<u8, Failure> {
    let acc = crate::target::relay::accuracy::accuracy(run_dir).map_err(usage)?;
    print!("{acc}");
    let (c, r) = (acc.connections_total(), acc.retries_total());
    if c.total == 0 {
        eprintln!(
            "no relayed trial in {}: run with `--relay only` or `--relay both`",
            run_dir.display()
        );
        return Ok(1);
    }
    let all = c.agreed == c.total && r.agreed == r.total && acc.unmatched.is_empty();
    Ok(if all { 0 } else { 1 })
}
