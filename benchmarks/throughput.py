"""Measuring: the machine's fp32 matrix-multiply throughput (measured in the same run as a
benchmark), a call's wall-clock time and FLOPs, and the processor's name.

Benchmarks state their speed as a fraction of this limit, so that numbers from different machines
(or from the same shared machine at different loads) can be compared.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from rssm.run.sittings import cpu_name  # noqa: F401 - the benchmarks' name for it


def sync(device: torch.device) -> None:
    """Wait for queued work on ``device`` (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall-clock seconds of ``fn()``, with the device's queue drained before and after."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def count_flops(fn: Callable[[], Any]) -> float:
    """FLOPs counted by ``FlopCounterMode`` while ``fn()`` runs: matmuls and (transposed)
    convolutions with their gradients; not elementwise ops, norms or optimisers."""
    counter = FlopCounterMode(depth=1, display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def matmul_flops(
    device: str | torch.device = "cpu",
    sizes: tuple[int, ...] = (512, 1024, 2048),
    seconds: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> dict[str, float]:
    """Best sustained square-matmul throughput over ``sizes``, in FLOP/s.

    Returns:
        ``{"flops": best, "size": n_at_best}`` plus one ``"flops_<n>"`` entry per size.
    """
    device = torch.device(device)
    result: dict[str, float] = {}
    best, best_n = 0.0, 0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        out = torch.empty(n, n, device=device, dtype=dtype)
        for _ in range(3):
            torch.matmul(a, b, out=out)
        sync(device)
        reps, start = 0, time.perf_counter()
        while True:
            torch.matmul(a, b, out=out)
            reps += 1
            if reps % 4 == 0:
                sync(device)
                if time.perf_counter() - start >= seconds:
                    break
        elapsed = time.perf_counter() - start
        flops = 2.0 * n**3 * reps / elapsed
        result[f"flops_{n}"] = flops
        if flops > best:
            best, best_n = flops, n
    result["flops"] = best
    result["size"] = float(best_n)
    return result


if __name__ == "__main__":
    r = matmul_flops()
    threads = torch.get_num_threads()
    print(f"fp32 matmul: {r['flops'] / 1e9:.1f} GFLOP/s (n={int(r['size'])}, {threads} threads)")
