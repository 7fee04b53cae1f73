"""Peers side by side on the same pruned models, in the same run: each engine in a process of its
own (:mod:`benchmarks.engine_worker`), so its resident memory after session creation is its own.

Engines: onnxruntime dense (the baseline of every ratio), lsc-ort, onnxruntime dynamic int8
quantization, OpenVINO (f32 and its default precision), DeepSparse 1.8 through the Python of its
own virtual environment (``--deepsparse-python`` or ``LSC_ORT_DEEPSPARSE_PYTHON``; see
``benchmarks/README.md``). An engine that is not installed is skipped with a note.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import MISSING, Table, Timing, fmt_bytes, fmt_ratio, fmt_seconds, fmt_speedup, speedup

WORKER = Path(__file__).with_name("engine_worker.py")
DEEPSPARSE_ENV = "LSC_ORT_DEEPSPARSE_PYTHON"
WORKER_TIMEOUT = 900


@dataclass(frozen=True)
class PeerOptions:
    models: tuple[str, ...] = ("minilm", "resnet50")
    sparsity: float = 0.9
    threads: tuple[int, ...] = (1, 2)
    budget: float = 1.0
    deepsparse_python: str | None = None
    repeats: int = 1


@dataclass(frozen=True)
class EngineCase:
    label: str
    engine: str
    model_kind: str
    """Which file of the prepared model it loads: pruned, compressed or quantized."""
    python: str = sys.executable


def engine_cases(deepsparse_python: str | None) -> tuple[list[EngineCase], list[str]]:
    """The engines to run here, and a note for each one skipped."""
    cases = [EngineCase("onnxruntime dense", "onnxruntime", "pruned"),
             EngineCase("lsc-ort", "lsc", "compressed"),
             EngineCase("onnxruntime int8 (dynamic)", "onnxruntime", "quantized")]
    notes = []
    if importlib.util.find_spec("openvino") is not None:
        cases += [EngineCase("OpenVINO f32", "openvino-f32", "pruned"),
                  EngineCase("OpenVINO default precision", "openvino", "pruned")]
    else:
        notes.append("OpenVINO: not installed, skipped (pip install openvino)")
    python = deepsparse_python or os.environ.get(DEEPSPARSE_ENV)
    if python and Path(python).exists():
        cases.append(EngineCase("DeepSparse 1.8", "deepsparse", "pruned", python))
    elif python:
        notes.append(f"DeepSparse: {python} does not exist, skipped")
    else:
        notes.append(f"DeepSparse: skipped (set {DEEPSPARSE_ENV} or --deepsparse-python to the Python of a "
                     "DeepSparse 1.8 virtual environment; recipe in benchmarks/README.md)")
    return cases, notes


def run_worker(case: EngineCase, model: Path, feeds: Path, out: Path, threads: Sequence[int],
               budget: float) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Run one engine in its own process; its result dict and the outputs of its first run."""
    result_path, outputs_path = out.with_suffix(".json"), out.with_suffix(".npz")
    for path in (result_path, outputs_path):
        path.unlink(missing_ok=True)
    command = [case.python, str(WORKER), "--engine", case.engine, "--model", str(model), "--feeds", str(feeds),
               "--threads", *map(str, threads), "--budget", str(budget), "--json", str(result_path),
               "--outputs", str(outputs_path)]
    env = {**os.environ, "NM_DISABLE_ANALYTICS": "1"}
    if case.python != sys.executable:  # another virtual environment: none of ours on its path
        env.pop("PYTHONPATH", None)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=WORKER_TIMEOUT, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {WORKER_TIMEOUT} s"}, []
    except OSError as error:
        return {"error": f"cannot start {case.python}: {error}"}, []
    try:
        result = json.loads(result_path.read_text())
    except (OSError, ValueError):
        tail = " ".join((done.stderr or done.stdout).split()[-30:])
        return {"error": f"worker exit {done.returncode}: {tail}"}, []
    outputs: list[np.ndarray] = []
    if outputs_path.exists():
        with np.load(outputs_path) as data:
            outputs = [data[name] for name in data.files]
    return result, outputs


def merged_latency(results: Sequence[dict[str, Any]]) -> dict[int, Timing]:
    """Per thread count, the timings of several rounds of one engine merged: median of the
    medians, fastest and slowest round overall."""
    merged: dict[int, Timing] = {}
    for count in {int(t) for r in results if "error" not in r for t in r["latency"]}:
        parts = [Timing.from_dict(r["latency"][str(count)]) for r in results
                 if "error" not in r and str(count) in r["latency"]]
        medians = sorted(p.median for p in parts)
        merged[count] = Timing(medians[len(medians) // 2], min(p.low for p in parts), max(p.high for p in parts),
                               sum(p.runs for p in parts))
    return merged


def output_error(reference: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> str:
    """Relative L2 error of the largest float output against the dense fp32 engine's."""
    floats = [(i, o) for i, o in enumerate(reference) if np.issubdtype(o.dtype, np.floating)]
    if not floats or not outputs:
        return MISSING
    index, expected = max(floats, key=lambda item: item[1].size)
    if index >= len(outputs):
        return MISSING
    actual = np.asarray(outputs[index], np.float64).reshape(-1)
    expected = np.asarray(expected, np.float64).reshape(-1)
    if actual.size != expected.size:
        return f"shape {list(outputs[index].shape)}?"
    norm = float(np.linalg.norm(expected))
    error = float(np.linalg.norm(actual - expected)) / norm if norm else float(np.abs(actual).max())
    return "0 (bit-exact)" if error == 0 else f"{error:.1e}"


def peers_table(options: PeerOptions, workdir: Path, progress: Callable[[str], None] = print) -> Table:
    """Every installed engine on each pruned model: file size, latency, RSS, output error."""
    from benchmarks.models import DESCRIPTIONS, NAMES, prepare
    from lsc_ort.model_wheels import ModelUnavailable

    cases, notes = engine_cases(options.deepsparse_python)
    threads = list(options.threads)
    columns = ["model", "engine", "file", "size ÷ dense"]
    for count in threads:
        columns += [f"latency, {count} thr", f"speed-up, {count} thr"]
    columns += ["RSS after session", "Δ RSS", "output error", "notes"]
    table = Table("peers-models", f"Engines side by side on the same models pruned to {options.sparsity:.0%}, batch 1",
                  columns)
    data: dict[str, Any] = {}
    for key in options.models:
        progress(f"peers: preparing {key} at {options.sparsity:.0%}")
        try:
            prepared = prepare(key, options.sparsity, workdir, quantize=True)
        except ModelUnavailable as error:
            notes.append(f"{key} skipped: {error}")
            continue
        notes.extend(f"{key}: {note}" for note in prepared.notes)
        feeds = workdir / f"{key}-feeds.npz"
        np.savez(feeds, **prepared.feeds)  # type: ignore[arg-type]
        files = {"pruned": prepared.pruned, "compressed": prepared.compressed, "quantized": prepared.quantized}
        dense_size = prepared.pruned.stat().st_size
        results: dict[str, list[dict[str, Any]]] = {case.label: [] for case in cases}
        outputs_of: dict[str, list[np.ndarray]] = {}
        for repeat in range(options.repeats):  # alternate the order: drifting load hits all engines alike
            for case in cases if repeat % 2 == 0 else cases[::-1]:
                model = files[case.model_kind]
                if model is None:
                    continue
                progress(f"peers: {key} in {case.label}" + (f" (round {repeat + 1})" if options.repeats > 1 else ""))
                result, outputs = run_worker(case, model, feeds, workdir / f"{key}-{case.engine}-{case.model_kind}",
                                             threads, options.budget)
                results[case.label].append(result)
                if outputs and case.label not in outputs_of:
                    outputs_of[case.label] = outputs
        baseline = merged_latency(results[cases[0].label])
        reference = outputs_of.get(cases[0].label, [])
        rows: dict[str, Any] = {}
        for case in cases:
            model = files[case.model_kind]
            if model is None:
                continue
            size = model.stat().st_size
            runs = results[case.label]
            good = [r for r in runs if "error" not in r]
            if not good:
                failure = runs[0]["error"] if runs else "not run"
                table.add(NAMES[key], case.label, fmt_bytes(size), fmt_ratio(dense_size / size),
                          *([MISSING] * (2 * len(threads))), MISSING, MISSING, MISSING, f"failed: {failure[:120]}")
                continue
            timings = merged_latency(good)
            cells: list[str] = []
            for count in threads:
                own, base = timings.get(count), baseline.get(count)
                cells += [fmt_seconds(own.median) if own else MISSING,
                          fmt_speedup(base, own) if own and base else MISSING]
            outputs = outputs_of.get(case.label, [])
            deviation = "reference" if case is cases[0] else output_error(reference, outputs)
            first = good[0]
            rss = min(r["rss_session"] for r in good)
            rss_delta = min(r["rss_session"] - r["rss_imports"] for r in good)
            note = first.get("describe", "") if case.engine.startswith("openvino") else ""
            note = re.sub(r"<Type: '(\w+)'>", r"\1", note)
            table.add(NAMES[key], case.label, fmt_bytes(size), fmt_ratio(dense_size / size), *cells,
                      fmt_bytes(rss), fmt_bytes(rss_delta), deviation, note)
            rows[case.label] = {"file": size, "rss_session": rss, "rss_delta": rss_delta, "error": deviation,
                                "version": first["version"], "latency": {str(t): v.median for t, v in timings.items()},
                                "speedup": {str(t): speedup(baseline[t].median, v.median)
                                            for t, v in timings.items() if t in baseline}}
        data[key] = {"sparsity": options.sparsity, "dense_file": dense_size, "engines": rows,
                     "weights_ratio": prepared.weights_dense_bytes / prepared.weights_encoded_bytes,
                     "feeds": {name: list(v.shape) for name, v in prepared.feeds.items()}}
    versions = sorted({row["version"] for model in data.values() for row in model["engines"].values()})
    table.notes = [
        "Speed-ups: onnxruntime dense time ÷ engine time, same run, each engine in its own process (median and "
        "range over 5 rounds). File: what the engine loads (OpenVINO and DeepSparse read the pruned dense "
        "model; none of them stores it compressed).",
        "RSS after session: resident memory of the engine's process once the session is created (Python, numpy "
        "and the engine included); Δ RSS: that minus the RSS after the imports.",
        "Output error: relative L2 error of the largest float output against onnxruntime dense fp32 on the same "
        "input (random weights, one-shot pruning: a proxy; the accuracy table of the Fashion-MNIST LeNet-5 "
        "measures real accuracy).",
        "scipy.sparse and torch.sparse run no ONNX models; they are compared per layer in the MatMul table.",
        f"{options.repeats} round(s) per engine, alternating the engine order; a figure merges them (median of "
        "medians, widest range, smallest RSS).",
        *(f"{NAMES[k]}: {DESCRIPTIONS[k]}" for k in data),
        "Engines: " + "; ".join(versions),
        *notes,
    ]
    table.data = data
    return table
