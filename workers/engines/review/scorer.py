"""Scoring candidate clauses against the 41 CUAD categories.

Two scorers share one interface, ``probabilities(texts_per_contract) -> [n_segments x 41]`` per
contract:

* :class:`PrototypeScorer` (default): each segment's MiniLM embedding, centred on its contract, is
  compared with one centred prototype per category (the mean embedding of real CUAD clauses of that
  category, built by ``ops/eval/build_review_prototypes.py`` from contracts *outside* the evaluation
  set) and with the centred category description. A small logistic calibrator turns (similarity, margin over the other
  categories, gap to the contract's best segment, ...) into a probability per category, so scores
  are comparable across categories and a per-category threshold decides what is reported.
* :class:`ClassifierScorer`: a fine-tuned sequence classifier whose ``id2label`` names CUAD
  categories scores segments directly (sigmoid for multi-label models, softmax otherwise).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workers.engines.embedding import SentenceEncoder
from workers.engines.forward import observe_inputs
from workers.engines.review.categories import CATEGORIES
from workers.engines.runtime import runtime_name
from workers.engines.windows import token_prefix, window_chars

#: The artifact shipped with the package (CUAD-derived, CC BY 4.0; see data/ATTRIBUTION.md).
DEFAULT_ARTIFACT = Path(__file__).parent / "data" / "prototypes_minilm.npz"

#: Candidates per category per contract that the calibrator sees (like a QA model's n-best list).
TOP_K = 50
#: The calibrator is fitted on each category's best few candidates per contract (where the decisions
#: are), and applied to all TOP_K.
CALIBRATION_TOP_K = 20
#: A contract with fewer segments is centred on the average CUAD clause instead of its own mean.
MIN_SEGMENTS_TO_CENTRE = 8
#: Order of the calibrator's shared features.
FEATURES = ("sim", "margin", "gap_to_best", "is_best", "is_paragraph", "is_limb", "log_chars")
#: The per-category slope multiplies the similarity by this, so L2 on it is on a sensible scale.
SLOPE_SCALE = 5.0


@dataclass
class Calibration:
    """logit = features . weights + bias[c] + slope[c] * SLOPE_SCALE * sim; report when p >= threshold[c]."""

    weights: np.ndarray  # [F]
    bias: np.ndarray  # [C]
    slope: np.ndarray  # [C]
    thresholds: np.ndarray  # [C]

    def probabilities(self, feats: np.ndarray, category: int) -> np.ndarray:
        logit = feats @ self.weights + self.bias[category] + self.slope[category] * SLOPE_SCALE * feats[:, 0]
        return 1.0 / (1.0 + np.exp(-logit))


@dataclass(frozen=True)
class SegmentInfo:
    """What the calibrator knows about a segment besides its embedding."""

    kind: str
    chars: int


def centred(vectors: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Segment embeddings minus what the whole contract has in common (its mean segment), renormalised.

    Every sentence of a supply agreement shares "supply agreement" in its embedding; removing the
    contract's mean leaves what sets one clause apart, which is what the centred prototypes encode
    (+5 AUPR points on the CUAD dev contracts). Contracts of a few segments have no useful mean, so
    they lose the average CUAD clause (``background``) instead.
    """
    if len(vectors) == 0:
        return vectors
    mean = vectors.mean(axis=0) if len(vectors) >= MIN_SEGMENTS_TO_CENTRE else background
    out = vectors - mean
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


def category_similarities(vectors: np.ndarray, prototypes: np.ndarray, proto_category: np.ndarray,
                          n_categories: int) -> np.ndarray:
    """[n_segments x n_categories]: best cosine similarity to any prototype of each category."""
    sims = vectors @ prototypes.T
    out = np.full((len(vectors), n_categories), -1.0, dtype=np.float32)
    for c in range(n_categories):
        cols = proto_category == c
        if cols.any() and len(vectors):
            out[:, c] = sims[:, cols].max(axis=1)
    return out


def candidate_features(sim: np.ndarray, infos: Sequence[SegmentInfo], top_k: int = TOP_K
                       ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per category: (indices of its top-k segments, their feature rows in ``FEATURES`` order).

    Features are relative to the contract (gap to its best segment) and to the other categories
    (margin), which is what separates "the governing-law sentence" from "a sentence about law".
    """
    n, n_cat = sim.shape
    if n == 0:
        return [(np.zeros(0, dtype=int), np.zeros((0, len(FEATURES)), dtype=np.float32)) for _ in range(n_cat)]
    kind = np.array([i.kind for i in infos])
    log_chars = np.log1p(np.array([i.chars for i in infos], dtype=np.float32))
    ordered = np.sort(sim, axis=1)
    second = ordered[:, -2] if n_cat > 1 else np.full(n, -1.0, dtype=np.float32)
    out = []
    for c in range(n_cat):
        col = sim[:, c]
        best_other = np.where(ordered[:, -1] == col, second, ordered[:, -1])
        idx = np.argsort(-col, kind="stable")[:top_k]
        feats = np.stack([col[idx], col[idx] - best_other[idx], col[idx] - col[idx[0]],
                          (np.arange(len(idx)) == 0).astype(np.float32),
                          (kind[idx] == "paragraph").astype(np.float32), (kind[idx] == "limb").astype(np.float32),
                          log_chars[idx]], axis=1).astype(np.float32)
        out.append((idx, feats))
    return out


class PrototypeScorer:
    """MiniLM embeddings against CUAD clause prototypes, calibrated per category."""

    kind = "prototypes"
    composes_paragraphs = True

    def __init__(self, encoder: SentenceEncoder, prototypes: np.ndarray, proto_category: np.ndarray,
                 background: np.ndarray, calibration: Calibration, meta: dict[str, Any], artifact: str = "") -> None:
        self.encoder = encoder
        self.runtime = encoder.runtime
        self.background = background.astype(np.float32)
        self.prototypes = prototypes.astype(np.float32)
        self.proto_category = proto_category.astype(int)
        self.calibration = calibration
        self.meta = meta
        self.artifact = artifact
        self.categories = list(CATEGORIES)
        expected = meta.get("encoder")
        if expected and expected != encoder.ref.spec:
            raise ValueError(f"prototypes {artifact or ''} were built with {expected!r}, not {encoder.ref.spec!r}")

    @classmethod
    def load(cls, encoder: SentenceEncoder, artifact: Path = DEFAULT_ARTIFACT) -> PrototypeScorer:
        with np.load(artifact, allow_pickle=False) as data:
            if [str(c) for c in data["categories"]] != list(CATEGORIES):
                raise ValueError(f"{artifact} does not list the 41 CUAD categories in CUAD's order")
            return cls(encoder, data["prototypes"], data["proto_category"], data["background"],
                       Calibration(data["weights"], data["bias"], data["slope"], data["thresholds"]),
                       json.loads(str(data["meta"])), artifact.name)

    def save(self, path: Path) -> None:
        """Write the artifact (float16 prototypes keep it under a megabyte)."""
        cal = self.calibration
        np.savez_compressed(path, categories=np.array(CATEGORIES), prototypes=self.prototypes.astype(np.float16),
                            proto_category=self.proto_category.astype(np.int16), background=self.background,
                            weights=cal.weights,
                            bias=cal.bias, slope=cal.slope, thresholds=cal.thresholds,
                            meta=np.array(json.dumps(self.meta, sort_keys=True)))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings; the encoder batches by token budget, so a 100-page contract's
        thousands of segments go through in bounded memory."""
        if not texts:
            return np.zeros((0, self.prototypes.shape[1]), dtype=np.float32)
        return self.encoder.encode(list(texts)).numpy().astype(np.float32)

    def similarities(self, vectors: np.ndarray) -> np.ndarray:
        """One contract's segments against every category (prototypes are centred the same way)."""
        return category_similarities(centred(vectors, self.background), self.prototypes, self.proto_category,
                                     len(self.categories))

    def probabilities(self, vectors: np.ndarray, infos: Sequence[SegmentInfo]) -> np.ndarray:
        """[n_segments x 41] calibrated probabilities; segments outside a category's top-k get 0."""
        sim = self.similarities(vectors)
        probs = np.zeros_like(sim)
        for c, (idx, feats) in enumerate(candidate_features(sim, infos)):
            if len(idx):
                probs[idx, c] = self.calibration.probabilities(feats, c)
        return probs

    @property
    def thresholds(self) -> np.ndarray:
        return self.calibration.thresholds

    def describe(self) -> dict[str, Any]:
        return {"scorer": self.kind, "encoder": self.encoder.ref.spec, "encoder_revision": self.encoder.revision,
                "artifact": self.artifact, "artifact_version": self.meta.get("version"),
                "prototypes": len(self.prototypes)}


class ClassifierScorer:
    """A fine-tuned sequence classifier over segments; its ``id2label`` must name CUAD categories.

    Labels that are not CUAD categories (e.g. an ``O``/``none`` class) are ignored; categories the
    model does not know get probability 0.
    """

    kind = "classifier"
    composes_paragraphs = False

    def __init__(self, location: str, revision: str | None, device: torch.device, max_length: int = 256,
                 batch_size: int = 32, threshold: float = 0.5, dtype: torch.dtype = torch.float32) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(location, revision=revision)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            location, revision=revision, dtype=dtype).to(device).eval()
        self.device = device
        self.runtime = runtime_name(device, dtype)
        self.location = location
        # the model's position table bounds the window (a long segment is read from its start)
        self.max_length = min(max_length, int(getattr(self.model.config, "max_position_embeddings", max_length)))
        self.batch_size = batch_size
        self.categories = list(CATEGORIES)
        id2label = {int(k): str(v) for k, v in self.model.config.id2label.items()}
        self.columns = {i: CATEGORIES.index(label) for i, label in id2label.items() if label in CATEGORIES}
        if not self.columns:
            raise ValueError(f"model {location!r} has no CUAD category among its labels {sorted(id2label.values())}")
        self.multi_label = self.model.config.problem_type == "multi_label_classification"
        self._thresholds = np.full(len(CATEGORIES), threshold, dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> list[str]:
        """A classifier reads the text itself: the 'embedding' is the text."""
        return list(texts)

    def _count(self, texts: Sequence[str]) -> list[int]:
        return [len(x) for x in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    @torch.inference_mode()
    def probabilities(self, vectors: Sequence[str], infos: Sequence[SegmentInfo]) -> np.ndarray:
        # a segment is read from its start (truncation); tokenise no more of it than that start
        size = window_chars(self.max_length)
        texts = [token_prefix(t, self._count, self.max_length, size) for t in vectors]
        out = np.zeros((len(texts), len(CATEGORIES)), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self.tokenizer([texts[i] for i in idx], truncation=True, max_length=self.max_length,
                                 padding=True, return_tensors="pt").to(self.device)
            observe_inputs(enc)
            logits = self.model(**enc).logits.float()
            probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
            for col, cat in self.columns.items():
                out[idx, cat] = probs[:, col].cpu().numpy()
        return out

    @property
    def thresholds(self) -> np.ndarray:
        return self._thresholds

    def describe(self) -> dict[str, Any]:
        return {"scorer": self.kind, "classifier": self.location, "labels": len(self.columns)}
