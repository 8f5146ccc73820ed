"""``submit`` keeps a text or fails the document; it never changes a text silently (issue 23, item 4).

NUL and lone surrogates (a JSON export may carry ``\\ud800``) are what no database stores. Submit
used to remove NUL and turn lone surrogates into ``?`` without a word. Now such a document fails
with ``invalid_text``, unless ``--clean-text`` (``DOCQUEUE_CLEAN_TEXT``) asks for the cleaning, and
then its metadata says what changed. In process: the loaders, and ``submit`` through click's runner.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from producer.cli import main
from producer.loaders.base import LoadOptions
from producer.loaders.dispatch import load_path


def _export(tmp_path: Path) -> Path:
    path = tmp_path / "export.jsonl"
    rows = [{"id": "nul", "text": "Invoice\x00 9"}, {"id": "surrogate", "text": "caf\ud800 bill"},
            {"id": "fine", "text": "Invoice 10, amount due."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))  # ASCII escapes: \u0000 and \ud800
    return path


def test_an_unstorable_text_fails_its_document_by_default(tmp_path: Path) -> None:
    docs = list(load_path(_export(tmp_path), LoadOptions(id_field="id")))
    assert [(d.external_id, d.error_kind) for d in docs] == [("nul", "invalid_text"), ("surrogate", "invalid_text"),
                                                             ("fine", None)]
    assert "NUL" in docs[0].error_message and "lone surrogate '\\ud800'" in docs[1].error_message
    assert "--clean-text" in docs[0].error_message
    (tmp_path / "mail.txt").write_bytes(b"Invoice\x00 number 9")
    [plain] = load_path(tmp_path / "mail.txt", LoadOptions())
    assert plain.error_kind == "invalid_text" and plain.text == ""


def test_clean_text_cleans_and_says_so(tmp_path: Path) -> None:
    docs = list(load_path(_export(tmp_path), LoadOptions(id_field="id", clean_text=True)))
    assert [d.text for d in docs] == ["Invoice 9", "caf\ufffd bill", "Invoice 10, amount due."]
    assert docs[0].meta["text_cleaned"] == {"nul_removed": 1, "surrogates_replaced": 0}
    assert docs[1].meta["text_cleaned"] == {"nul_removed": 0, "surrogates_replaced": 1}
    assert "text_cleaned" not in docs[2].meta


def test_submit_has_the_flag_with_its_env_var() -> None:
    out = CliRunner().invoke(main, ["submit", "classify", "--help"], catch_exceptions=False).output
    assert "--clean-text" in out and "DOCQUEUE_CLEAN_TEXT" in out and "invalid_text" in out
