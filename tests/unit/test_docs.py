"""The docs stay buildable and true to the code: the README stays short, the MkDocs site builds with
``--strict`` (a broken link, anchor or nav entry fails), and the configuration reference is exactly
what ``ops/docs/config_reference.py`` generates from the settings' descriptions."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import Field

from docqueue.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def _reference_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "ops" / "docs" / "config_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_setting_has_a_description() -> None:
    assert _reference_module().missing_descriptions() == []


def test_a_setting_without_a_description_is_found() -> None:
    class Undocumented(Settings):
        brand_new_knob: int = Field(default=1)

    assert _reference_module().missing_descriptions(Undocumented) == ["brand_new_knob"]


def test_committed_configuration_reference_is_the_generated_one() -> None:
    ref = _reference_module()
    committed = ref.PAGE.read_text()
    assert committed == ref.render(), "run: python ops/docs/config_reference.py"
    for name, field in Settings.model_fields.items():
        assert f"`{ref.env_names(name, field)[0]}`" in committed


def test_reference_names_aliases_defaults_and_bounds() -> None:
    page = _reference_module().render()
    assert "| `REDIS_URL` / `DOCQUEUE_REDIS_URL` |" in page
    row = next(line for line in page.splitlines() if line.startswith("| `DOCQUEUE_VISIBILITY_TIMEOUT` |"))
    assert "int (≥ 1)" in row and "`300`" in row
    row = next(line for line in page.splitlines() if line.startswith("| `DOCQUEUE_TASK_EVENTS` |"))
    assert "| true |" in row


def test_readme_is_short_and_links_into_the_docs() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "## Quick start" in text and "make demo" in text and "make test" in text
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", text)
    assert links, "the README links into the docs site"
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert not missing, f"README links to missing pages: {missing}"


def test_mkdocs_builds_strictly(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI"):
            pytest.fail("mkdocs is not installed: pip install -e '.[docs]'")
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "reference" / "configuration" / "index.html").is_file()


def test_docs_pages_named_in_the_code_exist() -> None:
    """Help texts and errors point users at docs pages; a moved page must not leave them pointing nowhere."""
    named = {
        (path, page)
        for package in ("docqueue", "producer", "workers")
        for path in (ROOT / package).rglob("*.py")
        for page in re.findall(r"\bdocs/[\w/.-]+\.md\b", path.read_text())
    }
    assert any(page == "docs/tasks/review.md" for _, page in named)
    missing = sorted(f"{path.relative_to(ROOT)}: {page}" for path, page in named if not (ROOT / page).is_file())
    assert not missing, missing


def _cli_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "ops" / "docs" / "cli_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_cli_reference_is_the_generated_one() -> None:
    ref = _cli_module()
    page = ref.PAGE.read_text()
    assert page == ref.render(), "run: python ops/docs/cli_reference.py"
    assert "## docqueue submit summarize" in page
    row = next(line for line in page.splitlines() if line.startswith("| `--language` |"))
    assert "`DOCQUEUE_SUMMARIZE_LANGUAGE`" in row and "`en`" in row


def test_every_cli_option_has_an_environment_variable_and_help() -> None:
    """The house rule the CLI reference makes visible: each option reads DOCQUEUE_* (or a standard name)."""
    import click

    ref = _cli_module()
    lacking = [
        f"{ctx.command_path} {option.opts[0]}"
        for command, ctx in ref.walk(ref.docqueue, click.Context(ref.docqueue, info_name="docqueue"))
        for option in command.params
        if isinstance(option, click.Option) and option.opts != ["--version"]
        and not (option.envvar and option.help)
    ]
    assert not lacking, lacking


def test_committed_error_kind_reference_is_the_generated_one() -> None:
    spec = importlib.util.spec_from_file_location("error_reference", ROOT / "ops" / "docs" / "error_reference.py")
    assert spec and spec.loader
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    page = ref.PAGE.read_text()
    assert page == ref.render(), "run: python ops/docs/error_reference.py"
    from docqueue.envelope import MESSAGE_ERROR_KINDS
    from docqueue.errors import LOADER_ERROR_KINDS

    for kind in [*LOADER_ERROR_KINDS, *MESSAGE_ERROR_KINDS]:
        assert f"| `{kind}` |" in page
