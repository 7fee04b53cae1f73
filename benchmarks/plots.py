"""PNG plots of the report, drawn with matplotlib (the ``bench`` extra) from the tables' raw data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.report import Table

MODEL_NAMES = {"minilm": "MiniLM-L3", "resnet50": "ResNet-50", "magika": "magika"}
ENGINE_STYLE = {"lsc": ("tab:blue", "o"), "scipy CSR": ("tab:orange", "s"), "torch CSR": ("tab:green", "^")}


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ratio_axis(axis: Any) -> None:
    """Log y axis labelled 0.5×, 1×, 2×, 5×, ... (call after plotting)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    axis.set_yscale("log")
    low, high = axis.get_ylim()
    ticks: list[float] = []
    for mantissas in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0**e for e in range(-3, 4) for m in mantissas if low <= m * 10.0**e <= high]
        if len(ticks) >= 3:
            break
    axis.yaxis.set_major_locator(FixedLocator(ticks))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}×"))
    axis.yaxis.set_minor_locator(NullLocator())
    axis.yaxis.set_minor_formatter(NullFormatter())


def speedup_plot(tables: dict[str, Table], path: Path, subtitle: str) -> Path | None:
    """Speed-up over onnxruntime dense vs sparsity: one line per engine and batch (MatMul), and
    per conv layer / model (LSC, batch 1), 1 thread."""
    matmul = tables.get("speed-matmul")
    if matmul is None or not matmul.data.get("points"):
        return None
    points = [p for p in matmul.data["points"] if p["threads"] == 1]
    shapes = sorted({tuple(p["shape"]) for p in points}, key=lambda s: -len({q["sparsity"] for q in points
                                                                                if tuple(q["shape"]) == s}))
    shape = (768, 3072) if (768, 3072) in shapes else shapes[0]
    plt = _pyplot()
    others = [t for t in (tables.get("speed-conv"), tables.get("speed-models")) if t and t.data.get("points")]
    figure, axes = plt.subplots(1, 1 + bool(others), figsize=(11 if others else 6.5, 4.2), squeeze=False)
    left = axes[0][0]
    batches = sorted({p["batch"] for p in points})
    line_styles = ["-", "--", ":", "-."]
    for engine, (color, marker) in ENGINE_STYLE.items():
        for index, batch in enumerate(batches):
            series = sorted((p["sparsity"], p["speedup"][engine]) for p in points
                            if tuple(p["shape"]) == shape and p["batch"] == batch and engine in p["speedup"])
            if len(series) >= 1:
                left.plot([100 * s for s, _ in series], [v for _, v in series], line_styles[index % 4],
                          color=color, marker=marker, label=f"{engine}, batch {batch}")
    left.axhline(1.0, color="black", linewidth=0.8)
    left.set_title(f"MatMul {shape[0]}×{shape[1]}, 1 thread")
    left.set_xlabel("sparsity (%)")
    left.set_ylabel("speed-up over onnxruntime dense")
    _ratio_axis(left)
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    if others:
        right = axes[0][1]
        for table in others:
            groups: dict[str, list[tuple[float, float]]] = {}
            for p in table.data["points"]:
                if p["threads"] != 1 or p.get("batch", 1) != 1:
                    continue
                groups.setdefault(p.get("layer") or p.get("model"), []).append((p["sparsity"], p["speedup"]["lsc"]))
            for name, series in groups.items():
                series.sort()
                label = f"LSCConv {name}" if table.key == "speed-conv" else f"{MODEL_NAMES.get(name, name)} end to end"
                right.plot([100 * s for s, _ in series], [v for _, v in series], "-o", markersize=4, label=label)
        right.axhline(1.0, color="black", linewidth=0.8)
        right.set_title("LSC, batch 1, 1 thread")
        right.set_xlabel("sparsity (%)")
        _ratio_axis(right)
        right.grid(True, which="both", alpha=0.3)
        right.legend(fontsize=7)
    figure.suptitle(f"Speed-up vs sparsity ({subtitle})", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def bits_plot(sweep: Table | None, path: Path, subtitle: str) -> Path | None:
    """Bits per weight vs sparsity of every codec, with the entropy bound."""
    if sweep is None or not sweep.data.get("bits"):
        return None
    plt = _pyplot()
    figure, (axis, ratio) = plt.subplots(1, 2, figsize=(11, 4.2))
    sparsity = [100 * s for s in sweep.data["sparsity"]]
    bound = sweep.data["bits"]["bound"]
    palette = plt.get_cmap("tab10").colors
    for index, (name, bits) in enumerate(item for item in sweep.data["bits"].items() if item[0] != "bound"):
        style = {"color": palette[index % len(palette)], "linewidth": 2.0 if name == "lsc" else 1.0, "markersize": 3}
        axis.plot(sparsity, bits, "-o", label=name, **style)
        if name != "dense":
            ratio.plot(sparsity, [b / e for b, e in zip(bits, bound, strict=True)], "-o", label=name, **style)
    axis.plot(sparsity, bound, "k--", linewidth=2.0, label="entropy bound")
    ratio.axhline(1.0, color="black", linestyle="--", linewidth=2.0, label="entropy bound")
    axis.set_yscale("log")
    axis.set_ylabel("bits per weight (fp32 values)")
    ratio.set_ylabel("size ÷ entropy bound")
    ratio.set_ylim(0.95, 2.0)
    shape = sweep.data.get("shape", ["?", "?"])
    axis.set_title(f"Encoded size, random {shape[0]}×{shape[1]} layer", fontsize=9)
    ratio.set_title("Distance to the entropy bound", fontsize=9)
    for panel in (axis, ratio):
        panel.set_xlabel("sparsity (%)")
        panel.grid(True, which="both", alpha=0.3)
        panel.legend(fontsize=7)
    figure.suptitle(f"Bits per weight vs sparsity ({subtitle})", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_all(tables: Sequence[Table], folder: Path, subtitle: str) -> dict[str, Path]:
    """The plots whose tables are present: name → PNG path."""
    by_key = {t.key: t for t in tables}
    made = {}
    speed = speedup_plot(by_key, folder / "speedup_vs_sparsity.png", subtitle)
    if speed:
        made["speed"] = speed
    bits = bits_plot(by_key.get("sizes-sweep"), folder / "bits_vs_sparsity.png", subtitle)
    if bits:
        made["bits"] = bits
    return made
