"""The CUAD eval's precision comparison: a fixed subset of contracts, and embedding caches that an
fp32 and a bf16 run sharing one folder never mix up."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "ops" / "eval"))

import cuad
import cuad_data


def contract(name: str) -> cuad_data.Contract:
    return cuad_data.Contract(name, "This Agreement is made by A and B. It is governed by the laws of Ohio.", {}, {})


def test_subset_is_the_same_pick_every_time_in_name_order() -> None:
    contracts = [contract(f"c{i:02d}") for i in range(35)]
    picked = cuad.subset(contracts, 8)
    assert [c.name for c in picked] == [c.name for c in cuad.subset(contracts, 8)]
    assert len(picked) == 8 and [c.name for c in picked] == sorted(c.name for c in picked)
    assert {c.name for c in cuad.subset(contracts, 5)} <= {c.name for c in picked}
    assert cuad.subset(contracts, None) == contracts and cuad.subset(contracts, 40) == contracts


class FakeScorer:
    def __init__(self, runtime: str) -> None:
        self.runtime = runtime


def test_review_embedding_cache_is_kept_per_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def embed(scorer: Any, batch: list[tuple[str, list[Any]]]) -> list[np.ndarray]:
        calls.append(scorer.runtime)
        fill = 1.0 if scorer.runtime.endswith("fp32") else 2.0
        return [np.full((len(segs), 4), fill, dtype=np.float32) for _, segs in batch]

    monkeypatch.setattr(cuad_data, "embed_segments", embed)
    contracts = [contract("one")]
    log: list[str] = []
    for runtime, fill in (("torch-cpu-fp32", 1.0), ("torch-cpu-bf16", 2.0), ("torch-cpu-fp32", 1.0)):
        (done,) = cuad_data.embed_contracts(contracts, FakeScorer(runtime), tmp_path, log=log.append)  # type: ignore[arg-type]
        assert (done.vectors == fill).all()
    assert calls == ["torch-cpu-fp32", "torch-cpu-bf16"]  # the third run read the fp32 cache
