"""Run two models on the same inputs and compare their outputs (``lsc-ort verify``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from lsc_ort.ops import DOMAIN
from lsc_ort.rewriter.decompress import uses_domain
from lsc_ort.rewriter.model_io import load_model

ENGINES = ("onnxruntime", "reference")
DEFAULT_RTOL = 1e-4
BATCH_DIM = 1
"""Value of a symbolic first dimension in random inputs."""
SEQUENCE_DIM = 16
"""Value of other symbolic dimensions of inputs of rank <= 3 (sequences)."""
SPATIAL_DIM = 32
"""Value of other symbolic dimensions of inputs of rank >= 4 (images)."""
TOKEN_RANGE = (0, 100)
"""Half-open range of random integer inputs (token ids)."""


def _input_infos(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in initializers]


def parse_shapes(specs: Sequence[str]) -> dict[str, list[int]]:
    """``["input=1,3,224,224", ...]`` → ``{"input": [1, 3, 224, 224]}``.

    Raises:
        ValueError: a malformed spec.
    """
    shapes = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=")
        try:
            if not sep or not name:
                raise ValueError
            shapes[name] = [int(d) for d in dims.split(",") if d.strip()]
        except ValueError:
            raise ValueError(f"bad shape {spec!r}; expected NAME=D0,D1,... e.g. input_ids=1,16") from None
    return shapes


def random_inputs(
    model: onnx.ModelProto, *, seed: int = 0, shapes: Mapping[str, Sequence[int]] | None = None
) -> dict[str, np.ndarray]:
    """Random values for the inputs of ``model`` that respect their shapes and dtypes.

    Symbolic or unknown dims become :data:`BATCH_DIM` (first dim), :data:`SEQUENCE_DIM` or
    :data:`SPATIAL_DIM`, the same value for the same dim name; ``shapes`` overrides whole shapes.
    Floats are standard normal; integers are token ids in :data:`TOKEN_RANGE`, except inputs named
    like attention masks (ones), token-type / segment ids (zeros) and position ids (0, 1, 2, ...).
    """
    shapes = dict(shapes or {})
    rng = np.random.default_rng(seed)
    named_dims: dict[str, int] = {}
    feeds = {}
    infos = _input_infos(model)
    unknown = sorted(set(shapes) - {v.name for v in infos})
    if unknown:
        raise ValueError(
            f"--shape names unknown input(s) {', '.join(unknown)}; inputs: {', '.join(v.name for v in infos)}"
        )
    for info in infos:
        tensor_type = info.type.tensor_type
        if not info.type.HasField("tensor_type"):
            raise ValueError(f"input '{info.name}' is not a tensor; give inputs with --inputs FILE.npz")
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        if info.name in shapes:
            shape = [int(d) for d in shapes[info.name]]
        else:
            dims = list(tensor_type.shape.dim)
            shape = []
            for i, dim in enumerate(dims):
                if dim.HasField("dim_value") and dim.dim_value > 0:
                    shape.append(int(dim.dim_value))
                    continue
                default = BATCH_DIM if i == 0 else SEQUENCE_DIM if len(dims) <= 3 else SPATIAL_DIM
                if dim.HasField("dim_param") and dim.dim_param:
                    shape.append(named_dims.setdefault(dim.dim_param, default))
                else:
                    shape.append(default)
        name = info.name.lower()
        if dtype.kind == "f":
            value = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            if "mask" in name:
                value = np.ones(shape, dtype)
            elif "type" in name or "segment" in name:
                value = np.zeros(shape, dtype)
            elif "position" in name and shape:
                value = np.broadcast_to(np.arange(shape[-1], dtype=dtype), shape).copy()
            else:
                value = rng.integers(*TOKEN_RANGE, size=shape).astype(dtype)
        elif dtype.kind == "b":
            value = np.ones(shape, dtype) if "mask" in name else rng.random(shape) < 0.5
        else:
            raise ValueError(
                f"cannot make random values for input '{info.name}' of type {dtype}; "
                "give inputs with --inputs FILE.npz"
            )
        feeds[info.name] = value
    return feeds


def load_inputs(path: str | os.PathLike, model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Inputs from an ``.npz`` file whose keys are the model's input names."""
    try:
        with np.load(path, allow_pickle=False) as data:
            feeds = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read inputs ({error})") from None
    missing = [v.name for v in _input_infos(model) if v.name not in feeds]
    if missing:
        raise ValueError(f"{path} lacks input(s) {', '.join(missing)}")
    return feeds


class EngineError(RuntimeError):
    """A model failed to load or run; the message names the model and the engine."""


def run_model(
    path: str | os.PathLike, feeds: Mapping[str, np.ndarray], engine: str = "onnxruntime", threads: int = 0
) -> dict[str, np.ndarray]:
    """Outputs of the model at ``path``, by name; custom ops are registered when it uses them.

    Raises:
        FileNotFoundError: the model uses the custom ops and the native library is not built.
        EngineError: the engine failed on the model.
    """
    path = Path(path)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    custom = engine == "onnxruntime" and uses_domain(load_model(path), DOMAIN)
    if custom:
        from lsc_ort.native import get_library_path

        try:
            get_library_path()
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"{path} uses the lsc-ort custom ops: {error}; or verify with --engine reference"
            ) from None
    try:
        if engine == "reference":
            from lsc_ort.reference import reference_evaluator

            evaluator = reference_evaluator(path)
            names = list(evaluator.output_names)
            return dict(zip(names, evaluator.run(None, dict(feeds)), strict=True))
        import onnxruntime as ort

        from lsc_ort.native import session_options

        options = session_options() if custom else ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, dict(feeds)), strict=True))
    except Exception as error:
        raise EngineError(f"{path}: {engine} failed: {type(error).__name__}: {error}") from error


@dataclass(frozen=True)
class OutputDiff:
    """How one output of the compressed model differs from the original's."""

    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    """max |got - ref| / (1 + |ref|)."""
    ok: bool
    note: str = ""


def compare_outputs(
    expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray], rtol: float = DEFAULT_RTOL
) -> list[OutputDiff]:
    """Per-output differences; an output passes when ``|got - ref| <= rtol * (1 + |ref|)`` everywhere
    (NaNs must match), and integer or boolean outputs must be equal."""
    diffs = []
    for name, ref in expected.items():
        if name not in actual:
            diffs.append(OutputDiff(name, tuple(ref.shape), float("inf"), float("inf"), False, "missing"))
            continue
        got = actual[name]
        if got.shape != ref.shape:
            diffs.append(
                OutputDiff(
                    name,
                    tuple(ref.shape),
                    float("inf"),
                    float("inf"),
                    False,
                    f"shape {list(got.shape)} != {list(ref.shape)}",
                )
            )
            continue
        if ref.size == 0:
            diffs.append(OutputDiff(name, tuple(ref.shape), 0.0, 0.0, True))
            continue
        ref64 = ref.astype(np.float64)
        got64 = got.astype(np.float64)
        nan_ref, nan_got = np.isnan(ref64), np.isnan(got64)
        both = nan_ref & nan_got
        diff = np.where(both, 0.0, np.abs(got64 - ref64))
        diff = np.where(nan_ref ^ nan_got, np.inf, diff)
        with np.errstate(invalid="ignore"):
            rel = np.where(both, 0.0, diff / (1.0 + np.abs(np.where(nan_ref, 0.0, ref64))))
            rel = np.where(np.isnan(rel), 0.0, rel)  # inf - inf where both are the same infinity
            diff = np.where(np.isnan(diff), 0.0, diff)
        max_abs, max_rel = float(diff.max()), float(rel.max())
        exact = ref.dtype.kind not in "fc"
        ok = max_abs == 0.0 if exact else max_rel <= rtol
        note = "must be equal" if exact else ""
        if both.any():
            note = f"NaN in both at {int(both.sum())} of {ref.size} elements"
        diffs.append(OutputDiff(name, tuple(ref.shape), max_abs, max_rel, ok, note))
    return diffs
