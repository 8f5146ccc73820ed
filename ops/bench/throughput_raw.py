"""The ceiling: the same classify engine fed directly, in-process, with the model loaded once.

Configurations (the benchmark keeps the best):

* ``sorted-bN``: one process using every core, texts sorted by length and cut into batches of N;
* ``mp-b1``: one process per core, one thread each, one text at a time (texts dealt round-robin);
* ``mp-sorted``: one process per core, one thread each, length-sorted batches of 32 (a producer
  message) dealt round-robin, each cut by the engine's own forward-pass token budget, exactly as a
  worker runs them: the ceiling for docqueue's own batching without any queue.

Workers of the multi-process configurations are started once (spawned, so no state is shared),
load the model, and then time only their share of each run; the run's time is from handing out the
shares to the last share done.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import random
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

#: A padded-token budget so large that a batch of N texts is exactly one forward pass of N.
UNBOUNDED_TOKENS = 10**9


def load_engine(threads: int, exact_batches: bool = False) -> Any:
    """The classify engine as a worker builds it, on the CPU, with ``threads`` threads; with
    ``exact_batches`` one call is one forward pass whatever its size (no token budget)."""
    import torch

    from docqueue.settings import get_settings
    from workers.registry import Registry

    torch.set_num_threads(threads)
    budget = {"batch_max_tokens": UNBOUNDED_TOKENS, "forward_max_tokens": UNBOUNDED_TOKENS} if exact_batches else {}
    return Registry(get_settings(device="cpu", **budget)).get("classify")


def sorted_batches(texts: Sequence[str], size: int) -> list[list[str]]:
    ordered = sorted(texts, key=len)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def run_batches(engine: Any, batches: Sequence[Sequence[str]], params: dict[str, Any],
                cap_s: float | None = None) -> int:
    """Run batches in order until done or ``cap_s`` seconds have passed; returns documents done."""
    from docqueue.params import ClassifyParams

    typed = ClassifyParams.of(params)
    start, done = time.perf_counter(), 0
    for batch in batches:
        engine.run(list(batch), typed)
        done += len(batch)
        if cap_s is not None and time.perf_counter() - start > cap_s:
            break
    return done


def shuffled(batches: list[list[str]], seed: int = 5) -> list[list[str]]:
    """A fixed random order: a run cut short by its time cap then measures a fair sample."""
    order = list(batches)
    random.Random(seed).shuffle(order)
    return order


def time_in_process(engine: Any, texts: Sequence[str], params: dict[str, Any], size: int,
                    cap_s: float | None = None) -> float:
    """Docs/s of length-sorted batches of ``size`` in this process."""
    batches = shuffled(sorted_batches(texts, size))
    start = time.perf_counter()
    done = run_batches(engine, batches, params, cap_s)
    return done / (time.perf_counter() - start)


def _child(conn: Connection) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    engine = load_engine(threads=1)
    run_batches(engine, [["warm-up sentence"] * 4], {"labels": ["a", "b"]})
    conn.send("ready")
    while True:
        command = conn.recv()
        if command is None:
            return
        batches, params, cap_s = command
        conn.send(run_batches(engine, batches, params, cap_s))


class ProcessPerCore:
    """``processes`` spawned children, each with one thread and its own resident engine."""

    def __init__(self, processes: int) -> None:
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs = []
        for _ in range(processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_child, args=(child,), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        for conn in self.conns:
            if conn.recv() != "ready":
                raise RuntimeError("a raw benchmark process failed to start")

    def time(self, texts: Sequence[str], params: dict[str, Any], size: int, cap_s: float | None = None) -> float:
        """Docs/s with batches of ``size`` (1: one text at a time, unsorted) spread over the children."""
        batches = [[t] for t in texts] if size == 1 else sorted_batches(texts, size)
        shares: list[list[list[str]]] = [[] for _ in self.conns]
        for i, batch in enumerate(batches):  # round-robin: every child gets short and long batches
            shares[i % len(shares)].append(batch)
        start = time.perf_counter()
        for conn, share in zip(self.conns, shares, strict=True):
            conn.send((shuffled(share), params, cap_s))
        done = sum(conn.recv() for conn in self.conns)
        return done / (time.perf_counter() - start)

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
