"""RSSM semantics: resets, shapes, the one rollout path, KL schemes and gradient routing."""

from __future__ import annotations

import math

import pytest
import torch

from rssm.models.rssm import RSSM, imagine
from rssm.types import RSSMState

A, E = 3, 10


def make_rssm(latent: str = "categorical", initial: str = "zeros", **kwargs) -> RSSM:
    torch.manual_seed(0)
    options = dict(deter=16, stoch=4, classes=5, units=12, initial=initial, unimix=0.01)
    options.update(kwargs)
    return RSSM(A, E, latent=latent, **options)


BOTH = pytest.mark.parametrize(
    "latent,initial",
    [("gaussian", "zeros"), ("categorical", "zeros"), ("categorical", "learned")],
)


@BOTH
def test_is_first_resets_deter_stoch_and_prev_action(latent, initial):
    """Two sequences that differ only before an is_first (history, start state and the
    prev_action at the reset row) give identical posteriors and priors from the reset on."""
    rssm = make_rssm(latent, initial)
    with torch.no_grad():  # peaked posteriors, so that different histories sample different z
        rssm._obs_out.weight.mul_(50.0)
    B, T, reset = 2, 7, 3
    gen = torch.Generator().manual_seed(1)
    embed = torch.randn(B, T, E, generator=gen)
    action = torch.randn(B, T, A, generator=gen)
    embed2, action2 = embed.clone(), action.clone()
    embed2[:, :reset] = 10 * torch.randn(B, reset, E, generator=gen)  # far apart histories
    action2[:, : reset + 1] = torch.randn(B, reset + 1, A, generator=gen)  # incl. the reset row
    start1 = rssm.initial(B).map(lambda x: x + torch.randn(x.shape, generator=gen))
    start2 = rssm.initial(B).map(lambda x: x + torch.randn(x.shape, generator=gen))
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, reset] = True

    def run(start, emb, act, first):
        torch.manual_seed(5)  # same sampling noise for both runs
        return rssm.observe(start, emb, act, first)

    post1, prior1 = run(start1, embed, action, is_first)
    post2, prior2 = run(start2, embed2, action2, is_first)
    after = (slice(None), slice(reset, None))
    for a, b in zip(post1.at(after), post2.at(after), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(prior1.at(after), prior2.at(after), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # Before the reset the histories differ, and without the reset they keep differing.
    assert not torch.allclose(post1.deter[:, reset - 1], post2.deter[:, reset - 1])
    assert not torch.equal(post1.stoch[:, reset - 1], post2.stoch[:, reset - 1])
    post3, _ = run(start2, embed2, action2, torch.zeros_like(is_first))
    assert not torch.allclose(post1.deter[:, reset], post3.deter[:, reset])


@BOTH
def test_reset_equals_fresh_start(latent, initial):
    """A reset mid-sequence gives the same step as starting from initial() with a zero action."""
    rssm = make_rssm(latent, initial)
    N = 4
    gen = torch.Generator().manual_seed(2)
    embed = torch.randn(N, E, generator=gen)
    junk = rssm.initial(N).map(lambda x: x + torch.randn(x.shape, generator=gen))
    torch.manual_seed(3)
    post1, _ = rssm.obs_step(junk, torch.randn(N, A, generator=gen), embed, torch.ones(N))
    torch.manual_seed(3)
    post2, _ = rssm.obs_step(rssm.initial(N), torch.zeros(N, A), embed, torch.zeros(N))
    for a, b in zip(post1, post2, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_observe_and_imagine_shapes(latent):
    rssm = make_rssm(latent)
    B, T, H = 3, 5, 4
    stoch = 4 * 5 if latent == "categorical" else 4
    stats = stoch if latent == "categorical" else 8
    post, prior = rssm.observe(None, torch.randn(B, T, E), torch.randn(B, T, A), torch.ones(B, T))
    for state in (post, prior):
        assert state.deter.shape == (B, T, 16)
        assert state.stoch.shape == (B, T, stoch)
        assert state.stats.shape == (B, T, stats)
        assert state.feat().shape == (B, T, rssm.feat_dim) == (B, T, 16 + stoch)
    states, actions = rssm.imagine(post.reshape(-1), torch.randn(B * T, H, A))
    assert states.deter.shape == (B * T, H + 1, 16) and states.stoch.shape == (B * T, H + 1, stoch)
    assert actions.shape == (B * T, H, A)
    torch.testing.assert_close(states.deter[:, 0], post.deter.reshape(-1, 16))
    states, actions = imagine(rssm, post.at((slice(None), -1)), lambda s: s.deter[:, :A], H)
    assert states.batch_shape == (B, H + 1) and actions.shape == (B, H, A)
    if latent == "categorical":  # one-hot samples
        groups = states.stoch.unflatten(-1, (4, 5))
        torch.testing.assert_close(groups.sum(-1), torch.ones(B, H + 1, 4))


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_imagine_policy_equals_action_tensor(latent):
    rssm = make_rssm(latent)
    N, H = 6, 5
    start, _ = rssm.obs_step(rssm.initial(N), torch.zeros(N, A), torch.randn(N, E), torch.ones(N))
    weight = torch.randn(rssm.feat_dim, A)

    def policy(state: RSSMState) -> torch.Tensor:
        return torch.tanh(state.feat() @ weight)

    torch.manual_seed(7)
    states1, actions1 = rssm.imagine(start, policy, H)
    torch.manual_seed(7)
    states2, actions2 = rssm.imagine(start, actions1, H)
    assert actions2 is actions1
    for a, b in zip(states1, states2, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # The policy really was applied to the imagined states.
    torch.testing.assert_close(actions1[:, 2], policy(states1.at((slice(None), 2))))


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_imagine_without_sampling_follows_the_prior_mode(latent):
    rssm = make_rssm(latent)
    N, H = 6, 4
    start, _ = rssm.obs_step(rssm.initial(N), torch.zeros(N, A), torch.randn(N, E), torch.ones(N))
    actions = torch.rand(N, H, A) * 2 - 1
    torch.manual_seed(1)
    mode1, _ = rssm.imagine(start, actions, sample=False)
    torch.manual_seed(2)
    mode2, _ = rssm.imagine(start, actions, sample=False)
    torch.testing.assert_close(mode1.stoch, mode2.stoch, rtol=0, atol=0)  # no randomness
    for i in range(1, H + 1):
        expected = rssm.dist(mode1.stats[:, i]).mode()
        torch.testing.assert_close(
            mode1.stoch[:, i], expected.flatten(-2) if latent == "categorical" else expected
        )
    sampled, _ = rssm.imagine(start, actions)
    assert not torch.equal(sampled.stoch[:, 1:], mode1.stoch[:, 1:])


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_rollout_yields_the_steps_of_imagine(latent):
    rssm = make_rssm(latent)
    N, H = 6, 4
    start, _ = rssm.obs_step(rssm.initial(N), torch.zeros(N, A), torch.randn(N, E), torch.ones(N))
    actions = torch.rand(N, H, A) * 2 - 1
    torch.manual_seed(3)
    states, _ = rssm.imagine(start, actions)
    torch.manual_seed(3)
    steps = list(rssm.rollout(start, actions))
    assert len(steps) == H
    for i, (action, state) in enumerate(steps):
        assert torch.equal(action, actions[:, i])
        for a, b in zip(state, states.at((slice(None), i + 1)), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="actions have shape"):  # at the call, not at next()
        rssm.rollout(start, torch.zeros(N, H, A + 1))


def test_imagine_bad_inputs():
    rssm = make_rssm()
    post, _ = rssm.observe(None, torch.randn(2, 3, E), torch.randn(2, 3, A), torch.ones(2, 3))
    with pytest.raises(ValueError, match="reshape"):
        rssm.imagine(post, torch.zeros(2, 4, A))
    with pytest.raises(ValueError, match="actions have shape"):
        rssm.imagine(post.reshape(-1), torch.zeros(6, 4, A + 1))
    with pytest.raises(ValueError, match="horizon is required"):
        rssm.imagine(post.reshape(-1), lambda s: s.deter[:, :A])
    with pytest.raises(ValueError, match="policy returned"):
        rssm.imagine(post.reshape(-1), lambda s: s.deter[:, : A + 1], 2)
    with pytest.raises(ValueError, match="embed has shape"):
        rssm.observe(None, torch.randn(2, 3, E + 1), torch.randn(2, 3, A), torch.ones(2, 3))


def _state(stats: torch.Tensor) -> RSSMState:
    return RSSMState(torch.zeros(*stats.shape[:-1], 1), torch.zeros_like(stats), stats)


def test_gaussian_kl_golden_value():
    rssm = make_rssm("gaussian", stoch=2)
    # dim 0: N(0, 1) vs N(1, 2): log 2 + (1 + 1) / 8 - 1/2; dim 1: identical -> 0.
    post = _state(torch.tensor([[[0.0, 1.0, 1.0, 0.5]]]))  # mean (0, 1), std (1, 0.5)
    prior = _state(torch.tensor([[[1.0, 1.0, 2.0, 0.5]]]))
    golden = math.log(2.0) + 0.25 - 0.5
    for scheme, key in [("free_nats", "kl"), ("balance", "kl"), ("dyn_rep", "dyn")]:
        out = rssm.kl_loss(post, prior, scheme=scheme, free_nats=0.0)
        assert out[key].shape == (1, 1)
        assert out[key].item() == pytest.approx(golden, abs=1e-6)
        assert out["kl_value"].item() == pytest.approx(golden, abs=1e-6)


def test_categorical_kl_golden_value():
    rssm = make_rssm("categorical", stoch=2, classes=2, unimix=0.0)
    # group 0: KL([.5, .5] || [.25, .75]); group 1: identical -> 0.
    post = _state(torch.tensor([0.5, 0.5, 0.3, 0.7]).log().reshape(1, 1, 4))
    prior = _state(torch.tensor([0.25, 0.75, 0.3, 0.7]).log().reshape(1, 1, 4))
    golden = 0.5 * math.log(2.0) + 0.5 * math.log(0.5 / 0.75)
    out = rssm.kl_loss(post, prior, scheme="dyn_rep", free_nats=0.0)
    assert out["dyn"].item() == pytest.approx(golden, abs=1e-6)
    assert out["rep"].item() == pytest.approx(golden, abs=1e-6)
    # Unimix mixes the probabilities before the KL: 1% uniform shrinks it.
    mixed = make_rssm("categorical", stoch=2, classes=2, unimix=0.01)
    p = 0.99 * torch.tensor([0.5, 0.5]) + 0.005
    q = 0.99 * torch.tensor([0.25, 0.75]) + 0.005
    golden_mixed = (p * (p / q).log()).sum().item()
    out = mixed.kl_loss(post, prior, scheme="free_nats", free_nats=0.0)
    assert out["kl"].item() == pytest.approx(golden_mixed, abs=1e-6)


def test_free_nats_clips_loss_and_gradient():
    rssm = make_rssm("gaussian", stoch=2)
    post_stats = torch.tensor([[[0.0, 0.1, 1.0, 1.0]]], requires_grad=True)  # KL 0.005 < 3
    prior_stats = torch.tensor([[[0.0, 0.0, 1.0, 1.0]]], requires_grad=True)
    out = rssm.kl_loss(_state(post_stats), _state(prior_stats), scheme="free_nats", free_nats=3.0)
    assert out["kl"].item() == 3.0
    assert out["kl_value"].item() == pytest.approx(0.005, abs=1e-6)
    out["kl"].sum().backward()
    assert post_stats.grad.abs().sum() == 0 and prior_stats.grad.abs().sum() == 0
    # Above the threshold the KL passes through with its gradient.
    far = torch.tensor([[[5.0, 0.0, 1.0, 1.0]]], requires_grad=True)  # KL 12.5
    out = rssm.kl_loss(_state(far), _state(prior_stats), scheme="free_nats", free_nats=3.0)
    assert out["kl"].item() == pytest.approx(12.5)
    out["kl"].sum().backward()
    assert far.grad[0, 0, 0].item() == pytest.approx(5.0)


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_kl_balance_gradient_ratio(latent):
    rssm = make_rssm(latent, stoch=2, classes=3, unimix=0.0)
    gen = torch.Generator().manual_seed(0)
    dim = 4 if latent == "gaussian" else 6
    raw_post = torch.randn(2, 3, dim, generator=gen)
    raw_prior = torch.randn(2, 3, dim, generator=gen)
    if latent == "gaussian":  # keep stds positive
        raw_post[..., 2:], raw_prior[..., 2:] = raw_post[..., 2:].exp(), raw_prior[..., 2:].exp()

    def grads(scheme: str, balance: float = 0.8):
        post = raw_post.clone().requires_grad_()
        prior = raw_prior.clone().requires_grad_()
        kwargs = dict(scheme=scheme, free_nats=0.0, balance=balance)
        out = rssm.kl_loss(_state(post), _state(prior), **kwargs)
        out["kl"].sum().backward()
        return post.grad, prior.grad

    plain_post, plain_prior = grads("free_nats")
    post, prior = grads("balance", 0.8)
    torch.testing.assert_close(post, 0.2 * plain_post)
    torch.testing.assert_close(prior, 0.8 * plain_prior)
    assert plain_post.abs().sum() > 0 and plain_prior.abs().sum() > 0


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_dyn_rep_gradient_isolation(latent):
    """dyn trains only the prior, rep only the posterior (and the encoder)."""
    rssm = make_rssm(latent)
    embed = torch.randn(2, 1, E, requires_grad=True)  # T = 1: h_0 does not depend on the embed

    def grads(key: str) -> dict[str, torch.Tensor | None]:
        rssm.zero_grad(set_to_none=True)
        embed.grad = None
        post, prior = rssm.observe(None, embed, torch.randn(2, 1, A), torch.ones(2, 1))
        out = rssm.kl_loss(post, prior, scheme="dyn_rep", free_nats=0.0)
        out[key].sum().backward()
        found = {name: p.grad for name, p in rssm.named_parameters()}
        found["embed"] = embed.grad
        return found

    def nonzero(g):
        return g is not None and g.abs().sum() > 0

    dyn = grads("dyn")
    assert not nonzero(dyn["embed"]) and not nonzero(dyn["_obs_out.weight"])
    assert nonzero(dyn["_prior.net.3.weight"])
    assert any(nonzero(g) for name, g in dyn.items() if name.startswith("_gru."))
    rep = grads("rep")
    assert nonzero(rep["embed"]) and nonzero(rep["_obs_out.weight"])
    assert not any(nonzero(g) for name, g in rep.items() if name.startswith("_prior."))


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_sample_gradients_reach_posterior(latent):
    """Straight-through (categorical) / reparameterised (Gaussian) samples pass gradients."""
    rssm = make_rssm(latent)
    embed = torch.randn(2, 3, E, requires_grad=True)
    post, _ = rssm.observe(None, embed, torch.randn(2, 3, A), torch.ones(2, 3))
    (post.stoch * torch.randn_like(post.stoch)).sum().backward()
    assert embed.grad.abs().sum() > 0
    assert rssm._obs_out.weight.grad.abs().sum() > 0


def test_learned_initial_gets_gradient_and_state_helpers():
    rssm = make_rssm("categorical", "learned")
    init = rssm.initial(3)
    assert init.batch_shape == (3,)
    torch.testing.assert_close(init.deter, torch.zeros(3, 16))  # tanh(0) at construction
    post, prior = rssm.observe(None, torch.randn(2, 4, E), torch.randn(2, 4, A), torch.ones(2, 4))
    out = rssm.kl_loss(post, prior, scheme="dyn_rep", free_nats=0.0)
    (out["dyn"] + out["rep"]).sum().backward()
    assert rssm._initial_deter.grad.abs().sum() > 0
    stacked = RSSMState.stack([post.at((slice(None), 0)), post.at((slice(None), 1))], 1)
    torch.testing.assert_close(stacked.deter, post.deter[:, :2])
    assert post.detach().deter.requires_grad is False
    assert RSSMState.cat([post, post], 1).batch_shape == (2, 8)


def test_prior_step_dispatch_and_copies_drop_the_compiled_function():
    """``img_step`` and ``imagine`` both run the (possibly compiled) prior step; a deep copy or a
    pickle of the module runs eager instead of calling the original's compiled graph."""
    import copy
    import pickle

    rssm = make_rssm("gaussian")
    N, H = 4, 3
    start = rssm.initial(N)
    actions = torch.rand(N, H, A) * 2 - 1
    calls = []

    def counted(*args):
        calls.append(args[3])
        return rssm._prior_step_eager(*args)

    with torch.no_grad():
        eager, _ = rssm.imagine(start, actions, sample=False)
        rssm._compiled_prior_step = counted
        again, _ = rssm.imagine(start, actions, sample=False)
        rssm.img_step(start, actions[:, 0])
    assert calls == [False] * H + [True]
    torch.testing.assert_close(again.deter, eager.deter, rtol=0, atol=0)
    for clone in (copy.deepcopy(rssm), pickle.loads(pickle.dumps(rssm))):
        assert clone._compiled_prior_step is None
        assert list(clone.state_dict()) == list(rssm.state_dict())
    assert rssm._compiled_prior_step is counted  # the original keeps it


@pytest.mark.slow
@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_compiled_prior_step_matches_eager(latent):  # compiling takes ~10 s per latent on 2 cores
    """``compile_prior_step`` (``run.compile``): the same rollout as eager, the same state dict."""
    rssm = make_rssm(latent)
    N, H = 5, 3
    start, _ = rssm.obs_step(rssm.initial(N), torch.zeros(N, A), torch.randn(N, E), torch.ones(N))
    actions = torch.rand(N, H, A) * 2 - 1
    with torch.no_grad():
        eager, _ = rssm.imagine(start, actions, sample=False)
        keys = list(rssm.state_dict())
        rssm.compile_prior_step()
        compiled, _ = rssm.imagine(start, actions, sample=False)
        step = rssm.img_step(start, actions[:, 0])
    assert list(rssm.state_dict()) == keys
    for a, b in zip(compiled, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(step.deter, eager.deter[:, 1], rtol=1e-5, atol=1e-5)
    assert torch.isfinite(step.stoch).all()


def test_action_clip_scales_actions_into_range_with_a_straight_gradient():
    """``a * sg(clip / max(clip, |a|))``: the dynamics see actions in [-clip, clip]; the gradient
    reaching an action is scaled by the same factor (DreamerV3's released code)."""
    clipped, plain = make_rssm(action_clip=1.0), make_rssm()
    assert clipped.action_clip == 1.0 and plain.action_clip == 0.0
    raw = torch.tensor([[2.0, -0.5, -4.0]], requires_grad=True)
    out = clipped._action_in(raw)
    torch.testing.assert_close(out, plain._action_in(torch.tensor([[1.0, -0.5, -1.0]])))
    out.sum().backward()
    weight_sums = clipped._img_in_action.weight.sum(0)  # d out.sum() / d (scaled action)
    torch.testing.assert_close(raw.grad, weight_sums * torch.tensor([[0.5, 1.0, 0.25]]))
    # the rollout path uses it: an out-of-range action imagines like its clipped version
    state = clipped.initial(1)
    torch.manual_seed(3)
    a, _ = clipped.imagine(state, raw.detach()[:, None], sample=False)
    b, _ = clipped.imagine(state, torch.tensor([[[1.0, -0.5, -1.0]]]), sample=False)
    torch.testing.assert_close(a.deter, b.deter)
    with pytest.raises(ValueError, match="action_clip=-1"):
        make_rssm(action_clip=-1.0)
