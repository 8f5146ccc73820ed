"""Word ``.docx`` through python-docx: body paragraphs and tables, in document order.

A table becomes one line per row, cells separated by a tab (a merged cell once). Headers,
footers, footnotes and text boxes are not read: python-docx does not reach them from the body.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

from docx import Document as open_docx
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph

from docqueue.errors import DocumentError
from producer.loaders.base import Extracted

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _not_a_docx(data: bytes, e: Exception) -> DocumentError:
    if data.startswith(_OLE_MAGIC):
        # Office wraps a password-protected .docx in an OLE file with an "EncryptedPackage" stream.
        if "EncryptedPackage".encode("utf-16-le") in data:
            return DocumentError("encrypted_docx", "the .docx is password-protected")
        return DocumentError("corrupt_docx", "an OLE file, not a .docx zip (a legacy .doc renamed?)")
    return DocumentError("corrupt_docx", f"not a readable .docx ({type(e).__name__}: {e})")


#: A member inflating more than this many times, when it is also big, is a bomb, not a document.
MAX_RATIO = 200
_RATIO_MIN_BYTES = 10 * 1024 * 1024


def check_expansion(data: bytes, max_expanded_bytes: int) -> None:
    """Refuse a zip bomb from its central directory, before python-docx inflates anything: the
    sizes the zip declares are what ``zipfile`` will let each member inflate to."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError):
        return  # not a zip: extract() reports it as corrupt or encrypted
    total = sum(m.file_size for m in members)
    if total > max_expanded_bytes:
        raise DocumentError("decompression_bomb", f"inflates to {total:,} bytes, over max_expanded_bytes "
                            f"({max_expanded_bytes:,})")
    for m in members:
        if m.file_size > _RATIO_MIN_BYTES and m.file_size > MAX_RATIO * max(m.compress_size, 1):
            raise DocumentError("decompression_bomb", f"member {m.filename!r} inflates "
                                f"{m.file_size // max(m.compress_size, 1)}x to {m.file_size:,} bytes")


def _table_lines(table: Table) -> Iterator[str]:
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # a horizontally merged cell repeats in row.cells
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            yield "\t".join(cells)


def extract(data: bytes) -> Extracted:
    try:
        document = open_docx(io.BytesIO(data))
        lines: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Paragraph):
                lines.append(block.text)
            elif isinstance(block, Table):
                lines.extend(_table_lines(block))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, AttributeError) as e:
        raise _not_a_docx(data, e) from e
    return Extracted(text="\n".join(lines).strip())
