// The table of unified-block kernel variants.
#include "kernels/unified.h"

#include <cstring>

#include "kernels/kernels.h"

namespace lsc {

const std::vector<UnifiedKernelSet>& AllUnifiedKernelSets() {
  // name, isa, signed sums of activation rows, accumulating column dot products (few rows),
  // accumulating broadcast tile (convolutions)
  static const std::vector<UnifiedKernelSet> sets = {
#if defined(__x86_64__) || defined(_M_X64)
      {"f32-unified/sums-avx512", "avx512", SignedSumsRowsAvx512, SpmvAccumulateAvx512, AccumulateTileAvx512},
      {"f32-unified/sums-avx2", "avx2", SignedSumsRowsAvx2, SpmvAccumulateAvx2, AccumulateTileAvx2},
#endif
      {"f32-unified/sums-scalar", "scalar", SignedSumsRowsScalar, SpmvAccumulateScalar, AccumulateTileScalar},
  };
  return sets;
}

const UnifiedKernelSet& SelectUnifiedKernels() {
  const char* isa = SelectKernels().isa;
  for (const UnifiedKernelSet& set : AllUnifiedKernelSets()) {
    if (std::strcmp(set.isa, isa) == 0) return set;
  }
  return AllUnifiedKernelSets().back();
}

}  // namespace lsc
