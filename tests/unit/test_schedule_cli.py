"""``docqueue schedule add``: the params a schedule stores are the ones ``submit`` would send, every
option has its environment variable and help, and each bad input gets its own clear error."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from producer.cli import main
from producer.commands.beat import watch
from producer.commands.schedule import schedule_add


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "inbox").mkdir()
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}", "REDIS_URL": "redis://127.0.0.1:6379/0"}


def _invoke(env: dict[str, str], *args: str) -> click.testing.Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_stored_params_are_submits(env: dict[str, str], tmp_path: Path) -> None:
    inbox = str(tmp_path / "inbox")
    out = _invoke(env, "schedule", "add", "digest", "--every", "1h30m", "--catch-up", "all", "summarize", inbox,
                  "--sentences", "5", "--include", "*.txt", "--json")
    assert out.exit_code == 0, out.output
    row = json.loads(out.output)
    assert row["params"] == {"engine": "extractive", "language": "en", "sentences": 5}
    assert row["every_s"] == 5400 and row["catch_up"] == "all" and row["overlap"] == "skip"
    assert row["sources"] == [str(Path(inbox).absolute())]
    out = _invoke(env, "schedule", "add", "t", "--cron", "0 2 * * *", "translate", inbox, "--to", "DE",
                  "--beams", "2", "--json")
    assert json.loads(out.output)["params"] == {"to": "de", "from": "auto", "num_beams": 2}
    listed = [json.loads(line) for line in _invoke(env, "schedule", "list", "--json").output.splitlines()]
    assert [r["name"] for r in listed] == ["digest", "t"]
    assert _invoke(env, "schedule", "pause", "t").exit_code == 0
    assert json.loads(_invoke(env, "schedule", "list", "--json").output.splitlines()[1])["next_run"] is None
    assert "removed schedule digest" in _invoke(env, "schedule", "remove", "digest").output


@pytest.mark.parametrize(("args", "message"), [
    (["--every", "1h", "--cron", "0 2 * * *"], "exactly one of --cron"),
    ([], "exactly one of --cron"),
    (["--cron", "61 2 * * *"], "is not a cron expression"),
    (["--every", "15 minutes"], "is not a duration"),
    (["--every", "0.5s"], "at least 1s"),
    (["--cron", "0 2 * * *", "--timezone", "Mars/Olympus"], "unknown time zone"),
])
def test_bad_timing_is_refused(env: dict[str, str], tmp_path: Path, args: list[str], message: str) -> None:
    out = _invoke(env, "schedule", "add", "x", *args, "classify", str(tmp_path / "inbox"), "--labels", "a,b")
    assert out.exit_code == 2 and message in out.output, out.output


def test_other_bad_inputs(env: dict[str, str], tmp_path: Path) -> None:
    inbox = str(tmp_path / "inbox")
    out = _invoke(env, "schedule", "add", "x", "--every", "1h", "classify", inbox, "--labels", "a")
    assert out.exit_code == 2 and "at least two labels" in out.output
    out = _invoke(env, "schedule", "add", "x", "--every", "1h", "classify", inbox, "--labels", "a,b",
                  "--outbox", f"{inbox}/out")
    assert out.exit_code == 2 and "inside the source folder" in out.output
    out = _invoke(env, "schedule", "add", "bad name", "--every", "1h", "classify", inbox, "--labels", "a,b")
    assert out.exit_code == 2 and "NAME" in out.output
    assert _invoke(env, "schedule", "add", "x", "--every", "1h", "classify", inbox, "--labels", "a,b").exit_code == 0
    out = _invoke(env, "schedule", "add", "x", "--every", "1h", "classify", inbox, "--labels", "a,b")
    assert out.exit_code == 1 and "exists already" in out.output
    out = _invoke(env, "schedule", "run", "nope")
    assert out.exit_code == 1 and "no schedule 'nope'" in out.output


def test_every_option_has_an_environment_variable_and_help() -> None:
    commands: list[click.Command] = [schedule_add, watch, *schedule_add.commands.values(), *watch.commands.values()]
    for command in commands:
        for p in command.params:
            if isinstance(p, click.Option) and p.name != "help":
                assert p.envvar and p.show_envvar and p.help, (command.name, p.name)


def test_a_schedules_webhook_reaches_the_batch_of_each_run(tmp_path: Path, clean_redis: str) -> None:
    """issue 12.6: a schedule option, stored with the schedule and put on every run's batch."""
    import sqlalchemy as sa

    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "a.txt").write_text("Invoice 7 is due.")
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}", "REDIS_URL": clean_redis,
           "DOCQUEUE_DATA_DIR": str(tmp_path / "data")}
    out = _invoke(env, "schedule", "add", "hooked", "--every", "1h", "classify", str(tmp_path / "inbox"),
                  "--labels", "invoice,news", "--settle", "0s", "--webhook", "http://127.0.0.1:9/hook",
                  "--webhook-documents", "--json")
    assert out.exit_code == 0, out.output
    row = json.loads(out.output)
    assert (row["webhook_url"], row["webhook_documents"]) == ("http://127.0.0.1:9/hook", True)
    out = _invoke(env, "schedule", "run", "hooked")
    assert out.exit_code == 0, out.output
    engine = sa.create_engine(env["DATABASE_URL"])
    with engine.connect() as conn:
        batches = conn.execute(sa.text("SELECT webhook_url, webhook_documents, schedule_id FROM batch")).all()
    assert [(b[0], bool(b[1]), b[2] is not None) for b in batches] == [("http://127.0.0.1:9/hook", True, True)]
    bad = _invoke(env, "schedule", "add", "bad", "--every", "1h", "classify", str(tmp_path / "inbox"),
                  "--labels", "a,b", "--webhook", "ftp://x")
    assert bad.exit_code != 0 and "http" in bad.output
