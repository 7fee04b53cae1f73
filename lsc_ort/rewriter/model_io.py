"""Loading and saving models: external data, layer-by-layer streaming and atomic writes.

Models are loaded *without* their external data (:func:`load_model`); a :class:`TensorReader`
reads one tensor at a time when a pass needs its values, and a :class:`TensorSink` stores each
new tensor as soon as it is made, either inline or appended to the output's external data file
(:class:`ExternalDataWriter`). Peak memory therefore stays near one layer plus the protobuf, also
for models over the 2 GB protobuf limit.

:func:`save_model` writes atomically, the model together with its data file
(:mod:`lsc_ort.rewriter.atomic`): an interrupted or failed write leaves the old files as they
were, and the destination never pairs an old model with new data or the reverse.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Protocol, TypeVar

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.external_data_helper import uses_external_data

from lsc_ort.model_file import (  # noqa: F401  (the errors are re-exported)
    ModelNotFoundError,
    NotAModelFileError,
    check_model_proto,
    read_model_file,
)
from lsc_ort.rewriter import atomic

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
        ModelNotFoundError: the file does not exist (a FileNotFoundError and a ValueError).
        NotAModelFileError: the path is a directory, or the file is empty or not an ONNX model
            (a ValueError).
    """
    return read_model_file(path)


def resolve_model(
    model: ModelLike, base_dir: str | os.PathLike | None = None
) -> tuple[onnx.ModelProto, str | None]:
    """A private copy of ``model`` (loaded if a path) and the directory of its external data.

    The caller's ModelProto is never modified: it is copied. A path is loaded without its external
    data, whose directory (the file's) is returned for :class:`TensorReader`.
    """
    if isinstance(model, onnx.ModelProto):
        check_model_proto(model)
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
    path; :func:`save_model` moves it there together with the model (or :meth:`abort` removes it).

    Tensors refer to the final name (:attr:`location`) from the start.
    """

    def __init__(self, final_path: str | os.PathLike) -> None:
        self.final_path = Path(final_path)
        self.location = self.final_path.name
        try:
            fd, self.temp_path = atomic.new_temp(self.final_path)
        except OSError as error:
            raise atomic.write_error(self.final_path, error) from None
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._offset = 0
        self.committed = False
        """True once a model reading this data is in place: the data file is then kept."""

    def write(self, tensor: onnx.TensorProto, data: bytes) -> None:
        """Store ``data`` as the content of ``tensor`` (whose inline data fields are cleared)."""
        align = _PAGE if len(data) >= 1 << 20 else _SMALL_ALIGN
        offset = -(-self._offset // align) * align
        try:
            if offset > self._offset:
                self._file.write(b"\0" * (offset - self._offset))
            self._file.write(data)
        except OSError as error:
            raise atomic.write_error(self.final_path, error) from None
        atomic.checkpoint("data-tensor-written")
        self._offset = offset + len(data)
        _clear_data(tensor)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", self.location), ("offset", str(offset)), ("length", str(len(data)))):
            entry = tensor.external_data.add()
            entry.key = key
            entry.value = value

    def close(self) -> None:
        """Flush the data file to disk and close it (it stays at :attr:`temp_path`)."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as error:
            raise atomic.write_error(self.final_path, error) from None

    def abort(self) -> None:
        """Drop the temporary data file, unless a model already reads it."""
        with contextlib.suppress(OSError):
            self._file.close()
        if not self.committed:
            atomic.remove_quietly(self.temp_path)


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


def check_writable(output: str | os.PathLike, what: str = "output") -> Path:
    """``output`` as a Path if a file can be written there, else a ValueError that says why in
    terms of the user's path (empty, a directory, no such directory, a read-only directory)."""
    if not os.fspath(output):
        raise ValueError(f"the {what} path is empty; give a file name")
    path = Path(output)
    if path.is_dir():
        raise ValueError(f"{what} {output} is a directory; give a file path, e.g. {path / 'model.onnx'}")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise ValueError(f"{what} directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {output}: the directory {parent} is not writable")
    if path.exists() and not path.is_file():
        raise ValueError(f"{what} {output} exists and is not a regular file")
    return path


def check_output_path(
    output: str | os.PathLike,
    inputs: list[str | os.PathLike],
    model: onnx.ModelProto | None = None,
    base_dir: str | None = None,
) -> None:
    """Refuse an output that cannot be written, or would overwrite an input file or the external
    data it reads.

    Raises:
        ValueError: naming the problem.
    """
    check_writable(output)
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
    if data.is_dir():
        raise ValueError(f"output {output} needs the data file {data}, which is a directory")


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
    path = check_writable(path)
    reader = TensorReader(base_dir)
    if external_data is None:
        external_data = writer is not None or has_external_data(model) or _inline_bytes(model) > INLINE_LIMIT
    try:
        if external_data:
            if writer is None:
                remove_stale_temps(path)
                writer = ExternalDataWriter(data_path_for(path))
            _externalize(model, reader, writer)
        else:
            if writer is not None:
                raise ValueError("a streaming writer was given but external_data=False")
            load_external_tensors(model, reader.base_dir)
            if _inline_bytes(model) > INLINE_LIMIT:
                raise ValueError("the model exceeds the 2 GB protobuf limit; save it with external data")
        _commit(path, model, writer)
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


def _files_read_by(path: Path) -> set[Path]:
    """The external data files the model now at ``path`` reads (empty if none or unreadable)."""
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return set()
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:
        return set()
    return {(path.parent / location) for location in external_locations(model)}


def _own_files(path: Path) -> tuple[str, ...]:
    """Names of the files a write to ``path`` makes: the model and its data file."""
    return path.name, data_path_for(path).name


def _candidates(path: Path) -> bool:
    """Whether ``path``'s directory may hold files of an earlier write to ``path`` to clean up."""
    data = data_path_for(path)
    if data.exists():
        return True
    prefixes = tuple(f".{name}.{atomic.TEMP_TAG}-" for name in _own_files(path))
    with contextlib.suppress(OSError), os.scandir(path.parent) as entries:
        return any(entry.name.startswith(prefixes) for entry in entries)
    return False


def remove_stale_temps(path: str | os.PathLike) -> None:
    """Remove the temporary files that killed writes to ``path`` left behind, except any that the
    model now at ``path`` reads (see :mod:`lsc_ort.rewriter.atomic`)."""
    path = Path(path)
    if not _candidates(path):
        return
    stale = atomic.stale_temps(path, _own_files(path))
    if stale:
        keep = {p.resolve() for p in _files_read_by(path)}
        for temp in stale:
            if temp.resolve() not in keep:
                atomic.remove_quietly(temp)


def _relocate(model: onnx.ModelProto, old: str, new: str) -> None:
    """Point every tensor of ``model`` stored in the data file ``old`` at ``new`` instead."""
    for tensor, _ in iter_tensors(model):
        for entry in tensor.external_data:
            if entry.key == "location" and entry.value == old:
                entry.value = new


def _commit(path: Path, model: onnx.ModelProto, writer: ExternalDataWriter | None) -> None:
    """Replace ``path`` (and its data file) by ``model`` (and ``writer``'s data), atomically as
    described in :mod:`lsc_ort.rewriter.atomic`.

    ``<path>.data`` belongs to ``path``: when the new model does not read it, it is removed, as
    is a temporary data file of an earlier, killed write that the replaced model read.
    """
    old = _files_read_by(path) if _candidates(path) else set()
    final_data = data_path_for(path)
    if final_data.is_file():
        old.add(final_data)
    if writer is None:
        remove_stale_temps(path)
        atomic.replace_file(path, model.SerializeToString())
        new: set[Path] = set()
    else:
        writer.close()
        _relocate(model, writer.location, writer.temp_path.name)
        reading_temp = model.SerializeToString()
        _relocate(model, writer.temp_path.name, writer.location)
        reading_final = model.SerializeToString()

        def switched() -> None:
            writer.committed = True

        atomic.replace_model_and_data(
            path,
            reading_temp,
            reading_final,
            writer.temp_path,
            writer.final_path,
            data_in_use=final_data in _files_read_by(path),
            on_switch=switched,
        )
        new = {writer.final_path, writer.temp_path}
    for data in old - new:
        if data == final_data or any(atomic.is_temp_of(data, name) for name in _own_files(path)):
            atomic.remove_quietly(data)
    atomic.checkpoint("old-data-removed")


def file_size(path: str | os.PathLike) -> int:
    """Bytes of an ``.onnx`` file plus the external data files it refers to."""
    path = Path(path)
    total = path.stat().st_size
    if not total:
        return 0
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
    remove_stale_temps(dst)
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


def atomic_write_text(path: str | os.PathLike, text: str, what: str = "output") -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically.

    Raises:
        ValueError: ``path`` cannot be written (see :func:`check_writable`).
        WriteError: writing failed; ``path`` is left as it was.
    """
    path = check_writable(path, what)
    for temp in atomic.stale_temps(path, [path.name]):
        atomic.remove_quietly(temp)
    atomic.replace_file(path, text.encode("utf-8"))

