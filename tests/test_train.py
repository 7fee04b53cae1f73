"""ADMM training of MSWU structure (lsc_ort.train): feasible structure on a tiny problem, the same
structure under DistributedDataParallel with 2 gloo processes as in one process, ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

import lsc_ort  # noqa: E402
from lsc_ort.mswu import BlockLabel, apply_labels, block_counts, classify_blocks  # noqa: E402
from lsc_ort.train import AdmmSchedule, MswuADMM, MswuTarget, export_onnx, mswu_layers, train_mswu  # noqa: E402
from lsc_ort.train.admm import fixed_projection  # noqa: E402

TARGET = MswuTarget(block="1x4", sparsity=0.5, unify=0.25)
SCHEDULE = AdmmSchedule(admm_epochs=6, finetune_epochs=2, rho=1e-2, rho_growth=1.6, rho_max=1.0,
                        updates_per_epoch=2)
BATCH, SAMPLES = 32, 256


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 8)).double()


def dataset(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(SAMPLES, 16, generator=generator, dtype=torch.float64)
    teacher = torch.randn(16, 8, generator=generator, dtype=torch.float64)
    return x, torch.tanh(x @ teacher)


def batches(rank: int = 0, world: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each process gets its share of every global batch."""
    x, y = dataset()
    return [(x[i:i + BATCH][rank::world], y[i:i + BATCH][rank::world]) for i in range(0, SAMPLES, BATCH)]


def run(model: nn.Module, rank: int = 0, world: int = 1) -> dict[str, np.ndarray]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    result = train_mswu(model, nn.functional.mse_loss, batches(rank, world), optimizer, targets=TARGET,
                        schedule=SCHEDULE, progress=False)
    return result.structure()


def assert_in_structure(model: nn.Module, structure: dict[str, np.ndarray]) -> None:
    for name, weight, target in mswu_layers(model, TARGET):
        labels = structure[name]
        array = weight.detach().numpy()
        n_prune, n_unify = block_counts(labels.size, target.sparsity, target.unify)
        assert (labels == BlockLabel.PRUNED).sum() == n_prune and (labels == BlockLabel.UNIFIED).sum() == n_unify
        actual = classify_blocks(array, (1, 4))
        assert np.all(actual[labels == BlockLabel.PRUNED] == BlockLabel.PRUNED), name
        assert np.all(actual[labels == BlockLabel.UNIFIED] != BlockLabel.FREE), name
        np.testing.assert_array_equal(apply_labels(array, (1, 4), labels), array)


def test_admm_reaches_a_feasible_structure_and_learns() -> None:
    model = tiny_model()
    x, y = dataset()
    with torch.no_grad():
        before = float(nn.functional.mse_loss(model(x), y))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    result = train_mswu(model, nn.functional.mse_loss, batches(), optimizer, targets=TARGET, schedule=SCHEDULE,
                        progress=False)
    assert_in_structure(model, result.structure())
    with torch.no_grad():
        after = float(nn.functional.mse_loss(model(x), y))
    assert after < 0.5 * before
    phases = [s.phase for s in result.history]
    assert phases == ["admm"] * 6 + ["finetune"] * 2
    residuals = [s.residual for s in result.history if s.phase == "admm"]
    assert residuals[-1] < residuals[0]  # the weights were pulled onto their structure
    rhos = [s.rho for s in result.history]
    assert rhos == sorted(rhos) and rhos[-1] <= 1.0
    summary = result.summary()
    assert [row["layer"] for row in summary] == ["0", "2"]
    assert summary[0]["pruned"] + summary[0]["unified"] + summary[0]["free"] == 24 * 4


def test_ddp_with_two_gloo_processes_gives_the_same_structure(tmp_path: Path) -> None:
    single = tiny_model()
    structure = run(single)
    multiprocessing = pytest.importorskip("torch.multiprocessing")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    multiprocessing.spawn(ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        saved = np.load(tmp_path / f"rank{rank}.npz")
        for name, labels in structure.items():
            np.testing.assert_array_equal(saved[f"labels/{name}"], labels)
        for name, parameter in single.state_dict().items():
            np.testing.assert_allclose(saved[f"weight/{name}"], parameter.numpy(), rtol=1e-9, atol=1e-12)


def ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = tiny_model()
        ddp = nn.parallel.DistributedDataParallel(model)
        structure = run(ddp, rank, world)
        arrays = {f"labels/{name}": labels for name, labels in structure.items()}
        arrays.update({f"weight/{name}": p.detach().numpy() for name, p in model.state_dict().items()})
        np.savez(Path(out_dir) / f"rank{rank}.npz", **arrays)
        # Both ranks reach teardown together: gloo can abort a process whose peer is already
        # tearing down its connections ("terminate called without an active exception").
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def test_fixed_projection_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    for shape, block in [((7, 10), (2, 4)), ((6, 3, 3, 3), (1, 9)), ((5, 9), (1, 4))]:
        weight = rng.standard_normal(shape)
        rows = shape[0]
        cols = int(np.prod(shape[1:]))
        labels = rng.integers(0, 3, (-(-rows // block[0]), -(-cols // block[1]))).astype(np.uint8)
        actual = fixed_projection(torch.from_numpy(weight), block, labels).numpy()
        np.testing.assert_allclose(actual, apply_labels(weight, block, labels), rtol=1e-12)


def test_targets_by_name_and_admm_arguments() -> None:
    model = tiny_model()
    layers = mswu_layers(model, {"2": MswuTarget("4x1", 0.25, 0.5)})
    assert [(name, target.block) for name, _, target in layers] == [("2", "4x1")]
    admm = MswuADMM(model, {"0": TARGET, "2": None})
    assert [layer.name for layer in admm.layers] == ["0"]
    layer = admm.layers[0]  # Z starts at the projection of W, U at zero
    expected = 0.5 * admm.rho * float((layer.weight - layer.z).detach().pow(2).sum())
    assert float(admm.penalty().detach()) == pytest.approx(expected)
    with pytest.raises(ValueError, match="no Linear"):
        MswuADMM(model, {"nothing": TARGET})
    with pytest.raises(ValueError, match="rho"):
        MswuADMM(model, TARGET, rho=0.0)
    with pytest.raises(ValueError, match="sparsity"):
        MswuTarget("1x4", 0.8, 0.5)
    with pytest.raises(ValueError, match="block"):
        MswuTarget("1by4")
    with pytest.raises(RuntimeError, match="harden"):
        admm.keep_structure()


def test_export_keeps_the_structure_bit_exact(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    admm = MswuADMM(model, MswuTarget("1x4", 0.5, 0.4))
    admm.harden()
    path = export_onnx(model, torch.randn(2, 1, 6, 6), tmp_path / "model.onnx", input_names=["image"],
                       output_names=["logits"])
    import onnx
    from onnx import numpy_helper

    initializers = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    for name, parameter in model.state_dict().items():
        assert initializers[name].tobytes() == parameter.numpy().tobytes(), name
    compressed = lsc_ort.rewrite(str(path))
    codecs = {t.name: lsc_ort.inspect(numpy_helper.to_array(t))["codec"] for t in compressed.graph.initializer
              if t.name.endswith("_lsc_blob")}
    assert codecs["3.weight_lsc_blob"] == "mswu"
    x = np.random.default_rng(0).standard_normal((3, 1, 6, 6)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    actual = lsc_ort.reference_evaluator(compressed).run(None, {"image": x})[0]
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
