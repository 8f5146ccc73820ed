"""``tests.helpers.cli`` runs the CLI in this process: each call must behave like a fresh process
(its environment, its stderr, its logging) and leave nothing behind for the next call or the test."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from docqueue import db
from tests.helpers import cli, cli_process


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQUEUE_")}
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'dq.db'}", "REDIS_URL": "redis://127.0.0.1:1/0",
                "DOCQUEUE_DATA_DIR": str(tmp_path / "data"), **extra})
    return env


def test_the_environment_is_the_calls_own_and_restored(tmp_path: Path) -> None:
    before = dict(os.environ)
    bad = cli(_env(tmp_path, DOCQUEUE_DEVICE="gpu7"), "status", "x", check=False)
    assert bad.returncode == 2 and "device must be" in bad.stderr
    assert dict(os.environ) == before and os.getcwd() == str(Path.cwd())
    # settings are read again per call: the next call does not see the last one's variable
    unknown = cli(_env(tmp_path), "status", "no-such-batch", check=False)
    assert unknown.returncode == 1 and "no batch 'no-such-batch'" in unknown.stderr


@pytest.mark.e2e  # its own CLI process
def test_exit_codes_and_streams_match_the_real_binary(tmp_path: Path) -> None:
    env = _env(tmp_path)
    args = ("submit", "classify", str(tmp_path), "--labels", "one")  # a usage error names the program
    inside, outside = cli(env, *args, check=False), cli_process(env, *args, check=False)
    assert (inside.returncode, inside.stdout) == (outside.returncode, outside.stdout) == (2, "")
    assert inside.stderr.split() == outside.stderr.split()


def test_json_logs_reach_the_calls_stderr_and_leave_the_root_logger_as_it_was(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    formatters = [h.formatter for h in handlers]
    doc = tmp_path / "a.txt"
    doc.write_text("a short note")
    env = _env(tmp_path, DOCQUEUE_LOG_FORMAT="json")
    out = cli(env, "db", "upgrade")  # alembic logs its migrations at INFO: as JSON here
    assert [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")], out.stderr
    assert root.handlers == handlers and root.level == level and [h.formatter for h in handlers] == formatters
    # the next call with text logs writes no JSON: nothing of the last call's logging stayed
    plain = cli(_env(tmp_path), "db", "upgrade")
    assert not [line for line in plain.stderr.splitlines() if line.startswith("{")]


def test_engines_a_call_opened_are_closed_after_it(tmp_path: Path) -> None:
    env = _env(tmp_path)
    cli(env, "db", "upgrade")
    assert env["DATABASE_URL"] not in db._engines
