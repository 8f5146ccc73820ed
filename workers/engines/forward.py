"""What a forward pass reports, without engines knowing who listens.

Engines run inside the worker and in evaluation scripts alike, so they import nothing from the
worker's runtime (metrics, devices, the registry). A model calls :func:`observe_inputs` with each
padded batch it runs; whoever runs the engine (``workers.pipeline`` for the Prometheus token
counters) subscribes with :func:`observing` for the duration of that run. Nobody listening costs
one context-variable read.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: ``(padded tokens, real tokens)`` of one forward pass.
ForwardObserver = Callable[[int, int], None]
_observer: contextvars.ContextVar[ForwardObserver | None] = contextvars.ContextVar("docqueue_forward",
                                                                                   default=None)


@contextmanager
def observing(observer: ForwardObserver) -> Iterator[None]:
    """Hand every forward pass of this context to ``observer``."""
    token = _observer.set(observer)
    try:
        yield
    finally:
        _observer.reset(token)


def observe_inputs(inputs: Any) -> None:
    """Report one forward pass from a tokenizer's padded batch (``input_ids``, ``attention_mask``)."""
    observer = _observer.get()
    if observer is None:
        return
    ids = inputs["input_ids"]
    mask = inputs.get("attention_mask") if hasattr(inputs, "get") else None
    observer(int(ids.numel()), int(mask.sum()) if mask is not None else int(ids.numel()))
