"""ActorCritic: imagination shapes, gradient isolation, slow critic, actor distributions."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from rssm.behavior import ActorConfig, ActorCritic, ActorCriticConfig, CriticConfig
from rssm.behavior.actor_critic import Imagination
from rssm.envs import env_spec, make_env
from rssm.models import WorldModel
from rssm.nn import Normal, OneHotCategorical, TanhNormal
from rssm.run.world_model import tiny_config

H = 4
SMALL = ActorCriticConfig(
    actor=ActorConfig(units=16, layers=1),
    critic=CriticConfig(units=16, layers=1, bins=15),
    horizon=H,
)


def build(discrete: bool, latent: str = "categorical", **changes) -> tuple[WorldModel, ActorCritic]:
    torch.manual_seed(0)
    env = "builtin:pointmass-discrete" if discrete else "builtin:pointmass"
    spec = env_spec(make_env(env, image_size=16))
    model = WorldModel(spec.obs_space, spec.action_dim, tiny_config(latent))
    config = dataclasses.replace(SMALL, **changes)
    behavior = ActorCritic(model.rssm.feat_dim, spec.action_dim, config, discrete=discrete)
    return model, behavior


def live_heads(model: WorldModel, behavior: ActorCritic) -> None:
    """Give the zero-initialised output layers (V3's reward head and critic) seeded non-zero
    weights: with zeros, rewards and values are zero up to summation rounding, and a test of
    whether gradients or returns are non-zero would pass or fail by one CPU's rounding."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in (model.reward.out, behavior.critic.out, behavior.slow_critic.out):
            layer.weight.copy_(0.3 * torch.randn(layer.weight.shape, generator=gen))
            layer.bias.copy_(0.3 * torch.randn(layer.bias.shape, generator=gen))


def start_states(model: WorldModel, n: int = 6):
    state = model.rssm.initial(n)
    return state.map(lambda x: x + 0.1 * torch.randn_like(x)).detach()


@pytest.mark.parametrize("discrete", [False, True])
def test_imagination_is_batch_major_with_h_plus_one_states(discrete):
    model, behavior = build(discrete)
    imag = behavior.imagine(model.rssm, start_states(model))
    A = model.action_dim
    assert imag.states.deter.shape == (6, H + 1, model.rssm.deter_dim)
    assert imag.feat.shape == (6, H + 1, model.rssm.feat_dim)
    assert imag.actions.shape == (6, H, A)
    assert imag.log_prob.shape == imag.entropy.shape == (6, H)
    assert torch.isfinite(imag.log_prob).all() and torch.isfinite(imag.entropy).all()
    if discrete:
        assert torch.equal(imag.actions.sum(-1), torch.ones(6, H))


def test_reinforce_actor_loss_puts_no_gradient_into_the_world_model():
    model, behavior = build(discrete=True)
    assert behavior.actor_grad == "reinforce"
    losses = behavior.loss(model, start_states(model))
    losses.actor.backward()  # a plain backward: the graph itself must not reach the model
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is None for p in behavior.critic.parameters())
    grads = [p.grad for p in behavior.actor.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_dynamics_backprop_reaches_the_model_but_inputs_keep_its_weights_clean():
    model, behavior = build(discrete=False)
    live_heads(model, behavior)
    assert behavior.actor_grad == "dynamics"
    losses = behavior.loss(model, start_states(model))
    losses.actor.backward(retain_graph=True)  # the return depends on the dynamics
    grads = [p.grad.abs().max() for p in model.rssm.parameters() if p.grad is not None]
    assert grads and max(grads) > 1e-4, grads  # far above rounding noise
    model.zero_grad(set_to_none=True)
    behavior.zero_grad(set_to_none=True)
    losses.actor.backward(inputs=list(behavior.actor.parameters()))
    assert all(p.grad is None for p in model.parameters())
    assert any(p.grad.abs().sum() > 0 for p in behavior.actor.parameters())


@pytest.mark.parametrize("baseline", [True, False])
def test_one_shared_critic_forward_gives_the_gradients_of_two(baseline):
    """The critic's one forward on detached features serves its loss and, re-attached, the
    values that dynamics backprop differentiates: every loss and gradient is the one that two
    separate forwards (values on the live features, loss on detached ones) give."""
    grads = []
    for share in (True, False):
        model, behavior = build(discrete=False, dynamics_baseline=baseline)
        live_heads(model, behavior)
        behavior.share_critic = share
        torch.manual_seed(3)
        losses = behavior.loss(model, start_states(model))
        actor = list(behavior.actor.parameters())
        critic = list(behavior.critic.parameters())
        losses.actor.backward(inputs=actor)  # the agent's order: actor first, then the critic
        assert all(p.grad is None for p in [*critic, *model.parameters()])
        losses.critic.backward(inputs=critic)
        assert all(p.grad is None for p in model.parameters())
        grads.append([losses.actor.detach(), losses.critic.detach()])
        grads[-1] += [p.grad for p in [*actor, *critic]]
    shared, separate = grads
    assert any(g.abs().max() > 1e-3 for g in shared[2:])  # far from zero, not rounding
    for a, b in zip(shared, separate, strict=True):  # equal up to summation-order rounding
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(a.abs().max()) + 1e-12)


def test_critic_loss_trains_only_the_critic():
    model, behavior = build(discrete=False)
    losses = behavior.loss(model, start_states(model))
    losses.critic.backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is None for p in behavior.actor.parameters())
    assert all(p.grad is None for p in behavior.slow_critic.parameters())
    assert any(p.grad is not None for p in behavior.critic.parameters())


def test_slow_critic_moves_by_its_ema_rate():
    model, behavior = build(discrete=False, slow_critic_rate=0.25, slow_critic_every=2)
    with torch.no_grad():
        for p in behavior.critic.parameters():
            p.add_(1.0)
    before = [p.clone() for p in behavior.slow_critic.parameters()]
    fast = [p.clone() for p in behavior.critic.parameters()]
    behavior.update_slow_critic()  # update 1: not yet (every 2)
    for b, p in zip(before, behavior.slow_critic.parameters(), strict=True):
        assert torch.equal(b, p)
    behavior.update_slow_critic()  # update 2: slow <- 0.75 slow + 0.25 critic
    for b, f, p in zip(before, fast, behavior.slow_critic.parameters(), strict=True):
        torch.testing.assert_close(p, 0.75 * b + 0.25 * f)
    assert int(behavior.updates) == 2


def test_slow_target_bootstraps_with_the_slow_critic():
    model, behavior = build(discrete=False, slow_target=True, slow_regularizer=0.0)
    start = start_states(model)
    torch.manual_seed(1)
    a = behavior.loss(model, start).metrics["return_mean"]
    with torch.no_grad():  # moving the fast critic leaves slow-target returns unchanged
        behavior.critic.out.bias.add_(5.0)
    torch.manual_seed(1)
    b = behavior.loss(model, start).metrics["return_mean"]
    torch.testing.assert_close(a, b)


def test_return_normaliser_updates_only_with_return_norm():
    model, behavior = build(discrete=False)
    live_heads(model, behavior)
    losses = behavior.loss(model, start_states(model))
    assert losses.metrics["return_mean"].abs() > 1e-3  # returns far from zero, not rounding
    spread = behavior.normalizer.high_ema - behavior.normalizer.low_ema
    assert behavior.normalizer.high_ema.abs() > 1e-4 and spread > 0
    model, plain = build(discrete=False, return_norm=False)
    live_heads(model, plain)
    plain.loss(model, start_states(model))
    assert plain.normalizer.high_ema == 0 and plain.normalizer.low_ema == 0


def test_start_continuation_zero_removes_the_start_from_the_losses():
    model, behavior = build(discrete=False)
    start = start_states(model)
    losses = behavior.loss(model, start, torch.zeros(6))
    assert losses.actor.item() == 0.0 and losses.critic.item() == 0.0


@pytest.mark.parametrize(
    ("discrete", "dist", "kind"),
    [(False, "bounded_normal", Normal), (False, "tanh_normal", TanhNormal),
     (True, "bounded_normal", OneHotCategorical)],
)  # fmt: skip
def test_actor_distributions_stay_in_bounds(discrete, dist, kind):
    actor_config = dataclasses.replace(SMALL.actor, dist_cont=dist, min_std=1e-4)
    model, behavior = build(discrete, actor=actor_config)
    out = behavior.actor(torch.randn(32, model.rssm.feat_dim) * 10)
    assert isinstance(out, kind)
    mode = out.mode()
    assert mode.min() >= -1 and mode.max() <= 1
    if dist == "tanh_normal":
        sample = out.sample()
        assert sample.abs().max() <= 1
        assert torch.isfinite(out.log_prob(sample)).all()


def test_tanh_normal_log_prob_matches_change_of_variables():
    dist = TanhNormal(torch.tensor([[0.3, -0.2]]), torch.tensor([[0.5, 1.5]]))
    y = torch.tensor([[0.4, -0.9]])
    x = torch.atanh(y)
    base = torch.distributions.Normal(dist.base.mean, dist.base.std)
    expected = (base.log_prob(x) - torch.log(1 - y.square())).sum(-1)
    torch.testing.assert_close(dist.log_prob(y), expected, atol=1e-5, rtol=1e-5)
    torch.manual_seed(0)  # sampled entropy estimate ≈ Monte-Carlo entropy
    many = TanhNormal(torch.zeros(20000, 1), torch.ones(20000, 1))
    estimate = many.entropy().mean().item()
    normal = torch.distributions.Normal(0.0, 1.0)
    samples = normal.sample((20000, 1))
    reference = -(normal.log_prob(samples) - torch.log1p(-(torch.tanh(samples) ** 2))).mean()
    assert math.isclose(estimate, reference.item(), abs_tol=0.05)


def test_bad_config_values_name_the_field():
    with pytest.raises(ValueError, match="horizon"):
        ActorCriticConfig(horizon=0)
    with pytest.raises(ValueError, match="discount"):
        ActorCriticConfig(discount=1.5)


@pytest.mark.parametrize("baseline", [True, False])
def test_dynamics_objective_differentiates_the_advantage_or_the_return(baseline):
    """V3's released code maximises (R_t - V(s_t)) / S with gradients through both terms; V1/V2
    maximise R_t alone. Golden gradients of the actor loss w.r.t. the returns and the values."""
    _, behavior = build(discrete=False, dynamics_baseline=baseline, entropy=0.0)
    N = 3
    returns = torch.tensor([[0.5, 0.2, -0.1, 0.3]] * N, requires_grad=True)  # [N, H]
    base = torch.tensor([[0.1, 0.4, 0.0, -0.2]] * N, requires_grad=True)
    weights = torch.tensor([[1.0, 0.9, 0.8, 0.7]] * N)
    zeros = torch.zeros(N, H)
    imag = Imagination(None, None, None, zeros, zeros)
    loss, metrics = behavior._actor_loss(imag, returns, base, weights)
    loss.backward()
    assert float(metrics["return_scale"]) == 1.0  # a percentile range below 1: no scaling
    torch.testing.assert_close(returns.grad, -weights / (N * H))
    if baseline:
        torch.testing.assert_close(base.grad, weights / (N * H))
    else:  # the values do not enter the objective at all
        assert base.grad is None


def test_v3_preset_differentiates_the_baseline_and_clips_actions_and_v1_v2_do_not():
    from rssm import config as config_lib
    from rssm.run.train import Config

    for name, expected in [("dreamer_v3", True), ("dreamer_v2", False), ("dreamer_v1", False)]:
        config = config_lib.load_presets(Config, [name])
        assert config.dreamer.actor_critic.dynamics_baseline is expected, name
        # V3 (released code) clips the imagined actions entering the dynamics to [-1, 1]
        assert config.world_model.rssm.action_clip == (1.0 if expected else 0.0), name
        assert config.dreamer.actor_critic.imag_cont == ("mode" if expected else "mean"), name


@pytest.mark.parametrize(("kind", "expected"), [("mode", 1.0), ("mean", 1 / (1 + math.exp(-1.0)))])
def test_imagined_continuation_is_the_heads_mode_or_mean(kind, expected):
    """V3's released code continues imagined states by the continue head's mode (0/1), V2 by its
    probability; a head that says 73 % continue gives 1 or 0.73 in the returns and weights."""
    model, behavior = build(discrete=False, imag_cont=kind)
    with torch.no_grad():
        model.cont.out.weight.zero_()
        model.cont.out.bias.fill_(1.0)
    losses = behavior.loss(model, start_states(model))
    assert float(losses.metrics["imag_cont"]) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="imag_cont='median'"):
        ActorCriticConfig(imag_cont="median")


@pytest.mark.parametrize(("discrete", "dist"), [(False, "tanh_normal"), (False, "bounded_normal"),
                                                (True, "bounded_normal")])  # fmt: skip
def test_actor_mode_abs_reports_how_close_the_actor_sits_to_its_bounds(discrete, dist):
    """``actor_mode_abs`` is the mean |mode| over imagined states: moderate for a fresh actor,
    near 1 once the mean is pushed past the bounds (bang-bang), absent for discrete actions."""
    actor_config = dataclasses.replace(SMALL.actor, dist_cont=dist)
    model, behavior = build(discrete, actor=actor_config)
    live_heads(model, behavior)
    start = start_states(model)
    metrics = behavior.loss(model, start).metrics
    if discrete:
        assert "actor_mode_abs" not in metrics
        return
    imag = behavior.imagine(model.rssm, start)
    assert imag.mode is not None and imag.mode.shape == imag.actions.shape
    assert not imag.mode.requires_grad
    fresh = float(metrics["actor_mode_abs"])
    assert 0.0 < fresh < 0.9
    A = model.action_dim
    with torch.no_grad():  # push every mean far outside the bounds, alternating in sign
        behavior.actor.out.weight.zero_()
        behavior.actor.out.bias[:A] = torch.tensor([20.0, -20.0] * A)[:A]
    saturated = float(behavior.loss(model, start).metrics["actor_mode_abs"])
    assert saturated > 0.99
