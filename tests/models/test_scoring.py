"""The one open-loop scorer: per-sequence, per-step errors next to the copy-last baseline."""

import torch

from rssm.models.scoring import copy_last, step_errors


def test_step_errors_scale_images_and_keep_sequences_and_steps_apart():
    true = {
        "image": torch.zeros(2, 3, 4, 4, 1, dtype=torch.uint8),
        "reward": torch.zeros(2, 3),
    }
    pred = {
        "image": torch.full((2, 3, 4, 4, 1), 255, dtype=torch.uint8),
        "reward": torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]),
    }
    pred["image"][1] = 0
    errors = step_errors(pred, true, image_keys=["image"])
    assert errors["image"].tolist() == [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    assert errors["reward"].tolist() == [[1.0, 4.0, 9.0], [0.0, 0.0, 0.0]]


def test_copy_last_repeats_the_last_observed_row():
    batch = {"state": torch.arange(10.0).reshape(1, 5, 2)}
    true = {"state": batch["state"][:, 3:]}
    assert copy_last(batch, 3, true)["state"].tolist() == [[[4.0, 5.0], [4.0, 5.0]]]
