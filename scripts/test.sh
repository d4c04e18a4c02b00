#!/usr/bin/env bash
# The test suite from a fresh machine: installs and starts what the tests need, then runs
# pytest with any arguments given (`bash scripts/test.sh tests/api -x`).
#
# What it sets up, each only when missing: uv and the locked environment, the local
# PostgreSQL (127.0.0.1:5432, database `test`, wal_level=logical) and Redis (127.0.0.1:6379) servers, and
# Debian's Chromium for the admin page's browser test. PostgreSQL and Redis tests fail
# (never skip) when their server cannot be reached; so do the Medusa tests without Node.js.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*"; }

wait_until() {  # wait_until SECONDS COMMAND...: retry COMMAND until it succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then echo "timed out waiting for: $*" >&2; return 1; fi
    sleep 0.5
  done
}

as_root() {  # run a command as root (directly when we are root, else through sudo)
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v uv >/dev/null 2>&1; then
  say "installing uv"
  python3 -m pip install --quiet --disable-pip-version-check "uv>=0.5"
fi
uv sync --locked --quiet

if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  say "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi
wait_until 60 pg_isready -h 127.0.0.1 -p 5432

# Capture from Medusa (tests/medusa/test_capture.py) reads PostgreSQL's logical decoding,
# which needs wal_level=logical: set it and restart the server once when it is not.
if [ "$(psql -h 127.0.0.1 -p 5432 -d test -Atc 'SHOW wal_level' 2>/dev/null)" != "logical" ]; then
  say "setting PostgreSQL's wal_level to logical (restart)"
  psql -h 127.0.0.1 -p 5432 -d test -qc "ALTER SYSTEM SET wal_level = logical"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main restart
  wait_until 60 pg_isready -h 127.0.0.1 -p 5432
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
wait_until 30 redis-cli -h 127.0.0.1 -p 6379 ping

if ! [ -x /usr/bin/chromium ]; then
  say "installing Debian's Chromium (the admin page's browser test)"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi

node_ok() {  # Medusa 2.21.2 (tests/medusa) needs Node.js ^20.19 or >=22.12, with npm
  command -v npm >/dev/null 2>&1 && node -e '
    const [major, minor] = process.versions.node.split(".").map(Number);
    process.exit((major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major > 22 ? 0 : 1);
  ' >/dev/null 2>&1
}
if ! node_ok; then
  say "WARNING: Node.js 20.19+ with npm is missing: the Medusa tests (tests/medusa) will fail"
fi

exec uv run pytest "$@"
