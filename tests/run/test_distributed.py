"""Data-parallel training (torchrun, gloo on CPU): two ranks with half batches step like one
process with the whole batch, the ranks' weights stay equal, a torchrun run resumes exactly,
and a rank that dies or a batch that does not split gives a clear error."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rssm.distributed import World, split_batch
from rssm.run.ranks import own_state

sys.path.insert(0, str(Path(__file__).parent))
import dist_worker  # noqa: E402

WORKER = Path(__file__).parent / "dist_worker.py"
ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(mode: str, out: Path, ranks: int = 2) -> list[dict]:
    """Starts ``ranks`` processes of dist_worker.py as torchrun would; their results."""
    port = free_port()
    procs = []
    for rank in range(ranks):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": str(ranks), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, str(WORKER), mode, str(out)], env=env,
                                      stderr=subprocess.PIPE, text=True))  # fmt: skip
    codes = [proc.wait(timeout=240) for proc in procs]
    results = []
    for rank, (proc, code) in enumerate(zip(procs, codes, strict=True)):
        if mode == "die" and rank == 1:
            assert code == 3
            continue
        assert code == 0, proc.stderr.read()
        results.append(torch.load(out / f"rank{rank}.pt", weights_only=True))
    return results


def assert_close(a: dict, b: dict, exact: bool = False) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if exact:
            assert torch.equal(a[key], b[key]), key
        else:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def test_two_ranks_with_half_batches_step_like_one_with_the_whole(tmp_path):
    """Mean gradients over the ranks (the Optimizer's all-reduce) and the return normaliser's
    percentiles of the gathered batch equal one process's on the whole batch."""
    ranks = launch("toy", tmp_path)
    whole = dist_worker.toy_train(slice(None))
    half = dist_worker.toy_train(slice(0, 4))
    assert_close(ranks[0], ranks[1], exact=True)
    assert_close(ranks[0], whole)
    with pytest.raises(AssertionError):  # a rank's own half alone steps elsewhere
        assert_close(half, whole)


def test_agent_ranks_equal_one_process(tmp_path):
    """World model, actor and critic: ranks on the same batch equal one process on it."""
    ranks = launch("agent", tmp_path)
    one = dist_worker.agent_train(seed=0, batch_seed=0)
    assert_close(ranks[0], ranks[1], exact=True)
    assert_close(ranks[0], one)


def test_agent_ranks_with_own_batches_keep_equal_weights(tmp_path):
    ranks = launch("split", tmp_path)
    assert_close(ranks[0], ranks[1], exact=True)
    alone = dist_worker.agent_train(seed=0, batch_seed=0)
    assert any(not torch.allclose(ranks[0][k], alone[k]) for k in alone)  # rank 1's data counted


def test_a_rank_that_dies_stops_the_others_with_a_clear_error(tmp_path):
    (result,) = launch("die", tmp_path)
    message = result["error"]
    assert message.startswith("rank 0 of 2: the gradient all-reduce failed")
    assert "another rank has most likely stopped" in message and "--resume" in message


def test_a_batch_the_ranks_cannot_split_is_refused():
    assert split_batch(16, 2) == 8
    with pytest.raises(
        ValueError, match=r"batch_size 16 .* not divisible by the 3 ranks.*\[1, 2, 4, 8, 16\]"
    ):
        split_batch(16, 3)


def test_a_checkpoint_resumes_only_with_its_number_of_ranks():
    state = {"agent": {"generator": torch.zeros(1)}, "ranks": [{"generator": torch.ones(1)}]}
    assert own_state(state, World(1, 2), Path("c.pt"))["agent"]["generator"].item() == 1.0
    with pytest.raises(ValueError, match=r"written by a run of 2 rank\(s\).*--nproc-per-node 2"):
        own_state(state, World(0, 1), Path("c.pt"))
    with pytest.raises(ValueError, match=r"of 1 rank\(s\).*without torchrun"):
        own_state({"agent": {}}, World(0, 2), Path("c.pt"))


def torchrun(logdir: Path, steps: int, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-port", str(free_port()), "-m", "rssm", "train",
               "--configs", "dreamer_v3", "debug", "--logdir", str(logdir),
               "--run.steps", str(steps), "--run.checkpoint_every", "100",
               "--run.eval_every", "100", "--run.tensorboard", "false",
               "--replay.batch_size", "4", *extra]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_torchrun_train_resumes_exactly(tmp_path):
    """``torchrun -m rssm train``: rank 0 writes one checkpoint holding every rank's state; a run
    stopped at step 100 and resumed to 200 equals one that ran to 200."""
    whole = torchrun(tmp_path / "whole", 200)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert "data-parallel: 2 ranks; global batch 4x8 = 2 x 2x8 per rank" in whole.stdout
    assert whole.stdout.count("final eval return") == 1  # rank 0 speaks for the run
    first = torchrun(tmp_path / "split", 100)
    assert first.returncode == 0, first.stderr[-3000:]
    again = torchrun(tmp_path / "split", 200, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert a["counters"]["world"] == 2 and a["counters"]["agent_steps"] == 100
    assert len(a["ranks"]) == 1 and a["ranks"][0]["counters"]["agent_steps"] == 100
    for part in ("model", "behavior"):
        assert_close(a["agent"][part], b["agent"][part], exact=True)
    assert (tmp_path / "split" / "replay-rank1").is_dir()
    wrong = torchrun(tmp_path / "split", 300, "--resume", "--replay.batch_size", "3")
    assert wrong.returncode != 0
    assert "not divisible by the 2 ranks" in wrong.stderr
