"""The world-model job (``rssm world-model``) steps its optimiser as the agents do: an update whose
loss or gradients are not finite is skipped and counted, and a streak of them stops the job."""

from __future__ import annotations

import math

import pytest
import torch

from rssm.agents.optimizer import MAX_NONFINITE, NonFiniteError
from rssm.models import WorldModel
from rssm.run.run_config import WorldModelRun
from rssm.run.world_model import train_world_model

TINY = dict(train_episodes=2, eval_episodes=1, batch_size=2, length=8, context=2, horizon=3)


def test_non_finite_updates_are_skipped_counted_and_stop_a_streak(monkeypatch):
    original = WorldModel.loss
    calls = []

    def sometimes_nan(self, *args, **kwargs):
        output = original(self, *args, **kwargs)
        calls.append(None)
        if len(calls) in (3, 4) or len(calls) > 10:  # two bad updates, then only bad ones
            return output._replace(loss=output.loss * math.nan)
        return output

    monkeypatch.setattr(WorldModel, "loss", sometimes_nan)
    run = WorldModelRun(updates=10, eval_every=10, **TINY)
    model, summary = train_world_model(run)
    assert summary["history"][-1]["nonfinite"] == 2
    assert all(torch.isfinite(p).all() for p in model.parameters()), "skipped, never applied"
    with pytest.raises(NonFiniteError, match=f"{MAX_NONFINITE} updates in a row"):
        train_world_model(WorldModelRun(updates=10 + MAX_NONFINITE, eval_every=100, **TINY))
