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

from rssm.nn.layers import MLP, BlockGRU, ConvDecoder, ConvEncoder, GRUCell, LayerNormGRU

__all__ = ["Precision", "autocast", "compile_blocks", "check_precision"]

Precision = Literal["float32", "bfloat16"]
_BLOCKS = (MLP, ConvEncoder, ConvDecoder, GRUCell, LayerNormGRU, BlockGRU)


def check_precision(precision: str) -> None:
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision={precision!r} is not supported; use 'float32' or 'bfloat16'")


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bfloat16 on ``device``'s type, or a no-op for float32."""
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def compile_blocks(root: nn.Module) -> int:
    """Compiles, in place (``nn.Module.compile``: state-dict keys stay the same), the largest
    building blocks under ``root`` (MLPs, conv stacks, GRU cores); returns how many."""
    count = 0

    def visit(module: nn.Module) -> None:
        nonlocal count
        for child in module.children():
            if isinstance(child, _BLOCKS):
                child.compile()
                count += 1
            else:
                visit(child)

    visit(root)
    return count
