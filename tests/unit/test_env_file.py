"""Settings from a ``.env`` file in the working directory, or the one ``--env-file`` /
``DOCQUEUE_ENV_FILE`` names; the real environment still wins over the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from docqueue.settings import ENV_FILE_ENV, get_settings
from producer.cli import main


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No broker URL, no env file from the outside, and a working directory of the test's own."""
    for name in ("REDIS_URL", "DOCQUEUE_REDIS_URL", "DOCQUEUE_BATCH_MAX_DOCS", ENV_FILE_ENV):
        monkeypatch.setenv(name, "x")  # recorded, so whatever the test (or --env-file) sets is undone
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_dot_env_in_the_working_directory(bare_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("REDIS_URL=redis://from-dotenv:6390/2\nDOCQUEUE_BATCH_MAX_DOCS=7\n"
                                   "UNRELATED=ignored\n")
    settings = get_settings()
    assert settings.redis_url == "redis://from-dotenv:6390/2" and settings.batch_max_docs == 7
    bare_env.setenv("DOCQUEUE_BATCH_MAX_DOCS", "9")  # the environment wins over the file
    assert get_settings().batch_max_docs == 9


def test_env_file_names_another_file(bare_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DOCQUEUE_BATCH_MAX_DOCS=7\n")
    other = tmp_path / "prod.env"
    other.write_text("DOCQUEUE_BATCH_MAX_DOCS=11\n")
    bare_env.setenv(ENV_FILE_ENV, str(other))
    assert get_settings().batch_max_docs == 11
    bare_env.setenv(ENV_FILE_ENV, str(tmp_path / "missing.env"))
    with pytest.raises(ValueError, match=r"missing\.env: no such file"):
        get_settings()


def test_cli_env_file_option(bare_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = tmp_path / "staging.env"
    conf.write_text("REDIS_URL=redis://:hunter2@staging.invalid:6390/3\n")
    result = CliRunner().invoke(main, ["--env-file", str(conf), "broker", "url"])
    assert result.exit_code == 0, result.output
    assert "staging.invalid:6390/3" in result.output and "hunter2" not in result.output
    missing = CliRunner().invoke(main, ["--env-file", str(tmp_path / "nope.env"), "broker", "url"])
    assert missing.exit_code == 2 and "nope.env" in missing.output
    assert "--env-file" in CliRunner().invoke(main, ["--help"]).output
