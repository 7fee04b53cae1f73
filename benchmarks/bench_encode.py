"""Sizes and speed of the encodings (issue 2's targets).

Prints:
* on a random 90%-sparse 1024x1024 fp32 matrix: every codec's size relative to the entropy
  bound (target: lsc within 1.10x, and smaller than csr, relidx and bitmap);
* on the ADMM-LeNet per-layer profile of the LSC paper: compression ratio vs dense fp32 of every
  codec, headers included (target: lsc >= 55x; the paper's LSC reports 51.03x, the bound 58.5x);
* encoder and decoder throughput of lsc in M weights/s on one core (target: >= 50).

    python benchmarks/bench_encode.py
"""

from __future__ import annotations

import time

import numpy as np

import lsc_ort

ADMM_LENET = [("conv1", (20, 1, 5, 5), 0.20), ("conv2", (50, 20, 5, 5), 0.08), ("fc1", (500, 800), 0.009),
              ("fc2", (10, 500), 0.07)]


def pruned(shape: tuple[int, ...], kept: float, rng: np.random.Generator) -> np.ndarray:
    size = int(np.prod(shape))
    weight = np.zeros(size, np.float32)
    positions = rng.choice(size, round(kept * size), replace=False)
    weight[positions] = rng.standard_normal(positions.size).astype(np.float32)
    return weight.reshape(shape)


def best_of(fn, repeats: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    codecs = lsc_ort.available_codecs()

    weight = pruned((1024, 1024), 0.1, rng)
    bound = lsc_ort.entropy_bound(weight)
    print("90%-sparse 1024x1024 fp32: size / entropy bound "
          f"(bound {bound / 1024:.1f} KiB, dense {weight.nbytes / 1024:.0f} KiB)")
    for codec in codecs:
        size = len(lsc_ort.encode(weight, codec))
        print(f"  {codec:>7}: {size / 1024:8.1f} KiB  {size / bound:6.3f}x bound")

    print("\nADMM-LeNet profile (seeded random masks): compression ratio vs dense fp32, headers included")
    blobs = {codec: 0 for codec in codecs}
    dense = 0
    total_bound = 0.0
    for name, shape, kept in ADMM_LENET:
        layer = pruned(shape, kept, rng)
        dense += layer.nbytes
        total_bound += lsc_ort.entropy_bound(layer)
        for codec in codecs:
            blobs[codec] += len(lsc_ort.encode(layer, codec))
        info = lsc_ort.inspect(lsc_ort.encode(layer, "lsc"))
        print(f"  {name}: {shape}, {kept:.1%} kept -> lsc {info['total_bytes']} B, params {info['params']}")
    print(f"  entropy bound: {dense / total_bound:.2f}x   (LSC paper: 51.03x)")
    for codec in codecs:
        print(f"  {codec:>7}: {dense / blobs[codec]:6.2f}x")

    print("\nlsc throughput, one core (M weights/s)")
    for shape, sparsity in [((1024, 1024), 0.9), ((4096, 4096), 0.9), ((4096, 4096), 0.5), ((4096, 4096), 0.99),
                            ((3072, 768), 0.9)]:
        layer = pruned(shape, 1 - sparsity, rng)
        blob = lsc_ort.encode(layer, "lsc")
        encode = best_of(lambda layer=layer: lsc_ort.encode(layer, "lsc"))
        decode = best_of(lambda blob=blob: lsc_ort.decode(blob))
        print(f"  {shape[0]}x{shape[1]} at {sparsity:.0%}: encode {layer.size / encode / 1e6:7.1f}  "
              f"decode {layer.size / decode / 1e6:7.1f}  ({len(blob) / lsc_ort.entropy_bound(layer):.3f}x bound)")


if __name__ == "__main__":
    main()
