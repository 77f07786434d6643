#!/usr/bin/env bash
# Installs what dbferry needs on a fresh machine, idempotently, saying what it does:
# npm packages, the Temporal CLI (built from its Go module once, then reused), the PostgreSQL
# and MariaDB server packages, Chromium (for the Web UI browser test), and the compiled code.
# Used by `make demo`, `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "[setup] $*"; }

TEMPORAL_CLI_VERSION=v1.5.1
CACHE_BIN="${XDG_CACHE_HOME:-$HOME/.cache}/dbferry/bin"

apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null; then say "cannot install $* (no apt-get): install it by hand"; exit 1; fi
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  if [ $apt_updated = 0 ]; then say "apt-get update"; $sudo apt-get update -qq; apt_updated=1; fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Node.js 20.3+ (the Temporal SDK's minimum)
if ! command -v node >/dev/null || ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=3)?0:1)'; then
  say "Node.js >= 20.3 is required (found: $(node --version 2>/dev/null || echo none))"; exit 1
fi

# npm packages, only when package-lock.json changed since the last install
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # `npm install` rather than `npm ci`: it keeps the locked versions, and recent npm releases
  # write lock files without other platforms' optional packages, which their own `npm ci` refuses.
  say "npm install (locked versions)"
  npm install --no-audit --no-fund --loglevel=error
else
  say "npm packages up to date"
fi

# Temporal CLI (dev server)
temporal_bin=""
for c in "${DBFERRY_TEMPORAL_BIN:-}" "$(command -v temporal || true)" "$CACHE_BIN/temporal"; do
  if [ -n "$c" ] && [ -x "$c" ]; then temporal_bin="$c"; break; fi
done
if [ -z "$temporal_bin" ]; then
  if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then export PATH="$PATH:/usr/local/go/bin"; fi
  if ! command -v go >/dev/null; then apt_install golang-go ca-certificates; fi
  say "building the Temporal CLI $TEMPORAL_CLI_VERSION into $CACHE_BIN (once; takes a few minutes)"
  mkdir -p "$CACHE_BIN"
  # An older Go fetches a newer toolchain as a module when the CLI needs it.
  (cd /tmp && GOBIN="$CACHE_BIN" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" GOFLAGS=-mod=mod go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION")
  temporal_bin="$CACHE_BIN/temporal"
fi
say "Temporal CLI: $temporal_bin ($("$temporal_bin" --version 2>/dev/null | head -1))"

# PostgreSQL server binaries (tests and the demo start throwaway clusters with initdb)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -z "${PG_BIN:-}" ]; then
  apt_install postgresql postgresql-contrib
fi
say "PostgreSQL: $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1 || echo "$PG_BIN")"

# PostGIS for that PostgreSQL (the one test clusters run: $PG_BIN, else the newest major): a
# MySQL spatial column becomes a PostGIS geometry where the target has it, and the tests check that.
pg_bin="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
pg_major="$("$pg_bin/postgres" --version 2>/dev/null | sed -E 's/^[^0-9]*([0-9]+).*/\1/')"
if [ -z "$pg_major" ]; then
  say "PostGIS: cannot tell the PostgreSQL major of $pg_bin: install PostGIS by hand"; exit 1
fi
postgis_control="/usr/share/postgresql/$pg_major/extension/postgis.control"
if [ ! -f "$postgis_control" ]; then
  apt_install "postgresql-$pg_major-postgis-3"
fi
say "PostGIS: $(sed -nE "s/^default_version *= *'([^']*)'.*/\1/p" "$postgis_control")"

# MariaDB server (MySQL sources)
if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
  apt_install mariadb-server
fi
say "MariaDB: $( (/usr/sbin/mariadbd --version 2>/dev/null || mariadbd --version) | head -1)"

# Chromium (the browser test of the Temporal Web UI drives /usr/bin/chromium with playwright-core)
if [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi
say "Chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"

say "building dbferry"
bash scripts/build.sh
say "ready"
