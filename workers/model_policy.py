"""Which models a queue message may make this worker load.

``params["model"]`` comes from whoever can publish to the queue. Passed to ``from_pretrained`` as
is, it is a filesystem path the worker opens: ``/etc/passwd``, ``/root`` and a missing path failed
with three different messages, an oracle for what exists on the worker's disk. So a message may
name only

- a model this worker is configured with (any task's ``DOCQUEUE_*_MODEL``, the translate pairs),
- a hub id or name matching ``DOCQUEUE_ALLOWED_MODELS`` (shell patterns: ``Helsinki-NLP/opus-mt-*``),
- a local path whose real location (symbolic links resolved) lies inside ``DOCQUEUE_MODEL_DIRS``.

Everything else fails with ``model_not_allowed`` and one message that does not depend on the disk:
the decision reads only the settings and the spec's text (``realpath`` of an absolute path maps the
same text to the same answer whether or not the target exists, beyond the allowed folders).
"""

from __future__ import annotations

import fnmatch
import os
import re
from functools import cached_property

from docqueue.errors import DocumentError
from docqueue.settings import TRANSLATE_BY_PAIR, Settings

#: What a hub id looks like ("name" or "org/name"); anything else is treated as a path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def looks_like_path(spec: str) -> bool:
    """A spec transformers would read from disk first: absolute, ``./``, ``~``, ``..``, backslashes."""
    return not _HUB_ID.match(spec) or ".." in spec


class ModelPolicy:
    """The allow-list of one worker, built from its settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def configured(self) -> frozenset[str]:
        s = self.settings
        specs = {s.classify_model, s.classify_nli_model, s.review_model, s.summarize_model,
                 s.summarize_extractive_model, s.translate_model, *s.translate_models.values(),
                 *([s.llm_model] if s.llm_model else [])}
        return frozenset(specs - {TRANSLATE_BY_PAIR})

    @cached_property
    def dirs(self) -> tuple[str, ...]:
        return tuple(os.path.realpath(os.path.expanduser(d)) for d in self.settings.model_dirs)

    def allows(self, spec: str) -> bool:
        if spec in self.configured:
            return True
        if looks_like_path(spec):
            real = os.path.realpath(os.path.expanduser(spec))
            return any(real == d or real.startswith(d.rstrip(os.sep) + os.sep) for d in self.dirs)
        return any(fnmatch.fnmatchcase(spec, pattern) for pattern in self.settings.allowed_models)

    def check(self, spec: str) -> None:
        """Raise ``model_not_allowed`` for a spec a message may not name."""
        if not self.allows(spec):
            raise DocumentError(
                "model_not_allowed", f"model {spec[:200]!r} is not allowed on this worker: a message may name "
                "a configured model, a hub id matching DOCQUEUE_ALLOWED_MODELS, or a path inside "
                "DOCQUEUE_MODEL_DIRS")
