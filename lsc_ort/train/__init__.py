"""ADMM training of MSWU structure (micro-structured weight unification and pruning) in PyTorch.

The constrained problem ``min loss(W)`` subject to ``W`` in the MSWU structure set (per layer:
a fraction of blocks pruned, another unified to one magnitude with signs kept) is split by ADMM
into three steps that repeat:

* **W-step**: SGD (the user's optimizer) on ``loss(W) + rho/2 * ||W - Z + U||^2``;
* **Z-step**: ``Z = project(W + U)``, the exact Euclidean projection (:func:`lsc_ort.mswu.project`);
* **U-step**: ``U = U + W - Z``, with ``rho`` growing on a schedule.

Then the weights are projected for good and fine-tuned with the structure kept (every step ends
with a projection onto the fixed labels), and the model is exported to ONNX for
``lsc-ort compress``. It works unchanged on a model wrapped in
``torch.nn.parallel.DistributedDataParallel``::

    from lsc_ort.train import MswuTarget, train_mswu, export_onnx

    result = train_mswu(model, torch.nn.functional.cross_entropy, loader, optimizer,
                        targets=MswuTarget(block="1x4", sparsity=0.6, unify=0.3))
    export_onnx(model, example_batch, "mswu.onnx")

PyTorch is the optional extra ``lsc-ort[train]``; ``import lsc_ort`` never imports it.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "lsc_ort.train needs PyTorch, which is an optional extra of lsc-ort: "
        "pip install 'lsc-ort[train]' (or the CPU build: pip install torch==2.13.0)"
    ) from error

from lsc_ort.train.admm import LayerState, MswuADMM, MswuTarget, mswu_layers
from lsc_ort.train.export import export_onnx
from lsc_ort.train.loop import AdmmSchedule, EpochStats, MswuResult, train_mswu

__all__ = [
    "AdmmSchedule",
    "EpochStats",
    "LayerState",
    "MswuADMM",
    "MswuResult",
    "MswuTarget",
    "export_onnx",
    "mswu_layers",
    "train_mswu",
]
