"""Loading and saving models: external data, layer-by-layer streaming and atomic writes.

Models are loaded *without* their external data (:func:`load_model`); a :class:`TensorReader`
reads one tensor at a time when a pass needs its values, and a :class:`TensorSink` stores each
new tensor as soon as it is made, either inline or appended to the output's external data file
(:class:`ExternalDataWriter`). Peak memory therefore stays near one layer plus the protobuf, also
for models over the 2 GB protobuf limit.

:func:`save_model` writes atomically: everything goes to temporary files in the destination
directory which replace the destination (data file first, then the model) only once all of it
has been written; on failure the destination is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Protocol, TypeVar

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.external_data_helper import uses_external_data

ModelLike = onnx.ModelProto | str | os.PathLike
"""A model, or the path of an ``.onnx`` file."""

INLINE_LIMIT = 1_800_000_000
"""Tensor bytes above which a model is saved with external data (protobuf caps at 2 GiB)."""
EXTERNAL_THRESHOLD = 1024
"""Initializers of at least this many bytes go to the data file when saving external data."""
_PAGE = 4096
_SMALL_ALIGN = 64
T = TypeVar("T")


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Load an ``.onnx`` file without its external data (tensors keep their references).

    Raises:
        ValueError: the file does not exist or is not an ONNX model.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        return onnx.load_model(str(path), load_external_data=False)
    except Exception as error:  # protobuf raises DecodeError, onnx raises various types
        raise ValueError(f"{path}: not a readable ONNX model ({error})") from None


def resolve_model(
    model: ModelLike, base_dir: str | os.PathLike | None = None
) -> tuple[onnx.ModelProto, str | None]:
    """A private copy of ``model`` (loaded if a path) and the directory of its external data.

    The caller's ModelProto is never modified: it is copied. A path is loaded without its external
    data, whose directory (the file's) is returned for :class:`TensorReader`.
    """
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy, None if base_dir is None else str(base_dir)
    if isinstance(model, str | os.PathLike):
        path = Path(model)
        return load_model(path), str(path.parent if base_dir is None else base_dir)
    raise TypeError(f"expected an onnx.ModelProto or a path, got {type(model).__name__}")


def iter_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and all its subgraphs (If/Loop/Scan bodies), recursively."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from iter_graphs(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    yield from iter_graphs(sub)


def iter_tensors(model: onnx.ModelProto) -> Iterator[tuple[onnx.TensorProto, bool]]:
    """Every tensor of ``model`` (graphs, subgraphs, functions) with a flag telling whether it is
    a graph initializer (else a node attribute such as a ``Constant`` value)."""
    node_lists = []
    for graph in iter_graphs(model.graph):
        yield from ((tensor, True) for tensor in graph.initializer)
        node_lists.append(graph.node)
    for function in model.functions:
        node_lists.append(function.node)
    for nodes in node_lists:
        for node in nodes:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield attribute.t, False
                yield from ((t, False) for t in attribute.tensors)


def has_external_data(model: onnx.ModelProto) -> bool:
    """Whether any tensor of ``model`` refers to external data."""
    return any(uses_external_data(tensor) for tensor, _ in iter_tensors(model))


def external_locations(model: onnx.ModelProto) -> set[str]:
    """The ``location`` of every external data file ``model`` refers to."""
    found = set()
    for tensor, _ in iter_tensors(model):
        if uses_external_data(tensor):
            for entry in tensor.external_data:
                if entry.key == "location":
                    found.add(entry.value)
    return found


def tensor_location(tensor: onnx.TensorProto) -> str | None:
    """The external data file of ``tensor``, or None if it is stored inline."""
    if not uses_external_data(tensor):
        return None
    for entry in tensor.external_data:
        if entry.key == "location":
            return entry.value
    return None


def little_endian_bytes(array: np.ndarray) -> bytes:
    """The little-endian bytes of ``array`` as ONNX ``raw_data`` stores them."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


class TensorReader:
    """Reads tensor values one at a time, following external data references."""

    def __init__(self, base_dir: str | os.PathLike | None) -> None:
        """Args:
        base_dir: directory against which external data locations resolve; None when the model
            was given in memory (then external tensors cannot be read).
        """
        self.base_dir = None if base_dir is None else str(base_dir)

    def read(self, tensor: onnx.TensorProto) -> np.ndarray:
        """The value of ``tensor`` as a numpy array."""
        if uses_external_data(tensor):
            if self.base_dir is None:
                raise ValueError(
                    f"tensor '{tensor.name}' stores its data in external file "
                    f"'{tensor_location(tensor)}'; give the model as a path or pass base_dir"
                )
            try:
                return numpy_helper.to_array(tensor, self.base_dir)
            except (OSError, ValueError) as error:
                raise ValueError(
                    f"cannot read the external data of tensor '{tensor.name}': {error}"
                ) from None
        return numpy_helper.to_array(tensor)


class ExternalDataWriter:
    """Appends tensor data to an external data file, written as a temporary file beside its final
    path and moved there by :meth:`commit` (or removed by :meth:`abort`)."""

    def __init__(self, final_path: str | os.PathLike) -> None:
        self.final_path = Path(final_path)
        self.location = self.final_path.name
        fd, temp = tempfile.mkstemp(prefix=f".{self.location}.", suffix=".tmp", dir=self.final_path.parent)
        os.chmod(temp, _file_mode(self.final_path))
        self.temp_path = Path(temp)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._offset = 0

    def write(self, tensor: onnx.TensorProto, data: bytes) -> None:
        """Store ``data`` as the content of ``tensor`` (whose inline data fields are cleared)."""
        align = _PAGE if len(data) >= 1 << 20 else _SMALL_ALIGN
        offset = -(-self._offset // align) * align
        if offset > self._offset:
            self._file.write(b"\0" * (offset - self._offset))
        self._file.write(data)
        self._offset = offset + len(data)
        _clear_data(tensor)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", self.location), ("offset", str(offset)), ("length", str(len(data)))):
            entry = tensor.external_data.add()
            entry.key = key
            entry.value = value

    def commit(self) -> None:
        """Flush the data file and move it to its final path."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.temp_path, self.final_path)

    def abort(self) -> None:
        """Drop the temporary data file."""
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self.temp_path.unlink()


def _clear_data(tensor: onnx.TensorProto) -> None:
    for field in (
        "raw_data",
        "float_data",
        "int32_data",
        "string_data",
        "int64_data",
        "double_data",
        "uint64_data",
        "external_data",
    ):
        tensor.ClearField(field)
    tensor.ClearField("data_location")


class TensorSink(Protocol):
    """Where a pass stores the tensors it creates."""

    def make(self, name: str, array: np.ndarray) -> onnx.TensorProto:
        """A TensorProto named ``name`` holding ``array`` (inline or as external data)."""
        ...


class InlineSink:
    """Keeps new tensors inline in the protobuf."""

    def make(self, name: str, array: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(array), name)


class ExternalSink:
    """Appends new tensors of at least ``threshold`` bytes to an :class:`ExternalDataWriter` as
    soon as they are made, so that they do not accumulate in memory."""

    def __init__(self, writer: ExternalDataWriter, threshold: int = EXTERNAL_THRESHOLD) -> None:
        self.writer = writer
        self.threshold = threshold

    def make(self, name: str, array: np.ndarray) -> onnx.TensorProto:
        array = np.asarray(array)
        if array.nbytes < self.threshold:
            return numpy_helper.from_array(array, name)
        tensor = onnx.TensorProto()
        tensor.name = name
        tensor.data_type = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        self.writer.write(tensor, little_endian_bytes(array))
        return tensor


def _inline_bytes(model: onnx.ModelProto) -> int:
    return sum(tensor.ByteSize() for tensor, _ in iter_tensors(model) if not uses_external_data(tensor))


def data_path_for(path: str | os.PathLike) -> Path:
    """The external data file that :func:`save_model` writes beside ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".data")


def check_output_path(
    output: str | os.PathLike,
    inputs: list[str | os.PathLike],
    model: onnx.ModelProto | None = None,
    base_dir: str | None = None,
) -> None:
    """Refuse an output that would overwrite an input file or the external data it reads.

    Raises:
        ValueError: naming the clash.
    """
    out = Path(output).resolve()
    data = data_path_for(out).resolve()
    for source in inputs:
        if Path(source).resolve() in (out, data):
            raise ValueError(f"output {output} would overwrite the input {source}; choose another path")
    if model is not None and base_dir is not None:
        for location in external_locations(model):
            if (Path(base_dir) / location).resolve() in (out, data):
                raise ValueError(
                    f"output {output} would overwrite the external data file '{location}' "
                    f"of the input; choose another path"
                )
    if not out.parent.is_dir():
        raise ValueError(f"output directory {out.parent} does not exist")


def save_model(
    model: onnx.ModelProto,
    path: str | os.PathLike,
    *,
    base_dir: str | os.PathLike | None = None,
    external_data: bool | None = None,
    writer: ExternalDataWriter | None = None,
) -> None:
    """Write ``model`` to ``path`` atomically, with or without an external data file.

    With external data, the data file is ``<path>.data``: tensors already written there through
    ``writer`` stay, tensors referring to the input's external data (resolved against
    ``base_dir``) are copied one at a time, and inline initializers of at least
    :data:`EXTERNAL_THRESHOLD` bytes move there. ``model`` is modified accordingly (as
    ``onnx.save_model`` does).

    Args:
        model: the model to write; modified in place when external data is written.
        path: destination ``.onnx`` file.
        base_dir: directory of the input's external data, if ``model`` refers to any.
        external_data: True or False to force; None (default) writes external data when ``writer``
            is given, the model refers to external data, or its tensors exceed
            :data:`INLINE_LIMIT` bytes.
        writer: the writer into which a streaming pass already stored tensors; committed here.

    Raises:
        ValueError: the model cannot be written as requested; ``path`` is then left as it was.
    """
    path = Path(path)
    reader = TensorReader(base_dir)
    if external_data is None:
        external_data = writer is not None or has_external_data(model) or _inline_bytes(model) > INLINE_LIMIT
    try:
        if external_data:
            if writer is None:
                writer = ExternalDataWriter(data_path_for(path))
            _externalize(model, reader, writer)
        else:
            if writer is not None:
                raise ValueError("a streaming writer was given but external_data=False")
            load_external_tensors(model, reader.base_dir)
            if _inline_bytes(model) > INLINE_LIMIT:
                raise ValueError("the model exceeds the 2 GB protobuf limit; save it with external data")
        serialized = model.SerializeToString()
        _atomic_write(path, serialized, writer)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise


def _externalize(model: onnx.ModelProto, reader: TensorReader, writer: ExternalDataWriter) -> None:
    for tensor, is_initializer in iter_tensors(model):
        if uses_external_data(tensor):
            if tensor_location(tensor) == writer.location:
                continue  # written by the streaming pass
            data = little_endian_bytes(reader.read(tensor))
            writer.write(tensor, data)
        elif (
            is_initializer
            and tensor.data_type != onnx.TensorProto.STRING
            and tensor.ByteSize() >= EXTERNAL_THRESHOLD
        ):
            writer.write(tensor, little_endian_bytes(numpy_helper.to_array(tensor)))


def _file_mode(path: Path) -> int:
    """Permissions for a new file at ``path``: those of the file it replaces, else 0o666 less the
    umask (what ``open`` gives; ``mkstemp`` would give 0o600)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _atomic_write(path: Path, data: bytes, writer: ExternalDataWriter | None) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(temp, _file_mode(path))
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if writer is not None:
            writer.commit()
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def file_size(path: str | os.PathLike) -> int:
    """Bytes of an ``.onnx`` file plus the external data files it refers to."""
    path = Path(path)
    total = path.stat().st_size
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:
        return total
    for location in external_locations(model):
        data = path.parent / location
        if data.is_file():
            total += data.stat().st_size
    return total


def transform_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    transform: Callable[[onnx.ModelProto, str, TensorSink], T],
    *,
    external_data: bool | None = None,
    added_bytes: Callable[[onnx.ModelProto, str], int] | None = None,
) -> T:
    """Load ``src``, let ``transform`` change the model in place, and save it atomically to ``dst``.

    ``transform(model, base_dir, sink)`` reads tensors through ``base_dir`` (the input's
    directory) and stores the tensors it makes through ``sink``, which streams them to the output
    data file when the output has external data: when ``external_data=True``, or by default when
    the input has external data or its inline tensors plus ``added_bytes(model, base_dir)`` (an
    estimate of what ``transform`` adds) exceed :data:`INLINE_LIMIT`.

    Raises:
        ValueError: bad paths (``dst`` would overwrite the input or its data); on any failure
            ``dst`` is left as it was.
    """
    src = Path(src)
    model = load_model(src)
    base_dir = str(src.resolve().parent)
    check_output_path(dst, [src], model, base_dir)
    stream = external_data is True or (
        external_data is None
        and (
            has_external_data(model)
            or (
                added_bytes is not None and _inline_bytes(model) + added_bytes(model, base_dir) > INLINE_LIMIT
            )
        )
    )
    writer = ExternalDataWriter(data_path_for(dst)) if stream else None
    sink: TensorSink = ExternalSink(writer) if writer is not None else InlineSink()
    try:
        result = transform(model, base_dir, sink)
        save_model(model, dst, base_dir=base_dir, external_data=external_data, writer=writer)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return result


def load_external_tensors(model: onnx.ModelProto, base_dir: str | None) -> None:
    """Make every tensor of ``model`` inline, reading external data from ``base_dir``."""
    reader = TensorReader(base_dir)
    for tensor, _ in iter_tensors(model):
        if uses_external_data(tensor):
            data = little_endian_bytes(reader.read(tensor))
            _clear_data(tensor)
            tensor.raw_data = data


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    _atomic_write(Path(path), text.encode("utf-8"), None)
