#!/usr/bin/env bash
# The viewer (`runstore serve`) in a real browser: Debian's headless Chromium driven through
# WebDriver (chromedriver) by the ignored tests in cli/tests/it/serve_browser.rs. Installs
# chromium and chromium-driver with apt-get where they are missing; where that cannot be done
# (no root, no apt, no package index), says so and skips. Screenshots land in target/browser/.
set -euo pipefail
cd "$(dirname "$0")/../../.."

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "browser tests SKIPPED: chromium and chromium-driver are not installed and apt-get cannot install them here"
    exit 0
  fi
  echo "installing chromium and chromium-driver (apt-get)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }; then
    echo "browser tests SKIPPED: apt-get could not install chromium and chromium-driver"
    exit 0
  fi
fi

chromium --version 2>/dev/null || true
rm -rf target/browser
# One browser at a time: each test starts its own Chromium, and the machine is small. The
# 20-run test prints its drawing times.
cargo test -p runstore-cli --test it serve_browser:: -- --ignored --test-threads=1 --nocapture
echo "screenshots: $(ls target/browser/*.png 2>/dev/null | tr '\n' ' ' || true)"
