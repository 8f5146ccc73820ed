"""Helpers for driving the CLI and polling the real database.

:func:`cli` runs ``docqueue`` inside the test process (click's ``CliRunner``): a fresh interpreter
costs seconds of imports on two shared cores, and 200-odd calls added that up to minutes. It keeps
the process call's contract: the given environment *is* the environment for the call (settings are
re-read per invocation, as a new process would), cwd is the repository, and what one call leaves
behind (root-logger handlers and formatters, warning capture, Celery apps, database engines it
created) is undone afterwards so calls cannot see each other. :func:`cli_process` is the real
binary, for tests where the process is the point: exit codes of ``python -m producer.cli``,
``docqueue worker`` (it execs the worker), pipes, signals.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent

#: Commands that replace or outlive the process that runs them (``worker`` execs ``python -m
#: workers``; ``beat`` and ``watch`` install signal handlers and loop): always in their own process,
#: except ``worker --check``, which only asks Redis and exits.
PROCESS_COMMANDS = frozenset({"worker", "beat", "watch"})


def _needs_process(args: Sequence[str]) -> bool:
    return bool(args) and args[0] in PROCESS_COMMANDS and not (args[0] == "worker" and "--check" in args[1:])


def cli_process(env: dict[str, str], *args: str, check: bool = True,
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``docqueue ARGS`` as a user would, in its own process."""
    proc = subprocess.run([sys.executable, "-m", "producer.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"docqueue {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@contextlib.contextmanager
def _as_own_process(env: dict[str, str]) -> Iterator[None]:
    """The environment, cwd and process-wide state of a fresh ``docqueue`` process, restored after."""
    import celery._state

    from docqueue import db

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    root = logging.getLogger()
    saved_handlers = [(h, h.formatter, list(h.filters)) for h in root.handlers]
    saved_level, saved_warnings = root.level, logging._warnings_showwarning is not None  # type: ignore[attr-defined]
    apps_before = set(celery._state._apps)
    engines_before = set(db._engines)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(ROOT)
    # a fresh process's root logger: no handlers (pytest's capture handlers would swallow what the
    # CLI logs to stderr, and JSON logging would reformat them), level WARNING
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler, formatter, filters in saved_handlers:
            handler.setFormatter(formatter)
            handler.filters[:] = filters
            root.addHandler(handler)
        root.setLevel(saved_level)
        logging.captureWarnings(saved_warnings)
        for app in set(celery._state._apps) - apps_before:
            app.close()
        with db._engines_lock:
            for url in set(db._engines) - engines_before:
                db._engines.pop(url).dispose()


def cli(env: dict[str, str], *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``docqueue ARGS`` in this process with ``env`` as its whole environment; the result is
    shaped like :func:`cli_process`'s (an uncaught exception: exit 1 and its traceback on stderr).
    ``timeout`` applies to :func:`cli_process` only; here pytest-timeout stops a hung call."""
    if _needs_process(args):
        return cli_process(env, *args, check=check, timeout=timeout)
    from click.testing import CliRunner

    from producer.cli import main

    with _as_own_process(env):
        result = CliRunner().invoke(main, list(args), prog_name="python -m producer.cli")
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))  # type: ignore[misc]
    proc = subprocess.CompletedProcess(["docqueue", *args], result.exit_code, result.stdout, stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"docqueue {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def migrate_if_postgres(env: dict[str, str]) -> None:
    """``docqueue db upgrade`` where ``env`` names PostgreSQL: production databases are migrated
    explicitly, SQLite on first use."""
    if env["DATABASE_URL"].startswith("postgresql"):
        cli(env, "db", "upgrade")


def cli_json(env: dict[str, str], *args: str, exit_code: int = 0) -> Any:
    """``docqueue ARGS --json``'s output; ``exit_code``: the status expected (``submit --wait`` exits 1
    when every document failed, 5 when some did)."""
    proc = cli(env, *args, check=exit_code == 0)
    assert proc.returncode == exit_code, f"docqueue {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    return json.loads(proc.stdout)


def results_jsonl(env: dict[str, str], batch: str) -> list[dict[str, Any]]:
    out = cli(env, "results", batch, "--format", "jsonl").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_until(predicate: Any, timeout: float = 120, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns a true value. A predicate that fails an assertion (a CLI
    call that exits non-zero because the worker has not stored the batch yet: the in-process CLI
    polls within milliseconds of a publish) is polled again; its last failure is in the timeout's
    message."""
    deadline = time.monotonic() + timeout
    last: AssertionError | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except AssertionError as e:
            last, value = e, None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f"; last: {last}" if last else ""))


#: Settings for in-process engine tests that load models from pytest's temporary folders and name
#: hub ids freely: the allow-list (workers/model_policy.py) has its own tests.
TRUSTED_MODELS: dict[str, Any] = {"model_dirs": [tempfile.gettempdir()], "allowed_models": ["*"]}


def prose(chars: int, words: Sequence[str], seed: int = 0) -> str:
    """About ``chars`` characters of sentences drawn from ``words``, in paragraphs: long documents
    for the memory and windowing tests (and ops/bench/big_document.py), built, never committed."""
    rng = random.Random(seed)
    paragraphs, size = [], 0
    while size < chars:
        para = " ".join(" ".join(rng.choices(words, k=rng.randint(6, 18))).capitalize() + "."
                        for _ in range(rng.randint(2, 6)))
        paragraphs.append(para)
        size += len(para) + 2
    return "\n\n".join(paragraphs)


def start_workers(start_worker: Any, env: dict[str, str], n: int, **kw: Any) -> list[Any]:
    """``n`` workers (the ``start_worker`` fixture's), started together and returned once all are
    ready: each spends seconds importing torch, so waiting one by one would add those up."""
    workers = [start_worker(env, wait=False, **kw) for _ in range(n)]
    for w in workers:
        w.wait_ready()
    return workers


def nested(levels: int) -> dict:
    """``{"a": {"a": ...}}``, ``levels`` deep: JSON nested past what a parser or the contract allows."""
    root: dict = {}
    node = root
    for _ in range(levels):
        node["a"] = {}
        node = node["a"]
    return root
