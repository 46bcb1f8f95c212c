#!/usr/bin/env bash
# The library is what training programs link: it must pull only storage dependencies. Fails when
# a crate of the command line (or anything with a C build) reaches `runstore`'s normal dependency
# tree, or when that tree grows past the budget the README states (20 crates besides the library).
set -euo pipefail
cd "$(dirname "$0")/.."

budget=20
forbidden='^(clap|clap_builder|clap_derive|indicatif|ureq|rustls|ring|criterion|cc|axum|tokio|hyper|pyo3)$'

# Every crate of the tree but the library itself, once.
crates=$(cargo tree -p runstore -e normal --prefix none --format '{p}' | awk '{print $1}' | grep -vx runstore | sort -u)
count=$(printf '%s\n' "$crates" | grep -c .)
echo "runstore's normal dependencies: $count crates (budget $budget): $(printf '%s\n' "$crates" | paste -sd' ')"

leaked=$(printf '%s\n' "$crates" | grep -E "$forbidden" || true)
if [ -n "$leaked" ]; then
  echo "FAIL: command-line or native-build crates reached the library: $leaked" >&2
  exit 1
fi
# A build script compiling C shows as a build dependency on cc.
if cargo tree -p runstore -e normal,build --prefix none | awk '{print $1}' | grep -qx cc; then
  echo "FAIL: a dependency of the library compiles C (cc in its build dependencies)" >&2
  exit 1
fi
if [ "$count" -gt "$budget" ]; then
  echo "FAIL: $count crates in the library's tree, over the budget of $budget" >&2
  exit 1
fi
