"""ONNX export of a trained model, ready for ``lsc-ort compress``."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import onnx
import torch
from torch import nn

from lsc_ort.rewriter.model_io import save_model
from lsc_ort.train.admm import unwrap


def export_onnx(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], path: str | os.PathLike, *,
                input_names: Sequence[str] = ("input",), output_names: Sequence[str] = ("output",),
                dynamic_batch: bool = True, opset: int = 17) -> Path:
    """Export ``model`` (or the module inside DDP) to ``path`` with its weights as initializers.

    Linear layers become Gemm (``transB=1``, weights ``[out, in]``) and convolutions Conv, so the
    trained blocks keep their orientation and their exact values. The file is written atomically;
    the model is put in eval mode for the export and back afterwards.

    Args:
        model: the trained model.
        example: an example input (batch), or a tuple of inputs.
        path: the ``.onnx`` file to write.
        input_names, output_names: graph input and output names.
        dynamic_batch: make the first dimension of every input and output symbolic (``N``).
        opset: the ONNX opset.
    """
    module = unwrap(model)
    args = example if isinstance(example, tuple) else (example,)
    axes = {name: {0: "N"} for name in (*input_names, *output_names)} if dynamic_batch else None
    buffer = io.BytesIO()
    training = module.training
    module.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(  # the TorchScript exporter writes to file objects too
                module, args, buffer, dynamo=False, input_names=list(input_names),  # type: ignore[arg-type]
                output_names=list(output_names), dynamic_axes=axes, opset_version=opset, do_constant_folding=True)
    finally:
        module.train(training)
    target = Path(path)
    save_model(onnx.load_model_from_string(buffer.getvalue()), target)
    return target
