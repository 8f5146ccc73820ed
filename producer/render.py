"""Human-readable rendering of batches and results (rich tables), kept apart from the CLI wiring."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.table import Table

from docqueue.models_catalog import ConfiguredModel


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 job``, ``2 jobs``: counts read as English in messages."""
    return f"{n} {word if n == 1 else words or word + 's'}"


def id_column(table: Table, name: str, values: list[str]) -> None:
    """A column of ids (batch, dead letter, node): never wrapped, since a folded id cannot be copied
    back into a command; the other columns (folding) give way when the terminal is narrow. Output
    that is not a terminal is laid out for 80 columns."""
    table.add_column(name, no_wrap=True, min_width=max([len(name), *map(len, values)]))


def counts_brief(counts: dict[str, int]) -> str:
    """``10 succeeded, 2 failed``: the non-zero states, one cell instead of a column per state."""
    return ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "none"


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
    if task == "summarize":
        chunks = result.get("chunks")
        where = f", {chunks} chunks" if isinstance(chunks, int) and chunks > 1 else ""
        return f"{_clip(str(result.get('summary', '')))} [{result.get('engine')}{where}]"
    if task == "translate":
        return (f"{result.get('source_language')}→{result.get('target_language')}: "
                f"{_clip(str(result.get('translation', '')))}")
    if task == "review":
        return _review_brief(result)
    if task == "generate":
        return f"{_clip(str(result.get('content', '')))} [{result.get('finish_reason')}]"
    return ", ".join(f"{k}={v}" for k, v in list(result.items())[:3])


def _review_brief(result: dict[str, Any]) -> str:
    """'12 clauses; law New York; 2004-01-01; risks: uncapped_liability (high), ...'"""
    fields = result.get("fields") or {}
    parts = [f"{len(result.get('clauses') or [])} clauses"]
    names = [p.get("name") for p in fields.get("parties") or [] if isinstance(p, dict)]
    if names:
        parts.append(" / ".join(str(n) for n in names[:2]))
    if fields.get("governing_law"):
        parts.append(f"law {fields['governing_law']}")
    if fields.get("agreement_date"):
        parts.append(str(fields["agreement_date"]))
    risks = [f"{r.get('flag')} ({r.get('severity')})" for r in result.get("risks") or []]
    parts.append("risks: " + (", ".join(risks) if risks else "none"))
    return "; ".join(parts)


def _clip(text: str, width: int = 120) -> str:
    """A long text's start on one line, for a table cell."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def models_table(rows: list[ConfiguredModel]) -> Table:
    """``docqueue models list``: one row per configured model."""
    table = Table(title="configured models")
    for column in ("task", "engine", "model", "available", "size"):
        table.add_column(column, overflow="fold")
    for r in rows:
        engine = r.engine + (f" {r.pair}" if r.pair and r.pair != "*" else "")
        if r.task == "summarize":
            engine += " (default)" if r.default else ""
        state = "[green]yes[/green]" if r.location.available else "[red]no[/red]"
        model = r.spec + (f"@{r.revision}" if r.revision else "")
        table.add_row(r.task, engine, model, state, _size(r.location.size_bytes))
    return table


def summary_table(counts: dict[str, Any]) -> Table:
    table = Table(title=f"{counts['task']} batch {counts['batch']}", min_width=48)
    table.add_column("state")
    table.add_column("documents", justify="right")
    for state in ("pending", "queued", "running", "succeeded", "failed", "cancelled"):
        if state != "cancelled" or counts.get(state):
            table.add_row(state, str(counts.get(state, 0)))
    table.add_row("total", str(counts["total"]), style="bold")
    if counts.get("rejected"):
        table.add_row("messages refused", str(counts["rejected"]), style="red")
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
        # an export row is named by its id (or row number); a copied result says so
        name = row["document"] + (f" #{row.get('id') or row['row']}" if row.get("row") is not None else "")
        status = row["status"] + (" (reused)" if row.get("reused_from") else "")
        table.add_row(name, status, detail)
    return table


def error_kinds(rows: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["error"]["kind"] for r in rows if r["error"])
