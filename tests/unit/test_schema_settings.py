"""The message envelope and the settings object: the two contracts every process reads."""

from __future__ import annotations

import time
import uuid

import pytest

from docqueue.errors import MessageError
from docqueue.schema import JobStatus, TaskMessage, derived_id, new_id
from docqueue.settings import get_settings


def test_envelope_accepts_both_forms() -> None:
    assert TaskMessage.decode({"v": 1, "jobs": ["a", "b"]}).jobs == ("a", "b")
    inline = TaskMessage.decode({"v": 1, "batch": "b", "documents": [{"id": "x", "text": "t"}]})
    assert inline.documents[0].metadata == {}


def test_new_ids_are_uuid7_in_time_order() -> None:
    """Time order keeps bulk inserts at the right edge of the id indexes (see new_id)."""
    earlier = [new_id() for _ in range(1000)]
    time.sleep(0.002)
    later = new_id()
    assert len(set(earlier)) == 1000
    parsed = uuid.UUID(later)
    assert len(later) == 32 and parsed.hex == later
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert max(earlier) < later
    assert abs(int(later[:12], 16) - time.time_ns() // 1_000_000) < 60_000  # milliseconds since the epoch


@pytest.mark.parametrize("kwargs, fragment", [
    ({"v": 1}, "exactly one"),
    ({"v": 1, "jobs": ["a"], "documents": [{"id": "x", "text": "t"}], "batch": "b"}, "exactly one"),
    ({"v": 1, "documents": [{"id": "x", "text": "t"}]}, "needs a 'batch'"),
    ({"v": 2, "jobs": ["a"]}, "unsupported envelope version"),
    ({"v": 1, "jobs": ["a"], "surprise": 1}, "surprise"),
    ({"v": 1, "batch": "b" * 129, "jobs": ["a"]}, "batch"),
    ({"v": 1, "batch": "two words", "jobs": ["a"]}, "batch"),
])
def test_envelope_rejects_malformed(kwargs: dict, fragment: str) -> None:
    with pytest.raises(MessageError, match=fragment):
        TaskMessage.decode(kwargs)


def test_a_bad_document_is_rejected_alone() -> None:
    """Per-document validation: the message stands, the bad document and the repeat are rejected."""
    m = TaskMessage.decode({"v": 1, "batch": "b", "documents": [
        {"id": "", "text": "t"}, {"id": "ok", "text": "t"}, {"id": "ok", "text": "u"}, {"id": "n", "text": 1}]})
    assert [d.id for d in m.documents] == ["ok"]
    assert [(r.position, r.id, r.kind) for r in m.rejected] == [
        (0, None, "invalid_document"), (2, "ok", "duplicate_document"), (3, "n", "invalid_document")]
    assert "rejected" not in m.model_dump(mode="json")  # never sent on


def test_derived_ids_are_stable_and_distinct() -> None:
    assert derived_id("batch", "doc") == derived_id("batch", "doc")
    assert derived_id("batch", "doc") != derived_id("batch", "doc", "classify")
    assert derived_id("ab", "c") != derived_id("a", "bc")
    assert len(derived_id("x")) == 32


def test_job_status_terminal() -> None:
    assert {s for s in JobStatus if s.terminal} == {JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled}


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/3")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/db")
    monkeypatch.setenv("DOCQUEUE_BATCH_MAX_DOCS", "7")
    monkeypatch.setenv("DOCQUEUE_DEVICE", "CUDA:1")
    s = get_settings()
    assert s.redis_url == "redis://example:6379/3"
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.batch_max_docs == 7 and s.device == "cuda:1"
    assert s.visibility_timeout == 300  # minutes, not 2 x task_time_limit (see Settings.visibility_timeout)
    assert get_settings(batch_max_docs=3).batch_max_docs == 3  # CLI overrides win


@pytest.mark.parametrize("env, fragment", [
    ({"DOCQUEUE_DEVICE": "tpu"}, "device must be"),
    ({"DOCQUEUE_BATCH_MAX_DOCS": "0"}, "greater than or equal"),
    ({"DOCQUEUE_BATCH_MAX_TOKENS": "100", "DOCQUEUE_MAX_TOKENS_PER_DOCUMENT": "200"}, "batch_max_tokens"),
])
def test_settings_fail_fast(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], fragment: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=fragment):
        get_settings()
