"""The f2f study (issue 7): encoding efficiency, sizes, encoder speed and compute on f2f blobs.

Writes a markdown report and a PNG plot (matplotlib: ``pip install .[bench]``) to ``--out``
(``benchmarks/results/f2f.md`` and ``f2f.png`` by default; ``--quick`` writes to
``benchmarks/results/quick/``):
* E (care bits ÷ stored value bits, patches included) and bits per weight against sparsity
  (50-98%), sequential (n_s = 4) against non-sequential (n_s = 1), float32 and int8, on random
  masks; f2f and lsc size ÷ the entropy bound;
* E against (n_in, n_out, n_s) at 90% sparsity;
* MiniLM-L3 pruned to 90%: E per layer, sizes, sequential vs not, and the time of
  ``lsc-ort prune`` + ``lsc-ort compress --codec f2f`` (and lsc, auto) in this run;
* encoder throughput in weights/s per core;
* LSCMatMul on f2f blobs ÷ onnxruntime's dense MatMul at 90%, batch 1 and 128 (and lsc blobs).

Timings are ratios or rates from this run; the machine may be shared.

    python -m benchmarks.bench_f2f                 # the full study (about 8 minutes on 2 cores)
    python -m benchmarks.bench_f2f --quick         # smaller tensors, fewer points
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

import lsc_ort
from benchmarks import machine
from benchmarks.bench_matmul import lsc_model, matmul_model, seconds_per_run, session

SPARSITIES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)
CONFIGS = ((4, 1), (4, 2), (4, 3), (4, 4), (1, 4), (1, 8), (2, 4), (2, 6), (2, 8), (3, 4), (3, 5), (6, 2), (8, 1))
RATES = (0.7, 0.8, 0.9, 1.0)


def random_weight(shape: tuple[int, int], sparsity: float, dtype: type, rng: np.random.Generator) -> np.ndarray:
    """A random mask of the given sparsity over random values (normal floats, uniform int8)."""
    if np.dtype(dtype) == np.int8:
        values = rng.integers(-127, 128, size=shape).astype(np.int8)
        values[values == 0] = 1
    else:
        values = rng.standard_normal(shape).astype(dtype)
    values.reshape(-1)[rng.choice(values.size, round(sparsity * values.size), replace=False)] = 0
    return values


@contextmanager
def cores(count: int) -> Iterator[None]:
    """Run the block on the first ``count`` CPUs of this process (the encoder uses as many threads)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, sorted(before)[:count])
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU time of this process (all its threads) or of its finished children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def measure(weight: np.ndarray, codec: str = "f2f", **options: object) -> dict:
    scale = {"scale": 0.01} if weight.dtype == np.int8 else {}
    start, cpu = time.perf_counter(), cpu_seconds()
    blob = lsc_ort.encode(weight, codec, **scale, **options)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    info = lsc_ort.inspect(blob)
    info["seconds"] = seconds
    info["cpu_seconds"] = cpu
    info["unmatched"] = info.get("patches", 0) / info["care_bits"] if info.get("care_bits") else 0.0
    return info


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def sparsity_study(quick: bool, rng: np.random.Generator) -> tuple[str, dict]:
    shape = (256, 384) if quick else (512, 768)
    rows, curves = [], {"sparsity": [], "E4": [], "E1": [], "bpw_f2f": [], "bpw_lsc": [], "bpw_bound": [],
                        "int8": []}
    for dtype in (np.float32, np.int8):
        points = SPARSITIES if dtype == np.float32 else (0.7, 0.9, 0.95)
        for sparsity in points:
            weight = random_weight(shape, sparsity, dtype, rng)
            seq, flat, lsc = measure(weight, n_s=4), measure(weight, n_s=1), measure(weight, "lsc")
            bound = seq["entropy_bound_bytes"]
            rows.append([np.dtype(dtype).name, f"{sparsity:.0%}", f"{seq['encoding_efficiency']:.3f}",
                         f"{flat['encoding_efficiency']:.3f}", f"{seq['unmatched']:.1%}",
                         f"{seq['bits_per_weight']:.3f}", f"{lsc['bits_per_weight']:.3f}",
                         f"{8 * bound / weight.size:.3f}", f"{seq['total_bytes'] / bound:.3f}",
                         f"{lsc['total_bytes'] / bound:.3f}", f"{weight.size / seq['seconds'] / 1e3:.0f}"])
            if dtype == np.float32:
                curves["sparsity"].append(sparsity)
                curves["E4"].append(seq["encoding_efficiency"])
                curves["E1"].append(flat["encoding_efficiency"])
                curves["bpw_f2f"].append(seq["bits_per_weight"])
                curves["bpw_lsc"].append(lsc["bits_per_weight"])
                curves["bpw_bound"].append(8 * bound / weight.size)
            else:
                curves["int8"].append((sparsity, seq["encoding_efficiency"], flat["encoding_efficiency"]))
            print(f"  {np.dtype(dtype).name} {sparsity:.0%}: E {seq['encoding_efficiency']:.3f} "
                  f"(n_s=1 {flat['encoding_efficiency']:.3f}), {seq['total_bytes'] / bound:.3f}x bound", flush=True)
    text = (f"### Random masks, {shape[0]}×{shape[1]}, automatic n_out, n_in 4, n_s 4\n\n"
            "E with the sequential scheme (n_s = 4) and without (n_s = 1, same n_in, its own best rate); "
            "unmatched = care bits patched (n_s = 4); bits per weight and size ÷ entropy bound include "
            "every header and the position layer.\n\n")
    text += table(["dtype", "sparsity", "E n_s=4", "E n_s=1", "unmatched", "f2f bits/w", "lsc bits/w", "bound bits/w",
                   "f2f ÷ bound", "lsc ÷ bound", "encode K w/s"], rows)
    return text, curves


def parameter_study(quick: bool, rng: np.random.Generator) -> tuple[str, list]:
    weight = random_weight((64 if quick else 128, 768), 0.9, np.float32, rng)
    rows, points = [], []
    for n_in, n_s in CONFIGS:
        best = None
        for rate in RATES if not quick else (0.8, 0.9):
            n_out = max(1, round(n_in / (0.1 * rate)))
            with cores(1):
                info = measure(weight, n_in=n_in, n_out=n_out, n_s=n_s)
            if best is None or info["encoding_efficiency"] > best[0]["encoding_efficiency"]:
                best = (info, n_out, rate)
        assert best is not None
        info, n_out, rate = best
        points.append((n_in, n_s, info["encoding_efficiency"]))
        rows.append([str(n_in), str(n_s), str(n_out), f"{rate:.2f}", f"{info['encoding_efficiency']:.3f}",
                     f"{info['unmatched']:.1%}", f"{weight.size / info['seconds'] / 1e3:.0f}"])
        print(f"  n_in {n_in} n_s {n_s} n_out {n_out}: E {info['encoding_efficiency']:.3f}", flush=True)
    text = (f"### Parameters at 90% sparsity ({weight.shape[0]}×{weight.shape[1]} float32, random mask)\n\n"
            f"For each (n_in, n_s), the best n_out over rates {', '.join(map(str, RATES))} input bits per care bit; "
            "encoder speed on one core.\n\n")
    text += table(["n_in", "n_s", "n_out", "rate", "E", "unmatched", "encode K w/s (1 core)"], rows)
    return text, points


def throughput_study(quick: bool, rng: np.random.Generator) -> str:
    weight = random_weight((384, 1536) if quick else (768, 3072), 0.9, np.float32, rng)
    rows = []
    for n_s in (3, 4):
        for count in (1, 2):
            if count > len(os.sched_getaffinity(0)):
                continue
            with cores(count):
                info = measure(weight, n_s=n_s)
            rate, per_cpu = weight.size / info["seconds"], weight.size / info["cpu_seconds"]
            rows.append([str(n_s), str(count), f"{rate / 1e3:.0f}", f"{per_cpu / 1e3:.0f}",
                         f"{info['cpu_seconds'] / info['seconds']:.2f}", f"{info['encoding_efficiency']:.3f}"])
            print(f"  n_s {n_s}, {count} core(s): {rate / 1e3:.0f} K weights/s, {per_cpu / 1e3:.0f} K per CPU-s",
                  flush=True)
    text = (f"### Encoder throughput ({weight.shape[0]}×{weight.shape[1]} float32 at 90%, n_in 4)\n\n"
            "Per CPU-second (user + system time of all threads) is the rate per core, whatever else runs; "
            "busy = CPU seconds ÷ wall seconds (below the cores given when the machine is shared).\n\n")
    return text + table(["n_s", "cores", "K weights/s", "K weights/s per CPU-s", "busy", "E"], rows)


def cli(*args: str) -> tuple[float, float]:
    """Wall and CPU seconds of ``lsc-ort *args`` in a subprocess."""
    start, cpu = time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", "from lsc_ort.cli import main; raise SystemExit(main())", *args],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu


def minilm_study() -> tuple[str, list]:
    import onnx
    from onnx import numpy_helper

    from lsc_ort.model_wheels import model_path

    with tempfile.TemporaryDirectory() as tmp:
        source = model_path("minilm")
        pruned = Path(tmp) / "pruned.onnx"
        prune_seconds, _ = cli("prune", str(source), "-o", str(pruned), "--sparsity", "0.9")
        times = {}
        for codec in ("f2f", "lsc", "auto"):
            times[codec] = cli("compress", str(pruned), "-o", str(Path(tmp) / f"{codec}.onnx"), "--codec", codec)
            print(f"  compress --codec {codec}: {times[codec][0]:.1f} s ({times[codec][1]:.1f} CPU-s)", flush=True)
        model = onnx.load(str(Path(tmp) / "f2f.onnx"))
        blobs = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("_lsc_blob")}
        dense = onnx.load(str(pruned))
        weights = {t.name: numpy_helper.to_array(t) for t in dense.graph.initializer}
    rows, per_layer = [], []
    totals = {"f2f": 0, "f2f n_s=1": 0, "lsc": 0, "bound": 0.0, "dense": 0}
    for name, blob in blobs.items():
        info = lsc_ort.inspect(blob.tobytes())
        weight = weights[name.removesuffix("_lsc_blob")]
        flat = lsc_ort.inspect(lsc_ort.encode(weight, "f2f", n_s=1))
        lsc = len(lsc_ort.encode(weight, "lsc"))
        totals["f2f"] += info["total_bytes"]
        totals["f2f n_s=1"] += flat["total_bytes"]
        totals["lsc"] += lsc
        totals["bound"] += info["entropy_bound_bytes"]
        totals["dense"] += info["dense_bytes"]
        per_layer.append((info["encoding_efficiency"], flat["encoding_efficiency"]))
        coded = bin(info["params"]["planes"]).count("1")
        rows.append([name.removesuffix("_lsc_blob")[-40:], "×".join(map(str, info["shape"])),
                     f"{info['sparsity']:.1%}", str(coded), f"{info['encoding_efficiency']:.3f}",
                     f"{flat['encoding_efficiency']:.3f}", f"{info['total_bytes'] / info['entropy_bound_bytes']:.3f}",
                     f"{lsc / info['entropy_bound_bytes']:.3f}"])
    e = np.array(per_layer)
    text = ("### MiniLM-L3 pruned to 90% (lsc-ort prune --sparsity 0.9; magnitude pruning)\n\n"
            f"- `lsc-ort prune`: {prune_seconds:.1f} s; `lsc-ort compress --codec f2f`: {times['f2f'][0]:.1f} s "
            f"wall, {times['f2f'][1]:.1f} CPU-s (`--codec lsc`: {times['lsc'][0]:.1f} s, `--codec auto`: "
            f"{times['auto'][0]:.1f} s), this run, {len(os.sched_getaffinity(0))} cores.\n"
            f"- {len(blobs)} MatMul weights, {totals['dense']:,} B dense: f2f {totals['f2f']:,} B "
            f"({totals['f2f'] / totals['bound']:.3f}× the entropy bound), f2f n_s=1 {totals['f2f n_s=1']:,} B "
            f"({totals['f2f n_s=1'] / totals['bound']:.3f}×), lsc {totals['lsc']:,} B "
            f"({totals['lsc'] / totals['bound']:.3f}×).\n"
            f"- E per layer: n_s=4 {e[:, 0].min():.3f}-{e[:, 0].max():.3f} (mean {e[:, 0].mean():.3f}); "
            f"n_s=1 {e[:, 1].min():.3f}-{e[:, 1].max():.3f} (mean {e[:, 1].mean():.3f}).\n"
            "- Magnitude-pruned weights share exponent bits, which f2f does not store (coded planes "
            "< 32), so f2f can end below the entropy bound, which counts 32 bits per non-zero.\n\n")
    text += table(["weight", "shape", "sparsity", "coded planes", "E n_s=4", "E n_s=1", "f2f ÷ bound",
                   "lsc ÷ bound"], rows)
    return text, per_layer


def span(values: list[float]) -> str:
    """The median, and the range when there are several values."""
    text = f"{np.median(values):.3f}"
    return text + (f" ({min(values):.3f}-{max(values):.3f})" if len(values) > 1 else "")


def matmul_study(quick: bool, rng: np.random.Generator) -> str:
    rows = []
    rounds = 1 if quick else 3
    for k, n in ((3072, 768), (768, 3072)):
        weight = random_weight((k, n), 0.9, np.float32, rng)
        blobs = {"f2f": lsc_ort.encode(weight, "f2f", n_s=3), "lsc": lsc_ort.encode(weight, "lsc")}
        for m in (1, 128):
            feed = {"A": rng.standard_normal((m, k)).astype(np.float32)}
            sessions = {"dense": session(matmul_model(weight), 1, custom=False)}
            sessions.update({c: session(lsc_model(b, k, n), 1, custom=True) for c, b in blobs.items()})
            ratios: dict[str, list[float]] = {"f2f": [], "lsc": []}
            for i in range(rounds):  # each round times dense, f2f, lsc back to back, in a rotating order
                names = list(sessions)[i % 3:] + list(sessions)[: i % 3]
                t = {name: seconds_per_run(sessions[name], feed, 0.2 if quick else 0.4) for name in names}
                for codec in ratios:
                    ratios[codec].append(t[codec] / t["dense"])

            rows.append([f"{k}×{n}", str(m), span(ratios["f2f"]), span(ratios["lsc"]),
                         f"{1 / np.median(ratios['f2f']):.2f}×"])
            print(f"  {k}x{n} batch {m}: f2f/dense {span(ratios['f2f'])}, lsc/dense {span(ratios['lsc'])}", flush=True)
    text = ("### LSCMatMul on f2f blobs, 90% sparsity, 1 thread (÷ onnxruntime dense MatMul, same run)\n\n"
            f"Median (range) over {rounds} round(s). f2f and lsc weights compute on the same column lists, so "
            "their ratios differ by noise only.\n\n")
    return text + table(["weight", "batch", "f2f ÷ dense", "lsc ÷ dense", "f2f speed-up"], rows)


def plot(path: Path, curves: dict, points: list, per_layer: list | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    s = 100 * np.array(curves["sparsity"])
    axes[0].plot(s, curves["E4"], "o-", label="float32, sequential (n_s=4)")
    axes[0].plot(s, curves["E1"], "s--", label="float32, non-sequential (n_s=1)")
    if curves["int8"]:
        i8 = np.array(curves["int8"])
        axes[0].plot(100 * i8[:, 0], i8[:, 1], "^-", label="int8, n_s=4")
        axes[0].plot(100 * i8[:, 0], i8[:, 2], "v--", label="int8, n_s=1")
    if per_layer:
        axes[0].scatter([90] * len(per_layer), [e for e, _ in per_layer], marker="x", color="k",
                        label="MiniLM-L3 layers, n_s=4")
    axes[0].set(xlabel="sparsity (%)", ylabel="encoding efficiency E", title="E vs sparsity (random masks)",
                ylim=(0.5, 1.0))
    axes[0].legend(fontsize=8)
    axes[1].plot(s, curves["bpw_f2f"], "o-", label="f2f")
    axes[1].plot(s, curves["bpw_lsc"], "s-", label="lsc")
    axes[1].plot(s, curves["bpw_bound"], "k:", label="entropy bound")
    axes[1].set(xlabel="sparsity (%)", ylabel="bits per weight", yscale="log", title="float32 sizes, random masks")
    axes[1].legend(fontsize=8)
    for n_in in sorted({p[0] for p in points}):
        mine = sorted((n_in * n_s, e) for i, n_s, e in points if i == n_in)
        axes[2].plot([m for m, _ in mine], [e for _, e in mine], "o-", label=f"n_in={n_in}")
    axes[2].set(xlabel="search bits n_in·n_s (2^bits pairs per block)", ylabel="E", title="E vs parameters, 90%")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller tensors and fewer points")
    parser.add_argument("--out", type=Path, default=None,
                        help="report directory (default: benchmarks/results, or its quick/ with --quick)")
    parser.add_argument("--no-minilm", action="store_true", help="skip the MiniLM-L3 part")
    args = parser.parse_args()
    if args.out is None:
        args.out = machine.REPO / "benchmarks" / "results" / ("quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    info = machine.machine_info((1,))
    command = "python -m benchmarks.bench_f2f" + (" --quick" if args.quick else "")
    parts = ["# f2f study\n\n" + machine.header(info, mode="quick" if args.quick else "full", command=command)
             + "\nE = care bits ÷ stored value bits (inputs + patches); 1.0 is the entropy limit of the values.\n"]
    print("sparsity sweep")
    text, curves = sparsity_study(args.quick, rng)
    parts.append(text)
    print("parameters")
    text, points = parameter_study(args.quick, rng)
    parts.append(text)
    print("throughput")
    parts.append(throughput_study(args.quick, rng))
    per_layer = None
    if not args.no_minilm:
        print("MiniLM-L3")
        text, per_layer = minilm_study()
        parts.append(text)
    print("LSCMatMul")
    parts.append(matmul_study(args.quick, rng))
    plot(args.out / "f2f.png", curves, points, per_layer)
    end = machine.contention(machine.load_average(), info["cpu"]["usable_cpus"])
    (args.out / "f2f.md").write_text("\n".join(parts) + f"\n- **contention** at the end: {end}\n\n![plot](f2f.png)\n")
    print(f"wrote {args.out / 'f2f.md'} and {args.out / 'f2f.png'}")


if __name__ == "__main__":
    main()
