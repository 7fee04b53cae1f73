"""LeNet-5 trained and pruned on Fashion-MNIST: test accuracy before and after, sizes (placeholder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmarks.report import Table


def fashion_table(quick: bool, workdir: Path, progress: Callable[[str], None] = print) -> Table:
    table = Table("sizes-fashion", "LeNet-5 on Fashion-MNIST", ["model"])
    table.notes.append("not built yet")
    return table
