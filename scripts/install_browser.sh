#!/usr/bin/env bash
# Headless browser for the dashboard's end-to-end test (tests/test_web_browser.py): Debian's chromium and
# chromium-driver. Idempotent: does nothing when both are installed. Needs root (or sudo) for apt-get.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "chromium and chromedriver already installed: nothing to do"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver
command -v chromium && command -v chromedriver
