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


#: ``DOCQUEUE_CPU_DTYPE`` values: ``auto`` is bf16 where the processor computes it natively.
CPU_DTYPES = ("auto", "fp32", "bf16")
#: CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic: AVX-512 BF16 (Zen 4, Cooper Lake) or
#: AMX (Sapphire Rapids). Without them torch emulates bf16 and runs slower than fp32.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The processor's feature flags (empty where ``/proc/cpuinfo`` does not exist)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether this CPU multiplies bf16 natively (then bf16 is ~1.7x fp32 on encoders, measured
    with ``ops/bench/throughput.py``)."""
    return bool((cpu_flags() if flags is None else flags) & BF16_CPU_FLAGS)


def inference_dtype(device: torch.device, cpu_dtype: str = "auto") -> torch.dtype:
    """The weights' and activations' dtype: half precision where the device runs it natively.

    On CUDA, bf16 where supported, else fp16. On the CPU, ``cpu_dtype`` (``DOCQUEUE_CPU_DTYPE``)
    decides: ``auto`` is bf16 on a processor with native bf16 (:data:`BF16_CPU_FLAGS`) and fp32
    elsewhere; ``bf16`` and ``fp32`` force one. Models load their weights in that dtype, so a process
    holds one copy of them; the CPU sentence encoder in bf16 loads only its linear layers' weights
    in bf16 and runs under autocast (:class:`workers.engines.embedding.SentenceEncoder`).
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if cpu_dtype not in CPU_DTYPES:
        raise ConfigurationError(f"cpu dtype must be one of {', '.join(CPU_DTYPES)}, not {cpu_dtype!r}")
    if cpu_dtype == "bf16" or (cpu_dtype == "auto" and cpu_has_bf16()):
        return torch.bfloat16
    return torch.float32


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow), not
    the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def worker_processes(requested: int, pool: str, device: torch.device) -> int:
    """How many worker processes to run: as requested, or (``0``) the recommended number.

    On a GPU, one process: it owns the device (run one worker per GPU with ``--device cuda:N``). On
    the CPU, one single-threaded process per usable core: measured with ``ops/bench/throughput.py``,
    this beats one process using every core by a wide margin (padding and thread synchronisation
    cost more than intra-op parallelism saves on models of this size).
    """
    if pool == "solo":
        return 1
    if requested > 0:
        return requested
    return 1 if device.type == "cuda" else usable_cores()


#: Padded tokens per forward pass and CPU thread. Measured single-threaded on MiniLM
#: (ops/bench/throughput.py corpora): 256-1024 tokens run medium texts ~40% faster than batches of 32
#: (8k tokens, whose attention matrices spill the caches), and 256 runs short sentences fastest.
CPU_TOKENS_PER_THREAD = 256
#: The same in bf16, where 512 tokens (two windows) ran LEDGAR provisions 9% faster per CPU-second
#: than 256 and 1024 no faster (ops/bench/forward_budget.py, two rounds); fp32 was flat (0.97-1.01x).
CPU_BF16_TOKENS_PER_THREAD = 512


def forward_token_budget(configured: int, message_budget: int, device: torch.device,
                         dtype: torch.dtype = torch.float32) -> int:
    """Padded tokens one forward pass may hold: as configured, else a GPU takes a whole message's
    budget and a CPU a small budget per thread of this process (larger in bf16)."""
    if configured > 0:
        return configured
    if device.type == "cuda":
        return message_budget
    per_thread = CPU_BF16_TOKENS_PER_THREAD if dtype == torch.bfloat16 else CPU_TOKENS_PER_THREAD
    return min(message_budget, per_thread * max(1, torch.get_num_threads()))


def configure_threads(processes: int) -> int:
    """Split the cores between this host's worker processes so they do not oversubscribe: with one
    prefork child per core each child runs single-threaded, which on CPU beats one process with all
    threads (intra-op parallelism on small matrices costs more in synchronisation than it saves)."""
    threads = max(1, usable_cores() // max(1, processes))
    torch.set_num_threads(threads)
    return threads
