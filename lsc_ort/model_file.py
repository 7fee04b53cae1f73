"""What makes a path or a ModelProto an ONNX model: the checks every entry point that loads a
model makes first, so that a missing file, a directory, an empty or a junk file gets a clear
error instead of an empty model."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import onnx


class ModelNotFoundError(FileNotFoundError, ValueError):
    """The model file does not exist (a ``FileNotFoundError`` and, for older callers, a
    ``ValueError``)."""


class NotAModelFileError(ValueError):
    """The path is a directory or another non-file, or the file holds no ONNX model."""


def check_model_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it names an existing regular file.

    Raises:
        ModelNotFoundError: nothing is there.
        NotAModelFileError: a directory or another kind of non-file is there.
    """
    path = Path(path)
    if not os.fspath(path):
        raise ModelNotFoundError(errno.ENOENT, "the model path is empty")
    if path.is_file():
        return path
    if path.is_dir():
        raise NotAModelFileError(f"{path}: is a directory, not an ONNX model file")
    if path.exists():
        raise NotAModelFileError(f"{path}: not a regular file")
    raise ModelNotFoundError(errno.ENOENT, f"{path}: no such file")


def check_model_proto(model: onnx.ModelProto, source: str = "the model") -> onnx.ModelProto:
    """``model`` if it has a graph and an IR version, the least any ONNX model has.

    Protobuf reads an empty file, and many short junk files, as an empty ModelProto: this is what
    tells them from a model.

    Raises:
        NotAModelFileError: naming ``source`` and what is missing.
    """
    missing = [what for what, present in (("graph", model.HasField("graph")), ("IR version", model.ir_version > 0))
               if not present]
    if missing:
        raise NotAModelFileError(f"{source}: not an ONNX model (it has no {' and no '.join(missing)})")
    return model


def read_model_file(path: str | os.PathLike, *, load_external_data: bool = False) -> onnx.ModelProto:
    """Load the model at ``path`` after the checks above.

    Raises:
        ModelNotFoundError: the file does not exist (a FileNotFoundError and a ValueError).
        NotAModelFileError: the path is a directory, or the file is empty or not an ONNX model
            (a ValueError).
    """
    path = check_model_file(path)
    if path.stat().st_size == 0:
        raise NotAModelFileError(f"{path}: the file is empty, not an ONNX model")
    try:
        model = onnx.load_model(str(path), load_external_data=load_external_data)
    except Exception as error:  # protobuf raises DecodeError, onnx raises various types
        raise NotAModelFileError(f"{path}: not a readable ONNX model ({error})") from None
    return check_model_proto(model, str(path))
