"""The ADMM state of a model's MSWU-constrained weights: Z, U, rho and, once hardened, labels."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from lsc_ort.format import matrix_shape
from lsc_ort.mswu import BlockLabel, BlockSpec, parse_block, project, resolve_block

LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)
"""Modules whose ``weight`` is constrained by default: they export to Gemm / MatMul / Conv."""


@dataclass(frozen=True)
class MswuTarget:
    """The structure one weight is trained to.

    ``block`` is given as outputs x inputs, the layout PyTorch stores (``[out, in]`` for Linear,
    ``[out, in/groups * kH * kW]`` for Conv): ``"1x4"`` unifies 4 consecutive inputs of one
    output (one multiply per block in the kernels); ``"kernel"`` is one whole Conv kernel.
    ``sparsity`` and ``unify`` are the fractions of all blocks pruned and unified.
    """

    block: BlockSpec = "1x4"
    sparsity: float = 0.5
    unify: float = 0.3

    def __post_init__(self) -> None:
        parse_block(self.block)
        if not (0.0 <= self.sparsity <= 1.0 and 0.0 <= self.unify <= 1.0 and self.sparsity + self.unify <= 1.0 + 1e-9):
            raise ValueError(f"need 0 <= sparsity, unify and sparsity + unify <= 1, got {self.sparsity}, {self.unify}")


DEFAULT_TARGET = MswuTarget()
"""1x4 blocks, half of them pruned, 30 % unified."""

Targets = MswuTarget | Mapping[str, MswuTarget | None] | Callable[[str, nn.Module], MswuTarget | None]
"""One target for every layer, targets by module name (absent or ``None``: left dense), or a
function of (name, module)."""


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside ``DistributedDataParallel`` / ``DataParallel``."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


def mswu_layers(model: nn.Module, targets: Targets = DEFAULT_TARGET,
                types: Iterable[type[nn.Module]] = LAYER_TYPES) -> list[tuple[str, nn.Parameter, MswuTarget]]:
    """The (module name, weight, target) of every constrained layer, in module order."""
    types = tuple(types)
    found = []
    for name, module in unwrap(model).named_modules():
        if not isinstance(module, types) or not isinstance(getattr(module, "weight", None), nn.Parameter):
            continue
        if isinstance(targets, MswuTarget):
            target: MswuTarget | None = targets
        elif isinstance(targets, Mapping):
            target = targets.get(name)
        else:
            target = targets(name, module)
        weight = module.weight
        if target is not None and isinstance(weight, nn.Parameter):
            found.append((name, weight, target))
    return found


class LayerState:
    """Z, U and the labels of one constrained weight."""

    def __init__(self, name: str, weight: nn.Parameter, target: MswuTarget) -> None:
        self.name = name
        self.weight = weight
        self.target = target
        self.block = resolve_block(target.block, tuple(weight.shape))
        with torch.no_grad():
            self.z = weight.detach().clone()
            self.u = torch.zeros_like(weight)
        self.labels: np.ndarray | None = None
        """Fixed after :meth:`MswuADMM.harden`: uint8 ``[nbr, nbc]`` of :class:`BlockLabel`."""

    def project(self, tensor: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """The MSWU projection of ``tensor`` (computed in numpy, exact) and its labels."""
        array = tensor.detach().to("cpu", torch.float64).numpy()
        result = project(array, self.block, self.target.sparsity, self.target.unify)
        return torch.from_numpy(result.weight).to(tensor.device, tensor.dtype), result.labels

    def residual(self) -> float:
        """``||W - Z|| / ||W||``: how far the weight still is from its structure."""
        with torch.no_grad():
            norm = float(self.weight.norm())
            return float((self.weight - self.z).norm()) / norm if norm else 0.0


def _broadcast(tensor: torch.Tensor) -> torch.Tensor:
    """Every process gets rank 0's ``tensor`` (a no-op without torch.distributed)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.broadcast(tensor, src=0)
    return tensor


def fixed_projection(weight: torch.Tensor, block: tuple[int, int], labels: np.ndarray) -> torch.Tensor:
    """``weight`` with pruned blocks set to +0 and unified blocks to ``sign(w) * mean|w|`` (signs
    of zeros +), in torch on the weight's device; free blocks unchanged."""
    rows, cols = matrix_shape(tuple(weight.shape))
    br, bc = block
    nbr, nbc = -(-rows // br), -(-cols // bc)
    matrix = weight.detach().reshape(rows, cols)
    padded = matrix.new_zeros(nbr * br, nbc * bc)
    padded[:rows, :cols] = matrix
    valid = torch.zeros(nbr * br, nbc * bc, dtype=torch.bool, device=weight.device)
    valid[:rows, :cols] = True
    grid = padded.reshape(nbr, br, nbc, bc).permute(0, 2, 1, 3)
    valid_grid = valid.reshape(nbr, br, nbc, bc).permute(0, 2, 1, 3)
    count = valid_grid.sum(dim=(2, 3)).clamp(min=1)
    magnitude = (grid.abs().sum(dim=(2, 3)) / count)[:, :, None, None]
    label = torch.as_tensor(labels, device=weight.device).reshape(nbr, nbc, 1, 1)
    unified_values = torch.where(grid < 0, -magnitude, magnitude) * valid_grid
    out = torch.where(label == BlockLabel.UNIFIED, unified_values, grid)
    out = torch.where(label == BlockLabel.PRUNED, torch.zeros_like(out), out)
    return out.permute(0, 2, 1, 3).reshape(nbr * br, nbc * bc)[:rows, :cols].reshape(weight.shape)


class MswuADMM:
    """ADMM on the MSWU-constrained weights of ``model`` (a module, or one wrapped in DDP).

    Args:
        model: the model; its constrained weights are found by :func:`mswu_layers`.
        targets: one :class:`MswuTarget` for all layers, or per module name, or a function.
        rho: the initial penalty weight.
        rho_growth: ``rho`` is multiplied by this after every Z/U update, up to ``rho_max``.
        rho_max: the largest ``rho``.
    """

    def __init__(self, model: nn.Module, targets: Targets = DEFAULT_TARGET, *, rho: float = 1e-3,
                 rho_growth: float = 1.3, rho_max: float = 1.0,
                 types: Iterable[type[nn.Module]] = LAYER_TYPES) -> None:
        if rho <= 0 or rho_growth < 1 or rho_max < rho:
            raise ValueError(f"need 0 < rho <= rho_max and rho_growth >= 1, got {rho}, {rho_growth}, {rho_max}")
        self.layers = [LayerState(name, weight, target) for name, weight, target in mswu_layers(model, targets, types)]
        if not self.layers:
            raise ValueError("the model has no Linear / Conv layer to constrain (check targets)")
        self.rho = rho
        self.rho_growth = rho_growth
        self.rho_max = rho_max
        self.hardened = False
        with torch.no_grad():  # Z = project(W), U = 0: the penalty starts at the nearest structure
            for layer in self.layers:
                z, labels = layer.project(layer.weight)
                layer.z.copy_(_broadcast(z))
                layer.labels = labels

    def penalty(self) -> torch.Tensor:
        """``rho / 2 * sum ||W - Z + U||^2`` (differentiable in W); zero once hardened."""
        total = torch.zeros((), device=self.layers[0].weight.device, dtype=self.layers[0].weight.dtype)
        if self.hardened:
            return total
        for layer in self.layers:
            total = total + (layer.weight - layer.z + layer.u).pow(2).sum()
        return 0.5 * self.rho * total

    @torch.no_grad()
    def update(self, grow: bool = True) -> None:
        """Z-step and U-step, then the rho schedule (the scaled dual U follows rho)."""
        for layer in self.layers:
            z, labels = layer.project(layer.weight + layer.u)
            layer.z.copy_(_broadcast(z))
            layer.labels = _broadcast(torch.from_numpy(labels.astype(np.uint8))).numpy()
            layer.u.add_(layer.weight - layer.z)
        if grow:
            new_rho = min(self.rho * self.rho_growth, self.rho_max)
            for layer in self.layers:
                layer.u.mul_(self.rho / new_rho)
            self.rho = new_rho

    def residual(self) -> float:
        """The largest ``||W - Z|| / ||W||`` over the layers."""
        return max(layer.residual() for layer in self.layers)

    @torch.no_grad()
    def harden(self) -> None:
        """Project every weight onto its structure and fix the labels for fine-tuning."""
        for layer in self.layers:
            z, labels = layer.project(layer.weight)
            layer.weight.copy_(_broadcast(z))
            layer.labels = _broadcast(torch.from_numpy(labels.astype(np.uint8))).numpy()
            layer.z.copy_(layer.weight)
            layer.u.zero_()
        self.hardened = True

    @torch.no_grad()
    def keep_structure(self) -> None:
        """After an optimizer step while fine-tuning: back onto the fixed labels (pruned blocks
        stay zero, unified blocks unified)."""
        if not self.hardened:
            raise RuntimeError("keep_structure() needs harden() first")
        for layer in self.layers:
            assert layer.labels is not None
            layer.weight.copy_(fixed_projection(layer.weight, layer.block, layer.labels))

    def structure(self) -> dict[str, np.ndarray]:
        """The labels of every layer (from the last Z-step, or fixed once hardened)."""
        return {layer.name: layer.labels.copy() for layer in self.layers if layer.labels is not None}
