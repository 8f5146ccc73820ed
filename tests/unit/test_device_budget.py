"""How many worker processes and how many tokens per forward pass a worker picks by default."""

from __future__ import annotations

import torch

from workers.device import (
    CPU_BF16_TOKENS_PER_THREAD,
    CPU_TOKENS_PER_THREAD,
    forward_token_budget,
    usable_cores,
    worker_processes,
)

CPU, GPU = torch.device("cpu"), torch.device("cuda:0")


def test_recommended_processes() -> None:
    assert worker_processes(0, "prefork", CPU) == usable_cores()  # one single-threaded child per core
    assert worker_processes(0, "prefork", GPU) == 1  # one process owns the GPU
    assert worker_processes(3, "prefork", CPU) == 3  # an explicit number wins
    assert worker_processes(4, "solo", CPU) == 1


def test_forward_budget() -> None:
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert forward_token_budget(0, 8192, CPU) == CPU_TOKENS_PER_THREAD
        torch.set_num_threads(2)
        assert forward_token_budget(0, 8192, CPU) == 2 * CPU_TOKENS_PER_THREAD
        assert forward_token_budget(0, 300, CPU) == 300  # never above a message's budget
        assert forward_token_budget(0, 8192, GPU) == 8192  # a GPU takes the whole message
        assert forward_token_budget(1024, 8192, CPU) == 1024  # configured explicitly
        # bf16 on the CPU: two windows per pass and thread (ops/bench/forward_budget.py)
        assert forward_token_budget(0, 8192, CPU, torch.bfloat16) == 2 * CPU_BF16_TOKENS_PER_THREAD == 1024
        assert forward_token_budget(0, 8192, GPU, torch.bfloat16) == 8192
        assert forward_token_budget(256, 8192, CPU, torch.bfloat16) == 256
    finally:
        torch.set_num_threads(threads)
