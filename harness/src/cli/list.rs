//! `harness list`: scenarios, backends and browsers, with versions or why they are missing.

use std::path::PathBuf;

use backends::BackendName;

use crate::target::ServerProgram;
use clap::Args;

use super::environment::{BinaryArgs, resolve_binaries, tool_versions};
use super::{Failure, load_scenarios, usage};

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    #[command(flatten)]
    binaries: BinaryArgs,
    /// Folder of scenario files.
    #[arg(long, default_value = "scenarios")]
    scenarios: PathBuf,
}

pub(super) fn list(args: ListArgs) -> Result<u8, Failure> {
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
    println!("workloads (--matrix NAME):");
    for w in crate::scenario::WORKLOADS {
        println!("  {:<28} {}", w.name, w.description);
    }
    println!("backends:");
    for b in BackendName::ALL {
        let backend = b.backend();
        match backend.unavailable() {
            Some(why) => println!("  {:<10} unavailable: {why}", b.as_str()),
            None => println!("  {:<10} {}", b.as_str(), backend.library_version()),
        }
    }
    println!("server programs (observed through the relay):");
    for p in ServerProgram::ALL {
        match p.version() {
            Ok(v) => println!("  {:<17} {v}", p.as_str()),
            Err(why) => println!("  {:<17} unavailable: {why}", p.as_str()),
        }
    }
    println!("browsers:");
    let binaries = resolve_binaries(&args.binaries).map_err(usage)?;
    for (name, v) in tool_versions(&binaries) {
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
