"""Masking passwords in URLs before they reach a terminal or a log.

Broker and database URLs carry their password inline (``redis://:pw@host``); anything that prints
or logs a URL goes through :func:`mask_url` or the log filter so the password never leaves the
process in plain text.
"""

from __future__ import annotations

import logging
import re

#: ``scheme://user:password@`` anywhere in a string; the password is what the filter hides.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?P<at>@)")
MASK = "****"


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``****`` (``redis://:****@host``)."""
    return _USERINFO.sub(lambda m: f"{m['head']}{MASK}{m['at']}", url)


class MaskingFilter(logging.Filter):
    """Rewrites every record's message with passwords masked: Celery and kombu log the broker URL
    at start-up and on every reconnect, with whatever credentials it holds."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not ours
            return True
        masked = mask_url(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_log_masking() -> None:
    """Install :class:`MaskingFilter` on the root logger's handlers and on every handler created
    later (via the log record factory), so loggers configured after us are covered too."""
    old_factory = logging.getLogRecordFactory()
    if getattr(old_factory, "_docqueue_masking", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = old_factory(*args, **kwargs)
        MaskingFilter().filter(record)
        return record

    factory._docqueue_masking = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
