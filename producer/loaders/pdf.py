"""PDF through pypdf: the text layer page by page, with where each page starts in the text.

Page starts are kept so that a character offset in a result (a clause found by contract review)
maps back to a page number. Pages are joined by a blank line. A PDF without any text layer (a
scan) is refused as such rather than passed on as an empty document: OCR is not done here.
"""

from __future__ import annotations

import io
import logging
from bisect import bisect_right

from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

from docqueue.errors import DocumentError
from producer.loaders.base import Extracted, clean_text

PAGE_SEPARATOR = "\n\n"

# pypdf logs every recoverable oddity of a malformed file as a warning; a bulk submission of real
# PDFs would bury the progress bar under them. Unrecoverable problems still surface as errors.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def looks_like(data: bytes) -> str:
    """What a file that is not a PDF seems to be, for the error: a text file renamed ``.pdf``
    should say so, not fail with pypdf's stream error."""
    head = data[:2048]
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (a .docx, .xlsx or .zip renamed?)"
    if head.startswith(b"{\\rtf"):
        return "an RTF document"
    if head.lstrip()[:1] == b"<":
        return "HTML or XML markup"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut at the sample's end
            return "binary data"
        text = head[:e.start].decode("utf-8")
    if text and sum(c.isprintable() or c in "\r\n\t" for c in text) / len(text) > 0.95:
        first = " ".join(text.split())[:40]
        return f"plain text (it begins {first!r}); rename it .txt"
    return "binary data"


def _open(data: bytes) -> PdfReader:
    if b"%PDF-" not in data[:1024]:  # the header must be within the first 1024 bytes
        raise DocumentError("corrupt_pdf", f"not a PDF (no %PDF- header): the file looks like {looks_like(data)}")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # An owner-password-only PDF (print/copy restrictions) opens with the empty password.
            reader.decrypt("")
        _ = len(reader.pages)
        return reader
    except FileNotDecryptedError as e:
        raise DocumentError("encrypted_pdf", "the PDF is encrypted with a user password") from e
    except DependencyError as e:
        raise DocumentError("encrypted_pdf", f"cannot decrypt this PDF: {e}") from e
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as e:
        raise DocumentError("corrupt_pdf", f"not a readable PDF ({type(e).__name__}: {e})") from e


def page_of(offset: int, page_offsets: list[int]) -> int:
    """The 1-based page holding character ``offset`` of a text with these page starts."""
    return max(1, bisect_right(page_offsets, offset))


def extract(data: bytes) -> Extracted:
    reader = _open(data)
    if not reader.pages:
        raise DocumentError("corrupt_pdf", "the PDF has no pages")
    texts: list[str] = []
    broken = 0
    for page in reader.pages:
        try:
            texts.append(clean_text(page.extract_text() or "").strip())
        except FileNotDecryptedError as e:
            raise DocumentError("encrypted_pdf", "the PDF is encrypted with a user password") from e
        except Exception:  # one unreadable page must not lose the others
            broken += 1
            texts.append("")
    if broken == len(texts):
        raise DocumentError("corrupt_pdf", f"none of the {len(texts)} pages could be read")
    if not any(texts):
        raise DocumentError("no_text_layer", f"none of the {len(texts)} pages has a text layer "
                            "(a scanned PDF?); OCR is not done")
    offsets: list[int] = []
    position = 0
    for text in texts:
        offsets.append(position)
        position += len(text) + len(PAGE_SEPARATOR)
    return Extracted(text=PAGE_SEPARATOR.join(texts), page_offsets=offsets)
