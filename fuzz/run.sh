#!/bin/sh
# Runs every cargo-fuzz target for a bounded time: the nightly fuzzing command
# (docs/FUZZING.md). Usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
# Default 300 s per target. Exits non-zero if any target finds a crash; the
# reproducer is left in fuzz/artifacts/<target>/ and the log in
# fuzz/logs/<target>.log.
#
# Needs: rustup's nightly toolchain and cargo-fuzz
#   (rustup toolchain install nightly; cargo install cargo-fuzz --locked),
# FFmpeg's development libraries (as for the main crate) and clang.
set -eu
secs=${1:-300}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")"
targets=${*:-$(cargo +nightly fuzz list)}
# Same dependency versions as the server: start from its lock file.
cp ../Cargo.lock Cargo.lock
mkdir -p logs
# -a: debug assertions and overflow checks (off by default in cargo fuzz's
# release builds), so an arithmetic overflow is a crash. One build job: the
# machines this runs on are small and shared.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
cargo +nightly fuzz build -a
status=0
for t in $targets; do
    mkdir -p "corpus/$t"
    seeds="seeds/$t"
    [ -d "$seeds" ] || seeds=
    echo "== $t for ${secs}s"
    # -rss_limit_mb/-malloc_limit_mb: an allocation from an unchecked length is a
    # finding, not an out-of-memory kill. -timeout: one input taking >10 s is a hang.
    if cargo +nightly fuzz run -a "$t" "corpus/$t" $seeds -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -malloc_limit_mb=256 -timeout=10 \
        -print_final_stats=1 >"logs/$t.log" 2>&1; then
        grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "logs/$t.log" || true
        tail -n 1 "logs/$t.log" | grep -o 'cov: [0-9]* ft: [0-9]*' || true
    else
        echo "!! $t failed: see fuzz/logs/$t.log and fuzz/artifacts/$t/"
        tail -n 30 "logs/$t.log"
        status=1
    fi
done
exit $status
