//! A build that cannot find Mbed TLS 3.6 still builds and runs: its Mbed TLS cells are `error`
//! with the command that fixes it, and the other backends are measured (issue: reliability).
//!
//! This builds the harness a second time, without Mbed TLS, in `target/without-mbedtls`.

use std::path::Path;
use std::process::Command;

use results::{CellStatus, RunResults};

#[test]
fn a_build_without_mbedtls_fails_only_mbedtls_cells_and_names_the_setup_script() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target/without-mbedtls");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(cargo)
        .args(["build", "--locked", "-p", "harness", "--bin", "harness"])
        .env("CARGO_TARGET_DIR", &target)
        .env("MBEDTLS_PREFIX", "/nonexistent/mbedtls")
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let harness = target.join("debug/harness");

    let list = Command::new(&harness)
        .arg("list")
        .current_dir(&root)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{listed}");
    let mbedtls = listed
        .lines()
        .find(|l| l.trim_start().starts_with("mbedtls"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        mbedtls.contains("unavailable: built without Mbed TLS")
            && mbedtls.contains("scripts/setup.sh"),
        "{mbedtls}"
    );

    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let output = Command::new(&harness)
        .args([
            "--matrix",
            "control-accept-insecure",
            "--browser",
            "chromium",
            "--tls",
            "1.3",
            "--backend",
            "rustls,mbedtls",
            "--repeat",
            "1",
            "--out",
        ])
        .arg(&run)
        .env("CI", "true")
        .current_dir(&root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("warning: mbedtls cells will be `error`"),
        "{stderr}"
    );
    let r = RunResults::read(&run).expect("matrix.json is valid");
    for c in &r.cells {
        match (c.key.backend.as_str(), &c.status) {
            ("mbedtls", CellStatus::Error { reason, .. }) => {
                assert!(reason.contains("scripts/setup.sh"), "{reason}");
                assert!(c.headline.is_empty() && c.trials.is_empty());
            }
            ("rustls", CellStatus::Measured) => assert!(!c.headline.is_empty()),
            other => panic!("{other:?}"),
        }
    }
}
