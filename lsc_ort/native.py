"""Finding and loading the native kernel library (``custom_ops/``, built by ``pip install``)."""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnxruntime

LIBRARY_ENV = "LSC_ORT_LIBRARY"
"""Environment variable that overrides the library path (e.g. a development build)."""


def _library_name() -> str:
    if sys.platform == "win32":
        return "lsc_ort_ops.dll"
    if sys.platform == "darwin":
        return "liblsc_ort_ops.dylib"
    return "liblsc_ort_ops.so"


def _candidates() -> list[Path]:
    name = _library_name()
    found = []
    override = os.environ.get(LIBRARY_ENV)
    if override:
        found.append(Path(override))
    found.append(Path(__file__).resolve().parent / name)
    try:  # an editable install keeps the built library in site-packages, not next to the sources
        for file in metadata.files("lsc-ort") or ():
            if file.name == name:
                found.append(Path(str(file.locate())).resolve())
    except metadata.PackageNotFoundError:
        pass
    return found


def get_library_path() -> str:
    """Path of the native custom-op library, for ``SessionOptions.register_custom_ops_library``.

    Raises:
        FileNotFoundError: the library was not built (install the package with ``pip install``,
            or point ``LSC_ORT_LIBRARY`` at a build).
    """
    candidates = _candidates()
    for path in candidates:
        if path.is_file():
            return str(path)
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"the lsc-ort native library is not built (looked in: {tried}); install the package with "
        f"'pip install .' or set {LIBRARY_ENV} to a built {_library_name()}"
    )


def library_available() -> bool:
    """Whether :func:`get_library_path` finds a built library."""
    try:
        get_library_path()
    except FileNotFoundError:
        return False
    return True


def session_options(opts: onnxruntime.SessionOptions | None = None) -> onnxruntime.SessionOptions:
    """``opts`` (or new ``SessionOptions``) with the lsc-ort custom ops registered."""
    import onnxruntime

    if opts is None:
        opts = onnxruntime.SessionOptions()
    opts.register_custom_ops_library(get_library_path())
    return opts


@functools.cache
def load_library() -> ctypes.CDLL:
    """The library loaded with ctypes, for its C test API (``lsc_blob_*`` functions)."""
    return ctypes.CDLL(get_library_path())
