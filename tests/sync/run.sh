#!/usr/bin/env bash
# Sync and export against the real consumers: an MLflow tracking server (SQLite backend, on
# 127.0.0.1) read back with MLflow's own client, and TensorBoard's event reader. Both come from
# PyPI into a virtual environment cached under target/. Without PyPI this says so and skips.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/pyenv
if ! "$venv/bin/python" -c "import mlflow, tensorboard" 2>/dev/null; then
  if ! python3 -m venv "$venv"; then
    echo "sync tests SKIPPED: python3 cannot create a virtual environment here"
    exit 0
  fi
  if ! "$venv/bin/pip" index versions mlflow >/dev/null 2>&1; then
    echo "sync tests SKIPPED: the Python package index is unreachable, so mlflow and tensorboard cannot be installed"
    exit 0
  fi
  echo "installing mlflow and tensorboard into $venv (once)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "mlflow>=2.9,<4" "tensorboard>=2.14,<3"
fi

cargo build --quiet --bin runstore --example quickstart
exec "$venv/bin/python" tests/sync/check.py target/debug/runstore target/debug/examples/quickstart
