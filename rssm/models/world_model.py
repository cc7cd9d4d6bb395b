"""World model: encoder, RSSM, decoder, reward and continue heads, and their loss.

Time alignment (DESIGN.md §3): the batch holds the env's action rows (``action[t]`` chosen after
seeing ``o_t``); the model consumes ``prev_action[t] = action[t-1]``, zero at ``is_first`` and at
``t = 0`` when no state is carried. The reward head at t predicts ``reward[t]`` (received on
arriving at ``o_t``), the continue head predicts ``1 - is_terminal[t]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from rssm.models.configs import (
    DecoderConfig,
    EncoderConfig,
    HeadConfig,
    KLConfig,
    OvershootingConfig,
    RSSMConfig,
    WorldModelConfig,
)
from rssm.models.decoder import MultiDecoder
from rssm.models.encoder import MultiEncoder, denormalize_image, normalize_image
from rssm.models.rssm import RSSM
from rssm.nn.heads import Head
from rssm.nn.layers import init_fan_avg_
from rssm.types import RSSMState

__all__ = [
    "DecoderConfig",
    "EncoderConfig",
    "HeadConfig",
    "KLConfig",
    "OpenLoop",
    "OvershootingConfig",
    "RSSMConfig",
    "WorldModel",
    "WorldModelConfig",
    "WorldModelOutput",
]

# Loss-term names besides the decoded observation keys (which must not reuse them).
_TERM_NAMES = {"reward", "cont", "kl", "dyn", "rep", "overshoot", "overshoot_reward"}


class WorldModelOutput(NamedTuple):
    """Result of :meth:`WorldModel.loss`.

    Attributes:
        loss: scalar, ``sum_k loss_scales[k] * terms[k].mean()``.
        terms: unscaled loss terms, each [B, T]; keys equal the loss-scale keys.
        metrics: detached scalar tensors (``kl``, ``prior_ent``, ``post_ent``, ``<term>_loss``,
            ``reward_mae``, ...); no host sync happens until the caller reads them.
        posterior: [B, T] posterior states (with gradients; detach before imagination).
        prior: [B, T] prior states.
        last_state: detached posterior at the last row [B], to carry into the next chunk.
        last_action: detached ``action[:, -1]`` [B, A], the ``prev_action`` of the next chunk.
    """

    loss: Tensor
    terms: dict[str, Tensor]
    metrics: dict[str, Tensor]
    posterior: RSSMState
    prior: RSSMState
    last_state: RSSMState
    last_action: Tensor


class OpenLoop(NamedTuple):
    """Result of :meth:`WorldModel.open_loop`: ``pred`` and ``true`` have the same keys.

    Images are uint8 [B, T-context, H, W, C]; vectors and ``reward`` are float [B, T-context, ...].
    """

    pred: dict[str, Tensor]
    true: dict[str, Tensor]


class WorldModel(nn.Module):
    """Encoder + RSSM + decoder + reward/continue heads (PlaNet, Dreamer V1-V3 via presets).

    Args:
        obs_space: the environment's observation space (``gymnasium.spaces.Dict``).
        action_dim: size A of the action vector (one-hot for discrete actions).
        config: the model's configuration.
    """

    def __init__(
        self, obs_space: gym.spaces.Dict, action_dim: int, config: WorldModelConfig
    ) -> None:
        super().__init__()
        self.config = config
        self.action_dim = action_dim
        self.encoder = MultiEncoder(obs_space, **dataclasses.asdict(config.encoder))
        self.rssm = RSSM(action_dim, self.encoder.out_dim, **dataclasses.asdict(config.rssm))
        feat_dim = self.rssm.feat_dim
        self.decoder = MultiDecoder(feat_dim, obs_space, **dataclasses.asdict(config.decoder))
        self.reward = Head(feat_dim, (), **dataclasses.asdict(config.reward_head))
        self.cont = (
            Head(feat_dim, (), **dataclasses.asdict(config.cont_head))
            if config.predict_cont
            else None
        )
        kl_keys = ["dyn", "rep"] if config.kl.scheme == "dyn_rep" else ["kl"]
        head_keys = ["reward"] + (["cont"] if config.predict_cont else [])
        obs_keys = self.decoder.cnn_keys + self.decoder.mlp_keys
        clash = set(obs_keys) & _TERM_NAMES
        if clash:
            raise ValueError(
                f"WorldModel: observation keys {sorted(clash)} clash with loss-term names; rename "
                "them in an env wrapper or exclude them via decoder.cnn_keys/mlp_keys"
            )
        self.term_keys: list[str] = obs_keys + head_keys + kl_keys + config.overshooting.terms
        unknown = set(config.loss_scales) - set(self.term_keys)
        if unknown:
            raise ValueError(
                f"WorldModel: loss_scales has unknown keys {sorted(unknown)}; the loss terms of "
                f"this model are {self.term_keys} (kl.scheme={config.kl.scheme!r})"
            )
        self.scales = {key: float(config.loss_scales.get(key, 1.0)) for key in self.term_keys}
        if config.init == "fan_avg":
            init_fan_avg_(self)

    # ----------------------------------------------------------------------------- training
    def loss(
        self,
        batch: Mapping[str, Tensor],
        state: RSSMState | None = None,
        prev_action: Tensor | None = None,
    ) -> WorldModelOutput:
        """World-model loss on a batch of sequences.

        Args:
            batch: ``[B, T, ...]`` tensors: the observation keys, ``action`` [B, T, A] (rows as
                recorded: chosen after seeing the row's observation), ``reward`` [B, T],
                ``is_first`` [B, T], ``is_terminal`` [B, T] (with a continue head).
            state: state before the first row [B] (``last_state`` of the previous chunk) or None.
            prev_action: action taken before the first row [B, A] (``last_action`` of the previous
                chunk); required with ``state``.

        Returns:
            A :class:`WorldModelOutput`.
        """
        B, T = self._check_batch(batch)
        action = batch["action"].to(torch.get_default_dtype())
        is_first = batch["is_first"].bool()
        if (state is None) != (prev_action is None):
            raise ValueError(
                "WorldModel.loss: pass state and prev_action together (last_state and "
                "last_action of the previous output), or neither"
            )
        if prev_action is None:
            first_action = action.new_zeros(B, 1, self.action_dim)
        elif prev_action.shape != (B, self.action_dim):
            raise ValueError(
                f"WorldModel.loss: prev_action has shape {tuple(prev_action.shape)}, expected "
                f"[B={B}, A={self.action_dim}] (the previous output's last_action)"
            )
        else:
            first_action = prev_action.unsqueeze(1).to(action.dtype)
        prev_actions = _shift(action, first_action, is_first)
        inputs = self.encoder.preprocess(batch, noise=self.training)
        embed = self.encoder.encode(inputs)
        posterior, prior = self.rssm.observe(state, embed, prev_actions, is_first)
        feat = posterior.feat()
        terms: dict[str, Tensor] = {}
        for key, dist in self.decoder(feat).items():
            target = inputs[key] if key in inputs else self._decoder_target(batch, key)
            terms[key] = dist.loss(target)
        reward_dist = self.reward(feat)
        reward = batch["reward"].to(feat.dtype)
        terms["reward"] = reward_dist.loss(reward)
        if self.cont is not None:
            terms["cont"] = self.cont(feat).loss(1.0 - batch["is_terminal"].to(feat.dtype))
        kl = self.rssm.kl_loss(posterior, prior, **dataclasses.asdict(self.config.kl))
        kl_value = kl.pop("kl_value")
        terms.update(kl)
        if self.config.overshooting.enabled:
            terms.update(self._overshooting(posterior, prev_actions, is_first, reward))
        assert list(terms) == self.term_keys, (list(terms), self.term_keys)
        loss = sum(self.scales[key] * value.mean() for key, value in terms.items())
        with torch.no_grad():
            metrics = {f"{key}_loss": value.mean() for key, value in terms.items()}
            metrics["kl"] = kl_value.mean()
            metrics["prior_ent"] = self.rssm.dist(prior.stats).entropy().mean()
            metrics["post_ent"] = self.rssm.dist(posterior.stats).entropy().mean()
            predicted = reward_dist.mode()
            metrics["reward_mae"] = (predicted - reward).abs().mean()
            # The batch's mean reward and the reward head's mean reading of the same rows: a head
            # that reads several times the data's reward (sparse rewards, early training) feeds
            # that bias to every imagined trajectory (``imag_reward``).
            metrics["data_reward"] = reward.mean()
            metrics["post_reward"] = predicted.mean()
        last_state = posterior.at((slice(None), -1)).detach()
        return WorldModelOutput(
            loss, terms, metrics, posterior, prior, last_state, action[:, -1].detach()
        )

    def _overshooting(
        self, posterior: RSSMState, prev_actions: Tensor, is_first: Tensor, reward: Tensor
    ) -> dict[str, Tensor]:
        """Latent-overshooting terms [B, T] (see :class:`OvershootingConfig`)."""
        B, T = is_first.shape
        config = self.config.overshooting
        D = min(config.distance, T - 1)
        if D < 2:  # sequences too short for a distance of 2
            return {key: reward.new_zeros(B, T) for key in config.terms}
        # Step i = 1..D from start row t takes prev_actions[t + i] (rows past T: padding, masked).
        actions = _windows(prev_actions, D, 0.0)[:, :, 1:]  # [B, T, D, A]
        states, _ = self.rssm.imagine(posterior.reshape(-1), actions.flatten(0, 1))
        far = states.at((slice(None), slice(2, None))).reshape(B, T, D - 1)  # distances 2..D
        target = _windows(posterior.stats.detach(), D, None)[:, :, 2:]  # [B, T, D-1, S]
        # Valid: t + d < T and no episode start in rows t+1 .. t+d (the prior cannot reset).
        starts = torch.cumsum(is_first.long(), 1)
        later = _windows(starts.unsqueeze(-1), D, T + 1).squeeze(-1)[:, :, 2:]  # [B, T, D-1]
        valid = later == starts.unsqueeze(-1)
        count = valid.sum(-1).clamp(min=1)

        def masked_mean(value: Tensor) -> Tensor:  # [B, T, D-1] -> [B, T]
            return torch.where(valid, value, 0.0).sum(-1) / count

        kl = self.rssm.dist(target).kl(self.rssm.dist(far.stats))
        terms = {"overshoot": masked_mean(kl.clamp(min=self.config.kl.free_nats))}
        if config.reward:
            future = _windows(reward.unsqueeze(-1), D, 0.0).squeeze(-1)[:, :, 2:]
            terms["overshoot_reward"] = masked_mean(self.reward(far.feat()).loss(future))
        return terms

    def _decoder_target(self, batch: Mapping[str, Tensor], key: str) -> Tensor:
        """Target of a decoded key that the encoder does not read (normalised like its input)."""
        value = batch[key]
        if key in self.decoder.cnn_shapes:
            return normalize_image(value, self.encoder.bit_depth)
        return value.to(torch.get_default_dtype())

    def _check_batch(self, batch: Mapping[str, Tensor]) -> tuple[int, int]:
        if "is_first" not in batch:
            raise ValueError(
                f"WorldModel: batch has no 'is_first' [B, T]; got keys {sorted(batch)}"
            )
        if batch["is_first"].dim() != 2:
            raise ValueError(
                f"WorldModel: is_first has shape {tuple(batch['is_first'].shape)}, expected [B, T]"
            )
        B, T = batch["is_first"].shape
        needed = {"action": (self.action_dim,), "reward": ()}
        if self.cont is not None:
            needed["is_terminal"] = ()
        needed.update(self.encoder.cnn_shapes)
        needed.update(self.encoder.mlp_shapes)
        needed.update(self.decoder.cnn_shapes)
        needed.update(self.decoder.mlp_shapes)
        for key, shape in needed.items():
            if key not in batch:
                raise ValueError(
                    f"WorldModel: batch is missing key {key!r} (expected shape "
                    f"{[B, T, *shape]}); got keys {sorted(batch)}"
                )
            if tuple(batch[key].shape) != (B, T, *shape):
                hint = " (action_dim of the model)" if key == "action" else ""
                raise ValueError(
                    f"WorldModel: batch[{key!r}] has shape {tuple(batch[key].shape)}, expected "
                    f"{[B, T, *shape]}{hint}"
                )
        return B, T

    # ----------------------------------------------------------------------------- acting
    def initial(self, batch_size: int) -> RSSMState:
        """Initial latent state [batch_size] (see :meth:`RSSM.initial`)."""
        return self.rssm.initial(batch_size)

    def obs_step(
        self, state: RSSMState | None, prev_action: Tensor, obs: Mapping[str, Tensor]
    ) -> RSSMState:
        """Filter one environment step (acting): the posterior after seeing ``obs``.

        Args:
            state: posterior of the previous step [N], or None for the initial state.
            prev_action: [N, A] action taken after the previous observation (any value where
                ``obs["is_first"]``: it is reset there).
            obs: observations [N, ...] including ``is_first`` [N].

        Returns:
            Posterior state [N].
        """
        if "is_first" not in obs:
            raise ValueError(
                f"WorldModel.obs_step: obs needs 'is_first' [N]; got keys {sorted(obs)}"
            )
        embed = self.encoder(obs)
        if state is None:
            state = self.rssm.initial(embed.shape[0])
        posterior, _ = self.rssm.obs_step(state, prev_action, embed, obs["is_first"])
        return posterior

    # ----------------------------------------------------------------------------- reports
    @torch.no_grad()
    def open_loop(
        self, batch: Mapping[str, Tensor], context: int, *, sample: bool = True
    ) -> OpenLoop:
        """Observe ``context`` rows, then predict the rest open-loop from the recorded actions.

        The prediction for row ``t >= context`` comes from ``imagine`` starting at the posterior of
        row ``context - 1`` with actions ``action[:, context-1 : T-1]``. Episode starts inside the
        predicted part are not reset (use sequences from one episode).

        Args:
            batch: as for :meth:`loss` ([B, T, ...]).
            context: observed rows, ``1 <= context < T``.
            sample: sample the imagined latents (as in training); False rolls out the prior's
                mode, the single most likely future (for scoring prediction error).

        Returns:
            :class:`OpenLoop` with ``pred`` and ``true`` per decoded key and ``reward``, each
            [B, T - context, ...]; images uint8 HWC.
        """
        B, T = self._check_batch(batch)
        if not 1 <= context < T:
            raise ValueError(f"open_loop: context={context} must be in [1, T={T})")
        action = batch["action"].to(torch.get_default_dtype())
        is_first = batch["is_first"].bool()
        prev_actions = _shift(action, action.new_zeros(B, 1, self.action_dim), is_first)
        observed = {key: value[:, :context] for key, value in batch.items()}
        embed = self.encoder(observed)
        posterior, _ = self.rssm.observe(
            None, embed, prev_actions[:, :context], is_first[:, :context]
        )
        start = posterior.at((slice(None), -1))
        states, _ = self.rssm.imagine(start, action[:, context - 1 : T - 1], sample=sample)
        feat = states.at((slice(None), slice(1, None))).feat()  # rows context .. T-1
        pred: dict[str, Tensor] = {}
        for key, dist in self.decoder(feat).items():
            mode = dist.mode()
            if key in self.decoder.cnn_shapes:
                mode = denormalize_image(mode, self.encoder.bit_depth)
            pred[key] = mode
        pred["reward"] = self.reward(feat).mode()
        true = {key: batch[key][:, context:] for key in pred}
        return OpenLoop(pred, true)

    # ----------------------------------------------------------------------------- data
    def preprocess(self, batch: Mapping[str, np.ndarray | Tensor]) -> dict[str, Tensor]:
        """Numpy (or tensor) batch from replay -> tensors on the model's device.

        uint8 and bool stay as they are (images are normalised by the encoder), float64 becomes
        the default float dtype, everything else keeps its dtype.
        """
        device = next(self.parameters()).device
        out = {}
        for key, value in batch.items():
            tensor = torch.as_tensor(value)
            if tensor.dtype == torch.float64:
                tensor = tensor.to(torch.get_default_dtype())
            out[key] = tensor.to(device, non_blocking=True)
        return out


def _shift(action: Tensor, first: Tensor, is_first: Tensor) -> Tensor:
    """``prev_action [B, T, A]``: ``action`` shifted one row right after ``first`` [B, 1, A] and
    zeroed where ``is_first`` [B, T] (DESIGN §3)."""
    prev = torch.cat([first, action[:, :-1]], 1)
    return prev.masked_fill(is_first.unsqueeze(-1), 0.0)


def _windows(x: Tensor, distance: int, pad: float | None) -> Tensor:
    """``out[:, t, i] = x[:, t + i]`` for ``i = 0 .. distance``: [B, T, distance + 1, F] from
    ``x`` [B, T, F]; rows past T are ``pad``, or copies of the last row for None (valid stats)."""
    if pad is None:
        filler = x[:, -1:].expand(x.shape[0], distance, x.shape[-1])
    else:
        filler = x.new_full((x.shape[0], distance, x.shape[-1]), pad)
    return torch.cat([x, filler], 1).unfold(1, distance + 1, 1).movedim(-1, 2)
