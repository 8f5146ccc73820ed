"""Task and queue names: the wire contract between producers (ours or anyone's) and workers.

A producer sends a task by *name* onto the queue of the same name; it never imports worker code.
Changing a value here is a breaking change for every integration that publishes to the queue.
"""

from __future__ import annotations

from typing import Final

#: Task types a user can submit. Each has its own queue so workers can specialise per model.
CLASSIFY: Final = "classify"
SUMMARIZE: Final = "summarize"
TRANSLATE: Final = "translate"
REVIEW: Final = "review"
#: Chat completions from OpenAI Batch API files (docs/tasks/generate.md).
GENERATE: Final = "generate"

TASK_TYPES: Final[tuple[str, ...]] = (CLASSIFY, SUMMARIZE, TRANSLATE, REVIEW, GENERATE)

#: Training jobs (``docqueue train``): a queue of its own, so only workers started with ``--queues
#: train`` (a GPU machine, where there is one) take a job that holds a process for minutes. Not in
#: TASK_TYPES: it is no per-document task a user submits files to, and no default worker consumes it.
TRAIN: Final = "train"

#: Celery task names are namespaced so they cannot collide with other apps on a shared broker.
TASK_NAME_PREFIX: Final = "docqueue."


def task_name(task_type: str) -> str:
    """Celery task name for a task type (``classify`` -> ``docqueue.classify``)."""
    return TASK_NAME_PREFIX + task_type


def queue_name(task_type: str) -> str:
    """Queue for a task type: one queue per task type, named after it."""
    return task_type
