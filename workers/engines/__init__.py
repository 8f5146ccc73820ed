"""Pure engines: (resident model, batch of texts, parameters) -> one outcome per text.

No Celery and no database in here, so engines are unit-tested on their own. An outcome is either a
result dict or a :class:`docqueue.errors.DocumentError` for that one document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from docqueue.errors import DocumentError

Outcome = dict[str, Any] | DocumentError


class TaskEngine(Protocol):
    """What the worker needs from an engine."""

    model_id: str
    model_revision: str | None

    def run(self, texts: Sequence[str], params: Mapping[str, Any]) -> list[Outcome]:
        """One outcome per text, in order. Raises only for failures of the whole batch."""
        ...
