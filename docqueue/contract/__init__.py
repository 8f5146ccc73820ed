"""The published queue contract: JSON Schema (draft 2020-12) files shipped in the package.

Other systems build on these files, not on our Python: ``envelope.schema.json`` (one Redis list item),
``<task>.message.schema.json`` (the kwargs of each task, with its ``params``) and
``<task>.result.schema.json`` (what a succeeded document's ``result`` holds); ``event.schema.json``
(completion events) is published beside them where that feature is installed. Tests validate real
messages read back from Redis and real worker results against them, so a change of the wire format
that forgets its schema fails there. The message schemas are generated from the params models in
``docqueue.params`` (``python -m docqueue.contract.generate``; a unit test fails when a shipped file
differs from what the models generate).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).parent


def path(name: str) -> Path:
    """The file of schema ``name`` (``envelope``, ``classify.message``, ``review.result``...)."""
    return SCHEMA_DIR / f"{name}.schema.json"


@cache
def load(name: str) -> dict[str, Any]:
    """The parsed schema ``name``; ``FileNotFoundError`` names what is shipped when it is not."""
    file = path(name)
    if not file.is_file():
        raise FileNotFoundError(f"no schema {name!r} in {SCHEMA_DIR} (shipped: {', '.join(available())})")
    schema: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return schema


def available() -> list[str]:
    """Names of the shipped schemas, sorted."""
    return sorted(p.name.removesuffix(".schema.json") for p in SCHEMA_DIR.glob("*.schema.json"))
