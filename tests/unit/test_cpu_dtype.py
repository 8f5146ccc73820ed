"""The CPU precision policy: bf16 where the processor has it, one copy of the weights, and every
result saying which runtime produced it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from docqueue.errors import ConfigurationError
from docqueue.params import ClassifyParams
from docqueue.settings import get_settings
from workers.device import cpu_flags, cpu_has_bf16, inference_dtype
from workers.engines.embedding import OFFLINE_MINILM, SentenceEncoder, resolve_model
from workers.engines.runtime import runtime_name
from workers.loading import device_and_dtype
from workers.pipeline import with_runtime
from workers.registry import Registry

CPU = torch.device("cpu")
ZEN4_FLAGS = "fpu vme avx2 avx512f avx512_bf16 avx512_vnni"
TEXTS = [
    "This Agreement shall be governed by the laws of the State of New York.",
    "Each party shall keep the other party's Confidential Information secret and use it only for this "
    "Agreement, and shall return or destroy it on termination.",
    "Either party may terminate this Agreement on thirty days' written notice to the other party.",
]


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: {ZEN4_FLAGS}\n")
    flags = cpu_flags(str(info))
    assert "avx512_bf16" in flags and cpu_has_bf16(flags)
    assert not cpu_has_bf16(frozenset({"avx2", "avx512f"}))  # AVX-512 without BF16 emulates it: slower
    assert cpu_has_bf16(frozenset({"amx_bf16"}))  # Sapphire Rapids
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_dtype_policy() -> None:
    assert inference_dtype(CPU, "fp32") == torch.float32
    assert inference_dtype(CPU, "bf16") == torch.bfloat16
    assert inference_dtype(CPU, "auto") == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
    with pytest.raises(ConfigurationError, match="fp16"):
        inference_dtype(CPU, "fp16")
    assert runtime_name(CPU, torch.bfloat16) == "torch-cpu-bf16"
    assert runtime_name(torch.device("cuda:0"), torch.float16) == "torch-cuda-fp16"


def test_setting_accepts_only_the_three_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCQUEUE_CPU_DTYPE", "bf16")
    assert get_settings().cpu_dtype == "bf16"
    monkeypatch.setenv("DOCQUEUE_CPU_DTYPE", "fp16")
    with pytest.raises(ValidationError, match="cpu_dtype"):
        get_settings()


@pytest.fixture(scope="module")
def encoders() -> dict[str, SentenceEncoder]:
    ref = resolve_model(OFFLINE_MINILM)
    return {name: SentenceEncoder(ref, CPU, dtype=dtype)
            for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}


def test_bf16_encoder_holds_one_copy_and_agrees_with_fp32(encoders: dict[str, SentenceEncoder]) -> None:
    fp32, bf16 = encoders["fp32"], encoders["bf16"]
    # one copy of the weights: the linear layers' in bf16, the embedding tables and layer norms in fp32
    # (no fp32 master copy beside a bf16 one, as autocast over fp32 weights would cast or cache)
    linear = {n for n, m in bf16.model.named_modules() if isinstance(m, torch.nn.Linear)}
    for name, param in bf16.model.named_parameters():
        expected = torch.bfloat16 if name.rsplit(".", 1)[0] in linear else torch.float32
        assert param.dtype == expected, name
    bytes_of = {name: sum(p.numel() * p.element_size() for p in e.model.parameters()) for name, e in encoders.items()}
    linear_params = sum(p.numel() for n, p in bf16.model.named_parameters() if n.rsplit(".", 1)[0] in linear)
    assert bytes_of["bf16"] == bytes_of["fp32"] - 2 * linear_params
    assert (fp32.runtime, bf16.runtime) == ("torch-cpu-fp32", "torch-cpu-bf16")
    # the matrix products run in bf16, the rest in fp32: the hidden states come out of a layer norm in fp32
    ids = bf16.tokenizer(TEXTS[:1], return_tensors="pt")
    seen: list[torch.dtype] = []
    hook = bf16.model.encoder.layer[0].attention.self.query.register_forward_hook(
        lambda _m, _i, out: seen.append(out.dtype))
    try:
        hidden = bf16._forward(ids["input_ids"], ids["attention_mask"])
    finally:
        hook.remove()
    assert seen == [torch.bfloat16] and hidden.dtype == torch.float32
    a, b = fp32.encode(TEXTS), bf16.encode(TEXTS)
    assert b.dtype == torch.float32  # pooled and normalised in fp32 whatever the model ran in
    cosine = (a * b).sum(-1)
    assert float(cosine.min()) > 0.995, cosine
    # the texts stay apart the same way: the nearest other text of each is the same in both
    assert ((a @ a.T).fill_diagonal_(-1).argmax(1) == (b @ b.T).fill_diagonal_(-1).argmax(1)).all()


def test_registry_follows_the_setting_and_results_name_the_runtime() -> None:
    for choice, runtime in (("fp32", "torch-cpu-fp32"), ("bf16", "torch-cpu-bf16")):
        settings = get_settings(device="cpu", cpu_dtype=choice)
        assert device_and_dtype(settings)[1] == (torch.float32 if choice == "fp32" else torch.bfloat16)
        registry = Registry(settings)
        engine = registry.get("classify")
        outcomes = with_runtime(engine.run(TEXTS[:1], ClassifyParams(labels=["governing law", "payment"])), engine)
        assert isinstance(outcomes[0], dict) and outcomes[0]["runtime"] == runtime
        assert outcomes[0]["label"] == "governing law"


def test_a_causal_lm_follows_the_setting(tmp_path: Path) -> None:
    """The llm engines' model follows DOCQUEUE_CPU_DTYPE like every other model (it was loaded as if
    the setting were ``auto``, so ``fp32`` on a bf16 processor still gave bf16)."""
    from tests.tiny_llms import build_llama_chat
    from workers.loading import build_causal_lm

    chat = str(build_llama_chat(tmp_path / "llama-chat"))
    for choice, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        llm = build_causal_lm(get_settings(device="cpu", cpu_dtype=choice, model_dirs=[str(tmp_path)]), chat, None)
        assert {p.dtype for p in llm.model.parameters()} == {dtype}, choice
