"""A classify submission's label count is bounded (DOCQUEUE_CLASSIFY_MAX_LABELS), with invalid_params."""

from __future__ import annotations

import pytest

from docqueue.errors import DocumentError
from docqueue.names import CLASSIFY
from docqueue.params import ClassifyParams, Limits, ParamsError, parse_params
from docqueue.settings import get_settings
from workers.pipeline import typed_params


def test_too_many_labels_is_invalid_params() -> None:
    many = parse_params(CLASSIFY, {"labels": [f"l{i}" for i in range(1000)]})
    assert isinstance(many, ClassifyParams) and len(many.labels) == 1000
    error = typed_params(CLASSIFY, {"labels": [f"l{i}" for i in range(10_000)]}, get_settings())
    assert isinstance(error, DocumentError)
    assert error.kind == "invalid_params" and "10000 labels; at most 1000" in error.message
    with pytest.raises(ParamsError, match="3 labels; at most 2"):
        parse_params(CLASSIFY, {"labels": ["a", "b", "c"]}, Limits(max_labels=2))
    # the worker's own setting is the bound it applies
    assert isinstance(typed_params(CLASSIFY, {"labels": ["a", "b", "c"]}, get_settings(classify_max_labels=2)),
                      DocumentError)
