"""What ran a model, as each result's provenance names it (``runtime``).

The same model gives slightly different scores in fp32, bf16 or int8, so a result records which one
produced it next to the model id and revision. Engines compute the name from the device and dtype the
loader (:mod:`workers.loading`) chose; they do not know the device policy themselves.
"""

from __future__ import annotations

import torch

_SHORT = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def runtime_name(device: torch.device, dtype: torch.dtype) -> str:
    """``torch-<device>-<dtype>``, e.g. ``torch-cpu-bf16`` or ``torch-cuda-fp16``."""
    return f"torch-{device.type}-{_SHORT.get(dtype, str(dtype))}"
