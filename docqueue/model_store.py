"""The model store: versioned models that ``docqueue train`` wrote, read by ``models list`` and workers.

Layout: ``<store>/<NAME>/<VERSION>/`` holding the fine-tuned encoder (a plain transformers folder),
``head.json`` (the classification head) and ``card.json`` (what the model is: name, version, base
model and revision, sha256 of the training data, held-out metrics). A version is published by
renaming a finished temporary folder to the next free number: a reader never sees half a model, and
a trainer killed mid-write leaves only a ``.tmp-*`` folder that nothing lists. Versions are
immutable; a re-training is a new version, so a result that names ``NAME@3`` names one model forever.

No torch here: the producer lists and resolves store models too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Model names: they are folder names and appear in ``NAME@VERSION`` specs.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,63})(?:@(?P<version>[0-9]{1,9}))?$")
CARD = "card.json"
HEAD = "head.json"
_TMP_PREFIX = ".tmp-"


class StoreError(Exception):
    """A store name, spec or folder that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class StoredModel:
    name: str
    version: int
    path: Path
    card: dict[str, Any]

    @property
    def spec(self) -> str:
        """How results and submissions name it: ``NAME@VERSION``."""
        return f"{self.name}@{self.version}"


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise StoreError(f"model name {name[:80]!r}: use 1-64 letters, digits and ._- (starting with a letter or "
                         "digit); it becomes a folder name and the NAME of NAME@VERSION")
    return name


def parse_spec(spec: str) -> tuple[str, int | None] | None:
    """``NAME`` or ``NAME@VERSION`` -> (name, version or None); None for anything else."""
    m = _SPEC.match(spec)
    if not m:
        return None
    return m["name"], int(m["version"]) if m["version"] else None


def _read_card(path: Path) -> dict[str, Any] | None:
    try:
        card = json.loads((path / CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def versions(store: Path, name: str) -> list[StoredModel]:
    """The published versions of ``name``, oldest first (folders without a readable card are skipped)."""
    folder = store / name
    found = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.name.isdigit() and entry.is_dir():
            card = _read_card(entry)
            if card is not None:
                found.append(StoredModel(name, int(entry.name), entry, card))
    return sorted(found, key=lambda m: m.version)


def list_models(store: Path) -> list[StoredModel]:
    """Every published version of every model, by name then version."""
    try:
        names = sorted(p.name for p in store.iterdir() if p.is_dir() and NAME_PATTERN.match(p.name))
    except OSError:
        return []
    return [m for name in names for m in versions(store, name)]


def lookup(store: Path, spec: str) -> StoredModel | None:
    """The stored model a spec names (``NAME``: its newest version), or None when the store has none
    of that name. ``NAME@VERSION`` of a name that exists but lacks that version raises, with the
    versions there are: a typo must not silently run another model."""
    parsed = parse_spec(spec)
    if parsed is None:
        return None
    name, version = parsed
    have = versions(store, name)
    if not have:
        return None
    if version is None:
        return have[-1]
    for model in have:
        if model.version == version:
            return model
    raise StoreError(f"model {name!r} has no version {version} in the model store (versions: "
                     f"{', '.join(str(m.version) for m in have)})")


def staging_dir(store: Path, name: str) -> Path:
    """A fresh folder to write a model into before :func:`publish` (same filesystem: rename is atomic)."""
    folder = store / check_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
    path.mkdir()
    return path


def publish(staged: Path, card: dict[str, Any]) -> StoredModel:
    """Give the staged model the next free version of its name and write its card; rename is atomic
    and fails when another trainer took that number first, so two trainers never share a version."""
    folder = staged.parent
    while True:
        have = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
        version = max(have, default=0) + 1
        full = {**card, "name": folder.name, "version": version}
        (staged / CARD).write_text(json.dumps(full, indent=2, ensure_ascii=False), encoding="utf-8")
        target = folder / str(version)
        try:
            os.rename(staged, target)  # fails if target exists (a non-empty directory, or any on race)
        except OSError:
            if target.exists():
                continue
            raise
        return StoredModel(folder.name, version, target, full)


def discard(staged: Path) -> None:
    shutil.rmtree(staged, ignore_errors=True)
