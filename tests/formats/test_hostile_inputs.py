"""Hostile and awkward inputs: wrong encodings guessed, missing paths, symlink loops, limits."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from producer.loaders import LoadOptions, iter_documents, iter_paths, load_path
from producer.loaders.base import Limits
from producer.loaders.plain import decode, stream_codec

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
    assert data.decode(stream_codec(data)[0]) == text
    (tmp_path / "f.txt").write_bytes(data)
    (doc,) = load_one(tmp_path / "f.txt")
    assert doc.text == text


def test_cp1252_is_not_taken_for_mac_latin2() -> None:
    assert decode(FACTURE.encode("cp1252"))[1] == "cp1252"


def test_utf8_with_a_few_broken_bytes_stays_utf8(tmp_path: Path) -> None:
    """A UTF-8 file with one flipped byte and cut in the middle of its last character failed as
    `undecodable` ("binary file?"). It is UTF-8 with U+FFFD where the bytes broke, and the document
    says how many; a CSV export with a broken row keeps all its rows, the others intact."""
    good = (FACTURE + "\n") * 4
    data = good.encode("utf-8")
    at = data.index("dû".encode()) + 1  # the first byte of "û"
    damaged = data[:at] + b"\xff" + data[at + 2:] + "€".encode()[:2]
    (tmp_path / "facture.txt").write_bytes(damaged)
    (doc,) = load_one(tmp_path / "facture.txt")
    assert doc.error_kind is None
    assert doc.text == good.replace("dû", "d\ufffd", 1) + "\ufffd"
    assert doc.meta["invalid_utf8"] == 2 and "Ã" not in doc.text
    rows = "id,text\n" + "".join(f'{n},"{FACTURE}"\n' for n in range(1, 6))
    raw = rows.encode("utf-8")
    at = raw.index(b'\n2,"') + 4 + FACTURE.encode().index("é".encode())
    (tmp_path / "export.csv").write_bytes(raw[:at] + b"\xe9" + raw[at + 2:])  # "é" as cp1252 in UTF-8
    docs = load_one(tmp_path / "export.csv")
    assert [d.error_kind for d in docs] == [None] * 5
    assert [d.text for d in docs] == [FACTURE, FACTURE.replace("é", "\ufffd", 1), FACTURE, FACTURE, FACTURE]
    # short legacy text is not taken for damaged UTF-8: it has no valid multi-byte characters
    assert decode(FACTURE.encode("cp1252"))[1] == "cp1252"
    assert decode(JAPANESE.encode("shift_jis"))[1] == "shift_jis"


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


# ------------------------------------------------------------------------------ input limits (15.1)
def limited(**limits: int) -> LoadOptions:
    return LoadOptions(limits=Limits(**limits))  # type: ignore[arg-type]


def test_file_over_max_file_bytes_is_too_large_without_being_read(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * 2000)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read before the size check"))
    (doc,) = load_path(big, limited(max_file_bytes=1000))
    assert doc.error_kind == "too_large"


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCQUEUE_MAX_FILE_BYTES", "123")
    assert LoadOptions().resolved().limits == Limits(max_file_bytes=123)


def test_text_over_max_document_chars_is_too_large(tmp_path: Path) -> None:
    (tmp_path / "long.txt").write_text("word " * 400)
    (doc,) = load_path(tmp_path / "long.txt", limited(max_document_chars=1000))
    assert doc.error_kind == "too_large"


def test_export_rows_are_limited_one_by_one(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text('{"text": "short"}\n{"text": "%s"}\n{"text": "ok"}\n' % ("x" * 5000))
    docs = list(load_path(tmp_path / "rows.jsonl", limited(max_document_chars=1000)))
    assert [d.error_kind for d in docs] == [None, "too_large", None]
    assert docs[1].source_row == 2


def _docx_with(tmp_path: Path, member_bytes: int) -> Path:
    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\0" * member_bytes)
    return path


def test_docx_decompression_bomb_is_refused_before_inflating(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import producer.loaders.word as word

    monkeypatch.setattr(word, "open_docx", lambda *_: pytest.fail("python-docx reached"))
    (doc,) = load_path(_docx_with(tmp_path, 11 * 1024 * 1024), limited())  # ~1000x ratio
    assert doc.error_kind == "decompression_bomb"
    (doc,) = load_path(_docx_with(tmp_path, 100_000), limited(max_expanded_bytes=50_000))
    assert doc.error_kind == "decompression_bomb"


def test_deeply_nested_html_is_linear(tmp_path: Path) -> None:
    import time

    (tmp_path / "nest.html").write_bytes(b"<html><body><p>Start</p>" + b"<div>" * 200_000 + b"end")
    started = time.monotonic()
    (doc,) = load_path(tmp_path / "nest.html", limited())
    assert time.monotonic() - started < 5  # BeautifulSoup: minutes
    assert doc.error_kind is None
    assert doc.text.startswith("Start")


# --------------------------------------------------------------------- parse budgets (issue 15.1)
def _docx_with_paragraphs(count: int) -> bytes:
    """A valid .docx whose body holds ``count`` paragraphs (written as XML: python-docx's
    add_paragraph is too slow for this many)."""
    import io
    import random

    from tests.formats import builders as b

    template = zipfile.ZipFile(io.BytesIO(b.docx_bytes(["x"])))
    rng = random.Random(15)
    words = ["invoice", "contract", "party", "term", "payment", "notice", "clause", "agreement", "law"]
    body = "".join("<w:p><w:r><w:t>" + " ".join(f"{rng.choice(words)}{rng.randrange(10**6)}" for _ in range(20))
                   + "</w:t></w:r></w:p>" for _ in range(count))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for item in template.infolist():
            data = template.read(item)
            if item.filename == "word/document.xml":
                xml = data.decode()
                at = xml.index("<w:body>") + len("<w:body>")
                data = (xml[:at] + body + xml[at:]).encode()
            z.writestr(item, data)
    return out.getvalue()


def test_pdf_over_the_parse_time_budget_fails_alone(tmp_path: Path) -> None:
    """The parser child is killed when late; the next PDF is parsed by a fresh one."""
    from tests.formats import builders as b

    (tmp_path / "a-slow.pdf").write_bytes(
        b.pdf_bytes([[f"Page {i} line {j} of the long report." for j in range(40)] for i in range(400)]))
    (tmp_path / "b-small.pdf").write_bytes(b.pdf_bytes([["One short page."]]))
    (tmp_path / "c-note.txt").write_text("a note")
    limits = Limits(parse_timeout_s=0.5)
    docs = {Path(d.source).name: d for d in iter_documents([str(tmp_path)], LoadOptions(limits=limits))}
    assert docs["a-slow.pdf"].error_kind == "parse_timeout"
    assert "parse_timeout_s (0.5 s)" in docs["a-slow.pdf"].error_message
    assert (docs["b-small.pdf"].error_kind, docs["b-small.pdf"].text) == (None, "One short page.")
    assert docs["c-note.txt"].text == "a note"


def test_docx_over_the_parse_memory_budget_fails_alone(tmp_path: Path) -> None:
    """25 MB of document XML (under the expansion limits) needs far more than 50 MiB to parse:
    parse_memory, and the file after it is read."""
    from tests.formats import builders as b

    (tmp_path / "a-huge.docx").write_bytes(_docx_with_paragraphs(100_000))
    (tmp_path / "b-small.docx").write_bytes(b.docx_bytes(["A small memo."]))
    limits = Limits(parse_memory_mb=50)
    docs = {Path(d.source).name: d for d in iter_documents([str(tmp_path)], LoadOptions(limits=limits))}
    assert docs["a-huge.docx"].error_kind == "parse_memory"
    assert (docs["b-small.docx"].error_kind, docs["b-small.docx"].text) == (None, "A small memo.")


def test_parse_budget_zero_parses_in_process(tmp_path: Path) -> None:
    from tests.formats import builders as b

    (tmp_path / "m.docx").write_bytes(b.docx_bytes(["A small memo."]))
    (doc,) = iter_documents([str(tmp_path)], LoadOptions(limits=Limits(parse_timeout_s=0)))
    assert doc.text == "A small memo."
