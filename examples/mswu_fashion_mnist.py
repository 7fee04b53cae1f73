"""MSWU on LeNet-5 / Fashion-MNIST: dense → ADMM-unified and pruned → ONNX → lsc-ort compress →
accuracy in onnxruntime, next to plain 90 % magnitude pruning + lsc.

    python examples/mswu_fashion_mnist.py                  # the full run (a few minutes on 2 cores)
    python examples/mswu_fashion_mnist.py --quick          # fewer samples and epochs

Needs the ``train`` extra (PyTorch) and Debian's ``dataset-fashion-mnist`` (its IDX files under
/usr/share/datasets/fashion-mnist; ``--data`` points elsewhere). Every model is trained from the
same dense LeNet-5; each line of the results table is measured in this run:

* test accuracy of the ONNX model in onnxruntime (the compressed ones with the lsc-ort ops);
* the ONNX file size, and the ratio to the dense fp32 file;
* the multiplications per image, one per unified block and one per other non-zero weight.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from torch import nn

import lsc_ort
from lsc_ort.rewriter import compress_file
from lsc_ort.train import AdmmSchedule, MswuTarget, export_onnx, train_mswu
from lsc_ort.train.data import FASHION_MNIST, load_fashion_mnist

DATA = FASHION_MNIST


def load_normalized(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST with images standardized by the training set's mean and deviation."""
    train_x, train_y, test_x, test_y = load_fashion_mnist(root)
    return (train_x - 0.2860) / 0.3530, train_y, (test_x - 0.2860) / 0.3530, test_y


class LeNet5(nn.Sequential):
    """LeNet-5 for 28×28 images: Conv 6@5×5 (pad 2) → pool → Conv 16@5×5 → pool → 400 → 120 → 84 → 10."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )


OUTPUT_PIXELS = {"0": 28 * 28, "3": 10 * 10, "7": 1, "9": 1, "11": 1}
"""Outputs per image of each weight layer: a Conv weight is applied once per output pixel."""


def batches(x: np.ndarray, y: np.ndarray, size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    order = np.random.default_rng(seed).permutation(len(x))
    return [(torch.from_numpy(x[order[i:i + size]]), torch.from_numpy(y[order[i:i + size]]))
            for i in range(0, len(x), size)]


def train_dense(model: nn.Module, data: list[tuple[torch.Tensor, torch.Tensor]], epochs: int, lr: float,
                console: Console) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    columns = (TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[info]}", style="dim"))
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        for epoch in range(epochs):
            task = progress.add_task(f"dense {epoch + 1}/{epochs}", total=len(data), info="")
            total = 0.0
            for step, (x, y) in enumerate(data, 1):
                loss = nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
                progress.update(task, completed=step, info=f"loss {total / step:.4f}")


@dataclass
class Row:
    name: str
    accuracy: float
    file_bytes: int
    weight_bytes: int
    multiplies: int
    codecs: str
    seconds: float


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray, custom: bool) -> float:
    import onnxruntime as ort

    if custom and not lsc_ort.native.library_available():
        predictions = np.concatenate([
            lsc_ort.reference_evaluator(str(path)).run(None, {"image": x[i:i + 500]})[0].argmax(1)
            for i in range(0, len(x), 500)])
        return float((predictions == y).mean())
    options = lsc_ort.session_options() if custom else ort.SessionOptions()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    predictions = np.concatenate([session.run(None, {"image": x[i:i + 1000]})[0].argmax(1)
                                  for i in range(0, len(x), 1000)])
    return float((predictions == y).mean())


def multiplies(model: onnx.ModelProto) -> tuple[int, int]:
    """``(multiplications per image, dense multiplications per image)`` of a (compressed) model."""
    from onnx import numpy_helper

    tensors = {t.name: t for t in model.graph.initializer}
    total = dense = 0
    for node in model.graph.node:
        if len(node.input) < 2 or node.input[1] not in tensors:
            continue
        layer = node.input[1].removesuffix("_lsc_blob").removesuffix(".weight")
        pixels = OUTPUT_PIXELS.get(layer)
        if pixels is None:
            continue
        array = numpy_helper.to_array(tensors[node.input[1]])
        if node.op_type.startswith("LSC"):
            info = lsc_ort.inspect(array)
            count = info.get("multiplies", info["nnz"])
            dense += info["numel"] * pixels
        else:
            count = int(np.count_nonzero(array))
            dense += array.size * pixels
        total += count * pixels
    return total, dense


def weight_bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer if t.name.endswith(("_lsc_blob", ".weight")))


def evaluate(name: str, model: nn.Module, workdir: Path, test: tuple[np.ndarray, np.ndarray], started: float,
             compress: bool = True) -> tuple[Row, Path]:
    slug = name.split()[0].lower()
    path = export_onnx(model, torch.zeros(1, 1, 28, 28), workdir / f"lenet5-{slug}.onnx", input_names=["image"],
                       output_names=["logits"])
    codecs = "dense"
    if compress:
        compressed = workdir / f"lenet5-{slug}-lsc.onnx"
        result = compress_file(path, compressed, codec="auto", min_sparsity=0.3)
        codecs = ", ".join(sorted({row.codec for row in result.layers}))
        path = compressed
    proto = onnx.load(path)
    mults, _ = multiplies(proto)
    accuracy = onnx_accuracy(path, *test, custom=compress)
    return Row(name, accuracy, path.stat().st_size, weight_bytes(proto), mults, codecs,
               time.perf_counter() - started), path


def results_table(rows: Sequence[Row], dense_mults: int) -> Table:
    dense = rows[0]
    table = Table(title="LeNet-5 on Fashion-MNIST: test accuracy, size and multiplications", header_style="bold")
    for header in ("model", "accuracy", "file B", "× dense", "mults", "saved", "codecs"):
        table.add_column(header, justify="left" if header in ("model", "codecs") else "right")
    for row in rows:
        ratio = dense.file_bytes / row.file_bytes
        table.add_row(row.name, f"{row.accuracy:.2%}", f"{row.file_bytes:,}", f"{ratio:.1f}×", f"{row.multiplies:,}",
                      f"{1 - row.multiplies / dense_mults:.1%}", row.codecs)
    return table


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help=f"directory of the IDX files (default: {DATA})")
    parser.add_argument("--workdir", type=Path, help="where the ONNX files go (default: a new temp dir)")
    parser.add_argument("--train-samples", type=int, default=60000, help="training images used (default: all)")
    parser.add_argument("--test-samples", type=int, default=10000, help="test images used (default: all)")
    parser.add_argument("--epochs", type=int, default=3, help="dense training epochs (default: 3)")
    parser.add_argument("--admm-epochs", type=int, default=3, help="ADMM epochs per MSWU model (default: 3)")
    parser.add_argument("--finetune-epochs", type=int, default=2, help="fine-tuning epochs (default: 2)")
    parser.add_argument("--batch", type=int, default=128, help="batch size (default: 128)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default: 1; LeNet-5 gains little from more, and a busy host loses)")
    parser.add_argument("--quick", action="store_true", help="12k training images, 2 / 2 / 1 epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.train_samples, args.epochs, args.admm_epochs, args.finetune_epochs = 12000, 2, 2, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    console = Console()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lsc-ort-mswu-"))
    workdir.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = load_normalized(args.data)
    x_train, y_train = x_train[:args.train_samples], y_train[:args.train_samples]
    test = (x_test[:args.test_samples], y_test[:args.test_samples])
    data = batches(x_train, y_train, args.batch, args.seed)
    console.print(f"Fashion-MNIST: {len(x_train):,} training and {len(test[0]):,} test images; files in {workdir}")

    started = time.perf_counter()
    dense = LeNet5()
    train_dense(dense, data, args.epochs, 1e-3, console)
    row, _ = evaluate("dense fp32", dense, workdir, test, started, compress=False)
    rows = [row]
    _, dense_mults = multiplies(onnx.load(workdir / "lenet5-dense.onnx"))
    console.print(f"dense: accuracy {row.accuracy:.2%} ({row.seconds:.0f} s)")

    schedule = AdmmSchedule(admm_epochs=args.admm_epochs, finetune_epochs=args.finetune_epochs, rho=5e-3,
                            rho_growth=1.8, rho_max=1.0, updates_per_epoch=3)
    # Every compressed model gets the same training: ADMM, then fine-tuning with the structure
    # fixed. 1x1 blocks without unification make the projection magnitude pruning, so the
    # baseline is ADMM pruning to 90 % (as ADMM-LeNet in the LSC paper) followed by lsc.
    variants = [
        ("magnitude 90%", MswuTarget("1x1", 0.9, 0.0)),
        ("MSWU-A", MswuTarget("1x4", 0.6, 0.3)),
        ("MSWU-B", MswuTarget("1x4", 0.75, 0.2)),
        ("MSWU-C", MswuTarget("1x8", 0.70, 0.27)),
    ]
    for name, target in variants:
        started = time.perf_counter()
        model = copy.deepcopy(dense)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        finetune = torch.optim.Adam(model.parameters(), lr=3e-4)
        train_mswu(model, nn.functional.cross_entropy, data, optimizer, targets=target, schedule=schedule,
                   finetune_optimizer=finetune)
        row, _ = evaluate(name, model, workdir, test, started)
        rows.append(row)
        console.print(f"{name}: accuracy {row.accuracy:.2%}, {row.file_bytes:,} B ({row.seconds:.0f} s)")
    console.print(results_table(rows, dense_mults))
    for (name, target), row in zip(variants, rows[1:], strict=True):
        free = 1 - target.sparsity - target.unify
        console.print(f"  {name}: blocks {target.block}, {target.sparsity:.0%} pruned, {target.unify:.0%} unified, "
                      f"{free:.0%} free; ADMM {args.admm_epochs} + fine-tune {args.finetune_epochs} epochs "
                      f"({row.seconds:.0f} s)")
    magnitude = rows[1]
    for row in rows[2:]:
        size, mults = row.file_bytes / magnitude.file_bytes, row.multiplies / magnitude.multiplies
        console.print(f"{row.name} vs {magnitude.name} + lsc: accuracy {row.accuracy - magnitude.accuracy:+.2%}, "
                      f"file {row.file_bytes:,} B vs {magnitude.file_bytes:,} B (×{size:.2f}), mults ×{mults:.2f}")
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
