"""Size tables: every registered codec and the entropy bound, in bits per weight and ratio vs
dense fp32, on the papers' per-layer profiles, on a sparsity sweep and on real models.

Every codec in :func:`lsc_ort.available_codecs` gets a column, so a codec registered later
appears without a change here. Sizes are whole blobs (header, params and sections included).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import lsc_ort
from benchmarks.profiles import QUOTED_ELSEWHERE, Layer, Profile, profile, profile_keys, seeded_layer
from benchmarks.report import MISSING, Table, fmt_bytes, fmt_percent, fmt_ratio, quoted
from lsc_ort.entropy import entropy_bound_bytes

SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
SAMPLED = "~"
"""Marks a size measured on a row sample of a layer too large for a slow codec, then scaled."""


@dataclass(frozen=True)
class SizeOptions:
    seed: int = 0
    codec_seconds: float = 30.0
    """Per layer and codec: a codec whose probed speed predicts more gets a row sample instead."""
    dtypes: tuple[str, ...] = ("float32", "int8")


def codecs() -> list[str]:
    return lsc_ort.available_codecs()


def cell(ratio: float, bits: float, sampled: bool = False) -> str:
    """``"55.2× (0.58)"``: ratio vs dense fp32 and, in brackets, bits per weight."""
    if not ratio:
        return MISSING
    return f"{SAMPLED if sampled else ''}{fmt_ratio(ratio)} ({bits:.2f})"


def int8_values(weight: np.ndarray) -> tuple[np.ndarray, float]:
    """Symmetric per-tensor int8 codes of ``weight`` with the same zero mask (a non-zero that
    would round to 0 becomes ±1), and the scale."""
    peak = float(np.abs(weight).max()) if weight.size else 0.0
    scale = peak / 127 if peak else 1.0
    codes = np.clip(np.rint(weight / scale), -127, 127).astype(np.int8)
    lost = (codes == 0) & (weight != 0)
    codes[lost] = np.where(weight[lost] > 0, 1, -1).astype(np.int8)
    return codes, float(np.float32(scale))


def probe_speeds(names: Sequence[str], seed: int = 0) -> dict[str, float]:
    """Encoding speed (weights per second) of each codec on a 512×1024 layer at 10% kept."""
    weight = seeded_layer(Layer("probe", (512, 1024), 0.1), seed)
    speeds = {}
    for name in names:
        start = time.perf_counter()
        lsc_ort.encode(weight, name)
        speeds[name] = weight.size / max(time.perf_counter() - start, 1e-6)
    return speeds


class LayerSizer:
    """Encodes layers with every codec, row-sampling those a slow codec would take too long on."""

    def __init__(self, names: Sequence[str], options: SizeOptions) -> None:
        self.names = list(names)
        self.options = options
        self.speeds = probe_speeds(self.names, options.seed)
        self.sampled: set[str] = set()

    def rows_for(self, name: str, layer: Layer) -> int | None:
        """Rows to encode for ``layer`` with codec ``name`` (None: the whole layer)."""
        predicted = layer.size / self.speeds[name]
        if predicted <= self.options.codec_seconds or layer.shape[0] <= 1:
            return None
        columns = layer.size // layer.shape[0]
        rows = max(1, int(self.options.codec_seconds * self.speeds[name] / columns))
        return rows if rows < layer.shape[0] else None

    def sizes(self, layer: Layer, dtype: str) -> dict[str, tuple[float, bool]]:
        """codec → (blob bytes, sampled?) for ``layer`` with ``dtype`` values."""
        cache: dict[int | None, tuple[np.ndarray, float]] = {}
        out = {}
        for name in self.names:
            rows = self.rows_for(name, layer)
            if rows not in cache:
                cache.clear()
                weight = seeded_layer(layer, self.options.seed, rows)
                cache[rows] = int8_values(weight) if dtype == "int8" else (weight, 1.0)
            values, scale = cache[rows]
            blob = lsc_ort.encode(values, name, scale=scale) if dtype == "int8" else lsc_ort.encode(values, name)
            size = float(len(blob)) if rows is None else len(blob) * layer.shape[0] / rows
            if rows is not None:
                self.sampled.add(f"{name} on {layer.name} {'×'.join(map(str, layer.shape))}: {rows} of "
                                 f"{layer.shape[0]} rows")
            out[name] = (size, rows is not None)
        return out


def _value_bits(dtype: str) -> int:
    return 8 if dtype == "int8" else 32


def profile_sizes(prof: Profile, sizer: LayerSizer, dtype: str) -> dict[str, Any]:
    """Totals over the profile's layers: codec → bytes, the bound, dense fp32 bytes, per layer."""
    totals = dict.fromkeys(sizer.names, 0.0)
    sampled = dict.fromkeys(sizer.names, False)
    layers: list[dict[str, Any]] = []
    for layer in prof.layers:
        sizes = sizer.sizes(layer, dtype)
        bound = entropy_bound_bytes(layer.size, layer.nnz, _value_bits(dtype))
        layers.append({"name": layer.name, "shape": list(layer.shape), "kept": layer.kept, "bound": bound,
                       "sizes": {name: size for name, (size, _) in sizes.items()}})
        for name, (size, was_sampled) in sizes.items():
            totals[name] += size
            sampled[name] |= was_sampled
    bound = sum(layer["bound"] for layer in layers)
    return {"dense": 4 * prof.size, "bound": bound, "sizes": totals, "sampled": sampled, "layers": layers,
            "size": prof.size, "nnz": prof.nnz}


def profiles_tables(quick: bool, options: SizeOptions, progress: Callable[[str], None] = print) -> list[Table]:
    """The papers' profiles: one table per value type, plus per-layer detail of ADMM-LeNet."""
    names = codecs()
    sizer = LayerSizer(names, options)
    keys = profile_keys(quick)
    results: dict[str, dict[str, Any]] = {}
    for dtype in options.dtypes:
        for key in keys:
            progress(f"sizes: {key} ({dtype} values)")
            results[f"{key}/{dtype}"] = profile_sizes(profile(key), sizer, dtype)
    tables = []
    for dtype in options.dtypes:
        label = "fp32" if dtype == "float32" else "int8"
        table = Table(f"sizes-profiles-{label}", f"Paper profiles, {label} values: ratio vs dense fp32 (bits per "
                      "weight)", ["network", "weights", "kept", "entropy bound", *names, "best ÷ bound",
                                  "paper (quoted)"])
        for key in keys:
            prof, data = profile(key), results[f"{key}/{dtype}"]
            dense, bound = data["dense"], data["bound"]
            best = min(data["sizes"].values())
            papers = "; ".join(f"{q.method} {q.ratio:g}×" for q in prof.quoted) or MISSING
            table.add(prof.network, f"{prof.size:,}", fmt_percent(prof.kept),
                      cell(dense / bound, 8 * bound / prof.size),
                      *(cell(dense / data["sizes"][n], 8 * data["sizes"][n] / prof.size, data["sampled"][n])
                        for n in names),
                      fmt_ratio(best / bound, 3), quoted(papers) if prof.quoted else MISSING)
        table.notes = [
            "Seeded uniformly random masks at the papers' per-layer densities and layer shapes (not the papers' "
            "own masks); standard-normal values" + ("" if dtype == "float32" else
                                                   ", quantized to symmetric per-layer int8 codes (mask unchanged)")
            + ". Whole blobs, headers included.",
            f"Entropy bound: n·H(p) mask bits + {_value_bits(dtype)} bits per non-zero, summed over layers.",
            *(f"{profile(k).network}: {profile(k).source}." for k in keys),
            "Quoted figures are the papers' own (marked “(quoted)”); Deep Compression's include lossy quantization "
            "to 5–8 bits and Huffman coding, so compare them with the int8 table, not the fp32 one.",
        ]
        if any(data["sampled"][n] for data in results.values() for n in names):
            table.notes.append(f"{SAMPLED} = a slow codec encoded a row sample of the largest layers (same density), "
                               "scaled to the full layer: " + "; ".join(sorted(sizer.sampled)))
        table.data = {key: {k: v for k, v in results[f"{key}/{dtype}"].items() if k != "layers"} for key in keys}
        tables.append(table)
    detail = Table("sizes-admm-lenet-layers", "ADMM-LeNet per layer, fp32 values: bytes per codec",
                   ["layer", "shape", "kept", "fp32 bytes", "entropy bound", *names])
    admm = results.get("admm-lenet/float32")
    if admm:
        data = admm
        for layer in data["layers"]:
            detail.add(layer["name"], "×".join(map(str, layer["shape"])), fmt_percent(layer["kept"]),
                       f"{4 * int(np.prod(layer['shape'])):,}", f"{layer['bound']:,.0f}",
                       *(f"{layer['sizes'][n]:,.0f}" for n in names))
        detail.add("total", "", fmt_percent(profile("admm-lenet").kept), f"{data['dense']:,}", f"{data['bound']:,.0f}",
                   *(f"{data['sizes'][n]:,.0f}" for n in names))
        detail.notes = [quoted("LSC reports 430.5K weights → 6.05K non-zeros and 51.03× on ADMM-LeNet"),
                        *(quoted(f"{who}: {what}") for who, what in QUOTED_ELSEWHERE)]
        tables.append(detail)
    efficiency = efficiency_table(results, names, keys)
    if efficiency is not None:
        tables.append(efficiency)
    return tables


def efficiency_table(results: dict[str, dict[str, Any]], names: Sequence[str], keys: Sequence[str]) -> Table | None:
    """Codecs whose :func:`lsc_ort.inspect` reports ``encoding_efficiency`` (F2F): E on a 90%-sparse
    768×3072 layer and the bound ÷ size on each profile, beside F2F's quoted figure."""
    probe = seeded_layer(Layer("probe", (768, 3072), 0.1), 0)
    reporting = []
    for name in names:
        try:
            info = lsc_ort.inspect(lsc_ort.encode(probe, name))
        except Exception:
            continue
        if "encoding_efficiency" in info:
            reporting.append((name, float(info["encoding_efficiency"]), float(info["efficiency"])))
    if not reporting:
        return None
    table = Table("sizes-efficiency", "Encoding efficiency of fixed-rate codecs",
                  ["codec", "E, 768×3072 at 90%", "bound ÷ size there",
                   *(f"bound ÷ size, {k}" for k in keys), "paper (quoted)"])
    for name, e, eff in reporting:
        table.add(name, f"{e:.3f}", f"{eff:.3f}",
                  *(f"{results[f'{k}/float32']['bound'] / results[f'{k}/float32']['sizes'][name]:.3f}" for k in keys),
                  quoted("F2F: “almost the maximum”"))
    table.notes = ["E as lsc_ort.inspect reports it (care bits ÷ stored value bits, patches included: 1.0 is the "
                   "paper's maximum); bound ÷ size compares the whole blob with the entropy bound (mask + values)."]
    return table


def sweep_table(quick: bool, seed: int = 0, codec_seconds: float = 20.0) -> Table:
    """Bits per weight vs sparsity of every codec on one random layer, beside the entropy bound."""
    shape = (384, 1536) if quick else (768, 3072)
    names = codecs()
    sizer = LayerSizer(names, SizeOptions(seed=seed, codec_seconds=codec_seconds))
    table = Table("sizes-sweep", f"Bits per weight vs sparsity, random {shape[0]}×{shape[1]} fp32 layer",
                  ["sparsity", "entropy bound", *names, "lsc ÷ bound"])
    series: dict[str, list[float]] = {name: [] for name in ["bound", *names]}
    for sparsity in SWEEP:
        layer = Layer("sweep", shape, 1.0 - sparsity)
        sizes = sizer.sizes(layer, "float32")
        bits = {name: 8 * size / layer.size for name, (size, _) in sizes.items()}
        bound = 8 * entropy_bound_bytes(layer.size, layer.nnz, 32) / layer.size
        series["bound"].append(bound)
        for name in names:
            series[name].append(bits[name])
        table.add(fmt_percent(sparsity, 0), f"{bound:.3f}",
                  *(f"{SAMPLED if sizes[n][1] else ''}{bits[n]:.3f}" for n in names),
                  f"{bits['lsc'] / bound:.3f}" if "lsc" in bits else MISSING)
    table.notes = ["Seeded uniformly random mask, standard-normal values; whole blobs. Entropy bound: "
                   "H(p) + 32·(1 − sparsity) bits per weight."]
    if sizer.sampled:
        table.notes.append(f"{SAMPLED} = measured on a row sample (slow codec): " + "; ".join(sorted(sizer.sampled)))
    table.data = {"sparsity": list(SWEEP), "bits": series, "shape": list(shape)}
    return table


def model_sizes_table(models: Sequence[str], sparsities: Sequence[float], workdir: Path,
                      progress: Callable[[str], None] = print, budget_seconds: float | None = None) -> Table:
    """Real models pruned one-shot: encoded weights per forced codec, ``auto``, bound and file sizes."""
    from benchmarks.models import DESCRIPTIONS, NAMES, prepare
    from lsc_ort.model_wheels import ModelUnavailable
    from lsc_ort.report import totals
    from lsc_ort.rewriter import rewrite_model

    names = [*codecs(), "auto"]
    table = Table("sizes-models", "Real models, one-shot magnitude pruning: encoded MatMul/Gemm/Conv weights, ratio "
                  "vs dense fp32 (bits per weight)", ["model", "sparsity", "weights", "entropy bound", *names,
                                                      "file: pruned → auto"])
    speeds = probe_speeds(codecs()) if budget_seconds else {}
    skipped: list[str] = []
    data: dict[str, Any] = {}
    for key in models:
        for sparsity in sparsities:
            progress(f"sizes: {key} at {sparsity:.0%}")
            try:
                prepared = prepare(key, sparsity, workdir)  # pruned, and compressed with codec auto
            except ModelUnavailable as error:
                table.notes.append(f"{key} skipped: {error}")
                break
            dense, bound = prepared.weights_dense_bytes, prepared.entropy_bound_bytes
            numel = dense // 4
            cells, row = [], {}
            for name in names:
                if name != "auto" and budget_seconds and numel / speeds[name] > budget_seconds:
                    skipped.append(f"{name} on {key} (about {numel / speeds[name]:.0f} s)")
                    cells.append(MISSING)
                    continue
                if name == "auto":
                    encoded = prepared.weights_encoded_bytes
                else:
                    encoded = totals(rewrite_model(prepared.pruned, codec=name, min_sparsity=0.0).layers).encoded_bytes
                row[name] = encoded
                cells.append(cell(dense / encoded, 8 * encoded / numel))
            files = prepared.pruned.stat().st_size, prepared.compressed.stat().st_size
            table.add(NAMES.get(key, key), fmt_percent(sparsity, 0), f"{numel:,} in {prepared.layers} layers",
                      cell(dense / bound, 8 * bound / numel), *cells, f"{fmt_bytes(files[0])} → {fmt_bytes(files[1])}")
            data[f"{key}/{sparsity}"] = {"dense": dense, "bound": bound, "sizes": row, "file_pruned": files[0],
                                        "file_compressed": files[1]}
    table.notes += ["Each codec column forces that codec on every MatMul/Gemm/Conv weight (lsc-ort compress --codec "
                    "NAME --min-sparsity 0); auto keeps the smallest per layer (the default). The file column also "
                    "counts what is not encoded (e.g. MiniLM's 47 MB word embedding)."]
    table.notes += [f"{NAMES[k]}: {DESCRIPTIONS[k]}" for k in models if k in NAMES]
    if skipped:
        table.notes.append("not measured in this mode (encoding would take too long): " + "; ".join(skipped))
    table.data = data
    return table
