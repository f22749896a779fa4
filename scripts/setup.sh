#!/usr/bin/env bash
# Installs and starts what the test suite needs on a fresh machine; safe to run again and again.
#   - Debian's chromium (browser tests drive it with playwright-core) and the DejaVu fonts
#   - the npm packages of the JavaScript test suites (the official `phoenix` client, ws, playwright-core,
#     esbuild, which makes the vendored minified client)
#   - PostgreSQL, Redis and NATS, started when not already listening
#   - phxsocket from PyPI, a third-party Phoenix client the channels tests drive
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 100); do
    if listening "$port"; then return 0; fi
    sleep 0.1
  done
  echo "[setup] $name did not start listening on 127.0.0.1:$port" >&2
  return 1
}

apt_updated=0
apt_install() {
  local attempt
  for attempt in 1 2 3; do
    if [ "$apt_updated" = 0 ]; then
      apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null 2>&1 && apt_updated=1
    fi
    if DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@" \
      >/tmp/setup-apt.log 2>&1; then
      return 0
    fi
    log "apt-get install $* failed (attempt $attempt); retrying"
    DEBIAN_FRONTEND=noninteractive dpkg --configure -a >/dev/null 2>&1 || true
    apt_updated=0
  done
  cat /tmp/setup-apt.log >&2
  return 1
}

if ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium"
  apt_install chromium
fi

if [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  log "installing fonts-dejavu-core (the labels of shopper-bench's --plot charts)"
  apt_install fonts-dejavu-core
fi

if ! listening 5432; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "installing postgresql"
    apt_install postgresql
  fi
  log "starting postgresql"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  wait_port 5432 postgresql
fi

if ! command -v psql >/dev/null 2>&1; then
  log "installing the PostgreSQL client (the cluster browser suite creates its database with psql)"
  apt_install postgresql-client
fi

if ! listening 6379; then
  if ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis"
    apt_install redis-server
  fi
  log "starting redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 redis
fi

if ! listening 4222; then
  if ! command -v nats-server >/dev/null 2>&1; then
    log "installing nats-server"
    apt_install nats-server
  fi
  log "starting nats"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222 nats
fi

if [ -f tests/js/package.json ]; then
  if [ ! -d tests/js/node_modules ] || [ tests/js/package-lock.json -nt tests/js/node_modules ]; then
    log "installing npm packages of tests/js"
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
# Pinned with the websockets release it was tested with (phxsocket leaves it open).
PY_PINS=(phxsocket==0.1.5 websockets==17.4)
if ! python3 - "${PY_PINS[@]}" 2>/dev/null <<'PY'
import importlib.metadata as m, sys
sys.exit(any(m.version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))
PY
then
  log "installing ${PY_PINS[*]} (the Python client of the channels tests)"
  python3 -m pip install --quiet --disable-pip-version-check "${PY_PINS[@]}"
fi
log "ready"
