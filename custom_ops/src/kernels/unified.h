// The unified-block kernels (mswu blobs), one variant per instruction set, listed in one table
// (kernels/unified.cc) in the style of kernels.cc. The variant follows the ISA of the main
// kernel set (SelectKernels, capped by LSC_ORT_ISA).
#pragma once

#include <vector>

#include "kernels/unified_views.h"

namespace lsc {

struct UnifiedKernelSet {
  const char* name;  // e.g. "f32-signed-sums/unified-avx512"
  const char* isa;   // as KernelSet::isa
  SignedSumsRowsFn signed_sums_rows;
  SpmvAccumulateFn spmv_accumulate;
  AccumulateTileFn accumulate_tile;
};

// Every variant compiled in, best first (each needs the CPU support of the KernelSet of its ISA).
const std::vector<UnifiedKernelSet>& AllUnifiedKernelSets();
// The variant of SelectKernels()'s ISA (scalar when there is none).
const UnifiedKernelSet& SelectUnifiedKernels();

}  // namespace lsc
