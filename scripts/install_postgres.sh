#!/usr/bin/env bash
# The PostgreSQL server the store tests start (a throw-away cluster per test session, made by pg_virtualenv
# from Debian's postgresql-common). Idempotent: nothing to do when pg_virtualenv is installed.
set -euo pipefail
if command -v pg_virtualenv >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
command -v pg_virtualenv >/dev/null
echo "postgresql installed: $(pg_virtualenv --help >/dev/null 2>&1 && echo pg_virtualenv ready)"
