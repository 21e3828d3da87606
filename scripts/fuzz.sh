#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, then stops by itself.
#
#   scripts/fuzz.sh                      each target for 60 s
#   FUZZ_SECONDS=600 scripts/fuzz.sh scenario_file
#
# Targets and their properties: fuzz/src/lib.rs. Each run starts from fuzz/seeds/<target> and
# fuzz/regressions/<target> and grows a corpus in target/fuzz-corpus/<target>. A failing input
# is saved by libFuzzer under fuzz/artifacts/<target>/; once fixed, copy it to
# fuzz/regressions/<target>/ so that `cargo test` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(http_request connection_outcome scenario_file)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo fuzz passes nightly-only compiler flags (sanitizer, coverage instrumentation); the
# stable toolchain accepts them when told it is building itself.
export RUSTC_BOOTSTRAP=1

status=0
for target in "${targets[@]}"; do
    corpus="target/fuzz-corpus/$target"
    mkdir -p "$corpus" "fuzz/regressions/$target"
    echo "== $target: ${seconds} s"
    if ! cargo fuzz run --fuzz-dir fuzz --features libfuzzer "$target" \
        "$corpus" "fuzz/seeds/$target" "fuzz/regressions/$target" \
        -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1; then
        echo "!! $target failed; the input is in fuzz/artifacts/$target/" >&2
        status=1
    fi
done
exit "$status"
