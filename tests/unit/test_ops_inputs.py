"""Inputs a new user trips on: a text file renamed .pdf, a glob versus the same folder, a review
category misspelt."""

from __future__ import annotations

from pathlib import Path

import pytest

from docqueue.params import ParamsError, ReviewParams
from producer.loaders import iter_documents, iter_paths


def test_text_renamed_pdf_says_what_it_looks_like(tmp_path: Path) -> None:
    fake = tmp_path / "notes.pdf"
    fake.write_text("Meeting notes: renew the lease before March.\n")
    (doc,) = iter_documents([str(fake)])
    assert doc.error_kind == "corrupt_pdf"
    assert doc.error_message is not None and "looks like plain text" in doc.error_message
    assert "Meeting notes" in doc.error_message and "rename it .txt" in doc.error_message


def test_a_glob_gives_the_folders_order(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "b").mkdir(parents=True)
    (root / "a" / "x").mkdir(parents=True)
    names = [f"{i:02d}-{c}.txt" for i, c in enumerate("qwertyuiopasdfghjklz")]
    for where in (root, root / "a", root / "a" / "x", root / "b"):
        for name in names:  # created in one order; a directory lists them in its own
            (where / name).write_text(name)
    folder = list(iter_paths([str(root)]))
    assert len(folder) == 4 * len(names)
    assert list(iter_paths([f"{root}/**/*.txt"])) == folder
    assert list(iter_paths([f"{root}/*.txt"])) == [p for p in folder if p.parent == root]


def test_unknown_review_category_lists_the_valid_names() -> None:
    with pytest.raises(ParamsError) as refused:
        ReviewParams.of({"categories": ["Governing Law", "Bogus"]})
    message = str(refused.value)
    assert "Bogus" in message and "Governing Law" in message and "Non-Compete" in message
    assert "README" not in message
