//! Replays every seed and every input that once made a fuzz target fail (`cargo test` runs
//! this; `scripts/fuzz.sh` runs the fuzzer itself).
//!
//! The targets are found on disk (`fuzz_targets/*.rs`, what `cargo fuzz` builds), not taken
//! from `fuzz::TARGETS`: a target added without seeds, or without a replay check, must fail
//! here rather than be skipped.

use std::collections::BTreeMap;
use std::path::Path;

/// The fuzz targets: the file stems of `<dir>/*.rs`, sorted.
fn discover_targets(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut targets = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs")
            && let Some(stem) = path.file_stem()
        {
            targets.push(stem.to_string_lossy().into_owned());
        }
    }
    targets.sort();
    Ok(targets)
}

/// The files of `<root>/<kind>/<target>/`, sorted; `None` when the folder does not exist.
fn inputs(root: &Path, kind: &str, target: &str) -> Option<Vec<std::path::PathBuf>> {
    let dir = std::fs::read_dir(root.join(kind).join(target)).ok()?;
    let mut files: Vec<_> = dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Some(files)
}

/// What keeps `targets` from replaying at least their own seeds: a seed folder that is missing
/// or holds no file, a target without a check in `checks`, a check without a target.
fn seed_problems(root: &Path, targets: &[String], checks: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    for target in targets {
        match inputs(root, "seeds", target) {
            None => problems.push(format!(
                "{target}: no seed folder seeds/{target}/ (add at least one input the target accepts)"
            )),
            Some(files) if files.is_empty() => {
                problems.push(format!("{target}: seeds/{target}/ holds no input"))
            }
            Some(_) => {}
        }
        if !checks.contains(&target.as_str()) {
            problems.push(format!(
                "{target}: no replay check in fuzz::TARGETS (fuzz/src/lib.rs)"
            ));
        }
    }
    for check in checks {
        if !targets.iter().any(|t| t == check) {
            problems.push(format!(
                "fuzz::TARGETS names {check}, which is not in fuzz_targets/"
            ));
        }
    }
    problems
}

#[test]
fn every_target_has_seeds_and_replays_them_and_its_regression_inputs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let targets = discover_targets(&root.join("fuzz_targets")).unwrap();
    assert!(targets.len() >= 3, "fuzz_targets/ lists only {targets:?}");
    let checks: BTreeMap<&str, fuzz::Check> = fuzz::TARGETS.into_iter().collect();
    let names: Vec<&str> = checks.keys().copied().collect();
    let problems = seed_problems(root, &targets, &names);
    assert!(problems.is_empty(), "{problems:#?}");

    let mut failed = Vec::new();
    for target in &targets {
        let check = checks[target.as_str()];
        let seeds = inputs(root, "seeds", target).unwrap_or_default();
        let regressions = inputs(root, "regressions", target).unwrap_or_default();
        let mut replayed = 0;
        for path in seeds.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap();
            replayed += 1;
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failed.push(path.display().to_string());
            }
        }
        assert!(
            replayed >= seeds.len() && replayed > 0,
            "{target}: replayed {replayed} inputs"
        );
    }
    assert!(failed.is_empty(), "inputs that fail: {failed:#?}");
}

#[test]
fn a_target_with_a_missing_or_empty_seed_folder_is_a_problem() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("fuzz_targets")).unwrap();
    for t in ["with_seeds", "empty_seeds", "no_seeds", "unchecked"] {
        std::fs::write(r.join("fuzz_targets").join(format!("{t}.rs")), "").unwrap();
    }
    // Not a target: `cargo fuzz` builds only the `.rs` files.
    std::fs::write(r.join("fuzz_targets/README.md"), "").unwrap();
    for t in ["with_seeds", "unchecked"] {
        std::fs::create_dir_all(r.join("seeds").join(t)).unwrap();
        std::fs::write(r.join("seeds").join(t).join("one"), "x").unwrap();
    }
    // A folder that holds only a subfolder has no input either.
    std::fs::create_dir_all(r.join("seeds/empty_seeds/nested")).unwrap();

    let targets = discover_targets(&r.join("fuzz_targets")).unwrap();
    assert_eq!(
        targets,
        ["empty_seeds", "no_seeds", "unchecked", "with_seeds"]
    );
    let problems = seed_problems(
        r,
        &targets,
        &["with_seeds", "empty_seeds", "no_seeds", "gone"],
    );
    assert_eq!(
        problems,
        [
            "empty_seeds: seeds/empty_seeds/ holds no input",
            "no_seeds: no seed folder seeds/no_seeds/ (add at least one input the target accepts)",
            "unchecked: no replay check in fuzz::TARGETS (fuzz/src/lib.rs)",
            "fuzz::TARGETS names gone, which is not in fuzz_targets/",
        ]
    );
    assert!(
        seed_problems(r, &["with_seeds".to_owned()], &["with_seeds"]).is_empty(),
        "a target with a seed and a check is fine"
    );
}
