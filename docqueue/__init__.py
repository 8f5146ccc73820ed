"""docqueue's shared core: the contract between the producer and the workers.

Everything here is light (no torch, no transformers, no click) because the producer imports it.
"""

from __future__ import annotations

__version__ = "0.1.0"
