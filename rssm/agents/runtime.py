"""Opt-in speed settings shared by the agents: bfloat16 autocast and ``torch.compile``.

Both are off by default and chosen by ``run.precision`` / ``run.compile``. On CPUs without bf16
instructions bfloat16 is slower than float32 (shared ENVIRONMENTS.md); it is a GPU setting that
also works on CPU. Compilation takes minutes the first time (per shape) and pays off on long runs.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
from torch import nn

from rssm.models.rssm import RSSM
from rssm.nn.gru import BlockGRU, GRUCell, LayerNormGRU
from rssm.nn.layers import MLP, ConvDecoder, ConvEncoder

__all__ = ["Precision", "autocast", "check_device", "check_precision", "compile_blocks"]

Precision = Literal["float32", "bfloat16"]
_BLOCKS = (MLP, ConvEncoder, ConvDecoder, GRUCell, LayerNormGRU, BlockGRU)


def check_precision(precision: str) -> None:
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision={precision!r} is not supported; use 'float32' or 'bfloat16'")


def check_device(device: str | torch.device, owner: str) -> torch.device:
    """``device`` as a torch.device, or a ValueError naming it and the fix when it is not a device
    name or names an accelerator this machine does not have (instead of torch's deep errors)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"{owner}: device={device!r} is not a torch device; use 'cpu', 'cuda' or 'cuda:0' "
            "(option run.device, or --device)"
        ) from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (parsed.index or 0) >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA device (or a CPU-only torch)"
            raise ValueError(
                f"{owner}: device={device!r}, but this machine has {have}; use device 'cpu'"
                + (f" or 'cuda:0' .. 'cuda:{count - 1}'" if count else "")
                + " (option run.device, or --device)"
            )
    return parsed


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bfloat16 on ``device``'s type, or a no-op for float32."""
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def compile_blocks(root: nn.Module) -> int:
    """Compiles, in place (``nn.Module.compile``: state-dict keys stay the same), the largest
    building blocks under ``root`` (MLPs, conv stacks, GRU cores) and each RSSM's prior step
    (:meth:`RSSM.compile_prior_step`, one fused graph per rollout step); returns how many."""
    count = 0

    def visit(module: nn.Module) -> None:
        nonlocal count
        for child in module.children():
            if isinstance(child, RSSM):
                child.compile_prior_step()
                count += 1
                visit(child)
            elif isinstance(child, _BLOCKS):
                child.compile()
                count += 1
            else:
                visit(child)

    visit(root)
    return count
