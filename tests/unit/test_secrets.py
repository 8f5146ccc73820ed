"""Passwords in URLs are masked wherever docqueue prints or logs them."""

from __future__ import annotations

import logging

import pytest

from docqueue.secrets import MaskingFilter, mask_url


@pytest.mark.parametrize(("url", "masked"), [
    ("redis://:pw@host:6379/0", "redis://:****@host:6379/0"),
    ("rediss://user:p%40ss@host/1", "rediss://user:****@host/1"),
    ("postgresql+psycopg://user:secret@db:5432/docqueue", "postgresql+psycopg://user:****@db:5432/docqueue"),
    ("redis://localhost:6379/0", "redis://localhost:6379/0"),
    ("redis+socket:///tmp/redis.sock", "redis+socket:///tmp/redis.sock"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_filter_masks_formatted_message() -> None:
    record = logging.LogRecord("celery", logging.INFO, __file__, 1, "Connected to %s", ("redis://:pw@h:1/0",), None)
    assert MaskingFilter().filter(record)
    assert record.getMessage() == "Connected to redis://:****@h:1/0"
