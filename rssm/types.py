"""Small typed containers shared across the library.

Time alignment (DESIGN.md §3). One row per environment step; the action in a row is the one chosen
*after* seeing that row's observation::

    t:            0     1     2     3
    obs:          o0    o1    o2    o3
    is_first:     1     0     0     0
    reward:       0     r1    r2    r3        reward received on arriving at o_t
    is_terminal:  0     0     0     1
    action:       a0    a1    a2    a3        chosen after seeing o_t
    prev_action:  0     a0    a1    a2        consumed by the RSSM at t: shifted, 0 at is_first

    RSSM:  h_t = f(h_{t-1}, z_{t-1}, prev_action_t);  posterior z_t ~ q(h_t, embed(o_t));
           prior z^_t ~ p(h_t).  At is_first, h, z and prev_action all reset to the initial state.
    heads at t:   reward_t ~ r_t;  continue_t ~ 1 - is_terminal_t
    imagination:  s_0 = start; a_i = pi(s_i); s_{i+1} = prior step(s_i, a_i)  (i = 0 .. H-1)

Public tensors are batch-major ``[B, T, ...]``; imagination is ``[N, H+1, ...]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["RSSMState"]


class RSSMState(NamedTuple):
    """The latent state of an RSSM at one or more time steps.

    All fields share the same leading batch shape ``[...]`` (e.g. ``[B]``, ``[B, T]`` or
    ``[N, H+1]``) and have exactly one trailing feature dimension, so a state can be indexed,
    stacked, reshaped and detached field by field (see :meth:`map`).

    The state at row ``t`` of a sequence is the one *after* consuming ``prev_action_t`` and (for a
    posterior) the observation ``o_t``: ``deter`` is ``h_t = f(h_{t-1}, z_{t-1}, prev_action_t)``
    and ``stoch`` is ``z_t``. At ``is_first`` the previous ``h``, ``z`` and ``prev_action`` are
    replaced by the initial state before the step is taken (module docstring).

    Attributes:
        deter: deterministic recurrent state ``h`` [..., D].
        stoch: stochastic state ``z``: a Gaussian sample [..., S], or for categorical latents the
            flattened one-hot sample of S groups with C classes each [..., S*C] (straight-through
            gradients).
        stats: parameters of the distribution ``z`` was drawn from: Gaussian ``concat(mean, std)``
            [..., 2*S] or categorical raw logits [..., S*C] (before unimix). ``RSSM.dist(stats)``
            turns them back into a distribution.
    """

    deter: Tensor
    stoch: Tensor
    stats: Tensor

    def feat(self) -> Tensor:
        """Features for heads and the actor: ``concat(deter, stoch)`` [..., D + stoch dim]."""
        return torch.cat([self.deter, self.stoch], -1)

    @property
    def batch_shape(self) -> torch.Size:
        """Leading shape shared by all fields (everything but the feature dim)."""
        return self.deter.shape[:-1]

    def map(self, fn: Callable[[Tensor], Tensor]) -> RSSMState:
        """Apply ``fn`` to every field; ``fn`` must keep the trailing feature dim intact."""
        return RSSMState(fn(self.deter), fn(self.stoch), fn(self.stats))

    def detach(self) -> RSSMState:
        """A copy cut from the autograd graph (e.g. imagination starts in Dreamer)."""
        return RSSMState(self.deter.detach(), self.stoch.detach(), self.stats.detach())

    def at(self, idx: int | slice | Tensor | tuple) -> RSSMState:
        """Index the batch dims, e.g. ``state.at((slice(None), -1))`` is the last time step.

        (Named ``at`` because ``index``/``[]`` belong to the tuple protocol.)

        Args:
            idx: anything valid for ``tensor[idx]`` that only touches the leading batch dims.
        """
        return self.map(lambda x: x[idx])

    def reshape(self, *batch_shape: int) -> RSSMState:
        """Reshape the batch dims, e.g. ``posterior.reshape(-1)`` turns [B, T] into [B*T]."""
        return self.map(lambda x: x.reshape(*batch_shape, x.shape[-1]))

    def where(self, mask: Tensor, other: RSSMState) -> RSSMState:
        """Per batch element: ``other`` where ``mask`` is true, else ``self``.

        Args:
            mask: bool [...], the batch shape (or broadcastable to it).
            other: a state whose fields broadcast against ``self``'s.
        """
        m = mask.unsqueeze(-1)
        return RSSMState(
            torch.where(m, other.deter, self.deter),
            torch.where(m, other.stoch, self.stoch),
            torch.where(m, other.stats, self.stats),
        )

    @staticmethod
    def stack(states: Sequence[RSSMState], dim: int = 1) -> RSSMState:
        """Stack states along a new batch dim (``dim`` counts batch dims, default 1 = time)."""
        if not states:
            raise ValueError("RSSMState.stack: got an empty sequence of states")
        return RSSMState(*(torch.stack(fields, dim) for fields in zip(*states, strict=True)))

    @staticmethod
    def cat(states: Sequence[RSSMState], dim: int = 1) -> RSSMState:
        """Concatenate states along an existing batch dim (default 1 = time)."""
        if not states:
            raise ValueError("RSSMState.cat: got an empty sequence of states")
        return RSSMState(*(torch.cat(fields, dim) for fields in zip(*states, strict=True)))
