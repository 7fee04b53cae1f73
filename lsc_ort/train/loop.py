"""The training loop: ADMM epochs, hard projection, masked fine-tuning."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from lsc_ort.mswu import BlockLabel
from lsc_ort.train.admm import DEFAULT_TARGET, LAYER_TYPES, MswuADMM, Targets


@dataclass(frozen=True)
class AdmmSchedule:
    """How long and how hard to pull the weights onto their structure.

    Args:
        admm_epochs: epochs of W-steps, with ``updates_per_epoch`` Z/U updates in each.
        finetune_epochs: epochs of fine-tuning after the hard projection, structure fixed.
        rho: initial penalty weight; multiplied by ``rho_growth`` after every Z/U update, up to
            ``rho_max``.
        updates_per_epoch: Z/U updates per ADMM epoch (evenly spaced; loaders without a length
            get one, at the end of the epoch).
    """

    admm_epochs: int = 10
    finetune_epochs: int = 5
    rho: float = 1e-3
    rho_growth: float = 1.5
    rho_max: float = 1.0
    updates_per_epoch: int = 1

    def __post_init__(self) -> None:
        if self.admm_epochs < 0 or self.finetune_epochs < 0 or self.updates_per_epoch < 1:
            raise ValueError("epochs must be >= 0 and updates_per_epoch >= 1")


@dataclass(frozen=True)
class EpochStats:
    """One epoch of :func:`train_mswu`."""

    phase: str
    """``"admm"`` or ``"finetune"``."""
    epoch: int
    loss: float
    """Mean task loss over the epoch's batches (over all processes under DDP)."""
    residual: float
    """Largest ``||W - Z|| / ||W||`` over the layers (0 while fine-tuning)."""
    rho: float
    metric: float | None = None
    """What ``evaluate()`` returned after the epoch, if given."""


@dataclass
class MswuResult:
    """What :func:`train_mswu` returns."""

    admm: MswuADMM
    history: list[EpochStats] = field(default_factory=list)

    def structure(self) -> dict[str, np.ndarray]:
        """The fixed block labels of every constrained layer."""
        return self.admm.structure()

    def summary(self) -> list[dict[str, Any]]:
        """Per layer: name, shape, block (matrix view), pruned / unified / free blocks."""
        rows = []
        for layer in self.admm.layers:
            labels = layer.labels if layer.labels is not None else np.zeros(0, np.uint8)
            rows.append({
                "layer": layer.name,
                "shape": tuple(layer.weight.shape),
                "block": layer.block,
                "pruned": int(np.count_nonzero(labels == BlockLabel.PRUNED)),
                "unified": int(np.count_nonzero(labels == BlockLabel.UNIFIED)),
                "free": int(np.count_nonzero(labels == BlockLabel.FREE)),
            })
        return rows


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _mean_over_processes(total: float, count: int) -> float:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        pair = torch.tensor([total, float(count)], dtype=torch.float64)
        dist.all_reduce(pair)
        total, count = float(pair[0]), int(pair[1])
    return total / count if count else 0.0


def _to(batch: Any, device: torch.device | str | None) -> Any:
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(b, device) for b in batch)
    return batch


@contextlib.contextmanager
def _progress_bar(enabled: bool) -> Iterator[Callable[..., None]]:
    console = Console()
    if not enabled or _rank() != 0 or not console.is_terminal:
        yield lambda *args, **kwargs: None
        return
    columns = (TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[info]}", style="dim"))
    with Progress(*columns, console=console, transient=True) as progress:
        tasks: dict[str, Any] = {}

        def update(description: str, done: int, total: int | None, info: str = "") -> None:
            if description not in tasks:
                tasks[description] = progress.add_task(description, total=total, info=info)
            progress.update(tasks[description], completed=done, total=total, info=info)

        yield update


def train_mswu(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    loader: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    *,
    targets: Targets = DEFAULT_TARGET,
    schedule: AdmmSchedule = AdmmSchedule(),
    finetune_optimizer: torch.optim.Optimizer | None = None,
    device: torch.device | str | None = None,
    batch_loss: Callable[[nn.Module, Any], torch.Tensor] | None = None,
    evaluate: Callable[[], float] | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    progress: bool = True,
    types: Iterable[type[nn.Module]] = LAYER_TYPES,
) -> MswuResult:
    """Train ``model`` to the MSWU structure with ADMM, then fine-tune it with the structure fixed.

    The model (or a ``DistributedDataParallel`` wrapping it: nothing changes, every process runs
    this with its own shard of the data) is trained in place. Afterwards every constrained weight
    is exactly in its structure set: pruned blocks are zero, unified blocks share one magnitude.

    Args:
        model: the model, in place.
        loss_fn: ``loss_fn(model(inputs), targets)`` for batches ``(inputs, targets)``.
        loader: the training batches (iterated once per epoch).
        optimizer: the optimizer of the W-steps (and of fine-tuning, unless
            ``finetune_optimizer`` is given).
        targets: the structure: one :class:`MswuTarget`, or per module name, or a function.
        schedule: epochs and the rho schedule.
        finetune_optimizer: a separate optimizer for fine-tuning (e.g. a lower learning rate).
        device: where batches are moved (``None``: as they come).
        batch_loss: ``batch_loss(model, batch)`` instead of ``loss_fn`` for other batch layouts.
        evaluate: called after each epoch; its value is recorded (e.g. validation accuracy).
        on_epoch: called with each epoch's :class:`EpochStats` (e.g. to step an LR scheduler).
        progress: show a progress bar (on a terminal, in process 0 only).
        types: the module types whose weight is constrained.
    """
    admm = MswuADMM(model, targets, rho=schedule.rho, rho_growth=schedule.rho_growth, rho_max=schedule.rho_max,
                    types=types)
    result = MswuResult(admm)

    def compute(batch: Any) -> torch.Tensor:
        batch = _to(batch, device)
        if batch_loss is not None:
            return batch_loss(model, batch)
        inputs, labels = batch
        return loss_fn(model(inputs), labels)

    try:
        steps: int | None = len(loader)  # type: ignore[arg-type]
    except TypeError:
        steps = None
    every = max(1, steps // schedule.updates_per_epoch) if steps else None

    def record(phase: str, epoch: int, total: float, count: int) -> None:
        metric = evaluate() if evaluate is not None else None
        stats = EpochStats(phase, epoch, _mean_over_processes(total, count),
                           admm.residual() if phase == "admm" else 0.0, admm.rho, metric)
        result.history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)

    with _progress_bar(progress) as show:
        for epoch in range(schedule.admm_epochs):
            model.train()
            total, count, updates = 0.0, 0, 0
            for step, batch in enumerate(loader):
                loss = compute(batch)
                optimizer.zero_grad(set_to_none=True)
                (loss + admm.penalty()).backward()
                optimizer.step()
                total, count = total + float(loss.detach()), count + 1
                if every is not None and (step + 1) % every == 0 and updates < schedule.updates_per_epoch:
                    admm.update()
                    updates += 1
                show(f"ADMM {epoch + 1}/{schedule.admm_epochs}", step + 1, steps,
                     f"loss {total / count:.4f}  rho {admm.rho:.3g}")
            if every is None or updates == 0:
                admm.update()
            record("admm", epoch, total, count)
        admm.harden()
        tuner = finetune_optimizer or optimizer
        for epoch in range(schedule.finetune_epochs):
            model.train()
            total, count = 0.0, 0
            for step, batch in enumerate(loader):
                loss = compute(batch)
                tuner.zero_grad(set_to_none=True)
                loss.backward()
                tuner.step()
                admm.keep_structure()
                total, count = total + float(loss.detach()), count + 1
                show(f"fine-tune {epoch + 1}/{schedule.finetune_epochs}", step + 1, steps, f"loss {total / count:.4f}")
            record("finetune", epoch, total, count)
        if schedule.finetune_epochs == 0:
            admm.keep_structure()
    return result
