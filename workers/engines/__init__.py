"""Pure engines: (resident model, batch of texts, parameters) -> one outcome per text.

No Celery and no database in here, so engines are unit-tested on their own. An outcome is either a
result dict or a :class:`docqueue.errors.DocumentError` for that one document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from docqueue.errors import DocumentError

Outcome = dict[str, Any] | DocumentError


class TaskEngine(Protocol):
    """What the worker needs from an engine."""

    model_id: str
    model_revision: str | None

    def run(self, texts: Sequence[str], params: Any) -> list[Outcome]:
        """One outcome per text, in order, for ``params`` already validated as the task's model
        (:class:`docqueue.params.TaskParams`; the pipeline fails every document on bad params
        before an engine runs). Raises only for failures of the whole batch."""
        ...
