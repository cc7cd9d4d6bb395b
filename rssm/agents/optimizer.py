"""One optimiser step as the agents take it: backward, global-norm clip, Adam, and a skip of any
update whose loss or gradients are not finite (numerical safety, issue 5).

Under ``torchrun`` the gradients are averaged over the ranks before clipping
(:func:`rssm.distributed.average_gradients`), so every rank takes the same step and skips the same
updates.

A skipped update leaves the weights and Adam's moments untouched; it is reported in the metrics
as ``<name>_nonfinite = 1`` so that the training loop can count and warn about it, and stop a run
whose updates keep failing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from rssm import distributed

__all__ = ["MAX_NONFINITE", "NonFiniteError", "Optimizer"]

MAX_NONFINITE = 20  # skipped updates in a row that stop a run (the default of run.max_nonfinite)


class NonFiniteError(RuntimeError):
    """Too many updates in a row had a non-finite loss or gradient."""


class Optimizer:
    """Adam over ``params`` with gradient-norm clipping and non-finite skipping.

    Args:
        params: the parameters this optimiser owns (and the only ones it differentiates into
            when ``step(..., only_own=True)``).
        name: prefix of the metrics (``model``, ``actor``, ``critic``).
        lr, eps: Adam's learning rate and epsilon.
        clip: maximum global gradient norm.
    """

    def __init__(
        self, params: Iterable[nn.Parameter], *, name: str, lr: float, eps: float, clip: float
    ) -> None:
        self.params = list(params)
        self.name = name
        self.clip = clip
        self.adam = torch.optim.Adam(self.params, lr=lr, eps=eps)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.adam.param_groups

    def step(self, loss: Tensor, *, only_own: bool = False) -> dict[str, Tensor]:
        """Backward ``loss``, clip, and step unless the loss or the gradient norm is not finite.

        Args:
            loss: scalar loss.
            only_own: accumulate gradients only into this optimiser's parameters
                (``backward(inputs=params)``), e.g. the actor's loss that differentiates through
                the world model without training it.

        Returns:
            ``<name>_grad_norm`` (before clipping) and ``<name>_nonfinite`` (1.0 when skipped) as
            0-dim tensors.
        """
        self.adam.zero_grad(set_to_none=True)
        loss.backward(inputs=self.params if only_own else None)
        if distributed.active():  # data-parallel: every rank steps with the mean gradient
            loss = distributed.average_gradients(self.params, loss)
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        finite = torch.isfinite(norm) & torch.isfinite(loss.detach())
        if bool(finite):  # one host sync per update
            self.adam.step()
        else:
            self.adam.zero_grad(set_to_none=True)
        return {f"{self.name}_grad_norm": norm, f"{self.name}_nonfinite": (~finite).float()}

    def state_dict(self) -> dict[str, Any]:
        return self.adam.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.adam.load_state_dict(state)

    def __repr__(self) -> str:
        return f"Optimizer({self.name!r}, params={len(self.params)}, clip={self.clip})"
