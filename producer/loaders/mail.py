"""E-mail (``.eml``, RFC 5322/MIME) through the standard library's ``email`` package.

The message becomes one document: its subject, a blank line, then its body (the plain-text part,
else the HTML part's visible text), with sender, recipients and date as metadata. Each named
attachment becomes a document of its own, read by the loader of its own format (a PDF attachment
is read as a PDF, a forwarded ``.eml`` as a message), so a mail with three attachments is four
documents, each with its own result.
"""

from __future__ import annotations

import binascii
import mimetypes
import quopri
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

from docqueue.errors import DocumentError
from producer.loaders.base import LoadedDocument, checked_text, failed, sha256_hex
from producer.loaders.markup import visible_text

#: ``(data, source, suffix, meta, depth) -> documents``: the dispatcher, handed in to avoid a cycle.
LoadBytes = Callable[[bytes, str, str, dict[str, Any], int], Iterator[LoadedDocument]]

_HEADERS = ("from", "to", "cc", "date", "message-id")


def _body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = part.get_content()
    if not isinstance(content, str):
        return ""
    if part.get_content_type() == "text/html":
        return visible_text(content)[0]
    return content.strip()


def _attachment_bytes(part: Message) -> tuple[str, bytes] | None:
    """``(file name, bytes)`` of an attachment, or None for an unnamed inline part."""
    if part.get_content_type() == "message/rfc822":
        name = part.get_filename() or "forwarded.eml"
        encoding = str(part.get("content-transfer-encoding", "")).lower()
        if encoding in ("base64", "quoted-printable"):
            # against RFC 2046 but seen in the wild: the whole forwarded message encoded; the parser
            # then holds the encoded text as the body of a header-less message
            inner = part.get_payload(0)
            encoded = inner.get_payload() if isinstance(inner, Message) else None
            if not isinstance(encoded, str):
                return name, b""
            raw = encoded.encode("ascii", "replace")
            return name, binascii.a2b_base64(raw) if encoding == "base64" else quopri.decodestring(raw)
        inner = part.get_payload(0)
        if not isinstance(inner, Message):
            return None
        return name, inner.as_bytes(policy=policy.default)
    filename = part.get_filename()
    if not filename:
        return None
    return filename, _decoded(part)


def _decoded(part: Message) -> bytes:
    """An attachment's bytes; a text part re-encoded as UTF-8 from the charset it declares."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return b""
    charset = part.get_content_charset() if part.get_content_maintype() == "text" else None
    if charset:
        # trust the declared charset over guessing (a short text guesses badly)
        try:
            return payload.decode(charset).encode("utf-8")
        except (LookupError, UnicodeDecodeError):
            pass
    return payload


def _suffix(name: str, content_type: str) -> str:
    dot = name.rfind(".")
    if dot > 0:
        return name[dot:].lower()
    return (mimetypes.guess_extension(content_type) or "").lower()


def iter_message(data: bytes, source: str, meta: dict[str, Any], depth: int,
                 load_bytes: LoadBytes, clean: bool = False) -> Iterator[LoadedDocument]:
    """The message's own document, then one or more documents per attachment."""
    digest = sha256_hex(data)
    try:
        message = BytesParser(policy=policy.default).parsebytes(data)
        assert isinstance(message, EmailMessage)
        subject = " ".join(str(message.get("subject", "") or "").split())
        headers = {h: str(message[h]) for h in _HEADERS if message.get(h)}
        body = _body(message)
        attachments = [(a, part.get_content_type()) for part in message.iter_attachments()
                       if (a := _attachment_bytes(part)) is not None]
    except Exception as e:  # the parser is lenient; what still fails is a header or part beyond repair
        yield failed(source, "corrupt_email", f"{source}: not a readable e-mail ({type(e).__name__}: {e})",
                     sha256=digest)
        return
    text = f"{subject}\n\n{body}" if subject and body else subject or body
    meta = {**meta, **({"subject": subject} if subject else {}), **headers}
    try:
        text, cleaned = checked_text(text, clean)
    except DocumentError as e:
        yield failed(source, e.kind, f"{source}: {e.message}", sha256=digest, meta=meta)
    else:
        yield LoadedDocument(source=source, text=text, sha256=digest, meta={**meta, **cleaned})
    for (name, payload), content_type in attachments:
        yield from load_bytes(payload, f"{source}/{name}", _suffix(name, content_type),
                              {"attachment_of": source, "filename": name}, depth + 1)
