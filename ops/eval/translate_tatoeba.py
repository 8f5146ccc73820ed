"""BLEU and chrF (sacrebleu) of docqueue's translate engine on Tatoeba sentence pairs.

Runs the worker's own engine (sentence splitting, batching, the pair's model) on the English side of
``tatoeba/eng-<lang>.dev500.jsonl`` and scores against the other side. It needs a real translation
model: by default the pair's model from DOCQUEUE_TRANSLATE_MODELS (opus-mt), loaded from the HF
cache; ``--model PATH`` names one. Without one it says so and exits 2, it never downloads.

    python ops/eval/translate_tatoeba.py --to de [--model PATH] [--data ../shared/data] [--limit N]

Data: Tatoeba test sets as used by LASER (facebookresearch/LASER), CC BY 2.0 FR.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

#: Tatoeba file suffix per target language, and the sacrebleu tokenizer that suits it.
FILES = {"de": ("deu", "13a"), "fr": ("fra", "13a"), "es": ("spa", "13a"), "zh": ("cmn", "zh")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                        help="folder holding tatoeba/eng-<lang>.dev500.jsonl")
    parser.add_argument("--to", dest="target", choices=sorted(FILES), default="de", help="target language")
    parser.add_argument("--model", default=None, help="model (local path or HF id in the cache) for en->TARGET "
                        "[default: the en-TARGET entry of DOCQUEUE_TRANSLATE_MODELS]")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N pairs (0: all)")
    args = parser.parse_args()

    suffix, tokenize = FILES[args.target]
    path = args.data / "tatoeba" / f"eng-{suffix}.dev500.jsonl"
    if not path.exists():
        print(f"no Tatoeba data at {path}; pass --data", file=sys.stderr)
        return 2
    from docqueue.models_catalog import locate
    from docqueue.params import TranslateParams
    from docqueue.settings import get_settings

    settings = get_settings()
    spec = args.model or settings.translate_models.get(f"en-{args.target}")
    if spec is None or not locate(spec).available:
        print(f"translation model {spec or f'for en-{args.target}'!r} is not available on this machine; fetch it "
              f"with `docqueue models pull {spec}` where a hub is reachable, or pass --model PATH", file=sys.stderr)
        return 2
    import sacrebleu

    from workers.registry import Registry

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.limit:
        rows = rows[: args.limit]
    engine = Registry(settings).get("translate", spec)
    started = time.perf_counter()
    outcomes = engine.run([r["en"] for r in rows], TranslateParams.of({"from": "en", "to": args.target}))
    elapsed = time.perf_counter() - started
    hypotheses = []
    for outcome in outcomes:
        if not isinstance(outcome, dict):
            print(f"translation failed: {outcome.kind}: {outcome.message}", file=sys.stderr)
            return 1
        hypotheses.append(outcome["translation"])
    references = [[r[suffix] for r in rows]]
    bleu = sacrebleu.corpus_bleu(hypotheses, references, tokenize=tokenize)
    chrf = sacrebleu.corpus_chrf(hypotheses, references)
    print(f"tatoeba en-{args.target} n={len(rows)} model={spec} | BLEU {bleu.score:.1f} | chrF {chrf.score:.1f} | "
          f"{len(rows) / elapsed:.1f} sentences/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
