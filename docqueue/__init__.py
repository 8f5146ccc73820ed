"""docqueue's shared core: the contract between the producer and the workers.

Everything here is light (no torch, no transformers, no click) because the producer imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Client", "__version__"]

if TYPE_CHECKING:
    from docqueue.client import Client


def __getattr__(name: str) -> Any:
    """``from docqueue import Client`` without importing the client (Celery, SQLAlchemy) for every
    ``import docqueue``: workers and the CLI import the core's small modules only."""
    if name == "Client":
        from docqueue.client import Client

        return Client
    raise AttributeError(f"module 'docqueue' has no attribute {name!r}")
