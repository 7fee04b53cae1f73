"""The benchmark command: the cheapest part of ``--quick`` end to end (no timing assertions), and
the logic its tables rest on (figure formatting, paper profiles, caching, headline)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import lsc_ort
from benchmarks import report, run
from benchmarks.profiles import PROFILES, Layer, profile, profile_keys, seeded_layer
from benchmarks.report import Table, Timing
from lsc_ort.entropy import entropy_bound_bytes


def test_quick_size_jobs_write_tables_and_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    code = run.main(["--quick", "--only", "sizes-profiles", "sizes-sweep", "--out", str(tmp_path)])
    assert code == 0
    sizes = (tmp_path / "sizes.md").read_text()
    assert sizes.count("\n### ") >= 2
    header = next(line for line in sizes.splitlines() if line.startswith("| network"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    assert set(lsc_ort.available_codecs()) <= set(columns)  # every registered codec has a column
    assert "51.03× (quoted)" in sizes and "**CPU flags**" in sizes and "**versions**" in sizes
    assert (tmp_path / "bits_vs_sparsity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (tmp_path / "summary.md").read_text()
    assert "ADMM-LeNet" in summary and "LSC 51.03× (quoted)" in summary
    cached = json.loads((tmp_path / ".cache" / "sizes-profiles.json").read_text())
    assert cached["run_key"]["mode"] == "quick"


def test_resume_reuses_cached_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--quick", "--only", "sizes-sweep", "--out", str(tmp_path)]) == 0
    assert run.main(["--quick", "--only", "sizes-sweep", "--out", str(tmp_path), "--resume"]) == 0
    assert "cached, reused" in capsys.readouterr().err
    assert run.main(["--quick", "--only", "sizes-profiles", "--out", str(tmp_path)]) == 0
    sizes = (tmp_path / "sizes.md").read_text()
    assert "Bits per weight vs sparsity" in sizes and "Paper profiles" in sizes  # the other job's table kept
    assert "reused from an earlier run in this folder: sizes-sweep" in (tmp_path / "summary.md").read_text()
    store = report.ResultStore(tmp_path, {"mode": "full"})
    assert store.load("sizes-sweep") is None  # another mode never reuses it


def test_unknown_job_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--only", "nope"]) == 2
    assert "unknown job(s) nope" in capsys.readouterr().err


def test_select_jobs_by_group_keeps_report_order() -> None:
    keys = [job.key for job in run.select_jobs(["speed", "sizes-sweep"])]
    assert keys == ["sizes-sweep", "speed-matmul", "speed-conv", "speed-bandwidth", "speed-models", "speed-tvm"]
    assert len(run.select_jobs(None)) == len(run.JOBS)


# -- figures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [(3.14159, "3.14×"), (51.03, "51.03×"), (152.6, "152.6×"),
                                             (None, "—"), (float("nan"), "—"), (0.0, "—"), (-1.0, "—")])
def test_fmt_ratio(value: float | None, text: str) -> None:
    assert report.fmt_ratio(value) == text


def test_ranges_and_speedups() -> None:
    assert report.fmt_range(2.1, 2.45) == "2.10–2.45×"
    assert report.fmt_range(2.45, 2.1) == "2.10–2.45×"
    assert report.fmt_range(2.001, 2.004) == "2.00×"
    assert report.speedup(2.0, 0.5) == 4.0
    with pytest.raises(ValueError, match="positive"):
        report.speedup(1.0, 0.0)
    baseline, engine = Timing(1.0, 0.9, 1.2), Timing(0.5, 0.45, 0.6)
    median, low, high = report.speedup_range(baseline, engine)
    assert (median, low, high) == (2.0, 1.5, 1.2 / 0.45)
    assert report.fmt_speedup(baseline, engine) == "2.00× (1.50–2.67)"
    assert report.fmt_speedup(baseline, baseline, ranges=False) == "1.00×"


def test_timing_from_rounds() -> None:
    timing = Timing.from_rounds([3.0, 1.0, 2.0, 4.0])
    assert (timing.median, timing.low, timing.high) == (2.5, 1.0, 4.0)
    with pytest.raises(ValueError):
        Timing.from_rounds([])


@pytest.mark.parametrize(("count", "text"), [(512, "512 B"), (2048, "2 KiB"), (1.5 * 2**20, "1.5 MiB"),
                                             (None, "—")])
def test_fmt_bytes(count: float | None, text: str) -> None:
    assert report.fmt_bytes(count) == text


def test_fmt_seconds_and_duration() -> None:
    assert report.fmt_seconds(0.00123) == "1.23 ms"
    assert report.fmt_seconds(2e-6) == "2 µs"
    assert report.fmt_seconds(1.5) == "1.5 s"
    assert report.fmt_duration(754) == "12 min 34 s"
    assert report.fmt_duration(7300) == "2 h 01 min"
    assert report.quoted("51.03×") == "51.03× (quoted)"


def test_table_markdown_aligns_numbers_and_checks_width() -> None:
    table = Table("t", "Title", ["name", "ratio"])
    table.add("a|b", "3.10× (2.9–3.3)")
    table.add("c", None)
    text = table.markdown()
    assert "|---|---:|" in text and "a\\|b" in text and "| c | — |" in text
    with pytest.raises(ValueError, match="row has 1 cells, expected 2"):
        table.add("only one")
    assert Table.from_json(json.loads(json.dumps(table.to_json()))) == table


def test_replace_headline() -> None:
    readme = f"intro\n{report.HEADLINE_START}\nold\n{report.HEADLINE_END}\nrest\n"
    new = report.replace_headline(readme, "new table")
    assert new == f"intro\n{report.HEADLINE_START}\nnew table\n{report.HEADLINE_END}\nrest\n"
    with pytest.raises(ValueError, match="no headline markers"):
        report.replace_headline("no markers", "x")


def test_readme_has_the_headline_markers() -> None:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert report.HEADLINE_START in text and report.HEADLINE_END in text


# -- profiles ----------------------------------------------------------------------------------


def test_profiles_match_the_papers_totals() -> None:
    """Deep Compression's totals: LeNet-300-100 8% kept of 267K, LeNet-5 8% of 431K, AlexNet 11% of
    61M, VGG-16 7.5% of 138M; ADMM-LeNet 430.5K → 6.05K (LSC)."""
    expected = {"lenet-300-100": (266_200, 0.08), "lenet-5": (430_500, 0.08), "alexnet": (60_954_656, 0.11),
                "vgg-16": (138_344_128, 0.075)}
    for key, (size, kept) in expected.items():
        prof = profile(key)
        assert prof.size == size, key
        assert prof.kept == pytest.approx(kept, abs=0.006), key
    admm = profile("admm-lenet")
    assert admm.size == 430_500 and admm.nnz == pytest.approx(6_050, abs=20)


def test_resnet50_profile_reads_the_light_graph() -> None:
    prof = profile("resnet-50")
    assert len(prof.layers) == 54  # 53 Conv + 1 Gemm
    assert prof.size == pytest.approx(25.5e6, rel=0.01)
    assert {layer.kept for layer in prof.layers} == {0.1}


def test_quick_profiles_are_the_small_networks() -> None:
    assert profile_keys(quick=True) == ["lenet-300-100", "lenet-5", "admm-lenet"]
    assert profile_keys(quick=False) == [p.key for p in PROFILES]
    with pytest.raises(ValueError, match="unknown profile"):
        profile("lenet-6")


def test_quoted_figures_are_the_papers() -> None:
    quoted = {(p.key, q.method): q.ratio for p in PROFILES for q in p.quoted}
    assert quoted[("admm-lenet", "LSC")] == 51.03
    assert [quoted[(k, "Deep Compression")] for k in ("lenet-300-100", "lenet-5", "alexnet", "vgg-16")] == [
        40, 39, 35, 49]


def test_seeded_layers_are_deterministic_and_exact() -> None:
    layer = Layer("fc", (100, 80), 0.07)
    first, second = seeded_layer(layer, 3), seeded_layer(layer, 3)
    np.testing.assert_array_equal(first, second)
    assert np.count_nonzero(first) == layer.nnz == 560
    sample = seeded_layer(layer, 3, rows=10)
    assert sample.shape == (10, 80) and np.count_nonzero(sample) == 56
    assert lsc_ort.entropy_bound(first) == pytest.approx(entropy_bound_bytes(8000, 560, 32))


def test_int8_values_keep_the_mask() -> None:
    from benchmarks.sizes import int8_values

    weight = seeded_layer(Layer("fc", (64, 64), 0.2), 0)
    weight.reshape(-1)[np.flatnonzero(weight)[:3]] = 1e-9  # would round to 0
    codes, scale = int8_values(weight)
    np.testing.assert_array_equal(codes != 0, weight != 0)
    assert codes.dtype == np.int8 and math.isclose(scale, np.abs(weight).max() / 127, rel_tol=1e-6)


def test_row_sampling_of_slow_codecs() -> None:
    from benchmarks.sizes import LayerSizer, SizeOptions

    sizer = LayerSizer(["csr"], SizeOptions(codec_seconds=1.0))
    sizer.speeds = {"csr": 1000.0}  # 1000 weights/s: a 100×100 layer would take 10 s
    layer = Layer("fc", (100, 100), 0.1)
    assert sizer.rows_for("csr", layer) == 10
    sizes = sizer.sizes(layer, "float32")
    assert sizes["csr"][1] is True and sizes["csr"][0] == pytest.approx(
        10 * len(lsc_ort.encode(seeded_layer(layer, 0, rows=10), "csr")))
    sizer.speeds = {"csr": 1e9}
    assert sizer.rows_for("csr", layer) is None


def test_headline_rows_from_table_data() -> None:
    fp32 = Table("sizes-profiles-fp32", "t", ["x"], data={
        "admm-lenet": {"dense": 1000, "bound": 10.0, "sizes": {"lsc": 20.0, "csr": 40.0}}})
    peers = Table("peers-models", "p", ["x"], data={"minilm": {"sparsity": 0.9, "engines": {
        "onnxruntime dense": {"file": 2**20, "speedup": {"1": 1.0}, "rss_session": 2**20, "error": "reference"},
        "lsc-ort": {"file": 2**19, "speedup": {"1": 2.5, "2": 2.0}, "rss_session": 2**19, "error": "1e-07"}}}})
    size, engines = run.headline_tables({t.key: t for t in (fp32, peers)})
    assert size.rows == [["ADMM-LeNet (LeNet-5 pruned by ADMM)", "fp32", "50.00×", "lsc 50.00×", "100.0×",
                          "LSC 51.03× (quoted)"]]
    assert engines.rows[1] == ["MiniLM-L3", "lsc-ort", "512 KiB", "2.50×", "2.00×", "512 KiB", "1e-07"]
    assert "90%" in engines.title


def test_headline_keeps_a_skipped_section_with_its_reason() -> None:
    """A job skipped for a missing dataset stays in the README headline, saying why."""
    fashion = Table("sizes-fashion", "f", ["x"], notes=["skipped: Fashion-MNIST is not installed"])
    (section,) = run.headline_tables({fashion.key: fashion})
    assert section.rows == [] and section.notes == ["skipped: Fashion-MNIST is not installed"]
    assert "Fashion-MNIST" in section.markdown() and "(no rows)" in section.markdown()


# -- peers and CLI -----------------------------------------------------------------------------


def test_output_error_and_merged_latency() -> None:
    from benchmarks.peers import merged_latency, output_error

    reference = [np.arange(3), np.ones((2, 4), np.float32)]
    assert output_error(reference, [np.arange(3), np.ones((2, 4), np.float32)]) == "0 (bit-exact)"
    assert output_error(reference, [np.arange(3), np.full((2, 4), 1.1, np.float32)]) == "1.0e-01"
    assert output_error(reference, []) == "—"
    merged = merged_latency([{"latency": {"1": {"median": 2.0, "low": 1.0, "high": 3.0, "runs": 5}}},
                             {"error": "boom"},
                             {"latency": {"1": {"median": 4.0, "low": 3.5, "high": 5.0, "runs": 5}}}])
    assert merged[1] == Timing(4.0, 1.0, 5.0, 10)


def test_deepsparse_is_skipped_with_a_note_without_its_python(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.peers import DEEPSPARSE_ENV, engine_cases

    monkeypatch.delenv(DEEPSPARSE_ENV, raising=False)
    cases, notes = engine_cases(None)
    assert [c.label for c in cases][:3] == ["onnxruntime dense", "lsc-ort", "onnxruntime int8 (dynamic)"]
    assert any("DeepSparse: skipped" in note and DEEPSPARSE_ENV in note for note in notes)
    cases, notes = engine_cases("/nonexistent/python")
    assert any("does not exist" in note for note in notes)


def test_cli_bench_runs_the_benchmarks_from_a_checkout(tmp_path: Path) -> None:
    from lsc_ort import cli

    assert cli.find_benchmarks() is not None
    assert cli.main(["bench", "--quick", "--only", "sizes-sweep", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "sizes.md").exists()


def test_cli_bench_without_a_checkout_says_what_to_do(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from lsc_ort import cli

    monkeypatch.setattr(cli, "find_benchmarks", lambda start=None: None)
    assert cli.main(["bench", "--quick"]) == cli.EXIT_ERROR
    error = capsys.readouterr().err
    assert "not part of the installed package" in error and "source checkout" in error
    assert "pip install -e '.[bench]'" in error


# -- Fashion-MNIST ------------------------------------------------------------------------------


def test_read_idx_and_its_errors(tmp_path: Path) -> None:
    import gzip

    pytest.importorskip("torch")
    from lsc_ort.train.data import DatasetUnavailable, read_idx

    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = b"\0\0\x08\x03" + b"".join(d.to_bytes(4, "big") for d in images.shape)
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + images.tobytes()))
    np.testing.assert_array_equal(read_idx(path), images)
    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes(header + images.tobytes()[:-1])
    with pytest.raises(DatasetUnavailable, match="23 data bytes, header declares 24"):
        read_idx(short)
    wrong = tmp_path / "float-idx3-ubyte"
    wrong.write_bytes(b"\0\0\x0d\x01" + (1).to_bytes(4, "big") + b"\0\0\0\0")
    with pytest.raises(DatasetUnavailable, match="not a uint8 IDX file"):
        read_idx(wrong)


def test_lenet5_graph_runs_and_compresses(tmp_path: Path) -> None:
    import onnxruntime as ort

    from benchmarks.fashion import KEPT, lenet5_onnx

    rng = np.random.default_rng(0)
    shapes = {"conv1.weight": (20, 1, 5, 5), "conv2.weight": (50, 20, 5, 5), "ip1.weight": (500, 800),
              "ip2.weight": (10, 500)}
    weights = {}
    for name, shape in shapes.items():
        weights[name] = rng.standard_normal(shape).astype(np.float32) * 0.1
        weights[name.replace("weight", "bias")] = np.zeros(shape[0], np.float32)
    assert set(KEPT) == {"conv1", "conv2", "ip1", "ip2"}
    model = lenet5_onnx(weights)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.run(None, {"image": np.zeros((3, 1, 28, 28), np.float32)})[0].shape == (3, 10)


def test_fashion_training_prunes_to_the_deep_compression_densities() -> None:
    pytest.importorskip("torch")
    from benchmarks.fashion import KEPT, train

    rng = np.random.default_rng(0)
    images = rng.random((256, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, 256).astype(np.int64)
    dense, pruned, _ = train((images, labels, images, labels), 1, 1, None, lambda message: None)
    for name, kept in KEPT.items():
        weight = pruned[f"{name}.weight"]
        assert np.count_nonzero(weight) == pytest.approx(kept * weight.size, abs=2), name
        assert not np.signbit(weight[weight == 0]).any()  # +0.0 only
        assert np.count_nonzero(dense[f"{name}.weight"]) == weight.size


def test_efficiency_table_appears_for_codecs_that_report_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed-rate codec (F2F) that reports ``encoding_efficiency`` gets a table beside F2F's figure."""
    from benchmarks import sizes

    real_inspect = lsc_ort.inspect

    def inspect(blob: bytes) -> dict[str, object]:
        info = real_inspect(blob)
        return {**info, "encoding_efficiency": 0.97} if info["codec"] == "lsc" else info

    monkeypatch.setattr(sizes.lsc_ort, "inspect", inspect)
    results = {"admm-lenet/float32": {"bound": 90.0, "sizes": {"lsc": 100.0, "csr": 200.0}}}
    table = sizes.efficiency_table(results, ["csr", "lsc"], ["admm-lenet"])
    assert table is not None and len(table.rows) == 1
    assert table.rows[0][0] == "lsc" and table.rows[0][1] == "0.970" and table.rows[0][3] == "0.900"
    assert "(quoted)" in table.rows[0][-1]
    monkeypatch.setattr(sizes.lsc_ort, "inspect", real_inspect)
    assert sizes.efficiency_table(results, ["csr", "lsc"], ["admm-lenet"]) is None


def test_tvm_table_through_the_tvm_schedules_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """``tvm_schedules.compile(model, target)`` / ``run(executable, feeds)`` (issue 9); skipped with a
    note where they are missing. A stand-in that runs onnxruntime checks the plumbing."""
    import sys
    import types

    import onnxruntime as ort

    from benchmarks import speed

    options = speed.SpeedOptions(tvm_shapes=((64, 32),), tvm_batches=(1,), budget=0.01)
    monkeypatch.setitem(sys.modules, "tvm_schedules", types.ModuleType("tvm_schedules"))
    skipped = speed.tvm_table(options, lambda message: None)
    assert not skipped.rows and "skipped: tvm_schedules.compile / run are not available" in skipped.notes[0]

    fake = types.ModuleType("tvm_schedules")
    fake.compile = lambda model, target: ort.InferenceSession(  # type: ignore[attr-defined]
        model.SerializeToString(), lsc_ort.session_options(), providers=["CPUExecutionProvider"])
    fake.run = lambda session, feeds: session.run(None, feeds)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tvm_schedules", fake)
    monkeypatch.setitem(sys.modules, "benchmarks.bench_tvm", None)  # its scheduled GEMM needs the real TVM
    table = speed.tvm_table(options, lambda message: None)
    assert [row[:3] for row in table.rows] == [["64×32", "1", "1"]]
    assert table.data["points"][0]["speedup"] > 0
