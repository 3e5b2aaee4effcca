#!/usr/bin/env bash
# A bounded run of every fuzz target (fuzz/README.md): builds them all
# once, runs each for FUZZ_SECONDS seconds (default 20) from its kept
# inputs (fuzz/corpus/<target>/ and fuzz/regressions/<target>/), and fails
# if any target finds a panic, a unit slower than FUZZ_TIMEOUT seconds
# (default 10) or one that takes more than FUZZ_RSS_MB of memory (default
# 2048). What a target finds is left in fuzz/artifacts/<target>/; the
# inputs it found new coverage with are thrown away (fuzz/README.md says
# how to keep them).
#
#   FUZZ_SECONDS=300 bash scripts/fuzz.sh        # longer
#   FUZZ_TARGETS="bundle_yaml record" bash scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds=${FUZZ_SECONDS:-20}
unit_timeout=${FUZZ_TIMEOUT:-10}
rss_mb=${FUZZ_RSS_MB:-2048}
# The largest input tried: bundles, records and configs are files of a few
# KiB; 64 KiB is past every real one and keeps each unit quick.
max_len=${FUZZ_MAX_LEN:-65536}
# cargo fuzz asks the compiler for nightly options; the stable compiler
# takes them with this. Without a sanitizer (`-s none`) no nightly-only
# runtime is needed: the parsers have no unsafe code, and what is looked for is
# panics, hangs and runaway memory.
export RUSTC_BOOTSTRAP=1

if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi

# The fuzz crate's lock is onprem's, plus libfuzzer-sys (pinned in
# fuzz/Cargo.toml) and what it needs: every crate onprem uses is built at
# the version onprem is tested with.
cp Cargo.lock fuzz/Cargo.lock

start=$(date +%s)
# 16 codegen units (cargo fuzz's default is 1): onprem is one large crate,
# and this build is most of the step's time on two cores.
cargo fuzz build -s none --codegen-units 16
built=$(( $(date +%s) - start ))
echo "fuzz: built every target in ${built}s"

bin=fuzz/target/x86_64-unknown-linux-gnu/release
work=$(mktemp -d)
# The targets' scratch files (onprem::fuzzing::scratch), in memory where
# there is /dev/shm.
scratch=$(mktemp -d -p "$( [ -d /dev/shm ] && echo /dev/shm || echo "$work")")
trap 'rm -rf "$work" "$scratch"' EXIT

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
# Targets run side by side, one a core (FUZZ_JOBS, default every core).
jobs_max=${FUZZ_JOBS:-$(nproc)}

# Runs target $1; writes its result line to $work/$1.result.
run_one() {
  set +e # a target's failure is its result, and a missing figure is "?"
  local t=$1 log="$work/$1.log" result execs rate cov kept
  local dirs=("fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  mkdir -p "$work/$t" "fuzz/artifacts/$t"
  if ONPREM_FUZZ_SCRATCH="$scratch" "$bin/$t" "$work/$t" "${dirs[@]}" \
      -max_total_time="$seconds" -max_len="$max_len" -timeout="$unit_timeout" \
      -rss_limit_mb="$rss_mb" -artifact_prefix="fuzz/artifacts/$t/" \
      -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
  fi
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log")
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
  kept=$(find "${dirs[@]}" -type f | wc -l)
  printf '%-20s %-6s %10s execs %7s/s  cov %6s  kept inputs %4s\n' \
    "$t" "$result" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$kept" >"$work/$t.result"
}

echo "fuzz: every target for ${seconds}s, $jobs_max at a time"
for t in $targets; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  run_one "$t" &
done
wait

failed=()
for t in $targets; do
  if ! grep -q " ok " "$work/$t.result" 2>/dev/null; then
    failed+=("$t")
    echo "--- $t: the end of libFuzzer's output"
    tail -n 60 "$work/$t.log" || true
    echo "--- $t: what it found, in fuzz/artifacts/$t/:"
    ls -l "fuzz/artifacts/$t/" || true
  fi
done

echo
echo "fuzz: build ${built}s, total $(( $(date +%s) - start ))s, ${seconds}s a target"
for t in $targets; do cat "$work/$t.result" 2>/dev/null || echo "$t: no result"; done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in: ${failed[*]}"
  echo "fuzz: reproduce with: $bin/TARGET fuzz/artifacts/TARGET/FILE;"
  echo "      fix, then keep the input in fuzz/regressions/TARGET/ (tests/fuzz_regressions.rs runs it)"
  exit 1
fi
