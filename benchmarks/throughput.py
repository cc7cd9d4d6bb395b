"""The machine's fp32 matrix-multiply throughput, measured in the same run as a benchmark.

Benchmarks state their speed as a fraction of this limit, so that numbers from different machines
(or from the same shared machine at different loads) can be compared.
"""

from __future__ import annotations

import time

import torch


def sync(device: torch.device) -> None:
    """Wait for queued work on ``device`` (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
