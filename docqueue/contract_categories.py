"""The 41 CUAD clause categories, verbatim from CUAD's ``category_descriptions.csv``.

They are the vocabulary of a review result (``clauses[].category``) and of ``submit review
--categories``, so they live in the shared core: the producer validates a filter without importing
worker code. Spelled exactly as CUAD spells them ("Most Favored Nation", "Rofr/Rofo/Rofn").
"""

from __future__ import annotations

from typing import Final

CUAD_CATEGORIES: Final[tuple[str, ...]] = (
    "Document Name", "Parties", "Agreement Date", "Effective Date", "Expiration Date", "Renewal Term",
    "Notice Period to Terminate Renewal", "Governing Law", "Most Favored Nation", "Non-Compete", "Exclusivity",
    "No-Solicit of Customers", "Competitive Restriction Exception", "No-Solicit of Employees", "Non-Disparagement",
    "Termination for Convenience", "Rofr/Rofo/Rofn", "Change of Control", "Anti-Assignment",
    "Revenue/Profit Sharing", "Price Restrictions", "Minimum Commitment", "Volume Restriction",
    "IP Ownership Assignment", "Joint IP Ownership", "License Grant", "Non-Transferable License",
    "Affiliate License-Licensor", "Affiliate License-Licensee", "Unlimited/All-You-Can-Eat-License",
    "Irrevocable or Perpetual License", "Source Code Escrow", "Post-Termination Services", "Audit Rights",
    "Uncapped Liability", "Cap on Liability", "Liquidated Damages", "Warranty Duration", "Insurance",
    "Covenant Not to Sue", "Third Party Beneficiary",
)


def canonical_category(name: str) -> str | None:
    """The CUAD spelling of a category named in any case ('governing law' -> 'Governing Law')."""
    wanted = " ".join(name.split()).lower()
    return next((c for c in CUAD_CATEGORIES if c.lower() == wanted), None)
