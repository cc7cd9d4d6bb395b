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
    OvershootingConfig,
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


def test_reward_metrics_read_the_batch_and_the_reward_head_on_its_posteriors():
    model = make_model("gaussian")
    batch = make_batch()
    batch["reward"] = batch["reward"].abs() + 3.0  # a data mean far from the untrained head's
    torch.manual_seed(1)
    out = model.loss(batch)
    torch.testing.assert_close(out.metrics["data_reward"], batch["reward"].mean())
    with torch.no_grad():
        predicted = model.reward(out.posterior.feat()).mode()
    torch.testing.assert_close(out.metrics["post_reward"], predicted.mean())
    assert not torch.isclose(out.metrics["post_reward"], out.metrics["data_reward"])


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


# ------------------------------------------------------------------------ latent overshooting


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_overshooting_matches_a_step_by_step_rollout(latent):
    """``overshoot`` [b, t] = mean over d = 2..D with t + d < T and no is_first in t+1..t+d of
    max(KL(q(s_{t+d}) || p_d), free_nats), p_d rolled open loop from the posterior at t with the
    replayed prev_actions (mode latents here, so that a plain loop can reproduce it)."""
    from rssm.models.world_model import _shift

    D, free = 3, 0.05
    model = make_model(
        latent,
        overshooting=OvershootingConfig(distance=D, reward=True),
        kl=KLConfig(scheme="free_nats", free_nats=free),
        loss_scales={},
    )
    model.rssm._sample = model.rssm._mode  # deterministic rollouts
    batch = make_batch(B=2, T=6)  # an episode starts at row 3 of sequence 0
    out = model.loss(batch)
    assert list(out.terms)[-2:] == ["overshoot", "overshoot_reward"]
    post, first = out.posterior, batch["is_first"]
    prev = _shift(batch["action"], torch.zeros(2, 1, A), first)
    dist = model.rssm.dist
    for b in range(2):
        for t in range(6):
            kls, rewards = [], []
            for d in range(2, D + 1):
                if t + d >= 6 or first[b, t + 1 : t + d + 1].any():
                    continue
                state = post.at((slice(b, b + 1), t))
                for i in range(1, d + 1):
                    state = model.rssm.img_step(state, prev[b : b + 1, t + i])
                kls.append(dist(post.stats[b, t + d].detach()).kl(dist(state.stats[0])))
                reward_loss = model.reward(state.feat()).loss(batch["reward"][b, t + d : t + d + 1])
                rewards.append(reward_loss[0])
            want = torch.stack(kls).clamp(min=free).mean() if kls else torch.tensor(0.0)
            got = out.terms["overshoot"][b, t]
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=f"b={b} t={t}")
            want_r = torch.stack(rewards).mean() if rewards else torch.tensor(0.0)
            torch.testing.assert_close(
                out.terms["overshoot_reward"][b, t], want_r, rtol=1e-4, atol=1e-5
            )
    # sequence 0 restarts at row 3: from t = 0 only d = 2 (rows 1, 2) is valid, from t = 1 none
    assert out.terms["overshoot"][0, 1] == 0 and out.terms["overshoot"][0, 4] == 0


def test_overshooting_trains_the_prior_not_the_target_posterior():
    """The target posteriors' stats are detached; the start states (deter, stoch) and the prior's
    parameters get the gradient; the decoders and the reward head are off the KL's path."""
    from rssm.types import RSSMState

    model = make_model("gaussian", overshooting=OvershootingConfig(distance=4))
    batch = make_batch(B=2, T=8)
    posterior = model.loss(batch).posterior.detach()
    leaves = RSSMState(*(x.clone().requires_grad_(True) for x in posterior))
    prev = batch["action"]
    terms = model._overshooting(leaves, prev, batch["is_first"], batch["reward"])
    terms["overshoot"].sum().backward()
    # the targets: detached (the start's stats only ride along in the stacked rollout)
    assert leaves.stats.grad is None or leaves.stats.grad.abs().sum() == 0
    assert leaves.deter.grad.abs().sum() > 0 and leaves.stoch.grad.abs().sum() > 0  # the starts
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "_prior" in n)
    assert all(grads[n] is None for n in grads if n.startswith(("decoder.", "reward.")))


def test_overshooting_config_keys_and_short_sequences():
    with pytest.raises(ValueError, match="distance"):
        OvershootingConfig(distance=-1)
    off = make_model("gaussian", overshooting=OvershootingConfig(distance=1))
    assert "overshoot" not in off.term_keys  # d = 1 is the ordinary KL term
    with pytest.raises(ValueError, match="overshoot"):
        make_model("gaussian", loss_scales={"overshoot": 1.0})  # not a term without overshooting
    model = make_model(
        "gaussian", overshooting=OvershootingConfig(distance=50), loss_scales={"overshoot": 0.5}
    )
    assert model.scales["overshoot"] == 0.5
    short = model.loss(make_batch(B=2, T=2))  # no distance of 2 fits: a zero term, same keys
    assert short.terms["overshoot"].shape == (2, 2) and short.terms["overshoot"].abs().sum() == 0
    full = model.loss(make_batch(B=2, T=6))  # distance clipped to T - 1
    assert torch.isfinite(full.terms["overshoot"]).all() and full.terms["overshoot"].sum() > 0
