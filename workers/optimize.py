"""Build the ONNX Runtime int8 artifact of a sentence encoder, and gate it on quality.

    python -m workers.optimize MODEL [--revision R] [--gate-data FILE.jsonl ...] [--min-agreement 0.9]

``docqueue models optimize`` runs this module in a subprocess: the export needs torch, and the
producer never imports torch. Steps, chosen by measurement on MiniLM (docs/performance/cpu-runtime.md):

1. export with ``torch.onnx`` (the TorchScript exporter; eager attention, so ONNX Runtime's BERT
   optimizer recognises and fuses the attention, embedding and layer-norm blocks: unfused, int8
   gained far less);
2. fuse (``onnxruntime.transformers.optimizer``, model type ``bert``);
3. quantize weights to int8 per output channel (``quantize_dynamic(per_channel=True)``: per-tensor
   weights lose too much on these small matrices), activations quantized dynamically at run time;
4. the quality gate: the int8 and the fp32 torch model embed the gate texts through the very
   windows and pooling a worker uses; the cosine of each pair and the agreement of their nearest
   labels (each model embedding the label names itself, as in classify) are printed, and an
   artifact below ``DOCQUEUE_ONNX_MIN_AGREEMENT`` is refused (exit status 3, nothing written).

The artifact replaces the old one only when accepted (built in a temporary folder, then renamed).
Optimum was not used: it is one more heavy dependency for the same three onnxruntime calls.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from docqueue.errors import DocqueueError
from docqueue.onnx_artifacts import MODEL_FILE, Manifest, artifact_dir
from docqueue.settings import get_settings
from workers.engines.embedding import ModelRef, SentenceEncoder, resolve_model
from workers.engines.onnx_encoder import INSTALL_HINT, OnnxSentenceEncoder, model_revision

#: Exit statuses: refused by the quality gate; could not build (bad model, missing package...).
REFUSED, FAILED = 3, 2
#: Gate data a source checkout ships (tests/fixtures): 40 LEDGAR provisions of 8 labels.
DEFAULT_GATE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ledgar_fewshot.jsonl"


class _LastHidden(torch.nn.Module):
    """The encoder as a function of (input_ids, attention_mask) -> last hidden states."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return out


def export(ref: ModelRef, folder: Path, say: Any) -> Path:
    """fp32 ONNX export, fused graph, int8 per-channel weights; returns the int8 model file."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError as e:
        raise DocqueueError(INSTALL_HINT) from e
    import onnx
    from transformers import AutoModel

    model = AutoModel.from_pretrained(ref.location, revision=ref.revision, dtype=torch.float32,
                                      attn_implementation="eager").eval()
    config = model.config
    sample = torch.ones((2, 16), dtype=torch.long)
    raw, fused, quantized = folder / "fp32.onnx", folder / "fused.onnx", folder / MODEL_FILE
    began = time.perf_counter()
    axes = {0: "batch", 1: "tokens"}
    torch.onnx.export(_LastHidden(model), (sample, sample), str(raw), input_names=["input_ids", "attention_mask"],
                      output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                      dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes})
    say(f"exported fp32 graph ({raw.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - began:.0f}s")
    optimized = optimize_model(str(raw), model_type="bert", num_heads=int(config.num_attention_heads),
                               hidden_size=int(config.hidden_size))
    stats = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    optimized.save_model_to_file(str(fused))
    say(f"fused: {', '.join(f'{k} {v}' for k, v in stats.items()) or 'nothing'}")
    quantize_dynamic(str(fused), str(quantized), per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    raw.unlink()
    fused.unlink()
    say(f"quantized int8, per-channel weights ({quantized.stat().st_size / 2**20:.0f} MB)")
    return quantized


def read_gate(paths: list[Path]) -> tuple[list[str], list[str]]:
    """Texts and their labels from JSONL rows ``{"text": ..., "label": ...}`` (or ``"labels": [...]``,
    the first counting)."""
    texts, labels = [], []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            label = row.get("label") or (row.get("labels") or [None])[0]
            if isinstance(row.get("text"), str) and row["text"].strip() and isinstance(label, str):
                texts.append(row["text"])
                labels.append(label)
    if len(set(labels)) < 2:
        raise DocqueueError(f"the gate data {', '.join(map(str, paths))} needs texts of at least two labels "
                            "(JSONL rows with 'text' and 'label')")
    return texts, labels


def gate(reference: SentenceEncoder, candidate: SentenceEncoder, texts: list[str], gold: list[str]
         ) -> dict[str, Any]:
    """How closely ``candidate`` follows ``reference`` on the gate texts (and each one's accuracy)."""
    names = sorted(set(gold))
    measured: dict[str, Any] = {"documents": len(texts), "labels": len(names)}
    picks = {}
    for name, encoder in (("fp32", reference), ("int8", candidate)):
        docs, labels = encoder.encode(texts), encoder.encode(names)
        measured[f"{name}_docs"] = docs
        picks[name] = (docs @ labels.T).argmax(1).tolist()
        measured[f"{name}_accuracy"] = round(sum(names[p] == g for p, g in zip(picks[name], gold, strict=True))
                                             / len(texts), 4)
    cosine = (measured.pop("fp32_docs") * measured.pop("int8_docs")).sum(1)
    measured["cosine_mean"] = round(float(cosine.mean()), 4)
    measured["cosine_min"] = round(float(cosine.min()), 4)
    measured["agreement"] = round(sum(a == b for a, b in zip(picks["fp32"], picks["int8"], strict=True))
                                  / len(texts), 4)
    return measured


def optimize(spec: str, revision: str | None, gate_data: list[Path], min_agreement: float, say: Any
             ) -> tuple[bool, Manifest, Path]:
    """Build, gate and (if accepted) install the artifact; returns (accepted, manifest, folder)."""
    import onnxruntime

    settings = get_settings()
    ref = resolve_model(spec, revision)
    target = artifact_dir(settings, spec, revision)
    source_revision = model_revision(ref)
    texts, gold = read_gate(gate_data)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # as a worker child runs it: the gate also shows the per-core speed
    with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as tmp:
        built = export(ref, Path(tmp), say)
        reference = SentenceEncoder(ref, torch.device("cpu"), max_length=settings.max_tokens_per_document,
                                    dtype=torch.float32)
        candidate = OnnxSentenceEncoder(ref, built, source_revision, max_length=settings.max_tokens_per_document)
        measured = gate(reference, candidate, texts, gold)
        measured.update(min_agreement=min_agreement, data=[str(p) for p in gate_data])
        accepted = measured["agreement"] >= min_agreement
        measured["accepted"] = accepted
        manifest = Manifest(source=spec, source_revision=source_revision, onnxruntime=onnxruntime.__version__,
                            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), gate=measured)
        if accepted:
            manifest.save(Path(tmp))
            if target.exists():
                shutil.rmtree(target)
            Path(tmp).rename(target)
            target.chmod(0o755)  # a temporary folder is private; workers of another user read the artifact
            Path(tmp).mkdir()  # the context manager removes its (now empty) folder
    return accepted, manifest, target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.optimize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="sentence-encoder model spec (as in DOCQUEUE_CLASSIFY_MODEL)")
    parser.add_argument("--revision", default=None)
    parser.add_argument("--gate-data", type=Path, action="append", default=None,
                        help=f"JSONL with text and label per row (repeatable) [default: {DEFAULT_GATE}]")
    parser.add_argument("--min-agreement", type=float, default=None)
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON on stdout")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    gate_data = args.gate_data or [DEFAULT_GATE]
    min_agreement = args.min_agreement if args.min_agreement is not None else get_settings().onnx_min_agreement
    try:
        missing = [str(p) for p in gate_data if not p.is_file()]
        if missing:
            raise DocqueueError(f"gate data not found: {', '.join(missing)} (give --gate-data FILE.jsonl)")
        accepted, manifest, target = optimize(args.model, args.revision, gate_data, min_agreement, say)
    except (DocqueueError, OSError, ValueError) as e:
        say(f"error: {e}")
        return FAILED
    g = manifest.gate
    say(f"quality vs fp32 on {g['documents']} documents, {g['labels']} labels: nearest-label agreement "
        f"{g['agreement']:.3f} (threshold {min_agreement}), cosine mean {g['cosine_mean']:.4f} min "
        f"{g['cosine_min']:.4f}; accuracy fp32 {g['fp32_accuracy']:.3f}, int8 {g['int8_accuracy']:.3f}")
    say(f"artifact written to {target}" if accepted else "refused: agreement below the threshold; nothing written")
    if args.json:
        print(json.dumps({"accepted": accepted, "artifact": str(target) if accepted else None,
                          "manifest": manifest.__dict__}))
    return 0 if accepted else REFUSED


if __name__ == "__main__":
    sys.exit(main())
