"""What the CLI says: help that names what each command does, hints that name the variable to set."""

from __future__ import annotations

import os
import re
from pathlib import Path

from click.testing import CliRunner

from docqueue.db import current_revision, get_engine
from producer.cli import main
from tests.helpers import cli


def _offline_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQUEUE_")}
    env.update({"HF_HUB_OFFLINE": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'dq.db'}",
                "DOCQUEUE_DATA_DIR": str(tmp_path / "data"), **extra})
    return env


def test_pull_error_names_the_translate_variable(tmp_path: Path) -> None:
    proc = cli(_offline_env(tmp_path), "models", "pull", "Helsinki-NLP/opus-mt-en-de", check=False)
    assert proc.returncode == 1
    assert "DOCQUEUE_TRANSLATE_MODELS (its 'en-de' entry)" in proc.stderr and "*_MODEL" not in proc.stderr


def test_pull_error_for_an_unconfigured_model_names_every_task_variable(tmp_path: Path) -> None:
    proc = cli(_offline_env(tmp_path), "models", "pull", "someone/unknown-model", check=False)
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 1 and "*_MODEL" not in message
    for variable in ("DOCQUEUE_CLASSIFY_MODEL", "DOCQUEUE_SUMMARIZE_MODEL", "DOCQUEUE_TRANSLATE_MODELS",
                     "DOCQUEUE_REVIEW_MODEL"):
        assert variable in message


def test_top_level_help_shows_whole_command_descriptions() -> None:
    out = CliRunner().invoke(main, ["--help"], terminal_width=80).output
    commands = out.split("Commands:")[1]
    assert "..." not in commands
    assert "translate: DOCQUEUE_TRANSLATE_MODELS" in " ".join(commands.split())
    submit_help = CliRunner().invoke(main, ["submit", "--help"], terminal_width=80).output
    assert "..." not in submit_help.split("Commands:")[1]


def test_db_upgrade_revision_reads_its_environment_variable(tmp_path: Path) -> None:
    help_text = CliRunner().invoke(main, ["db", "upgrade", "--help"], terminal_width=100).output
    assert re.search(r"env\s+var:\s+DOCQUEUE_DB_REVISION", help_text)
    env = _offline_env(tmp_path, DOCQUEUE_DB_REVISION="0002")
    assert "database at revision 0002" in cli(env, "db", "upgrade").stdout
    assert current_revision(get_engine(env["DATABASE_URL"])) == "0002"
