"""Choosing the torch device and thread count for this worker process."""

from __future__ import annotations

import os

import torch

from docqueue.errors import ConfigurationError


def resolve_device(spec: str) -> torch.device:
    """``auto`` picks the first GPU when there is one, else the CPU; ``cuda:N`` must exist."""
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigurationError(f"device {spec!r} requested but torch sees no CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigurationError(f"device {spec!r} requested but only {torch.cuda.device_count()} GPU(s)")
    return device


def inference_dtype(device: torch.device) -> torch.dtype:
    """Half precision where the device runs it natively; float32 on the CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def configure_threads(processes: int) -> int:
    """Split the cores between this host's worker processes so they do not oversubscribe."""
    threads = max(1, (os.cpu_count() or 1) // max(1, processes))
    torch.set_num_threads(threads)
    return threads
