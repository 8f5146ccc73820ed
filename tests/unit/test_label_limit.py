"""A classify submission's label count is bounded (DOCQUEUE_CLASSIFY_MAX_LABELS), with invalid_params."""

from __future__ import annotations

import pytest

from docqueue.errors import DocumentError
from workers.engines.classify_common import parse_params


def test_too_many_labels_is_invalid_params() -> None:
    assert len(parse_params({"labels": [f"l{i}" for i in range(1000)]}).labels) == 1000
    with pytest.raises(DocumentError) as info:
        parse_params({"labels": [f"l{i}" for i in range(10_000)]})
    assert info.value.kind == "invalid_params" and "10000 labels; at most 1000" in info.value.message
    with pytest.raises(DocumentError):
        parse_params({"labels": ["a", "b", "c"]}, max_labels=2)
