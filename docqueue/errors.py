"""One exception tree for docqueue.

The split that matters is *permanent* (the input is bad: retrying cannot help, record it against the
document and move on) versus *retryable* (the infrastructure hiccuped: the job is re-delivered).
"""

from __future__ import annotations


class DocqueueError(Exception):
    """Root of every error docqueue raises on purpose."""


class ConfigurationError(DocqueueError):
    """A setting is missing or invalid; raised at start-up so nothing half-works."""


class MessageError(DocqueueError):
    """A queue message does not match the documented JSON schema; it cannot be processed."""


class SchemaMissingError(DocqueueError):
    """The database has no (or an outdated) docqueue schema; ``docqueue db upgrade`` fixes it."""


class DocumentError(DocqueueError):
    """A permanent, per-document failure: recorded on that document's job, the batch goes on.

    ``kind`` is a short machine-readable code (``empty_document``, ``unsupported_format``...) so
    scripts can group failures without parsing messages.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class ModelUnavailableError(DocqueueError):
    """A configured model cannot be loaded on this machine (not downloaded, wrong path)."""
