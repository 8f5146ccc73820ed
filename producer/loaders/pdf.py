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


def _open(data: bytes) -> PdfReader:
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
