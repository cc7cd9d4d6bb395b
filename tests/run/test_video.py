"""The one upscaling rule of every video and the labeled rows of open-loop videos."""

from __future__ import annotations

import numpy as np
import pytest

from rssm.run.video import label_rows, open_loop_frames, upscale, upscale_factor


@pytest.mark.parametrize(
    ("shape", "factor"),
    [((64, 64), 2), ((32, 32), 4), ((16, 24), 8), ((7, 9), 20), ((200, 300), 1)],
)
def test_every_observation_reaches_128_pixels_by_an_integer_factor(shape, factor):
    assert upscale_factor(*shape) == factor
    scaled = upscale(np.zeros((2, *shape, 3), np.uint8), factor)
    assert scaled.shape == (2, shape[0] * factor, shape[1] * factor, 3)
    assert min(scaled.shape[1:3]) >= 128 and scaled.shape[1] % 2 == scaled.shape[2] % 2 == 0


def test_open_loop_rows_are_labeled_and_upscaled_like_eval_videos():
    pytest.importorskip("PIL")
    rng = np.random.default_rng(0)
    context = rng.integers(0, 256, (2, 3, 32, 32, 3), dtype=np.uint8)
    true = rng.integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8)
    frames = open_loop_frames(context, true, true.copy(), examples=2)
    assert frames.shape == (7, 3 * 128, 48 + 2 * 128, 3)
    strip = frames[0, :, :48]
    for row in range(3):  # each row has its label drawn in the strip
        assert strip[row * 128 : (row + 1) * 128].max() > 128
    assert not frames[:, 256:, 48:].any()  # a perfect prediction: the error row is black
    single = label_rows(np.zeros((1, 60, 10, 3), np.uint8), ("model",))
    assert single.shape == (1, 60, 58, 3) and single[0, :, :48].max() > 128
