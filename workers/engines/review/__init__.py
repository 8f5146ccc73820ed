"""Contract review: clauses in CUAD's 41 categories with offsets, key fields by rule, risk flags.

``segment`` cuts a contract into candidate clauses, ``scorer`` scores them (prototypes over MiniLM
embeddings, or a fine-tuned classifier), ``fields`` and ``risks`` apply rules, ``engine`` assembles
the result, ``loader`` tells which scorer a model spec means (``workers.loading`` builds it).
"""

from __future__ import annotations

from workers.engines.review.engine import ContractReviewer

__all__ = ["ContractReviewer"]
