// Compute kernels on the execution layouts, one variant per instruction set, listed in one table
// (kernels.cc). Variants are named <dtype>-<op>/<layout>-<isa> as in XNNPACK; adding a SIMD
// variant is one file and one table line, and the tests run every variant the CPU supports.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/views.h"

namespace lsc {

struct KernelSet {
  const char* name;  // e.g. "f32-spmm/columns-avx512"
  const char* isa;   // "avx512", "avx2", "neon" or "scalar"
  bool (*supported)();
  int batch_tile;                // lanes of spmm_tile (<= 64)
  SpmmTileFn spmm_tile;
  SpmvColumnsFn spmv_columns;
  SpmvWindowedFn spmv_windowed;  // null: small batches use spmv_columns
  int lanes, window;             // windowed layout shape for spmv_windowed
  TransposeFn transpose;
  SpmmTiledFn spmm_tiled;        // batches and convolutions on the tiled layout
  int tiled_tile;                // lanes of spmm_tiled (<= 128)
  SpmvSlicedFn spmv_sliced;      // one or two rows on the sliced layout
  GatherFn gather;               // a convolution tile's activation rows, for spmm_tiled
  GeluFn gelu;                   // LSCMatMul's activation="Gelu"
  LayerNormFn layer_norm;        // LSCMatMul's norm="LayerNorm"
  AttentionRowsFn attention_rows;  // LSCAttention
  bool sliced_windows = false;     // spmv_sliced runs windowed slices at speed (not by a fallback)
};

// Every variant compiled in, best first.
const std::vector<KernelSet>& AllKernelSets();
// The best variant this CPU supports, no better than the ISA named by the environment variable
// LSC_ORT_ISA when set ("avx512", "avx2", "neon", "scalar"). Read once per call.
const KernelSet& SelectKernels();
// The layout one or two rows of activations run on, for a weight of `nonzeros`. The sliced
// kernel takes one gather per 16 non-zeros, which AMD's cores (Zen 4, Zen 5) execute as about 16
// loads. There a weight of kSlicedWindowsMinNonzeros or more runs on windowed slices (fewer bytes
// to stream from DRAM), a smaller one on the windowed layout (its fixed windows are loaded once
// per several rounds, faster from L2 and L3), where the variant has those kernels.
// LSC_ORT_GEMV = "sliced", "sliced-windows" or "windowed" overrides the choice where the variant
// has that kernel (for tests and measurements).
enum class GemvLayout { kSliced, kSlicedWindows, kWindowed };
constexpr uint64_t kSlicedWindowsMinNonzeros = uint64_t{1} << 20;
GemvLayout ChooseGemvLayout(const KernelSet& set, uint64_t nonzeros);

// Portable implementations, shared as fallbacks.
void SpmmTileScalar(const ColumnView&, int64_t, int64_t, const float*, const int64_t*, int64_t, float, const float*,
                    float*, int64_t);
void SpmvColumnsScalar(const ColumnView&, int64_t, int64_t, const float*, float, const float*, float*);
void TransposeScalar(const float*, int64_t, int64_t, int64_t, float*, int64_t);

}  // namespace lsc
