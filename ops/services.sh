#!/usr/bin/env bash
# Start the local Redis and PostgreSQL the tests use, when they are installed but not running; install
# Debian's prometheus package (tests/integration/test_prometheus.py runs the real binary) where apt
# can and it is missing. Idempotent: with everything present and running it only checks.
set -uo pipefail

redis_up() { python3 - <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect(("127.0.0.1", 6379)); s.sendall(b"PING\r\n"); sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}

if ! redis_up; then
  if command -v redis-server >/dev/null; then
    echo "services: starting redis-server on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 50); do redis_up && break; sleep 0.1; done
  else
    echo "services: no Redis on 127.0.0.1:6379 and redis-server is not installed" >&2
  fi
fi

if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.1; done
  else
    echo "services: PostgreSQL is down and no pg_ctlcluster to start it" >&2
  fi
fi
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "services: installing Debian's prometheus package (for tests/integration/test_prometheus.py)"
    # the package's post-install would start a system Prometheus where systemd runs; the tests start their own
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null) \
      || echo "services: could not install prometheus; its test is skipped" >&2
  else
    echo "services: prometheus is not installed (apt-get install prometheus); its test is skipped" >&2
  fi
fi
exit 0
