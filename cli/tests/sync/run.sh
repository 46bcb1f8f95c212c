#!/usr/bin/env bash
# Sync and export against the real consumers: an MLflow tracking server (SQLite backend, on
# 127.0.0.1) read back with MLflow's own client, and TensorBoard's event reader. Both come from
# PyPI into a virtual environment cached outside the clone (keyed by the requirements, so a
# fresh clone reuses it). Without PyPI this says so and skips.
set -euo pipefail
cd "$(dirname "$0")/../../.."

requirements=("mlflow>=2.9,<4" "tensorboard>=2.14,<3")
key=$(printf '%s\n' "$(python3 --version 2>&1)" "${requirements[@]}" | sha256sum | cut -c1-16)
venv=${RUNSTORE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/runstore}/sync-venv-$key
if ! "$venv/bin/python" -c "import mlflow, tensorboard" 2>/dev/null; then
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv"; then
    echo "sync tests SKIPPED: python3 cannot create a virtual environment here"
    exit 0
  fi
  if ! "$venv/bin/pip" index versions mlflow >/dev/null 2>&1; then
    echo "sync tests SKIPPED: the Python package index is unreachable, so mlflow and tensorboard cannot be installed"
    exit 0
  fi
  echo "installing mlflow and tensorboard into $venv (once)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}"
fi

cargo build --quiet -p runstore-cli --bin runstore
cargo build --quiet -p runstore --example quickstart
# The command-line test binary: its ignored `system_metrics::sync_fixture` records system samples.
tests=$(cargo test --quiet -p runstore-cli --test it --no-run --message-format=json \
  | "$venv/bin/python" -c 'import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") and message["target"]["name"] == "it" \
            and "runstore-cli" in message["package_id"]:
        print(message["executable"])')
exec "$venv/bin/python" cli/tests/sync/check.py target/debug/runstore target/debug/examples/quickstart "$tests"
