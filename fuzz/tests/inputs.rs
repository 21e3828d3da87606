//! Replays every seed and every input that once made a fuzz target fail (`cargo test` runs
//! this; `scripts/fuzz.sh` runs the fuzzer itself).

use std::path::Path;

#[test]
fn seeds_and_regression_inputs_hold_every_property() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut replayed = 0;
    let mut failed = Vec::new();
    for (target, check) in fuzz::TARGETS {
        for kind in ["seeds", "regressions"] {
            let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else {
                continue;
            };
            for entry in dir.flatten() {
                let data = std::fs::read(entry.path()).unwrap();
                replayed += 1;
                if std::panic::catch_unwind(|| check(&data)).is_err() {
                    failed.push(entry.path().display().to_string());
                }
            }
        }
    }
    assert!(failed.is_empty(), "inputs that fail: {failed:#?}");
    assert!(replayed >= 10, "only {replayed} inputs found");
}
