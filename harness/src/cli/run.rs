//! `harness --matrix …`: run the scenarios' cells and write the run folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use results::{Format, RunResults, SCHEMA_VERSION};

use super::environment::{BinaryArgs, environment, resolve_binaries, rfc3339_now};
use super::{
    EXIT_INCOMPLETE, Failure, TlsArg, default_jobs, load_scenarios, read_run, report_outcomes,
    shutdown_signal, usage,
};
use crate::browser::BrowserKind;
use crate::progress::Progress;
use crate::runner::{RelayMode, RunPlan, cells, run};
use crate::scenario;
use crate::target::{External, TargetName};

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    /// Scenarios to run: `all`, names (file stems in the scenarios folder) separated by commas,
    /// or a named fixed workload (`baseline-2026`: see `harness list`).
    #[arg(long, value_name = "all|NAME[,NAME…]|WORKLOAD")]
    matrix: Option<String>,
    /// Only these backends: built-in (`rustls`, `openssl`, `mbedtls`) or server programs
    /// observed through the relay (`lighttpd-openssl`, `lighttpd-gnutls`, `lighttpd-wolfssl`,
    /// `lighttpd-mbedtls`, `nginx`).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    backend: Vec<TargetName>,
    /// Only these browsers.
    #[arg(long, value_enum, value_delimiter = ',')]
    browser: Vec<BrowserKind>,
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
    /// Start every trial's browser from an empty profile. By default a run starts Firefox
    /// once, closes it and copies that profile into each trial's (less certificate
    /// exceptions, HSTS, alternative services, caches and other per-site state), which saves
    /// Firefox's first-start work in every trial; the README ("Speed") shows the counts agree.
    #[arg(long)]
    fresh_profiles: bool,
    /// Serve every trial on this loopback port, e.g. to capture with `tcpdump -i lo port N`
    /// (needs `--jobs 1`). A port another program holds makes those trials `error`.
    #[arg(long, value_name = "PORT")]
    server_port: Option<u16>,
    /// Reach the built-in backends through the recording relay (`only`: columns
    /// `rustls+relay`, …), or both directly and through it, side by side (`both`), to see that
    /// the relay changes nothing and how far its records agree with the servers' own
    /// (`harness relay-accuracy RUN`).
    #[arg(long, value_enum, default_value_t = RelayMode::Off)]
    relay: RelayMode,
    /// Measure this HTTPS server (yours, a dev server, a device) instead of the scenarios'
    /// backends: `https://HOST[:PORT]/[PATH]`. Its connections pass through the recording
    /// relay on loopback; the TLS column pins the browser. See the README, "Test your own
    /// server".
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// The `--target`'s name in the backend column (default: HOST:PORT).
    #[arg(long, value_name = "NAME", requires = "target")]
    target_name: Option<String>,
    /// The CA (or self-signed certificate, PEM) that `trusted-ca` installs for `--target`.
    #[arg(long, value_name = "FILE", requires = "target")]
    target_ca: Option<PathBuf>,
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
    /// After the run, print where the trials' time went (per browser: certificate, server,
    /// driver, session start, each step's action and settle wait, close, logs) and the
    /// harness's own CPU time. Every run writes these figures into matrix.json; `harness
    /// timings RUN` prints them for any run.
    #[arg(long)]
    timings: bool,
    #[command(flatten)]
    binaries: BinaryArgs,
}

pub(super) async fn run_matrix(args: RunArgs) -> Result<u8, Failure> {
    let Some(matrix) = args.matrix.as_deref() else {
        return Err(usage(anyhow::anyhow!(
            "nothing to run: give `--matrix all` (or scenario names), or a subcommand; see `harness --help`"
        )));
    };
    let all = load_scenarios(&args.scenarios)?;
    let scenarios = scenario::select(all, matrix).map_err(usage)?;
    let binaries = resolve_binaries(&args.binaries).map_err(usage)?;
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
    let external: Vec<std::sync::Arc<dyn crate::target::Target>> = match &args.target {
        None => Vec::new(),
        Some(url) => {
            let t = External::new(url, args.target_name.clone(), args.target_ca.as_deref())
                .map_err(|e| usage(anyhow::anyhow!(e)))?;
            if let Some(why) = &t.probe().name_mismatch {
                eprintln!("warning: --target {url}: {why}");
            }
            eprintln!(
                "note: --target {url} serves its own certificate and connection policy; the scenarios' `cert`, `connection` and `backends` do not apply to it"
            );
            vec![std::sync::Arc::new(t)]
        }
    };
    // A named workload pins its backends and browsers; the flags only narrow them (a name
    // outside the workload leaves the selection empty, which is refused below).
    fn narrowed<T: Copy + PartialEq>(given: &[T], pinned: &[T]) -> Vec<T> {
        pinned
            .iter()
            .copied()
            .filter(|p| given.is_empty() || given.contains(p))
            .collect()
    }
    let (mut backends, mut browsers) = (args.backend.clone(), args.browser.clone());
    if let Some(w) = scenario::workload(matrix) {
        backends = narrowed(&backends, w.backends);
        browsers = narrowed(&browsers, w.browsers);
        if backends.is_empty() || browsers.is_empty() {
            let names = |v: Vec<String>| v.join(", ");
            return Err(usage(anyhow::anyhow!(
                "the selection is empty: the workload {} has the backends {} and the browsers {}",
                w.name,
                names(w.backends.iter().map(ToString::to_string).collect()),
                names(w.browsers.iter().map(ToString::to_string).collect()),
            )));
        }
    }
    let plan = RunPlan {
        external,
        scenarios,
        backends,
        browsers,
        tls: args.tls.iter().map(|&t| t.into()).collect(),
        repeat: args.repeat,
        jobs: args.jobs.max(1),
        out: out.clone(),
        binaries: binaries.clone(),
        quiet: Duration::from_millis(args.quiet_ms),
        keep_profiles: args.keep_profiles,
        server_port: args.server_port,
        only: None,
        relay: args.relay,
        profile_templates: if args.fresh_profiles {
            None
        } else {
            crate::browser::ProfileTemplates::for_run()
        },
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
    // Only now that no leftover process can still be writing in them.
    crate::scratch::sweep();
    for (build, b) in &binaries {
        if let Err(e) = b {
            eprintln!("warning: {build} cells will be `error`: {e}");
        }
    }
    let used: std::collections::BTreeSet<TargetName> = plan
        .scenarios
        .iter()
        .flat_map(|s| s.file.backends.iter().copied())
        .filter(|t| plan.backends.is_empty() || plan.backends.contains(t))
        .collect();
    for t in used {
        if let Some(why) = t.target(false).unavailable() {
            eprintln!("warning: {t} cells will be `error`: {why}");
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
    let cpu = crate::timing::CpuClock::now();
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
    results.environment.harness_cpu = Some(cpu.since());
    let written = results::write_all(&results, &out);
    println!("{}", results::render(&results, Format::Terminal));
    if args.timings {
        print!("{}", results::timings_summary(&results));
    }
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
                profile_templates: !args.fresh_profiles,
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
        super::diff::write_comparison(d, args.baseline.as_deref().unwrap_or(Path::new("")), &out);
    }
    Ok(report_outcomes(&results, d.as_ref(), &problems))
}
