"""Windows per forward pass on one CPU thread: the worker's default budget against bigger ones.

    python ops/bench/forward_budget.py [--data ../shared/data] [--docs 200] [--rounds 2]

A worker child runs single-threaded with ``DOCQUEUE_FORWARD_MAX_TOKENS`` = 0 (auto: 256 padded
tokens per thread in fp32, about one 254-token window; 512 in bf16, chosen with this script). This
runs the classify engine on LEDGAR provisions, each configuration (dtype x budget) in a fresh spawned
process of its own, one thread, and prints documents per CPU-second and the process's peak RSS,
round by round (configurations interleaved, so a shared machine's load falls on all alike).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import click
from throughput_corpora import load_corpus
from throughput_services import ROOT

BUDGETS = (256, 512, 1024)
DTYPES = ("fp32", "bf16")


def _run(dtype: str, budget: int, texts: list[str], params: dict[str, Any]) -> tuple[float, float]:
    import torch

    from docqueue.params import ClassifyParams
    from docqueue.settings import get_settings
    from workers.registry import Registry

    torch.set_num_threads(1)
    engine = Registry(get_settings(device="cpu", cpu_dtype=dtype, forward_max_tokens=budget)).get("classify")
    typed = ClassifyParams.of(params)
    engine.run(texts[:8], typed)
    ordered = sorted(texts, key=len)
    cpu = time.process_time()
    for i in range(0, len(ordered), 32):  # a message's worth at a time, as a worker gets them
        engine.run(ordered[i : i + 32], typed)
    per_cpu_s = len(texts) / (time.process_time() - cpu)
    peak_mb = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_mb = int(line.split()[1]) / 1024
    return per_cpu_s, peak_mb


@click.command()
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=ROOT.parent / "shared" / "data",
              envvar="DOCQUEUE_BENCH_DATA", show_envvar=True, help="The public evaluation data (ledgar/).")
@click.option("--docs", type=int, default=200, show_default=True, help="LEDGAR provisions per run.")
@click.option("--rounds", type=int, default=2, show_default=True, help="Rounds (the median counts).")
def main(data: Path, docs: int, rounds: int) -> None:
    """Documents per CPU-second and peak RSS per (dtype, forward-pass token budget), one thread."""
    corpus = load_corpus("medium", data, docs)
    ctx = mp.get_context("spawn")
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        for _ in range(rounds):
            for dtype in DTYPES:
                for budget in BUDGETS:
                    got = pool.apply(_run, (dtype, budget, corpus.texts, corpus.params))
                    results.setdefault((dtype, budget), []).append(got)
                    click.echo(f"  {dtype} {budget:>5} tokens/forward: {got[0]:6.1f} docs/CPU-s, peak RSS "
                               f"{got[1]:5.0f} MB", err=True)
    for dtype in DTYPES:
        base = sorted(r[0] for r in results[(dtype, BUDGETS[0])])[rounds // 2]
        for budget in BUDGETS:
            runs = results[(dtype, budget)]
            rate = sorted(r[0] for r in runs)[rounds // 2]
            click.echo(f"{dtype} {budget:>5} tokens/forward: {rate:6.1f} docs/CPU-s ({rate / base:.2f}x the "
                       f"{BUDGETS[0]} budget), peak RSS {max(r[1] for r in runs):.0f} MB")


if __name__ == "__main__":
    main()
