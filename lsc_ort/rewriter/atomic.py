"""Atomic file replacement, also of a model together with its external data file.

A model ``out.onnx`` names its data file through the ``location`` of its tensors, so replacing
the two files by two renames leaves a moment in which the old model reads the new data (or the
new model the old data). :func:`replace_model_and_data` has no such moment: whenever it is
killed, ``out.onnx`` and the data file it names are either the old pair or the new pair.

The new data is first written to a temporary file ``D`` beside the destination and flushed to
disk. Then, when the model now at ``out.onnx`` does not read ``out.onnx.data`` (the first write,
or one over an inline model):

1. ``D`` is renamed to ``out.onnx.data``, which nothing reads yet;
2. the new model is renamed over ``out.onnx``: one rename replaces the old pair by the new one.

When it does read ``out.onnx.data``, that name must hold the old data until the model is
replaced, so the new pair first takes another name:

1. a model that reads ``D`` is renamed over ``out.onnx``: the new pair is ``(out.onnx, D)``;
2. ``D`` is copied to a temporary file that is renamed over ``out.onnx.data`` (the model reads
   ``D`` meanwhile; a hard link would save the copy, but onnx refuses to read a data file with
   several links);
3. the final model, which reads ``out.onnx.data``, is renamed over ``out.onnx``;
4. ``D`` is removed.

Every temporary file is named ``.<final name>.lsc-ort-<pid>-<random>.tmp``. A failure removes the
files it made (the old pair stays if it fails before the model was replaced, else the new pair
stays, with a warning if it still reads ``D``). A kill leaves them behind: the next write to the
same destination removes those whose process has ended and that the model there does not read
(after a kill in steps 2-3 of the second case it reads ``D``, which a later write removes).

:data:`fault_hook`, when set, is called at each step (:func:`checkpoint`): tests kill the process
there to check that every interrupted write leaves a consistent pair.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

TEMP_TAG = "lsc-ort"
"""Marks the temporary files of this module: ``.<final name>.lsc-ort-<pid>-<random>.tmp``."""

fault_hook: Callable[[str], None] | None = None
"""Called with the name of each step of a write (fault injection for tests); None in normal use."""


def checkpoint(step: str) -> None:
    """A point at which a write may be interrupted (calls :data:`fault_hook`)."""
    if fault_hook is not None:
        fault_hook(step)


class WriteError(OSError):
    """An output file could not be written; the message names the user's path, not a temp file."""


def _reason(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


def write_error(path: str | os.PathLike, error: OSError) -> WriteError:
    """A :class:`WriteError` for ``path`` with the reason of ``error`` (never its temp-file name)."""
    failure = WriteError(f"cannot write {os.fspath(path)}: {_reason(error)}")
    failure.errno = error.errno
    return failure


def _temp_pattern(final_name: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(final_name)}\.{TEMP_TAG}-(\d+)-[A-Za-z0-9_]+\.tmp$")


def is_temp_of(path: Path, final_name: str) -> bool:
    """Whether ``path`` is a temporary file of a write to ``final_name`` (in the same directory)."""
    return _temp_pattern(final_name).match(path.name) is not None


def new_temp(final: Path) -> tuple[int, Path]:
    """Create an empty temporary file beside ``final``; returns its descriptor and path."""
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.{TEMP_TAG}-{os.getpid()}-", suffix=".tmp", dir=final.parent)
    os.chmod(name, file_mode(final))
    return fd, Path(name)


def file_mode(path: Path) -> int:
    """Permissions for a new file at ``path``: those of the file it replaces, else 0o666 less the
    umask (what ``open`` gives; ``mkstemp`` alone would give 0o600)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but is another user's, or the platform cannot tell: keep its files
        return True
    return True


def stale_temps(final: Path, names: Iterable[str]) -> list[Path]:
    """Temporary files of writes to ``names`` (in ``final``'s directory) whose process has ended."""
    patterns = [_temp_pattern(name) for name in names]
    try:
        with os.scandir(final.parent) as scan:
            entries = list(scan)
    except OSError:
        return []
    stale = []
    for entry in entries:
        for pattern in patterns:
            found = pattern.match(entry.name)
            if found and not _process_alive(int(found.group(1))):
                stale.append(Path(entry.path))
    return stale


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def sync_directory(directory: Path) -> None:
    """Make the renames in ``directory`` durable (where the platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_temp(final: Path, data: bytes) -> Path:
    fd, temp = new_temp(final)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            checkpoint("temp-written")
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        remove_quietly(temp)
        raise
    return temp


def _rename(temp: Path, final: Path, step: str) -> None:
    os.replace(temp, final)
    sync_directory(final.parent)
    checkpoint(step)


def replace_file(path: Path, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``, atomically (``path`` stays as it was on failure).

    Raises:
        WriteError: naming ``path`` and the reason.
    """
    temp: Path | None = None
    try:
        temp = _write_temp(path, data)
        checkpoint("temp-synced")
        _rename(temp, path, "replaced")
    except OSError as error:
        if temp is not None:
            remove_quietly(temp)
        raise write_error(path, error) from None
    except BaseException:
        if temp is not None:
            remove_quietly(temp)
        raise


def _copy(source: Path, final: Path) -> Path:
    """A temporary file beside ``final`` holding a copy of ``source``, flushed to disk."""
    fd, temp = new_temp(final)
    try:
        with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 24)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        remove_quietly(temp)
        raise
    return temp


def replace_model_and_data(
    path: Path,
    model_reading_temp: bytes,
    model_reading_final: bytes,
    data_temp: Path,
    data_final: Path,
    *,
    data_in_use: bool,
    on_switch: Callable[[], None],
) -> None:
    """Replace the model ``path`` and its data file ``data_final`` together (see above).

    Args:
        path: the model file to replace.
        model_reading_temp: the new model, its tensors referring to ``data_temp``'s name.
        model_reading_final: the same model referring to ``data_final``'s name.
        data_temp: the new data, complete and flushed, in ``path``'s directory.
        data_final: where the data file ends up.
        data_in_use: whether the model now at ``path`` reads ``data_final``.
        on_switch: called as soon as a new model is at ``path``; from then on its data file is
            kept whatever happens.

    Raises:
        WriteError: before the model is replaced, naming ``path`` and the reason; the old pair
            is then intact (and ``data_final`` as it was, or absent when nothing read it).
        BaseException: an interruption (e.g. KeyboardInterrupt) propagates once the temporary
            files are removed; from the switch on, the new pair is in place.
    """
    if not data_in_use:
        temp: Path | None = None
        try:
            os.replace(data_temp, data_final)
            sync_directory(path.parent)
            checkpoint("data-in-place")
            temp = _write_temp(path, model_reading_final)
            checkpoint("temp-model-synced")
            os.replace(temp, path)
        except BaseException as error:
            for leftover in (temp, data_final):  # nothing reads data_final: the old pair is whole
                if leftover is not None:
                    remove_quietly(leftover)
            if isinstance(error, OSError):
                raise write_error(path, error) from None
            raise
        on_switch()
        sync_directory(path.parent)
        checkpoint("model-replaced")
        return

    try:
        temp = _write_temp(path, model_reading_temp)
    except OSError as error:
        raise write_error(path, error) from None
    try:
        checkpoint("temp-model-synced")
        os.replace(temp, path)
    except OSError as error:
        remove_quietly(temp)
        raise write_error(path, error) from None
    except BaseException:
        remove_quietly(temp)
        raise
    on_switch()  # the new pair is (path, data_temp); what follows only renames it
    made: list[Path] = []
    reads_final = False
    try:
        sync_directory(path.parent)
        checkpoint("model-reads-temp-data")
        made.append(_copy(data_temp, data_final))
        checkpoint("data-copied")
        os.replace(made[-1], data_final)
        sync_directory(path.parent)
        checkpoint("data-published")
        made.append(_write_temp(path, model_reading_final))
        checkpoint("final-model-synced")
        os.replace(made[-1], path)
        reads_final = True
        sync_directory(path.parent)
        checkpoint("model-reads-final-data")
        os.unlink(data_temp)
        checkpoint("temp-data-removed")
    except BaseException as error:
        for leftover in [*made, *([data_temp] if reads_final else [])]:
            if leftover.exists():
                remove_quietly(leftover)
        if not isinstance(error, OSError):
            raise
        if not reads_final:
            warnings.warn(
                f"{path} was written, but its data file could not be renamed to {data_final.name} "
                f"({_reason(error)}); the model reads it from {data_temp.name}",
                RuntimeWarning,
                stacklevel=3,
            )
