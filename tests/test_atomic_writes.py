"""Atomic replacement of a model and its external data: a write killed or failing at any step
leaves the old pair or the new pair, and no temporary file survives the next write."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from lsc_ort.rewriter import atomic, compress_file
from lsc_ort.rewriter.model_io import ModelNotFoundError, atomic_write_text, save_model
from tests.test_rewrite_external import mlp, save_external

REPO = Path(__file__).resolve().parents[1]
INPUT_FILES = ["model.onnx", "model.onnx.weights"]

# Runs one write in a fresh process and kills it (SIGKILL: no cleanup of any kind) at the
# given step. argv: directory, kill-at (1-based count of checkpoints; 0 = never), options.
CHILD = """
import json, os, signal, sys
from pathlib import Path
from lsc_ort.rewriter import atomic, compress_file
directory, kill_at, options = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
steps = []
def hook(step):
    steps.append(step)
    if len(steps) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
atomic.fault_hook = hook
compress_file(directory / "model.onnx", directory / "out.onnx", **options)
print(json.dumps(steps))
"""


def weights_of(path: Path) -> dict[str, bytes]:
    """The tensors of the model at ``path`` with its external data loaded (raises if the data
    file it names is missing or too short)."""
    model = onnx.load_model(path, load_external_data=True)
    return {t.name: numpy_helper.to_array(t).tobytes() for t in model.graph.initializer}


def read_by(path: Path) -> set[str]:
    model = onnx.load_model(path, load_external_data=False)
    return {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if atomic.TEMP_TAG in p.name)


def run_child(directory: Path, kill_at: int, options: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(directory), str(kill_at), json.dumps(options)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


# (old output: compress options, or None for no old output; new output: compress options)
SCENARIOS = {
    "external over external": ({"codec": "csr"}, {"codec": "lsc"}),
    "inline over external": ({"codec": "csr"}, {"codec": "lsc", "external_data": False}),
    "external over inline": ({"codec": "csr", "external_data": False}, {"codec": "lsc"}),
    "external over nothing": (None, {"codec": "lsc"}),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_write_killed_at_any_step_leaves_the_old_or_the_new_pair(tmp_path: Path, scenario: str) -> None:
    old_options, new_options = SCENARIOS[scenario]
    base = tmp_path / "base"
    base.mkdir()
    save_external(mlp(layers=3, width=64), base / "model.onnx")
    old = None
    if old_options is not None:
        compress_file(base / "model.onnx", base / "out.onnx", **old_options)
        old = weights_of(base / "out.onnx")
    (tmp_path / "new").mkdir()
    for name in INPUT_FILES:
        shutil.copy(base / name, tmp_path / "new" / name)
    finished = run_child(tmp_path / "new", 0, new_options)
    assert finished.returncode == 0, finished.stderr
    steps = json.loads(finished.stdout)
    new = weights_of(tmp_path / "new" / "out.onnx")
    assert new != old and len(steps) >= 4

    def kill_at(point: int) -> tuple[int, str, Path]:
        directory = tmp_path / f"kill{point}"
        shutil.copytree(base, directory)
        return point, run_child(directory, point, new_options).stdout, directory

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(kill_at, range(1, len(steps) + 1)))
    for point, stdout, directory in runs:
        where = f"killed at step {point} ({steps[point - 1]})"
        assert stdout == "", f"{where}: the child was not killed"
        out = directory / "out.onnx"
        if old is None and not out.exists():
            state = "old"
        else:
            found = weights_of(out)
            state = "old" if found == old else "new" if found == new else "mixed"
        assert state != "mixed", f"{where}: the output pair is neither the old nor the new one"
        # the next write cleans up whatever the killed one left behind
        compress_file(directory / "model.onnx", out, **new_options)
        assert weights_of(out) == new
        expected = {*INPUT_FILES, "out.onnx"}
        if new_options.get("external_data") is not False:
            expected.add("out.onnx.data")
        assert {p.name for p in directory.iterdir()} == expected, where


def test_the_steps_are_the_documented_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_external(mlp(layers=2, width=64), tmp_path / "model.onnx")
    compress_file(tmp_path / "model.onnx", tmp_path / "out.onnx", codec="csr")
    steps: list[str] = []
    monkeypatch.setattr(atomic, "fault_hook", steps.append)
    compress_file(tmp_path / "model.onnx", tmp_path / "out.onnx", codec="lsc")
    assert [s for s in steps if s != "data-tensor-written"] == [
        "temp-written",
        "temp-model-synced",
        "model-reads-temp-data",
        "data-copied",
        "data-published",
        "temp-written",
        "final-model-synced",
        "model-reads-final-data",
        "temp-data-removed",
        "old-data-removed",
    ]


class Interrupted(BaseException):  # like KeyboardInterrupt: not wrapped by the pass
    pass


@pytest.mark.parametrize("external", [True, False])
def test_a_write_failing_at_any_step_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, external: bool
) -> None:
    save_external(mlp(layers=2, width=64), tmp_path / "model.onnx")
    out = tmp_path / "out.onnx"
    compress_file(tmp_path / "model.onnx", out, codec="csr")
    old = weights_of(out)
    steps: list[str] = []
    monkeypatch.setattr(atomic, "fault_hook", steps.append)
    compress_file(tmp_path / "model.onnx", tmp_path / "new.onnx", codec="lsc", external_data=external)
    new = weights_of(tmp_path / "new.onnx")
    for point in range(1, len(steps) + 1):
        compress_file(tmp_path / "model.onnx", out, codec="csr")
        calls = []

        def fail(step: str, point: int = point, calls: list = calls) -> None:
            calls.append(step)
            if len(calls) == point:
                raise Interrupted(step)

        monkeypatch.setattr(atomic, "fault_hook", fail)
        with pytest.raises(Interrupted):
            compress_file(tmp_path / "model.onnx", out, codec="lsc", external_data=external)
        monkeypatch.setattr(atomic, "fault_hook", None)
        assert weights_of(out) in (old, new), f"failed at {calls[-1]}"
        # an interruption after the switch may leave the new model reading its temporary data
        # file (the next write removes it); no other temporary file remains
        assert temp_files(tmp_path) in ([], sorted(read_by(out))), f"failed at {calls[-1]}"


def test_a_first_write_renames_the_data_into_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_external(mlp(layers=2, width=64), tmp_path / "model.onnx")
    steps: list[str] = []
    monkeypatch.setattr(atomic, "fault_hook", steps.append)
    compress_file(tmp_path / "model.onnx", tmp_path / "out.onnx")
    assert [s for s in steps if s != "data-tensor-written"] == [
        "data-in-place",
        "temp-written",
        "temp-model-synced",
        "model-replaced",
        "old-data-removed",
    ]
    assert {p.name for p in tmp_path.iterdir()} == {*INPUT_FILES, "out.onnx", "out.onnx.data"}


def test_a_failure_after_the_switch_keeps_the_new_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_external(mlp(layers=2, width=64), tmp_path / "model.onnx")
    real_replace = atomic.os.replace

    def replace(src: object, dst: object) -> None:
        if str(dst).endswith("out.onnx.data"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    # a first write fails before the switch: nothing is left
    with pytest.raises(atomic.WriteError, match=r"^cannot write .*out\.onnx: No space left on device$"):
        compress_file(tmp_path / "model.onnx", tmp_path / "out.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == INPUT_FILES
    # over an existing pair the new pair is in place before the data file is renamed
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    compress_file(tmp_path / "model.onnx", tmp_path / "out.onnx", codec="csr")
    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.warns(RuntimeWarning, match="could not be renamed to out.onnx.data"):
        compress_file(tmp_path / "model.onnx", tmp_path / "out.onnx", codec="lsc")
    assert weights_of(tmp_path / "out.onnx")  # reads the temporary data file, which is complete
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    compress_file(tmp_path / "model.onnx", tmp_path / "out.onnx")  # the next write tidies up
    assert {p.name for p in tmp_path.iterdir()} == {*INPUT_FILES, "out.onnx", "out.onnx.data"}


def test_temp_files_of_live_processes_and_other_files_are_kept(tmp_path: Path) -> None:
    save_external(mlp(layers=1, width=64), tmp_path / "model.onnx")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.onnx.data.{atomic.TEMP_TAG}-{dead.stdout.strip()}-abc123.tmp"
    live = tmp_path / f".out.onnx.{atomic.TEMP_TAG}-1-abc123.tmp"  # pid 1 is always running
    other = tmp_path / f".other.onnx.{atomic.TEMP_TAG}-{dead.stdout.strip()}-abc123.tmp"
    for path in (stale, live, other):
        path.write_bytes(b"x")
    compress_file(tmp_path / "model.onnx", tmp_path / "out.onnx")
    assert not stale.exists() and live.exists() and other.exists()


def test_an_inline_write_removes_the_data_file_of_the_replaced_model(tmp_path: Path) -> None:
    save_external(mlp(layers=1, width=64), tmp_path / "model.onnx")
    compress_file(tmp_path / "model.onnx", tmp_path / "out.onnx")
    assert (tmp_path / "out.onnx.data").exists()
    compress_file(tmp_path / "model.onnx", tmp_path / "out.onnx", external_data=False)
    assert not (tmp_path / "out.onnx.data").exists()
    # OUT.data belongs to OUT: one no model reads (left by a write killed after its last
    # rename) goes with the next write
    (tmp_path / "out.onnx.data").write_bytes(b"orphan")
    compress_file(tmp_path / "model.onnx", tmp_path / "out.onnx", external_data=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [*INPUT_FILES, "out.onnx"]


# --- output paths: errors name the user's path --------------------------------------------------


@pytest.mark.parametrize(
    "output,message",
    [("", "the output path is empty"), (".", "output . is a directory"), ("nowhere/out.onnx", "does not exist")],
)
def test_bad_output_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    onnx.save_model(mlp(layers=1, width=64), "model.onnx")
    with pytest.raises(ValueError, match=message):
        compress_file("model.onnx", output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_write_errors_name_the_users_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    onnx.save_model(mlp(layers=1, width=64), tmp_path / "model.onnx")

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / ".out.onnx.lsc-ort-1-x.tmp"))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", denied)
    for external in (False, True):
        with pytest.raises(atomic.WriteError) as caught:
            compress_file(tmp_path / "model.onnx", tmp_path / "out.onnx", external_data=external)
        message = str(caught.value)
        assert message.startswith(f"cannot write {tmp_path / 'out.onnx'}") and "Permission denied" in message
        assert ".tmp" not in message and "Errno" not in message
    with pytest.raises(atomic.WriteError, match=r"cannot write .*report\.md: Permission denied"):
        atomic_write_text(tmp_path / "report.md", "text")


def test_a_read_only_directory_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    onnx.save_model(mlp(layers=1, width=64), tmp_path / "model.onnx")
    monkeypatch.setattr("os.access", lambda path, mode: False)
    with pytest.raises(ValueError, match=r"cannot write .*out\.onnx: the directory .* is not writable"):
        compress_file(tmp_path / "model.onnx", tmp_path / "out.onnx")


# --- input paths ---------------------------------------------------------------------------------


def test_model_inputs_that_are_not_models(tmp_path: Path) -> None:
    from lsc_ort.rewriter import rewrite

    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x01junk that protobuf accepts")
    (tmp_path / "dir.onnx").mkdir()
    cases = {
        "empty.onnx": "the file is empty, not an ONNX model",
        "junk.onnx": "not .*ONNX model",
        "dir.onnx": "is a directory, not an ONNX model file",
    }
    for name, message in cases.items():
        with pytest.raises(ValueError, match=message):
            rewrite(tmp_path / name)
        with pytest.raises(ValueError, match=message):
            compress_file(tmp_path / name, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx: no such file"):
        rewrite(tmp_path / "missing.onnx")
    assert issubclass(ModelNotFoundError, ValueError)  # callers catching ValueError still do
    from lsc_ort import decompress, prune, reference_evaluator
    from lsc_ort.rewriter import layer_rows

    for entry in (rewrite, decompress, layer_rows, reference_evaluator, lambda m: prune(m, 0.5)):
        with pytest.raises(ValueError, match="not an ONNX model"):
            entry(onnx.ModelProto())
        with pytest.raises(ValueError, match="the file is empty"):
            entry(tmp_path / "empty.onnx")


def test_save_model_of_an_inline_model_leaves_one_file(tmp_path: Path) -> None:
    model = mlp(layers=1, width=64)
    save_model(model, tmp_path / "m.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    assert np.array_equal(
        numpy_helper.to_array(onnx.load(tmp_path / "m.onnx").graph.initializer[0]),
        numpy_helper.to_array(model.graph.initializer[0]),
    )
