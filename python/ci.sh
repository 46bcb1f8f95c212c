#!/usr/bin/env bash
# The Python package's CI step: a virtual environment cached outside the clone (keyed by
# requirements-ci.txt and the Python version, so a fresh clone reuses it), the package built
# into it in release, then pytest (unit, integration and the framework tests). pytest's exit 5
# (no test collected) is a failure, as is any skip of the framework tests here.
set -euo pipefail
cd "$(dirname "$0")"

key=$(cat requirements-ci.txt <(python3 --version 2>&1) | sha256sum | cut -c1-16)
venv=${RUNSTORE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/runstore}/py-$key
# The stamp is written only after a complete install: an interrupted one is redone.
if [ ! -f "$venv/.installed" ]; then
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  echo "installing the Python test requirements into $venv (once; cold: several minutes)"
  start=$(date +%s)
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements-ci.txt
  echo "installed in $(( $(date +%s) - start )) s"
  touch "$venv/.installed"
fi
# ruff, pinned, in a small environment of its own (its version is the cache key).
ruff_version=0.17.6
ruff_env=$(dirname "$venv")/ruff-$ruff_version
if [ ! -f "$ruff_env/.installed" ]; then
  rm -rf "$ruff_env"
  python3 -m venv "$ruff_env"
  "$ruff_env/bin/pip" install --quiet --disable-pip-version-check "ruff==$ruff_version"
  touch "$ruff_env/.installed"
fi
[ "${1:-}" = "--setup-only" ] && exit 0

# Lint and format first: cheap, and the configuration is in pyproject.toml.
"$ruff_env/bin/ruff" check .
"$ruff_env/bin/ruff" format --check .

# Build into the venv: the same extension `pip install ./python` builds, in release.
# The workspace's target/ is shared with cargo, so a warm build is incremental.
(cd .. && VIRTUAL_ENV=$venv PATH="$venv/bin:$PATH" "$venv/bin/maturin" develop --release --quiet -m python/Cargo.toml)

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export RUNSTORE_REQUIRE_FRAMEWORKS=1
status=0
"$venv/bin/python" -m pytest -q tests || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no test: failing"
  exit 1
fi
exit "$status"
