// The table of kernel variants and the run-time choice among them.
#include "kernels/kernels.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace lsc {
namespace {

bool Always() { return true; }

#if defined(__x86_64__) || defined(_M_X64)
bool HasAvx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("popcnt");
}
// F16C from CPUID (leaf 1, ECX bit 29): Clang's __builtin_cpu_supports knows no "f16c" before
// version 15.
bool HasF16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
}
bool HasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && HasF16c();
}
#endif

int Rank(const char* isa) {
  if (std::strcmp(isa, "avx512") == 0) return 3;
  if (std::strcmp(isa, "avx2") == 0 || std::strcmp(isa, "neon") == 0) return 2;
  return 1;
}

}  // namespace

const std::vector<KernelSet>& AllKernelSets() {
  // name, isa, supported, batch tile, spmm tile, spmv columns, spmv windowed, lanes, window, transpose,
  // spmm tiled, its tile, spmv sliced, gather, gelu, layer norm, attention
  static const std::vector<KernelSet> sets = {
#if defined(__x86_64__) || defined(_M_X64)
      {"f32-spmm/columns-avx512", "avx512", HasAvx512, 64, SpmmTileAvx512, SpmvColumnsScalar, SpmvWindowedAvx512, 16,
       32, TransposeAvx512, SpmmTiledAvx512, 128, SpmvSlicedAvx512, GatherAvx512, GeluAvx512,
       LayerNormAvx512, AttentionRowsAvx512, true},
      {"f32-spmm/columns-avx2", "avx2", HasAvx2, 32, SpmmTileAvx2, SpmvColumnsScalar, nullptr, 0, 0, TransposeScalar,
       SpmmTiledAvx2, 32, SpmvSlicedAvx2, GatherScalar, GeluScalar,
       LayerNormScalar, AttentionRowsAvx2},
#endif
#if defined(__aarch64__)
      {"f32-spmm/columns-neon", "neon", Always, 64, SpmmTileNeon, SpmvColumnsScalar, nullptr, 0, 0, TransposeScalar,
       SpmmTiledNeon, 64, SpmvSlicedScalar, GatherScalar, GeluScalar,
       LayerNormScalar, AttentionRowsNeon},
#endif
      {"f32-spmm/columns-scalar", "scalar", Always, 64, SpmmTileScalar, SpmvColumnsScalar, nullptr, 0, 0,
       TransposeScalar, SpmmTiledScalar, 64, SpmvSlicedScalar, GatherScalar, GeluScalar,
       LayerNormScalar, AttentionRowsScalar},
  };
  return sets;
}

const KernelSet& SelectKernels() {
  const char* cap = std::getenv("LSC_ORT_ISA");
  const int limit = cap && *cap ? Rank(cap) : 3;
  for (const KernelSet& set : AllKernelSets()) {
    if (Rank(set.isa) <= limit && set.supported()) return set;
  }
  return AllKernelSets().back();
}

bool CpuVendorIsAmd() {
#if defined(__x86_64__) || defined(_M_X64)
  static const bool amd = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return false;
    char vendor[13] = {};
    std::memcpy(vendor, &ebx, 4);
    std::memcpy(vendor + 4, &edx, 4);
    std::memcpy(vendor + 8, &ecx, 4);
    return std::strcmp(vendor, "AuthenticAMD") == 0 || std::strcmp(vendor, "HygonGenuine") == 0;
  }();
  return amd;
#else
  return false;
#endif
}

GemvLayout ChooseGemvLayout(const KernelSet& set, uint64_t nonzeros) {
  const char* named = std::getenv("LSC_ORT_GEMV");
  if (named && std::strcmp(named, "sliced") == 0) return GemvLayout::kSliced;
  if (named && std::strcmp(named, "sliced-windows") == 0 && set.sliced_windows) return GemvLayout::kSlicedWindows;
  if (named && std::strcmp(named, "windowed") == 0 && set.spmv_windowed) return GemvLayout::kWindowed;
  if (!CpuVendorIsAmd()) return GemvLayout::kSliced;  // gathers are fast elsewhere
  if (set.sliced_windows && (nonzeros >= kSlicedWindowsMinNonzeros || !set.spmv_windowed)) {
    return GemvLayout::kSlicedWindows;
  }
  return set.spmv_windowed ? GemvLayout::kWindowed : GemvLayout::kSliced;
}

}  // namespace lsc
