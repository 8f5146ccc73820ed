"""A document nested too deeply fails alone; the rest of its message runs (issue 23, item 1).

The transport (``docqueue.envelope.check_raw``) puts a shallow stand-in in place of each document
deeper than ``DOCUMENT_MAX_DEPTH`` and hands kombu the message so changed; validation
(``TaskMessage.decode``) fails the stand-in with ``too_deeply_nested``. What cannot be set aside
(a param too deep, a body too deep for JSON to read) still refuses the whole message.
"""

from __future__ import annotations

import base64
import json

import pytest

from docqueue.envelope import PoisonMessage, check_raw
from docqueue.schema import TaskMessage
from docqueue.storable import DOCUMENT_MAX_DEPTH, MAX_JSON_DEPTH, json_depth
from tests.helpers import nested
from tests.integration.test_foreign_publisher import foreign_message

GOOD = {"id": "good", "text": "Invoice 12: amount due $40."}


def _check(kwargs: dict, raw_body: bool = False) -> tuple[dict, list]:
    envelope = check_raw(foreign_message("docqueue.classify", "classify", kwargs, raw_body=raw_body), "classify",
                         2**24)
    text = envelope["body"] if raw_body else base64.b64decode(envelope["body"]).decode()
    body = json.loads(text)
    return envelope, body


def _kwargs(*documents: dict, **extra: object) -> dict:
    return {"v": 1, "batch": "deep", "params": {"labels": ["contract", "invoice"]}, "documents": list(documents),
            **extra}


@pytest.mark.parametrize("raw_body", [False, True])
def test_a_too_deep_document_fails_alone(raw_body: bool) -> None:
    deep = {"id": "deep", "text": "x", "metadata": nested(700)}
    envelope, body = _check(_kwargs(deep, GOOD), raw_body)
    assert json_depth(body) <= MAX_JSON_DEPTH  # what Celery pickles for a prefork child is shallow again
    assert ("body_encoding" in envelope["properties"]) is not raw_body  # the body keeps its encoding
    message = TaskMessage.decode(body[1])
    assert [d.id for d in message.documents] == ["good"]
    [rejected] = message.rejected
    assert (rejected.id, rejected.kind, rejected.position) == ("deep", "too_deeply_nested", 0)
    assert "702 levels deep" in rejected.reason and str(DOCUMENT_MAX_DEPTH) in rejected.reason
    # a redelivery (kombu keeps the changed envelope in unacked) passes the check unchanged
    again = check_raw(json.dumps(envelope).encode(), "classify", 2**24)
    assert again == envelope


def test_the_deepest_accepted_document_is_kept_as_sent() -> None:
    # the document itself, its metadata and the nested objects below: DOCUMENT_MAX_DEPTH in all
    edge = {"id": "edge", "text": "x", "metadata": nested(DOCUMENT_MAX_DEPTH - 2)}
    assert json_depth(edge) == DOCUMENT_MAX_DEPTH
    sent = foreign_message("docqueue.classify", "classify", _kwargs(edge, GOOD))
    assert check_raw(sent, "classify", 2**24) == json.loads(sent)
    over = {"id": "over", "text": "x", "metadata": nested(DOCUMENT_MAX_DEPTH - 1)}
    message = TaskMessage.decode(_check(_kwargs(over, GOOD))[1][1])
    assert [r.kind for r in message.rejected] == ["too_deeply_nested"] and len(message.documents) == 1


def test_a_too_deep_document_without_a_usable_id() -> None:
    message = TaskMessage.decode(_check(_kwargs({"id": ["not", "a", "string"], "metadata": nested(100)},
                                                {"text": "x", "metadata": nested(100)}, GOOD))[1][1])
    assert [(r.id, r.position, r.kind) for r in message.rejected] == [
        (None, 0, "too_deeply_nested"), (None, 1, "too_deeply_nested")]
    assert message.rejected[0].fingerprint != message.rejected[1].fingerprint


def test_what_concerns_the_whole_message_still_refuses_it() -> None:
    for kwargs in (_kwargs(GOOD, params={"labels": ["a", "b"], "x": nested(100)}),
                   _kwargs(GOOD, webhook=nested(100))):
        with pytest.raises(PoisonMessage) as refused:
            _check(kwargs)
        assert refused.value.kind == "too_deeply_nested"
    # a document too deep for JSON to be read at all: the message cannot be read, so it is refused whole
    envelope = json.loads(foreign_message("docqueue.classify", "classify", _kwargs(GOOD)))
    body = ('[[], {"v": 1, "batch": "deep", "params": {"labels": ["a", "b"]}, "documents": [{"id": "d", '
            '"text": "x", "metadata": {"m": ' + "[" * 100_000 + "]" * 100_000 + '}}]}, null]')
    envelope["body"] = base64.b64encode(body.encode()).decode()
    with pytest.raises(PoisonMessage) as refused:
        check_raw(json.dumps(envelope).encode(), "classify", 2**24)
    assert refused.value.kind == "too_deeply_nested"
