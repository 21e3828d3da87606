//! A fresh machine for real (issue: fresh machine): a minimal Debian 12 root — no compiler, no
//! curl, no git — reaches a valid matrix through the README's own commands, and the nightly's
//! slice → merge → diff → summary path and the push workflow's test step run end to end in it.
//!
//! Slow (a cold build inside the root, Debian's browsers installed there): about 20 minutes on
//! 2 cores. Needs root (chroot, mounts), which CI has. Inside the root, this test does not run
//! itself again (`HM_INSIDE_FRESH_ROOT`).

use std::path::{Path, PathBuf};
use std::process::Command;

use results::{CellStatus, RunResults};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn toolchain() -> PathBuf {
    // The toolchain that builds this test: `rustc` lives in its bin/.
    let rustc = Command::new("rustup")
        .args(["which", "rustc"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .expect("rustup knows the toolchain (the README installs Rust with rustup)");
    rustc.parent().unwrap().parent().unwrap().to_owned()
}

/// Runs `script` with `bash -c`, its output shown in the test's output; panics on failure.
fn sh(what: &str, script: &str) -> String {
    eprintln!("fresh-machine: {what}");
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// The fenced command of the README that follows `heading`.
fn readme_command(heading: &str) -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let after = &readme[readme.find(heading).expect(heading)..];
    let block = after.split("```sh\n").nth(1).unwrap();
    block[..block.find("\n```").unwrap()].trim().to_owned()
}

/// The minimal root, removed when dropped.
struct FreshRoot(PathBuf);

impl Drop for FreshRoot {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/fresh-debian.sh"))
            .arg("remove")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_minimal_debian_12_reaches_a_matrix_through_the_readme_and_the_workflows() {
    if std::env::var_os("HM_INSIDE_FRESH_ROOT").is_some() {
        eprintln!("inside the fresh root already: not nesting another");
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("hm-fresh-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let root = FreshRoot(tmp.path().join("root"));
    let r = root.0.display().to_string();
    let tc = toolchain().display().to_string();
    let inside = |what: &str, command: &str| {
        sh(
            what,
            &format!(
                "scripts/fresh-debian.sh run {r} --toolchain {tc} --workdir /work/hm \
                 --env HM_INSIDE_FRESH_ROOT=1 -- {}",
                shell_quote(command)
            ),
        )
    };

    sh(
        "create the root",
        &format!("scripts/fresh-debian.sh create {r}"),
    );
    let bare = sh(
        "what the root lacks",
        &format!(
            "scripts/fresh-debian.sh run {r} -- 'for p in cc gcc curl git python3; do command -v $p || echo no-$p; done'"
        ),
    );
    assert_eq!(
        bare.split_whitespace().collect::<Vec<_>>(),
        ["no-cc", "no-gcc", "no-curl", "no-git", "no-python3"],
        "the root starts without a compiler, curl, git or Python"
    );
    // The checkout as a clone has it: tracked files (and new ones not ignored).
    sh(
        "copy the checkout in",
        &format!(
            "mkdir -p {r}/work/hm && git ls-files -z --cached --others --exclude-standard | \
             tar --null -T - -cf - | tar -xf - -C {r}/work/hm"
        ),
    );

    // The README's run command, on a small slice: one scenario, every browser, one backend,
    // both TLS versions, one trial.
    let run = readme_command("Set up and run the main job");
    assert_eq!(
        run,
        "scripts/setup.sh && cargo run -p harness -- --matrix all"
    );
    inside(
        "the README's run command (a slice)",
        &run.replace(
            "--matrix all",
            "--matrix report-close --backend rustls --repeat 1 --out /work/slice",
        ),
    );
    let slice = RunResults::read(&root.0.join("work/slice")).expect("a valid matrix");
    assert_eq!(slice.cells.len(), 6, "3 browsers × 2 TLS versions");
    for c in &slice.cells {
        // No WebKit browser has a warning WebDriver can click through.
        let expected = c.key.browser != "webkit";
        assert_eq!(
            c.status == CellStatus::Measured,
            expected,
            "{}: {:?}",
            c.key,
            c.status
        );
    }
    // WebKit on the fresh machine: its display, its journal and its cell.
    inside(
        "a WebKit cell",
        "cargo run -p harness -- --matrix control-accept-insecure --browser webkit \
         --backend rustls --tls 1.3 --repeat 1 --out /work/slice-webkit",
    );
    let webkit = RunResults::read(&root.0.join("work/slice-webkit")).expect("a valid matrix");
    assert_eq!(webkit.cells.len(), 1);
    assert_eq!(webkit.cells[0].status, CellStatus::Measured);
    assert!(
        webkit.cells[0].trials[0].client_log.is_some(),
        "the journal was kept"
    );

    // Every user (issue: speed): after the README's setup, run as root, a user who is not root
    // measures a Firefox cell with the same checkout; geckodriver is where every user's PATH
    // finds it, not in root's home.
    inside(
        "a Firefox cell as a user who is not root",
        "id hm-user >/dev/null 2>&1 || useradd --create-home hm-user; \
         install -d -o hm-user /work/user-slice-out; \
         runuser -l hm-user -c 'cd /work/hm && command -v geckodriver && \
           target/debug/harness --matrix control-accept-insecure --browser firefox \
           --backend rustls --tls 1.3 --repeat 1 --out /work/user-slice-out/run'",
    );
    let user = RunResults::read(&root.0.join("work/user-slice-out/run")).expect("a valid matrix");
    assert_eq!(user.cells.len(), 1);
    assert_eq!(
        user.cells[0].status,
        CellStatus::Measured,
        "{:?}",
        user.cells[0].status
    );

    // The README's test command, on a fast subset.
    let test = readme_command("Run the tests");
    assert_eq!(test, "scripts/setup.sh && cargo test --workspace --locked");
    inside(
        "the README's test command (a subset)",
        &format!("{test} --test handshakes --test cli"),
    );

    // A real baseline that differs: report-close measured with Chromium's prediction off
    // (no preconnects: 1 failed handshake where the default has about 3).
    inside(
        "a baseline with prediction off",
        "mkdir -p /work/alt && cp scenarios/report-close.toml /work/alt/ && \
         printf '\\n[knobs]\\nnetwork-prediction-options = 2\\n' >> /work/alt/report-close.toml && \
         cargo run -p harness -- --scenarios /work/alt --matrix report-close --backend rustls \
         --out /work/baseline",
    );

    // The nightly's jobs: both browsers' slices, then merge → diff → summary.
    let store = tmp.path().join("artefacts");
    let workflow = |file: &str, args: &[&str]| -> serde_json::Value {
        let mut command = Command::new("python3");
        command
            .arg(repo().join("scripts/run-workflow.py"))
            .arg(repo().join(".github/workflows").join(file))
            .args(["--root", &r, "--repo", repo().to_str().unwrap()])
            .args(["--store", store.to_str().unwrap(), "--toolchain", &tc])
            .args(["--target-dir", "/work/hm/target"])
            .args(args);
        eprintln!("fresh-machine: workflow {file} {args:?}");
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "run-workflow {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let baseline = root.0.join("work/baseline");
    let nightly = workflow(
        "nightly.yml",
        &[
            "--job",
            "slice:browser=chromium,backend=rustls",
            "--job",
            "slice:browser=firefox,backend=rustls",
            "--job",
            "merge",
            "--input",
            "scenarios=report-close",
            "--artifact",
            &format!("accepted-baseline={}", baseline.display()),
        ],
    );
    let jobs = nightly["jobs"].as_array().unwrap();
    let log = |j: &serde_json::Value| j["log"].as_str().unwrap_or_default().to_owned();
    for slice in &jobs[..2] {
        assert_eq!(slice["result"], "success", "{}", log(slice));
    }
    assert!(store.join("slice-chromium-rustls/matrix.json").exists());
    assert!(store.join("slice-firefox-rustls/matrix.json").exists());
    let merge = &jobs[2];
    // The baseline's Chromium cells (1 failed handshake a navigation) against the slices' (about
    // 3): flagged, measured again in the merge job, confirmed: `harness diff` exits 3.
    assert_eq!(merge["outputs"]["code"], "3", "{}", log(merge));
    assert_eq!(
        merge["result"],
        "failure",
        "a confirmed change fails the job: {}",
        log(merge)
    );
    let failed: Vec<&str> = merge["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["outcome"] == "failure")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        ["Fail on a confirmed change, an error cell or a broken expectation"],
        "only the verdict fails: {}",
        log(merge)
    );
    let annotations: Vec<&str> = merge["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        annotations
            .iter()
            .any(|a| a.starts_with("::error") && a.contains("report-close / rustls / chromium")),
        "one annotation per confirmed change: {annotations:?}"
    );
    let summary = merge["summary"].as_str().unwrap();
    assert!(
        summary.contains("# handshake-matrix results") && summary.contains("outcomes"),
        "the step summary holds the merged matrix and the outcomes: {summary}"
    );
    assert!(
        store.join("github-pages/index.html").exists(),
        "the page for Pages"
    );

    // The push workflow's test step, on the same subset as above.
    let tests = workflow(
        "tests.yml",
        &[
            "--job",
            "test",
            "--rewrite",
            "cargo test --workspace --locked=>cargo test --workspace --locked --test handshakes --test cli",
        ],
    );
    let test_job = &tests["jobs"][0];
    assert_eq!(test_job["result"], "success", "{}", log(test_job));
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
