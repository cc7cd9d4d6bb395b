"""World model: loss terms and scales, time alignment of prev_action, carries, gradients,
open-loop prediction, input errors and a short overfit check."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

from rssm.models import (
    DecoderConfig,
    EncoderConfig,
    HeadConfig,
    KLConfig,
    RSSMConfig,
    WorldModel,
    WorldModelConfig,
    denormalize_image,
    normalize_image,
)

A, SIZE = 2, 16


def obs_space(image_size: int = SIZE, dtype=np.uint8) -> gym.spaces.Dict:
    return gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 255, (image_size, image_size, 3), dtype),
            "state": gym.spaces.Box(-np.inf, np.inf, (5,), np.float32),
            "reward": gym.spaces.Box(-np.inf, np.inf, (), np.float32),
            "is_first": gym.spaces.Box(0, 1, (), bool),
            "is_last": gym.spaces.Box(0, 1, (), bool),
            "is_terminal": gym.spaces.Box(0, 1, (), bool),
        }
    )


def tiny_config(latent: str = "categorical", **overrides) -> WorldModelConfig:
    scheme = "dyn_rep" if latent == "categorical" else "free_nats"
    config = WorldModelConfig(
        encoder=EncoderConfig(cnn_depth=4, mlp_units=16, mlp_layers=1, symlog_inputs=True),
        decoder=DecoderConfig(cnn_depth=4, mlp_units=16, mlp_layers=1, vector_dist="symlog_mse"),
        rssm=RSSMConfig(latent=latent, deter=16, stoch=4, classes=4, units=16, initial="learned"),
        reward_head=HeadConfig(dist="twohot", units=16, layers=1),
        cont_head=HeadConfig(dist="binary", units=16, layers=1),
        kl=KLConfig(scheme=scheme, free_nats=0.0),
        loss_scales={"dyn": 0.5, "rep": 0.1} if scheme == "dyn_rep" else {"kl": 1.0},
    )
    return dataclasses.replace(config, **overrides)


def make_model(latent: str = "categorical", **overrides) -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(obs_space(), A, tiny_config(latent, **overrides))


def make_batch(B: int = 3, T: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    is_terminal = torch.zeros(B, T, dtype=torch.bool)
    if T > 3:  # an episode end inside row 0: terminal at t = 2, next episode from t = 3
        is_first[0, 3] = True
        is_terminal[0, 2] = True
    return {
        "image": torch.randint(0, 256, (B, T, SIZE, SIZE, 3), dtype=torch.uint8, generator=gen),
        "state": torch.randn(B, T, 5, generator=gen),
        "action": torch.rand(B, T, A, generator=gen) * 2 - 1,
        "reward": torch.randn(B, T, generator=gen),
        "is_first": is_first,
        "is_last": torch.zeros(B, T, dtype=torch.bool),
        "is_terminal": is_terminal,
    }


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_loss_terms_match_scales(latent):
    model = make_model(latent)
    batch = make_batch()
    out = model.loss(batch)
    kl_keys = ["dyn", "rep"] if latent == "categorical" else ["kl"]
    assert list(out.terms) == ["image", "state", "reward", "cont", *kl_keys]
    assert list(out.terms) == list(model.scales)
    for key, term in out.terms.items():
        assert term.shape == (3, 6), key
    expected = sum(model.scales[k] * v.mean() for k, v in out.terms.items())
    torch.testing.assert_close(out.loss, expected)
    assert out.loss.dim() == 0
    for key in ("kl", "prior_ent", "post_ent", "image_loss", "reward_mae"):
        assert out.metrics[key].dim() == 0 and not out.metrics[key].requires_grad
    assert out.posterior.batch_shape == (3, 6) and out.last_state.batch_shape == (3,)
    torch.testing.assert_close(out.last_action, batch["action"][:, -1])


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_gradients_reach_every_parameter(latent):
    model = make_model(latent)
    model.loss(make_batch()).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_prev_action_is_shifted_and_zeroed_at_is_first(monkeypatch):
    model = make_model()
    batch = make_batch()
    seen = {}
    observe = model.rssm.observe

    def spy(state, embed, prev_action, is_first):
        seen["prev_action"] = prev_action
        return observe(state, embed, prev_action, is_first)

    monkeypatch.setattr(model.rssm, "observe", spy)
    out = model.loss(batch)
    prev, action = seen["prev_action"], batch["action"]
    torch.testing.assert_close(prev[:, 0], torch.zeros(3, A))  # t = 0 (also is_first)
    torch.testing.assert_close(prev[1:, 1:], action[1:, :-1])  # no reset in rows 1, 2
    torch.testing.assert_close(prev[0, 3], torch.zeros(A))  # reset at t = 3 in row 0
    torch.testing.assert_close(prev[0, 4], action[0, 3])
    # With a carried state the first prev_action is the previous chunk's last action.
    batch2 = make_batch(seed=1)
    batch2["is_first"][:] = False
    model.loss(batch2, state=out.last_state, prev_action=out.last_action)
    torch.testing.assert_close(seen["prev_action"][:, 0], batch["action"][:, -1])
    torch.testing.assert_close(seen["prev_action"][:, 1:], batch2["action"][:, :-1])
    with pytest.raises(ValueError, match="together"):
        model.loss(batch2, state=out.last_state)


def test_chunked_loss_with_carry_equals_full_sequence(monkeypatch):
    """Carrying (last_state, last_action) over two chunks reproduces the full-sequence states."""
    model = make_model()
    monkeypatch.setattr(model.rssm, "_sample", model.rssm._mode)  # deterministic latents
    model.eval()
    batch = make_batch(T=8)
    full = model.loss(batch)
    first = model.loss({k: v[:, :5] for k, v in batch.items()})
    second = model.loss(
        {k: v[:, 5:] for k, v in batch.items()},
        state=first.last_state,
        prev_action=first.last_action,
    )
    torch.testing.assert_close(full.posterior.deter[:, 5:], second.posterior.deter)
    torch.testing.assert_close(full.posterior.stats[:, 5:], second.posterior.stats)


def test_acting_step_matches_training_path():
    model = make_model()
    batch = make_batch(T=1)
    torch.manual_seed(4)
    post_train = model.loss(batch).posterior
    obs = {k: v[:, 0] for k, v in batch.items()}
    torch.manual_seed(4)
    post_act = model.obs_step(None, torch.zeros(3, A), obs)
    assert post_act.batch_shape == (3,)
    for a, b in zip(post_act, post_train.at((slice(None), 0)), strict=True):
        torch.testing.assert_close(a, b)


def test_open_loop_shapes_and_dtypes():
    model = make_model()
    batch = make_batch(T=7)
    result = model.open_loop(batch, context=3)
    assert set(result.pred) == set(result.true) == {"image", "state", "reward"}
    assert result.pred["image"].shape == result.true["image"].shape == (3, 4, SIZE, SIZE, 3)
    assert result.pred["image"].dtype == torch.uint8
    assert result.pred["state"].shape == (3, 4, 5) and result.pred["reward"].shape == (3, 4)
    torch.testing.assert_close(result.true["reward"], batch["reward"][:, 3:])
    with pytest.raises(ValueError, match="context"):
        model.open_loop(batch, context=7)


def test_batch_errors_name_key_and_shapes():
    model = make_model()
    batch = make_batch()
    del batch["state"]
    with pytest.raises(ValueError, match="'state'"):
        model.loss(batch)
    batch = make_batch()
    batch["action"] = torch.zeros(3, 6, A + 1)
    with pytest.raises(ValueError, match=r"'action'.*\(3, 6, 3\).*\[3, 6, 2\]"):
        model.loss(batch)
    batch = make_batch()
    batch["image"] = batch["image"].float()
    with pytest.raises(ValueError, match="'image'.*uint8"):
        model.loss(batch)
    batch = make_batch()
    batch["image"] = batch["image"][:, :, :8]
    with pytest.raises(ValueError, match="'image'"):
        model.loss(batch)


def test_construction_errors():
    with pytest.raises(ValueError, match="'image'.*uint8"):
        WorldModel(obs_space(dtype=np.float32), A, tiny_config())
    with pytest.raises(ValueError, match="'image'.*image_size=18"):
        WorldModel(obs_space(image_size=18), A, tiny_config())
    config = tiny_config()
    config.encoder.cnn_keys, config.encoder.mlp_keys = "rgb", "proprio"
    with pytest.raises(ValueError, match="no observation key matches.*image.*state"):
        WorldModel(obs_space(), A, config)
    config = tiny_config()
    config.encoder.mlp_keys = "state|image"
    config.encoder.cnn_keys = ""
    with pytest.raises(ValueError, match="'image'.*cnn_keys"):
        WorldModel(obs_space(), A, config)
    with pytest.raises(ValueError, match="unknown keys.*'kl'"):
        WorldModel(obs_space(), A, tiny_config(loss_scales={"kl": 1.0}))


def test_vector_only_model():
    config = tiny_config()
    config.encoder.cnn_keys = config.decoder.cnn_keys = ""
    torch.manual_seed(0)
    model = WorldModel(obs_space(), A, config)
    batch = make_batch()
    del batch["image"]
    out = model.loss(batch)
    assert list(out.terms) == ["state", "reward", "cont", "dyn", "rep"]


def test_image_normalisation_golden_values():
    x = torch.arange(256, dtype=torch.uint8)
    torch.testing.assert_close(denormalize_image(normalize_image(x)), x, rtol=0, atol=0)
    five = normalize_image(torch.tensor([0, 7, 8, 255], dtype=torch.uint8), bit_depth=5)
    torch.testing.assert_close(five, torch.tensor([-0.5, -0.5, 1 / 32 - 0.5, 31 / 32 - 0.5]))
    noisy = normalize_image(x, bit_depth=5, noise=True)
    clean = normalize_image(x, bit_depth=5)
    assert ((noisy - clean) >= 0).all() and ((noisy - clean) < 1 / 32).all()
    assert (noisy - clean).std() > 0.005


def test_preprocess_numpy_batch():
    model = make_model()
    batch = {k: v.numpy() for k, v in make_batch().items()}
    batch["reward"] = batch["reward"].astype(np.float64)
    out = model.preprocess(batch)
    assert out["image"].dtype == torch.uint8 and out["reward"].dtype == torch.float32
    assert out["is_first"].dtype == torch.bool
    model.loss(out)


def test_overfit_one_batch():
    model = make_model()
    batch = make_batch(B=4, T=8)
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        out = model.loss(batch)
        optim.zero_grad()
        out.loss.backward()
        optim.step()
        losses.append(out.loss.item())
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
