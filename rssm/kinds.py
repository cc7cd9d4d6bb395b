"""The names of choices that configs hold (``Literal`` types), apart from the modules that
implement them, so that configs (and the command line's ``--help``) never import torch."""

from __future__ import annotations

from typing import Literal

__all__ = [
    "Activation",
    "ActorGrad",
    "ContinuousDist",
    "GRUKind",
    "ImageDist",
    "Init",
    "Initial",
    "KLScheme",
    "Latent",
    "VectorDist",
]

Activation = Literal["silu", "elu", "relu", "gelu", "tanh", "mish", "none"]
ActorGrad = Literal["dynamics", "reinforce", "mix"]
ContinuousDist = Literal["bounded_normal", "tanh_normal"]
GRUKind = Literal["gru", "stacked", "layernorm", "block"]
ImageDist = Literal["mse", "normal"]
Init = Literal["torch", "fan_avg"]
Initial = Literal["zeros", "learned"]
KLScheme = Literal["free_nats", "balance", "dyn_rep"]
Latent = Literal["gaussian", "categorical"]
VectorDist = Literal["mse", "symlog_mse", "normal"]
