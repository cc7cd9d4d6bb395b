"""Pure building blocks of Dreamer's actor-critic: λ-returns, discount weights, return
normalisation and the slow-critic EMA.

Time alignment (DESIGN §3): imagination holds states ``s_0..s_H`` batch-major as ``[N, H+1]``;
``s_0`` is a posterior, ``a_i = π(s_i)`` and ``s_{i+1}`` is a prior step. The heads' predictions at
``s_i`` are ``reward[:, i] ≈ r_i`` (the reward received on *arriving* at ``s_i``) and
``cont[:, i] ≈ 1 - terminal_i``. The reward and continuation of the step ``s_i -> s_{i+1}`` are
therefore ``reward[:, i+1]`` and ``cont[:, i+1]``; ``reward[:, 0]`` is never used by the returns.

References:
    Hafner et al. 2020, "Dream to Control" (Dreamer V1), eq. 6 (V_λ) and eq. 7-8 (losses);
    Hafner et al. 2023, "Mastering Diverse Domains through World Models" (DreamerV3), eq. 7
    (λ-return), §"Actor learning" (percentile return normalisation, slow critic).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rssm import distributed

__all__ = ["ReturnNormalizer", "discount_weights", "ema_update", "lambda_return"]


def _check_rows(name: str, x: Tensor, shape: torch.Size | None = None) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a Tensor of shape [N, H+1], got {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] < 2:
        raise ValueError(
            f"{name} must have shape [N, H+1] with H >= 1 (batch-major imagination), got "
            f"{tuple(x.shape)}; flatten leading batch dims and keep the horizon last"
        )
    if shape is not None and x.shape != shape:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)} but reward has shape {tuple(shape)}; "
            "reward, cont and value must all be [N, H+1] over the same imagined states"
        )


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")


def lambda_return(
    reward: Tensor, cont: Tensor, value: Tensor, *, discount: float, lam: float
) -> Tensor:
    """TD(λ) returns of an imagined trajectory, computed by a backward recursion over H.

    With states ``s_0..s_H`` (DreamerV3 eq. 7; Dreamer V1 eq. 6 in recursive form)::

        R_H = v_H
        R_i = r_{i+1} + γ c_{i+1} ((1 - λ) v_{i+1} + λ R_{i+1}),   i = H-1, ..., 0

    ``λ = 0`` gives one-step TD targets ``r_{i+1} + γ c_{i+1} v_{i+1}``; ``λ = 1`` gives the
    discounted sum of rewards until H bootstrapped with ``v_H``. ``cont = 0`` cuts the return.
    Nothing is detached: gradients flow into ``reward``, ``cont`` and ``value`` (needed when the
    actor backpropagates through dynamics); detach the inputs for critic targets.

    Args:
        reward: predicted reward at each imagined state [N, H+1]; column 0 is unused.
        cont: predicted continuation probability (or 0/1 flag) at each state [N, H+1];
            column 0 is unused here (see :func:`discount_weights`).
        value: critic value at each imagined state [N, H+1].
        discount: γ in [0, 1].
        lam: λ in [0, 1].

    Returns:
        λ-returns ``R_0..R_{H-1}`` [N, H], dtype of the inputs.

    Raises:
        ValueError: if shapes differ or are not [N, H+1] with H >= 1, or γ, λ lie outside [0, 1].
    """
    _check_rows("reward", reward)
    _check_rows("cont", cont, reward.shape)
    _check_rows("value", value, reward.shape)
    _check_unit("discount", discount)
    _check_unit("lam", lam)
    # Everything except the recursive term is computed vectorised over [N, H] up front, so the
    # Python loop over H does one fused multiply-add per step.
    gamma_cont = discount * cont[:, 1:]  # [N, H]
    base = reward[:, 1:] + gamma_cont * ((1.0 - lam) * value[:, 1:])  # [N, H]
    factor = gamma_cont * lam  # [N, H]
    horizon = base.shape[1]
    ret = value[:, -1]
    out: list[Tensor] = [ret] * horizon
    for i in range(horizon - 1, -1, -1):
        ret = torch.addcmul(base[:, i], factor[:, i], ret)
        out[i] = ret
    return torch.stack(out, dim=1)


def discount_weights(cont: Tensor, discount: float) -> Tensor:
    """Per-step loss weights of imagined states: the probability-weighted discount of reaching them.

    ``weight_0 = c_0`` (the root continuation: the start posterior may itself be terminal, and
    then nothing after it should be trained on), and
    ``weight_i = c_0 · Π_{j=1..i} γ c_j`` for ``i = 1..H-1``. This equals DreamerV3's
    ``cumprod(γ · cont) / γ``. The weights are detached: they scale the actor and critic losses of
    ``R_0..R_{H-1}`` and must not train the continuation head.

    Args:
        cont: predicted continuation at each imagined state [N, H+1]; the last column is unused.
        discount: γ in [0, 1].

    Returns:
        Detached weights [N, H], aligned with the output of :func:`lambda_return`.

    Raises:
        ValueError: if ``cont`` is not [N, H+1] with H >= 1 or γ lies outside [0, 1].
    """
    _check_rows("cont", cont)
    _check_unit("discount", discount)
    cont = cont.detach()[:, :-1]
    factors = torch.cat([cont[:, :1], discount * cont[:, 1:]], dim=1)  # [N, H]
    return torch.cumprod(factors, dim=1)


class ReturnNormalizer(nn.Module):
    """Percentile return normaliser of DreamerV3: divides by ``max(min_scale, P_high - P_low)``.

    ``update(returns)`` moves exponential moving averages of the ``low`` and ``high`` percentiles
    of the batch of returns: ``ema ← decay · ema + (1 - decay) · percentile``. As in DreamerV3 the
    EMAs start at 0 and are not bias-corrected, so the scale grows from ``min_scale`` over the first
    ~1/(1 - decay) updates; small returns are thereby never amplified early in training. The EMAs
    are registered buffers, so they travel with the agent's ``state_dict``.

    Calling the module divides by the scale only: the offset (``low`` EMA) cancels in advantages
    ``(R - offset)/S - (v - offset)/S = (R - v)/S``; :meth:`offset` is exposed for logging or for
    normalising returns themselves.

    Args:
        decay: EMA decay in [0, 1).
        low: lower percentile in [0, 100).
        high: upper percentile in (low, 100].
        min_scale: floor of the scale (> 0); DreamerV3 uses 1, so ranges narrower than 1 are not
            scaled up.
    """

    low_ema: Tensor
    high_ema: Tensor

    def __init__(
        self, decay: float = 0.99, low: float = 5.0, high: float = 95.0, min_scale: float = 1.0
    ) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must lie in [0, 1), got {decay}")
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(
                f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}"
            )
        if not min_scale > 0.0:
            raise ValueError(f"min_scale must be > 0, got {min_scale}")
        self.decay = decay
        self.low = low
        self.high = high
        self.min_scale = min_scale
        self.register_buffer("low_ema", torch.zeros(()))
        self.register_buffer("high_ema", torch.zeros(()))
        self.register_buffer("_quantiles", torch.tensor([low / 100.0, high / 100.0]), False)

    @torch.no_grad()
    def update(self, returns: Tensor) -> None:
        """Move the percentile EMAs towards the percentiles of ``returns`` (any shape, detached).

        Args:
            returns: λ-returns of any shape, e.g. [N, H]; at least one element.
        """
        if returns.numel() == 0:
            raise ValueError("returns must hold at least one element to update the normaliser")
        flat = returns.detach().reshape(-1).to(self.low_ema.dtype)
        flat = distributed.gather(flat)  # data-parallel: the percentiles of the global batch
        q = torch.quantile(flat, self._quantiles.to(flat.device))
        self.low_ema.lerp_(q[0], 1.0 - self.decay)
        self.high_ema.lerp_(q[1], 1.0 - self.decay)

    def scale(self) -> Tensor:
        """Current scale ``max(min_scale, high_ema - low_ema)`` as a 0-dim tensor."""
        return (self.high_ema - self.low_ema).clamp(min=self.min_scale)

    def offset(self) -> Tensor:
        """Current offset (the ``low`` percentile EMA) as a 0-dim tensor."""
        return self.low_ema

    def forward(self, x: Tensor) -> Tensor:
        """Divide ``x`` (any shape, e.g. advantages [N, H]) by the current scale; differentiable."""
        return x / self.scale()

    def extra_repr(self) -> str:
        return f"decay={self.decay}, low={self.low}, high={self.high}, min_scale={self.min_scale}"


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, fraction: float) -> None:
    """Move ``target`` towards ``source`` in place: ``θ_t ← (1 - fraction) θ_t + fraction θ_s``.

    Used for the slow critic (DreamerV3: fraction 0.02 every update). Buffers (e.g. normalisation
    statistics) and non-float parameters are copied from ``source``; ``fraction = 1`` makes a hard
    copy.

    Args:
        target: module updated in place (e.g. the slow critic).
        source: module with the same parameter and buffer names and shapes (e.g. the critic).
        fraction: weight of ``source`` in [0, 1].

    Raises:
        ValueError: if ``fraction`` lies outside [0, 1] or the modules' parameters or buffers differ
            in names or shapes.
    """
    _check_unit("fraction", fraction)
    for kind, t_items, s_items in (
        ("parameters", target.named_parameters(), source.named_parameters()),
        ("buffers", target.named_buffers(), source.named_buffers()),
    ):
        t_dict, s_dict = dict(t_items), dict(s_items)
        shapes_t = {k: tuple(v.shape) for k, v in t_dict.items()}
        shapes_s = {k: tuple(v.shape) for k, v in s_dict.items()}
        if shapes_t != shapes_s:
            differ = sorted(set(shapes_t.items()) ^ set(shapes_s.items()))
            raise ValueError(
                f"ema_update needs target and source {kind} with equal names and shapes; "
                f"differing (name, shape) entries: {differ}; build the target as a copy of the "
                "source (copy.deepcopy)"
            )
        for name, t in t_dict.items():
            s = s_dict[name]
            if kind == "buffers" or not t.is_floating_point():
                t.copy_(s)
            else:
                t.lerp_(s, fraction)
