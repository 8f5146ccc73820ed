"""Hostile and awkward inputs: wrong encodings guessed, missing paths, symlink loops, limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from producer.loaders import LoadOptions, iter_documents, iter_paths, load_path
from producer.loaders.plain import decode, detect_stream_encoding

FACTURE = "Facture n° 77 — montant dû : 1 250,00 € à régler avant le 15 mars. Merci, l’équipe comptable."
JAPANESE = "請求書番号77の金額は未払いです。ご確認ください。よろしくお願いいたします。"


def load_one(path: Path) -> list:
    return list(load_path(path, LoadOptions()))


# ------------------------------------------------------------------------------- encoding (14.2)
@pytest.mark.parametrize(("text", "codec"), [
    (FACTURE, "cp1252"),
    ("Café déjà réglé, reçu n° 12.", "latin-1"),  # latin-1 and cp1252 agree on these bytes
    ("Vertrag über die Lieferung von Waren.", "utf-16"),
    (JAPANESE, "shift_jis"),
])
def test_short_legacy_text_decodes_right(tmp_path: Path, text: str, codec: str) -> None:
    data = text.encode(codec)
    assert decode(data)[0] == text
    assert data.decode(detect_stream_encoding(data)) == text
    (tmp_path / "f.txt").write_bytes(data)
    (doc,) = load_one(tmp_path / "f.txt")
    assert doc.text == text


def test_cp1252_is_not_taken_for_mac_latin2() -> None:
    assert decode(FACTURE.encode("cp1252"))[1] == "cp1252"


# -------------------------------------------------------------------------- missing paths (14.3)
def test_missing_folder_with_trailing_slash_is_not_found(tmp_path: Path) -> None:
    docs = list(iter_documents([f"{tmp_path}/missingdir/"]))
    assert [d.error_kind for d in docs] == ["not_found"]
    docs = list(iter_documents([str(tmp_path / "missing.bin")]))
    assert [d.error_kind for d in docs] == ["not_found"]


def test_symlink_loop_path_and_loop_inside_a_folder(tmp_path: Path) -> None:
    os.symlink(tmp_path / "b.txt", tmp_path / "a.txt")
    os.symlink(tmp_path / "a.txt", tmp_path / "b.txt")
    (doc,) = load_one(tmp_path / "a.txt")
    assert doc.error_kind == "symlink_loop"
    folder = tmp_path / "tree"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x.txt").write_text("hello")
    os.symlink(folder, folder / "sub" / "up")  # a directory loop: the walk must not follow it
    assert [p.name for p in iter_paths([str(folder)])] == ["x.txt"]
