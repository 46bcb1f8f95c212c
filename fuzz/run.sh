#!/usr/bin/env bash
# Fuzzes every decoder of stored bytes and the id/metric-name validation: each target runs
# SECONDS (default 60) seconds. Not part of CI's default path.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     cargo-fuzz (libFuzzer), nightly or RUSTC_BOOTSTRAP=1
#   fuzz/run.sh --stable [SECONDS]        no nightly: random edits of the seeds, no coverage
#
# Seeds are in fuzz/seeds/<target>/ (made by the encoders: `cargo test --features fuzzing --lib
# fuzzing::tests::write_seed_corpus -- --ignored`); what libFuzzer finds goes to
# fuzz/corpus/<target>/, crashes to fuzz/artifacts/<target>/, and each run's log to
# fuzz/logs/<target>.log. Exits non-zero when a target crashes.
set -euo pipefail
cd "$(dirname "$0")"
targets=(row_chunk point_chunk time_chunk value_stream records journal lock_holder auto_pointer names)

if [ "${1:-}" = "--stable" ]; then
  seconds="${2:-60}"
  RUNSTORE_FUZZ_SECONDS="$seconds" cargo test --manifest-path ../Cargo.toml --release --features fuzzing \
    --lib fuzzing::tests::stable_fuzz -- --ignored --nocapture
  exit
fi

seconds="${1:-60}"
shift || true
if [ "$#" -gt 0 ]; then targets=("$@"); fi
# cargo-fuzz needs nightly's sanitizer flags: a nightly toolchain, else the stable one with
# RUSTC_BOOTSTRAP=1 (which lets stable take them; for this fuzz build only).
fuzz=(cargo +nightly fuzz)
if ! "${fuzz[@]}" --version >/dev/null 2>&1; then
  fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
  if ! "${fuzz[@]}" --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed (cargo install cargo-fuzz): running the stable stand-in instead" >&2
    exec "$0" --stable "$seconds"
  fi
fi
if [ ! -d seeds/point_chunk ]; then
  cargo test --manifest-path ../Cargo.toml --features fuzzing --lib fuzzing::tests::write_seed_corpus -- --ignored
fi
mkdir -p logs
status=0
total=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  if "${fuzz[@]}" run "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -print_final_stats=1 >"logs/$target.log" 2>&1; then
    result="no crash"
  else
    result="CRASH: see logs/$target.log and artifacts/$target/"
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "logs/$target.log" | grep -o '[0-9]*$' || echo 0)
  total=$((total + runs))
  echo "$target: $runs executions in ${seconds} s, $result"
done
echo "all targets: $total executions"
exit "$status"
