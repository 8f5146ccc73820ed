"""CUAD categories as the engine uses them (the list itself is in the shared core)."""

from __future__ import annotations

from typing import Final

from docqueue.contract_categories import CUAD_CATEGORIES

CATEGORIES: Final[tuple[str, ...]] = CUAD_CATEGORIES
