"""Where an encoder's ONNX Runtime int8 artifact lives, and the manifest that says what it is.

``docqueue models optimize MODEL`` writes the artifact; a worker configured to run that model on ONNX
Runtime (``DOCQUEUE_ONNX_MODELS``) reads it. Both sides need the same answer to "where", and the
producer never imports torch, so the answer lives here, in the core.

The artifact sits beside the model (``<model folder>/onnx-int8/``), or under ``DOCQUEUE_ONNX_DIR``
when that is set (a model folder that is read-only, a shared volume). Its manifest records the
model's source revision: a worker refuses an artifact built from another revision of the model,
since its scores would silently belong to the old weights.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from docqueue.errors import ModelUnavailableError
from docqueue.models_catalog import locate
from docqueue.settings import Settings

#: The runtime an artifact provides, as results' provenance names it.
ONNX_INT8 = "onnx-cpu-int8"
#: Folder name of the artifact beside the model, and the files inside it.
ARTIFACT_FOLDER, MODEL_FILE, MANIFEST_FILE = "onnx-int8", "model.onnx", "docqueue-onnx.json"


@dataclass
class Manifest:
    """What an artifact is: the model and revision it was exported from, how, and its quality gate."""

    source: str
    source_revision: str | None
    runtime: str = ONNX_INT8
    quantization: str = "dynamic int8, per-channel weights (onnxruntime.quantization), fused BERT graph"
    onnxruntime: str = ""
    created_at: str = ""
    gate: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        (folder / MANIFEST_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        data = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "--", spec.strip("/")) or "model"


def artifact_dir(settings: Settings, spec: str, revision: str | None = None) -> Path:
    """The artifact folder of a model: under ``DOCQUEUE_ONNX_DIR`` if set, else beside the model."""
    if settings.onnx_dir:
        return Path(settings.onnx_dir).expanduser() / _slug(spec)
    found = locate(spec, revision)
    if not found.available or found.path is None:
        raise ModelUnavailableError(f"model {spec!r} is not on this machine, so it has no ONNX artifact; fetch "
                                    f"it first (docqueue models pull {spec})")
    return Path(found.path) / ARTIFACT_FOLDER


def read_artifact(settings: Settings, spec: str, revision: str | None, expected_revision: str | None) -> Path:
    """The artifact's model file, checked against the model revision the worker would load;
    a missing or stale artifact is one clear ``ModelUnavailableError`` saying what to run."""
    folder = artifact_dir(settings, spec, revision)
    rerun = f"run `docqueue models optimize {spec}`"
    if not (folder / MODEL_FILE).is_file() or not (folder / MANIFEST_FILE).is_file():
        raise ModelUnavailableError(f"model {spec!r} is configured for {ONNX_INT8} (DOCQUEUE_ONNX_MODELS) but "
                                    f"has no artifact at {folder}; {rerun}")
    manifest = Manifest.load(folder)
    if manifest.source_revision != expected_revision:
        raise ModelUnavailableError(
            f"the {ONNX_INT8} artifact at {folder} was built from revision {manifest.source_revision!r} of "
            f"{spec!r}, not the {expected_revision!r} this worker loads; {rerun} again")
    return folder / MODEL_FILE
