"""Helpers for driving the real CLI and polling the real database."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent


def cli(env: dict[str, str], *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``docqueue ARGS`` as a user would, in its own process."""
    proc = subprocess.run([sys.executable, "-m", "producer.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


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
