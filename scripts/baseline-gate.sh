#!/usr/bin/env bash
# May this nightly run become the accepted baseline? (.github/workflows/nightly.yml runs this
# in a manual run with accept_baseline = true.)
#
#   scripts/baseline-gate.sh RUN_DIR DIFF_CODE
#
# RUN_DIR    the merged run, with the confirmation trials the comparison added
# DIFF_CODE  the exit code of `harness diff BASELINE RUN_DIR --confirm` (for the very first
#            baseline, of `harness report RUN_DIR`)
# HARNESS    how to run the harness (default: `cargo run -q -p harness --`)
#
# Accepted only when the run itself is complete, has no error cell and no broken expectation
# (`harness report RUN_DIR` exits 0), and the comparison exited 0 (nothing changed) or 3 (a
# confirmed change: what accepting is for). The run is checked on its own, not through
# DIFF_CODE alone: one exit code names one outcome when several apply, so "3" must not be
# read as "and nothing else".
#
# Prints the decision and every reason; writes `promote=true` or `promote=false` to
# $GITHUB_OUTPUT when that is set; under GitHub Actions a refusal is also an ::error
# annotation. Exits 0 once it has decided, 2 on bad usage.
set -uo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 RUN_DIR DIFF_CODE" >&2
    exit 2
fi
run=$1
diff_code=$2
case "$diff_code" in
'' | *[!0-9]*)
    echo "$0: DIFF_CODE must be an exit code, not '$diff_code'" >&2
    exit 2
    ;;
esac
read -r -a harness <<<"${HARNESS:-cargo run -q -p harness --}"

reasons=()
if [ ! -f "$run/matrix.json" ]; then
    reasons+=("there is no run: $run/matrix.json does not exist")
else
    # The table it prints is already in the job's log and summary.
    "${harness[@]}" report "$run" >/dev/null
    report_code=$?
    case "$report_code" in
    0) ;;
    1) reasons+=("the run has an error cell or is incomplete (harness report exited 1)") ;;
    4) reasons+=("an expectation broke (harness report exited 4)") ;;
    *) reasons+=("harness report exited $report_code") ;;
    esac
fi
case "$diff_code" in
0 | 3) ;;
1) reasons+=("a cell could not be measured, in the run or while confirming (the comparison exited 1)") ;;
4) reasons+=("an expectation broke (the comparison exited 4)") ;;
*) reasons+=("the comparison exited $diff_code") ;;
esac

if [ ${#reasons[@]} -eq 0 ]; then
    decision=true
    echo "accepted: $run is complete, with no error cell and no broken expectation (comparison exit $diff_code); it becomes the accepted baseline"
else
    decision=false
    joined=$(printf '%s; ' "${reasons[@]}")
    joined=${joined%; }
    echo "not accepted as the baseline: $joined"
    if [ "${GITHUB_ACTIONS:-}" = true ]; then
        echo "::error title=handshake-matrix baseline::not accepted as the baseline: $joined. The accepted baseline is unchanged; fix the cause, then run the workflow again with accept_baseline = true"
    fi
fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
    echo "promote=$decision" >>"$GITHUB_OUTPUT"
fi
exit 0
