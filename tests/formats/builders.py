"""Real files of every format, built in the test from the formats' own writers.

reportlab draws PDFs (text pages, and pages with only a drawn shape: what a scan without OCR looks
like to a text extractor), pypdf encrypts them, python-docx writes Word files and the standard
library writes e-mails. Nothing here is a mock: each file is what those tools produce.
"""

from __future__ import annotations

import csv
import io
import json
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from docx import Document as new_docx
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas


def pdf_bytes(pages: list[list[str] | None]) -> bytes:
    """A PDF with one page per item: lines of text, or None for a page with only a drawn shape."""
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=A4)
    for lines in pages:
        if lines is None:
            c.setFillGray(0.4)
            c.rect(100, 300, 300, 300, fill=1)
        else:
            y = 780
            for line in lines:
                c.drawString(72, y, line)
                y -= 16
        c.showPage()
    c.save()
    return out.getvalue()


def encrypted_pdf_bytes(plain: bytes, user_password: str, algorithm: str = "AES-256") -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(plain)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(paragraphs: list[str], table: list[list[str]] | None = None, after: tuple[str, ...] = ()) -> bytes:
    document = new_docx()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    for text in after:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def encrypted_docx_bytes(plain: bytes, password: str) -> bytes:
    """A password-protected .docx as Office writes it (an OLE file holding the encrypted package)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(plain)).encrypt(password, out)
    return out.getvalue()


HTML_PAGE = """<!doctype html>
<html><head><meta charset="windows-1252"><title>Quarterly notice</title>
<style>body { font-family: serif } .x::after { content: "STYLE-TEXT" }</style>
<script>var secret = "SCRIPT-TEXT"; document.write("SCRIPT-TEXT");</script></head>
<body><h1>Notice of renewal</h1><!-- COMMENT-TEXT -->
<p>The agreement renews on <b>1&nbsp;March</b> unless cancelled.</p>
<div hidden>HIDDEN-TEXT</div><p style="display:none">HIDDEN-STYLE-TEXT</p>
<table><tr><td>Fee</td><td>1200 \u20ac</td></tr></table>
<noscript>NOSCRIPT-TEXT</noscript><script type="application/ld+json">{"x": "JSON-LD-TEXT"}</script>
</body></html>
"""


def html_bytes() -> bytes:
    return HTML_PAGE.encode("cp1252")


def eml_bytes(attachments: list[tuple[str, bytes | str, str]], subject: str = "Signed supply agreement",
              body: str = "Hello,\n\nplease find the signed agreement attached.\n\nRegards, Dana") -> bytes:
    """A MIME message; an attachment given as ``str`` is a text part in the charset named after
    the MIME type (``text/plain;latin-1``)."""
    message = EmailMessage()
    message["From"] = "Dana Smith <dana@example.com>"
    message["To"] = "legal@example.com"
    message["Subject"] = subject
    message["Date"] = "Mon, 23 Nov 2026 09:00:00 +0000"
    message.set_content(body)
    for name, data, mime in attachments:
        if mime == "message/rfc822":  # a forwarded message, attached as mail clients do
            message.add_attachment(BytesParser(policy=policy.default).parsebytes(data), filename=name)
        elif isinstance(data, str):
            subtype, _, charset = mime.split("/")[1].partition(";")
            message.add_attachment(data, subtype=subtype, charset=charset or "utf-8", filename=name)
        else:
            maintype, subtype = mime.split("/")
            message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes()


def csv_bytes(rows: list[dict[str, Any]], delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def jsonl_bytes(records: list[Any]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
