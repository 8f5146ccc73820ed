"""Each format loader on real files built by the formats' own writers (no services needed)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from producer.loaders import LoadOptions, ReadStats, iter_documents, iter_paths, load_path, page_of
from producer.loaders.base import Limits
from tests.formats import builders as b

FRENCH = ("Le présent contrat est conclu entre la société Dupont, représentée par son gérant, et Mme Hélène "
          "Lefèvre. Les deux parties conviennent de ce qui suit : la durée du contrat est d'un an à compter de "
          "la signature ; le prix est payable à réception de la facture. Fait à Paris, le 3 février.")
CONTRACT_P1 = ["MASTER SERVICES AGREEMENT", "This Agreement is made between Acme Ltd and Beta GmbH."]
CONTRACT_P3 = ["12. Governing law. This Agreement is governed by the laws of England."]


def load_one(path: Path, **options: object) -> list:
    return list(load_path(path, LoadOptions(**options)))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- plain text
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "utf-16"])
def test_text_encoding_is_detected(tmp_path: Path, encoding: str) -> None:
    data = FRENCH.encode(encoding)
    (doc,) = load_one(b.write(tmp_path / "contrat.txt", data))
    assert doc.error_kind is None
    assert doc.text == FRENCH
    assert doc.sha256 == hashlib.sha256(data).hexdigest()  # of the bytes as stored, not of the text


def test_binary_file_named_txt_is_undecodable(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 16
    (doc,) = load_one(b.write(tmp_path / "photo.txt", png))
    assert doc.error_kind == "undecodable"


# -------------------------------------------------------------------------------------------- PDF
def test_pdf_pages_and_offsets(tmp_path: Path) -> None:
    pdf = b.pdf_bytes([CONTRACT_P1, ["2. Term. Two years."], CONTRACT_P3])
    (doc,) = load_one(b.write(tmp_path / "msa.pdf", pdf))
    assert doc.error_kind is None
    assert doc.sha256 == hashlib.sha256(pdf).hexdigest()
    assert len(doc.page_offsets) == 3 and doc.page_offsets[0] == 0
    # each page's text starts at its offset, so a result offset maps back to its page
    law = doc.text.index("Governing law")
    assert page_of(law, doc.page_offsets) == 3
    assert page_of(doc.text.index("Beta GmbH"), doc.page_offsets) == 1
    assert doc.text[doc.page_offsets[1]:].startswith("2. Term. Two years.")
    assert doc.text[doc.page_offsets[2]:].startswith("12. Governing law.")


def test_pdf_with_a_blank_page_keeps_page_numbers(tmp_path: Path) -> None:
    (doc,) = load_one(b.write(tmp_path / "mixed.pdf", b.pdf_bytes([CONTRACT_P1, None, CONTRACT_P3])))
    assert doc.error_kind is None
    assert page_of(doc.text.index("Governing law"), doc.page_offsets) == 3


@pytest.mark.parametrize("algorithm", ["AES-256", "RC4-128"])
def test_encrypted_pdf(tmp_path: Path, algorithm: str) -> None:
    plain = b.pdf_bytes([CONTRACT_P1])
    (locked,) = load_one(b.write(tmp_path / "locked.pdf", b.encrypted_pdf_bytes(plain, "s3cret", algorithm)))
    assert locked.error_kind == "encrypted_pdf" and "password" in locked.error_message
    # only an owner password (print/copy restrictions): opens with the empty password
    (open_,) = load_one(b.write(tmp_path / "restricted.pdf", b.encrypted_pdf_bytes(plain, "", algorithm)))
    assert open_.error_kind is None and "Acme Ltd" in open_.text


def test_corrupt_pdf(tmp_path: Path) -> None:
    pdf = b.pdf_bytes([CONTRACT_P1])
    (truncated,) = load_one(b.write(tmp_path / "truncated.pdf", pdf[: len(pdf) // 3]))
    (not_pdf,) = load_one(b.write(tmp_path / "fake.pdf", b"Dear customer, this is not a PDF at all."))
    assert truncated.error_kind == "corrupt_pdf"
    assert not_pdf.error_kind == "corrupt_pdf"


def test_scanned_pdf_without_text_layer(tmp_path: Path) -> None:
    (doc,) = load_one(b.write(tmp_path / "scan.pdf", b.pdf_bytes([None, None])))
    assert doc.error_kind == "no_text_layer" and "2 pages" in doc.error_message


# ------------------------------------------------------------------------------------------- DOCX
def test_docx_paragraphs_and_tables_in_order(tmp_path: Path) -> None:
    data = b.docx_bytes(["INVOICE 7731", "Bill to: Beta GmbH"], [["Item", "Amount"], ["Consulting", "1 200.00"]],
                        after=("Payment due within 30 days.",))
    (doc,) = load_one(b.write(tmp_path / "invoice.docx", data))
    assert doc.error_kind is None
    assert doc.text == ("INVOICE 7731\nBill to: Beta GmbH\nItem\tAmount\nConsulting\t1 200.00\n"
                        "Payment due within 30 days.")


def test_corrupt_docx(tmp_path: Path) -> None:
    (not_zip,) = load_one(b.write(tmp_path / "a.docx", b"This is plain text saved as .docx"))
    other_zip = io.BytesIO()
    with zipfile.ZipFile(other_zip, "w") as z:
        z.writestr("readme.txt", "a zip, but not a Word document")
    (wrong_zip,) = load_one(b.write(tmp_path / "b.docx", other_zip.getvalue()))
    assert not_zip.error_kind == "corrupt_docx"
    assert wrong_zip.error_kind == "corrupt_docx"


def test_password_protected_docx(tmp_path: Path) -> None:
    locked = b.encrypted_docx_bytes(b.docx_bytes(["Secret terms"]), "s3cret")
    (doc,) = load_one(b.write(tmp_path / "locked.docx", locked))
    assert doc.error_kind == "encrypted_docx"


# ------------------------------------------------------------------------------------------- HTML
def test_html_visible_text_only(tmp_path: Path) -> None:
    (doc,) = load_one(b.write(tmp_path / "notice.html", b.html_bytes()))
    assert doc.error_kind is None
    assert doc.text.splitlines() == ["Notice of renewal", "The agreement renews on 1\xa0March unless cancelled."
                                     .replace("\xa0", " "), "Fee 1200 €"]
    for invisible in ("SCRIPT", "STYLE", "COMMENT", "HIDDEN", "NOSCRIPT", "JSON-LD", "Quarterly"):
        assert invisible not in doc.text
    assert doc.meta == {"title": "Quarterly notice"}


# --------------------------------------------------------------------------------------- e-mail
def test_email_with_attachments(tmp_path: Path) -> None:
    pdf = b.pdf_bytes([CONTRACT_P1, CONTRACT_P3])
    forwarded = b.eml_bytes([], subject="Re: invoice", body="Invoice 7731 is overdue.")
    data = b.eml_bytes([("signed.pdf", pdf, "application/pdf"),
                        ("notes.txt", "Café: à revoir", "text/plain;latin-1"),
                        ("scan.png", b"\x89PNG\r\n\x1a\nnot really", "image/png"),
                        ("earlier.eml", forwarded, "message/rfc822")])
    docs = load_one(b.write(tmp_path / "mail.eml", data))
    by_name = {Path(d.source).name: d for d in docs}
    assert list(by_name) == ["mail.eml", "signed.pdf", "notes.txt", "scan.png", "earlier.eml"]
    message = by_name["mail.eml"]
    assert message.text.startswith("Signed supply agreement\n\nHello,")
    assert message.meta["from"] == "Dana Smith <dana@example.com>" and message.meta["subject"]
    assert message.sha256 == hashlib.sha256(data).hexdigest()
    attached = by_name["signed.pdf"]
    assert attached.source == f"{tmp_path / 'mail.eml'}/signed.pdf"
    assert attached.sha256 == hashlib.sha256(pdf).hexdigest()  # the attachment's own bytes
    assert attached.page_offsets and page_of(attached.text.index("Governing"), attached.page_offsets) == 2
    assert attached.meta == {"attachment_of": str(tmp_path / "mail.eml"), "filename": "signed.pdf"}
    assert by_name["notes.txt"].text.rstrip("\n") == "Café: à revoir"  # the declared charset, not a guess
    assert by_name["scan.png"].error_kind == "unsupported_format"
    assert by_name["earlier.eml"].text == "Re: invoice\n\nInvoice 7731 is overdue."


def test_html_only_email_body(tmp_path: Path) -> None:
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = "Newsletter"
    message.set_content("<html><body><p>Big <b>news</b></p><script>x()</script></body></html>", subtype="html")
    (doc,) = load_one(b.write(tmp_path / "n.eml", message.as_bytes()))
    assert doc.text == "Newsletter\n\nBig news"


# ---------------------------------------------------------------------------------- CSV and JSONL
def test_csv_rows_with_metadata(tmp_path: Path) -> None:
    rows = [{"ticket": "T-1", "body": "Please send the signed contract.\nThanks", "owner": "ops", "priority": "2"},
            {"ticket": "T-2", "body": "Invoice 7731 attached", "owner": "finance", "priority": "1"},
            {"ticket": "", "body": "", "owner": "ops", "priority": "3"}]
    path = b.write(tmp_path / "export.csv", b.csv_bytes(rows, delimiter=";", encoding="cp1252"))
    docs = load_one(path, text_field="body", id_field="ticket")
    assert [d.source_row for d in docs] == [1, 2, 3]
    assert [d.external_id for d in docs] == ["T-1", "T-2", None]
    assert docs[0].text == "Please send the signed contract.\nThanks"  # a quoted multi-line cell
    assert docs[1].meta == {"owner": "finance", "priority": "1"}
    assert docs[1].sha256 == hashlib.sha256(b"Invoice 7731 attached").hexdigest()  # of the row's text
    assert all(d.source == str(path) and d.error_kind is None for d in docs)
    assert docs[2].text == ""  # an empty cell is an empty document: the worker says empty_document


def test_csv_without_the_text_column(tmp_path: Path) -> None:
    path = b.write(tmp_path / "export.csv", b.csv_bytes([{"id": "1", "message": "hello"}]))
    (doc,) = load_one(path)
    assert doc.error_kind == "missing_text_field" and "message" in doc.error_message


def test_csv_row_with_broken_quoting_is_invalid_not_merged(tmp_path: Path) -> None:
    """A stray quote in row 2 used to swallow rows 3-5 into row 2's text; now row 2 alone fails,
    with its line number, and every row after it is read as itself."""
    path = b.write(tmp_path / "export.csv", (
        b'id,text\n1,"first row"\n2,"broken quote here\n3,"third"\n4,"fourth, with\na newline"\n'
        b'5,fifth\n6,"runaway quote\n7,seven\n'))
    docs = load_one(path, id_field="id")
    assert [(d.external_id, d.text, d.error_kind) for d in docs] == [
        ("1", "first row", None), (None, "", "invalid_row"), ("3", "third", None),
        ("4", "fourth, with\na newline", None), ("5", "fifth", None), (None, "", "invalid_row"),
        ("7", "seven", None)]
    assert "line 3" in docs[1].error_message and "line 8" in docs[5].error_message
    assert docs[1].source_row == 2


def test_csv_runaway_quote_is_bounded(tmp_path: Path) -> None:
    """An unclosed quote is read no further than a document may be long, then the lines are re-read."""
    lines = "".join(f"{i},row {i}\n" for i in range(3, 400))
    path = b.write(tmp_path / "export.csv", f'id,text\n1,one\n2,"never closed\n{lines}'.encode())
    docs = load_one(path, id_field="id", limits=Limits(max_document_chars=200))
    assert [d.error_kind for d in docs[:3]] == [None, "invalid_row", None]
    assert "without closing" in docs[1].error_message
    assert [d.external_id for d in docs[2:]] == [str(i) for i in range(3, 400)]


def test_jsonl_rows_and_bad_lines(tmp_path: Path) -> None:
    lines = b.jsonl_bytes([{"id": 7, "text": "Refund request", "tags": ["billing"], "note": "nul\x00here"},
                           ["not", "an", "object"], {"id": 9, "body": "no text field"}])
    path = b.write(tmp_path / "export.jsonl", lines + b"\n{broken json\n")
    docs = load_one(path, id_field="id")
    assert [(d.source_row, d.error_kind) for d in docs] == [
        (1, None), (2, "invalid_row"), (3, "missing_text_field"), (5, "invalid_json")]
    assert docs[0].external_id == "7" and docs[0].meta == {"tags": ["billing"], "note": "nulhere"}


# ------------------------------------------------------------------------------ choosing the files
def test_include_exclude_hidden_and_unknown(tmp_path: Path) -> None:
    b.write(tmp_path / "a.txt", b"a")
    b.write(tmp_path / "sub" / "b.md", b"b")
    b.write(tmp_path / "sub" / "c.log", b"c")
    b.write(tmp_path / ".secret.txt", b"s")
    b.write(tmp_path / ".git" / "config.txt", b"g")
    names = lambda **kw: sorted(p.relative_to(tmp_path).as_posix() for p in iter_paths([str(tmp_path)], **kw))  # noqa: E731
    assert names() == ["a.txt", "sub/b.md", "sub/c.log"]
    assert names(hidden=True) == [".git/config.txt", ".secret.txt", "a.txt", "sub/b.md", "sub/c.log"]
    assert names(include=("*.txt", "*.md")) == ["a.txt", "sub/b.md"]
    assert names(exclude=("*.log",)) == ["a.txt", "sub/b.md"]
    assert names(include=("sub/*",), exclude=("*.md",)) == ["sub/c.log"]
    docs = list(iter_documents([str(tmp_path), str(tmp_path / "missing.pdf")]))
    kinds = {Path(d.source).name: d.error_kind for d in docs}
    assert kinds == {"a.txt": None, "b.md": None, "c.log": "unsupported_format", "missing.pdf": "not_found"}


# ------------------------------------------------------------------------------------- streaming
def test_big_csv_is_streamed(tmp_path: Path) -> None:
    """The first row comes out after reading a buffer, not the file: memory stays flat."""
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("id,text,owner\n")
        for i in range(60_000):
            f.write(f'{i},"Ticket {i}: the customer asks about invoice {i * 7}, again and again.",ops\n')
    size = path.stat().st_size
    stats = ReadStats()
    docs = iter_documents([str(path)], LoadOptions(id_field="id"), stats)
    first = next(docs)
    assert first.external_id == "0" and first.text.startswith("Ticket 0:")
    assert 0 < stats.bytes <= 1024 * 1024 < size / 4
    assert sum(1 for _ in docs) == 59_999 and stats.bytes == size


def test_folder_is_read_file_by_file(tmp_path: Path) -> None:
    for i in range(30):
        b.write(tmp_path / f"doc-{i:02d}.txt", f"document {i}".encode())
    stats = ReadStats()
    docs = iter_documents([str(tmp_path)], None, stats)
    assert next(docs).text == "document 0"
    assert stats.files == 1  # nothing beyond the first file has been opened yet
    assert len(list(docs)) == 29 and stats.files == 30


def test_forwarded_message_encoded_in_base64(tmp_path: Path) -> None:
    """Some clients base64-encode a message/rfc822 part (RFC 2046 says not to): still read as mail."""
    from email.message import EmailMessage

    forwarded = b.eml_bytes([], subject="Re: invoice", body="Invoice 7731 is overdue.")
    outer = EmailMessage()
    outer["Subject"] = "Fwd"
    outer.set_content("see below")
    outer.add_attachment(forwarded, maintype="message", subtype="rfc822", filename="x.eml")
    assert b"Content-Transfer-Encoding: base64" in outer.as_bytes()
    docs = load_one(b.write(tmp_path / "fwd.eml", outer.as_bytes()))
    assert [d.text for d in docs] == ["Fwd\n\nsee below", "Re: invoice\n\nInvoice 7731 is overdue."]
