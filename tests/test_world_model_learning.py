"""A world model that learns: its open-loop prediction of held-out episodes beats copy-last-frame.

Each latent kind trains on random-policy episodes of the built-in point mass (16x16 pixels, a
~1M-parameter model, the ``WorldModelRun`` defaults) and is scored on held-out episodes from other
env seeds: 5 observed steps, then 10 imagined from the recorded actions. The two kinds train side
by side in two processes of one thread each, so the test takes about 2.5 minutes on 2 CPU cores.
benchmarks/learn_world_model.py records the numbers of more seeds in docs/results.md.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest


def train(latent: str) -> dict:
    import torch

    from rssm.run.malloc import keep_freed_memory
    from rssm.run.world_model import WorldModelRun, train_world_model

    torch.set_num_threads(1)
    keep_freed_memory()
    run = WorldModelRun(preset=f"tiny-{latent}", seed=0)
    run.eval_every = run.updates  # score once, at the end
    _, summary = train_world_model(run)
    return dict(summary["open_loop"])


@pytest.fixture(scope="module")
def scores() -> dict[str, dict]:
    latents = ["gaussian", "categorical"]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        return dict(zip(latents, pool.map(train, latents), strict=True))


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_open_loop_prediction_beats_copy_last_frame(scores, latent):
    score = scores[latent]
    # "Clearly below": averaged over the 10 imagined steps, under 90% of the baseline's error
    # (docs/results.md: 0.66-0.80 over three seeds at this budget), and far below the
    # episode-blind mean frame.
    assert score["model"] < 0.9 * score["copy_last"], score
    assert score["model"] < score["mean_frame"], score
    # Ten steps ahead the model is still better than copying: it predicts the motion.
    assert score["model_per_step"][-1] < score["copy_last_per_step"][-1], score
