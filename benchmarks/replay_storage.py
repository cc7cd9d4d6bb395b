"""Replay in RAM vs on disk (``replay.storage``): sampled batches per second and memory.

    python benchmarks/replay_storage.py                       # 1M steps of 64x64x3 images
    python benchmarks/replay_storage.py --capacity 200000 --results --json bench_storage.json

Each storage runs in a fresh process (so that its peak memory is its own): the replay is filled
to ``--capacity`` steps (64x64x3 uint8 image, 6 actions, the flags; episodes of 500 steps, files
off), then ``--batches`` batches of ``--batch`` x ``--length`` sequences are sampled. Memory is
read from ``/proc/self/status``: ``VmHWM`` (peak resident set), and at the end ``RssAnon`` (the
process's own memory) and ``RssFile`` (pages of mapped files the kernel holds for it, which it
can drop under memory pressure: the disk buffer's cached pages).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from results import captioned, publish  # noqa: E402
from throughput import cpu_name  # noqa: E402

EPISODE = 500


def status_kib(*keys: str) -> dict[str, int]:
    """Fields of /proc/self/status in KiB (empty where there is no /proc)."""
    path = Path("/proc/self/status")
    if not path.exists():
        return {}
    fields = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition(":")
        if name in keys:
            fields[name] = int(value.split()[0])
    return fields


def measure(storage: str, capacity: int, size: int, batch: int, length: int, batches: int,
            folder: str) -> dict[str, Any]:  # fmt: skip
    """One storage, in this process: fill, sample, memory."""
    from rssm.data import Replay

    replay = Replay(capacity, seed=0, storage=storage,
                    buffer=Path(folder) / "buffer" if storage == "disk" else None)  # fmt: skip
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, size, size, 3), dtype=np.uint8)
    start = time.perf_counter()
    for t in range(capacity):
        replay.add({
            "image": images[t % 64], "reward": np.float32(t % 7), "is_first": t % EPISODE == 0,
            "is_last": t % EPISODE == EPISODE - 1, "is_terminal": False,
            "action": np.zeros(6, np.float32),
        })  # fmt: skip
    fill = time.perf_counter() - start
    replay.sample(batch, length)  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        replay.sample(batch, length)
    rate = batches / (time.perf_counter() - start)
    memory = status_kib("VmHWM", "RssAnon", "RssFile")
    replay.close()
    return {"storage": storage, "fill_s": fill, "batches_per_s": rate, **memory}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--storage", nargs="+", default=["memory", "disk"])
    parser.add_argument("--folder", default=None, help="where the disk buffer goes (a temp dir)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--results", action="store_true", help="write docs/results.md section")
    args = parser.parse_args(argv)
    if args.child:  # one storage, measured in this process; its row as JSON on stdout
        row = measure(args.storage[0], args.capacity, args.image_size, args.batch, args.length,
                      args.batches, args.folder)  # fmt: skip
        print(json.dumps(row))
        return row
    report: dict[str, Any] = {
        "cpu": cpu_name(), "cores": os.cpu_count(), "loadavg_start": os.getloadavg()[0],
        "capacity": args.capacity, "batch": [args.batch, args.length], "rows": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        for storage in args.storage:
            command = [sys.executable, __file__, "--child", "--storage", storage,
                       "--capacity", str(args.capacity), "--image-size", str(args.image_size),
                       "--batch", str(args.batch), "--length", str(args.length),
                       "--batches", str(args.batches), "--folder", folder]  # fmt: skip
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            report["rows"].append(json.loads(out.strip().splitlines()[-1]))
    gib = 1 / 2**20
    rows = [["storage", "fill s", "batches/s", "vs RAM", "peak RSS GiB", "own GiB", "file GiB"]]
    base = report["rows"][0]["batches_per_s"]
    for row in report["rows"]:
        rows.append([
            row["storage"], f"{row['fill_s']:.0f}", f"{row['batches_per_s']:.1f}",
            f"{row['batches_per_s'] / base:.2f}", f"{row.get('VmHWM', 0) * gib:.2f}",
            f"{row.get('RssAnon', 0) * gib:.2f}", f"{row.get('RssFile', 0) * gib:.2f}",
        ])  # fmt: skip
    size = args.image_size
    text = captioned(
        f"replay of {args.capacity} steps ({size}x{size}x3 uint8 images), batches of "
        f"{args.batch}x{args.length} sampled uniformly, {args.batches} per row after filling; "
        f"each storage in its own process; {report['cpu']}; 1-min load "
        f"{report['loadavg_start']:.1f} at start. own = RssAnon, file = RssFile (the buffer's "
        "pages the kernel caches, dropped under memory pressure)",
        rows,
    )
    publish(
        report, text, script="replay_storage.py", section="replay-storage",
        title=f"## Replay in RAM vs on disk ({report['cpu']})", argv=argv,
        json_path=args.json, results=args.results,
    )  # fmt: skip
    return report


if __name__ == "__main__":
    main()
