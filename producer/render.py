"""Human-readable rendering of batches and results (rich tables), kept apart from the CLI wiring."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.table import Table


def result_brief(task: str, result: dict[str, Any] | None) -> str:
    """One short line describing a result, for tables."""
    if not result:
        return ""
    if task == "classify":
        scores = result.get("scores") or {}
        chosen = result.get("labels", [result.get("label")])  # several when multi-label, maybe none
        if not chosen:
            return f"none above threshold (top: {result.get('label')})"
        return ", ".join(f"{x} ({scores[x]:.2f})" if isinstance(scores.get(x), (int, float)) else str(x)
                         for x in chosen)
    return ", ".join(f"{k}={v}" for k, v in list(result.items())[:3])


def summary_table(counts: dict[str, Any]) -> Table:
    table = Table(title=f"batch {counts['batch']} ({counts['task']})")
    table.add_column("state")
    table.add_column("documents", justify="right")
    for state in ("queued", "running", "succeeded", "failed"):
        table.add_row(state, str(counts[state]))
    table.add_row("total", str(counts["total"]), style="bold")
    return table


def results_table(rows: list[dict[str, Any]], limit: int = 50) -> Table:
    table = Table(title="results" if len(rows) <= limit else f"results (first {limit} of {len(rows)})")
    table.add_column("document", overflow="fold")
    table.add_column("status")
    table.add_column("result / error", overflow="fold")
    for row in rows[:limit]:
        if row["error"]:
            detail = f"[red]{row['error']['kind']}[/red]: {row['error']['message']}"
        else:
            detail = result_brief(row["task"], row["result"])
        table.add_row(row["document"], row["status"], detail)
    return table


def error_kinds(rows: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["error"]["kind"] for r in rows if r["error"])
