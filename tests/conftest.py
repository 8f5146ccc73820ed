"""Shared fixtures: a Redis DB number and PostgreSQL databases of the test session's own, and real
worker processes.

Services are real. Locally a test needing an absent service is skipped with the reason; under CI
(``CI`` set) an absent service is an error, because a skipped suite proves nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

if os.environ.get("PYTEST_XDIST_WORKER"):
    # make test runs several pytest processes on few cores: torch's intra-op threads in each of them
    # would only wait on each other (read by torch at import, so set before any test module imports it)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REDIS_HOST = os.environ.get("DOCQUEUE_TEST_REDIS", "redis://127.0.0.1:6379")
PG_ADMIN_URL = os.environ.get("DOCQUEUE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent


def unavailable(msg: str) -> None:
    """A tool or service the test needs is missing: skipped locally with the reason, failed under CI
    (``CI`` set), because a skipped suite proves nothing."""
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def _unavailable(what: str, err: Exception) -> None:
    unavailable(f"{what} is not reachable ({err}); start it (see README) to run this test")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://.../N`` for a DB number no other test session holds (lock keys live in DB 0)."""
    try:
        admin = redis.Redis.from_url(f"{REDIS_HOST}/0", socket_connect_timeout=2)
        admin.ping()
    except (redis.RedisError, OSError) as e:
        _unavailable("Redis", e)
    with _own_redis_db(admin) as url:
        yield url


def _holder_is_gone(token: str) -> bool:
    """Whether the test session that took a DB lock (its token starts with its pid) no longer runs on
    this machine; a token of another form is never judged gone."""
    pid = token.split("-", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextmanager
def _own_redis_db(admin: redis.Redis) -> Iterator[str]:
    """A Redis DB number locked for this session (the lock keys live in DB 0), emptied before and after."""
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    for n in range(15, 0, -1):
        key = f"docqueue:test-db-lock:{n}"
        if admin.set(key, token, nx=True, ex=4 * 3600):
            break
        holder = admin.get(key)
        if holder is not None and _holder_is_gone(holder.decode()) and admin.set(key, token, ex=4 * 3600):
            break  # a session killed before its teardown (SIGKILL, a timeout) left its lock behind
    else:
        pytest.fail("all Redis DB numbers 1-15 are held by other docqueue test sessions")
    url = f"{REDIS_HOST}/{n}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        if admin.get(f"docqueue:test-db-lock:{n}") == token.encode():
            admin.delete(f"docqueue:test-db-lock:{n}")


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    """The session's Redis DB, emptied before the test."""
    redis.Redis.from_url(redis_url).flushdb()
    return redis_url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (not migrated: tests run ``docqueue db
    upgrade`` as production does, or check what happens without it), dropped after."""
    with _fresh_pg_database() as url:
        yield url


@contextmanager
def _fresh_pg_database() -> Iterator[str]:
    name = f"docqueue_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as e:
        _unavailable("PostgreSQL", e)
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    try:
        yield url
    finally:
        from docqueue.db import _engines

        engine = _engines.pop(url, None)
        if engine is not None:
            engine.dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'docqueue.db'}"


class WorkerProcess:
    """A real ``python -m workers`` process, started and stopped by a test."""

    def __init__(self, env: dict[str, str], log_path: Path, queues: str = "classify", pool: str = "solo",
                 concurrency: int = 1, extra: tuple[str, ...] = (), module: str = "workers") -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        # module: ``workers``, or a wrapper of its main such as tests.faults.noop_worker
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--queues", queues, "--pool", pool, "--concurrency",
             str(concurrency), "--loglevel", "info", *extra],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> WorkerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: the crash a deployment must survive."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on each database docqueue supports."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def service_env(redis_url: str, database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for CLI and worker processes of one test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQUEUE_")}
    env.update({"REDIS_URL": redis_url, "DATABASE_URL": database_url, "DOCQUEUE_DATA_DIR": str(tmp_path / "data"),
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator:
    """Factory: ``start_worker(env, **kw)`` starts a worker and waits until it is ready."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], wait: bool = True, **kw: object) -> WorkerProcess:
        w = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log", **kw)  # type: ignore[arg-type]
        started.append(w)
        return w.wait_ready() if wait else w

    yield start
    for w in started:
        # the test is over and nothing reads the worker's shutdown: SIGKILL instead of a warm
        # shutdown saves seconds per worker (tests about shutdown call ``stop()`` themselves)
        w.kill()
        w.stop()


#: The worker module of :class:`WorkerProcess` whose classify engine does no model work.
NOOP_WORKER = "tests.faults.noop_worker"


@dataclass
class SharedWorker:
    """A real worker consuming ``classify`` for the whole session, on a Redis DB and a database of
    its own, for tests that need only "a worker consumes the queue". Tests share it, so they mint
    their own batch ids (``submit`` does), never flush its Redis DB and never stop it; a test about
    the worker process itself (its log, its settings, its life) starts its own."""

    redis_url: str
    database_url: str
    process: WorkerProcess

    def env(self, tmp_path: Path, **extra: str) -> dict[str, str]:
        """Environment for CLI calls of one test against the shared worker's Redis and database."""
        return service_env(self.redis_url, self.database_url, tmp_path, **extra)


def _shared_worker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                   module: str) -> Iterator[SharedWorker]:
    from docqueue.db import upgrade

    try:
        admin = redis.Redis.from_url(f"{REDIS_HOST}/0", socket_connect_timeout=2)
        admin.ping()
    except (redis.RedisError, OSError) as e:
        _unavailable("Redis", e)
    tmp = tmp_path_factory.mktemp(f"shared-{module.rsplit('.', 1)[-1]}-{request.param}")
    with _own_redis_db(admin) as url, contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            database_url = f"sqlite:///{tmp / 'docqueue.db'}"
        else:
            database_url = stack.enter_context(_fresh_pg_database())
        upgrade(database_url)
        worker = WorkerProcess(service_env(url, database_url, tmp), tmp / "worker.log", module=module)
        try:
            yield SharedWorker(url, database_url, worker.wait_ready())
        finally:
            worker.kill()
            worker.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def shared_worker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedWorker]:
    """One shared noop-engine worker per database docqueue supports: a test using it runs on each,
    with the ids (``[sqlite]``, ``[postgresql]``) of one parametrized by ``database_url``; one
    database only: ``@pytest.mark.parametrize("shared_worker", ["sqlite"], indirect=True)``."""
    yield from _shared_worker(request, tmp_path_factory, NOOP_WORKER)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def shared_model_worker(request: pytest.FixtureRequest,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedWorker]:
    """As :func:`shared_worker`, with the real classify model (MiniLM): for end-to-end tests whose
    assertions are the model's answers but not about the worker process. Earlier tests' results are
    in its database, so identical submissions may be reused (``reused_from``): a test that counts
    model runs or reuse starts its own worker."""
    yield from _shared_worker(request, tmp_path_factory, "workers")


# ------------------------------------------------------------------------------------------ tiers
#: Fixtures that start real worker processes: the test is end-to-end.
_PROCESS_FIXTURES = frozenset({"start_worker", "shared_worker", "shared_model_worker"})
#: Fixtures that reach the real Redis or PostgreSQL.
_SERVICE_FIXTURES = frozenset({"redis_url", "clean_redis", "pg_url", "database_url"})


#: Tiers from the costliest per test to the cheapest (``slow``: a unit test loading a real model).
_TIER_ORDER = ("faults", "e2e", "slow", "integration", "unit")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test exactly one tier marker, from what it uses, so ``-m`` picks tiers:

    - ``faults``: tests/faults (real processes killed, servers restarted);
    - ``e2e``: real worker or CLI processes (the process fixtures, or marked ``e2e`` by hand);
    - ``integration``: the real Redis/PostgreSQL, in this process;
    - ``unit``: neither.

    ``make test-fast`` runs unit + integration less ``slow`` (real models in this process).

    Then the files are put in order of their costliest tier (faults, e2e, a real model in this process,
    integration, unit), keeping pytest's order otherwise: under ``make test``'s xdist
    processes (``--dist loadfile --no-loadscope-reorder``, files handed out in this order) the long
    process-bound files start first and the many short ones fill the gaps at the end, instead of a
    fault test starting last and running alone."""
    rank: dict[str, int] = {}
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "faults" in Path(str(item.fspath)).relative_to(ROOT).parts:
            tier = "faults"
        elif fixtures & _PROCESS_FIXTURES or item.get_closest_marker("e2e"):
            tier = "e2e"
        elif fixtures & _SERVICE_FIXTURES or item.get_closest_marker("integration"):
            tier = "integration"
        else:
            tier = "unit"
        item.add_marker(getattr(pytest.mark, tier))
        cost = _TIER_ORDER.index("slow" if tier == "unit" and item.get_closest_marker("slow") else tier)
        rank[str(item.fspath)] = min(rank.get(str(item.fspath), cost), cost)
    position = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda item: (rank[str(item.fspath)], position[id(item)]))
