// The group sweep shared by the SIMD sliced kernels (avx512.cc, avx2.cc): kWays groups at a
// time, side by side for the rounds they all have (more sequential streams in flight stream
// faster from DRAM), then each group to its end.
//
// A cursor reads one group's streams and keeps its sums: Start(view, group), Prefetch()
// (once per two rounds), Round(u, x, ldx) (the next round into accumulator set u of 2), and
// Store(view, group, epilogue, y, ldy) when its group is done.
//
// The including file defines LSC_SWEEP_TARGET as its target attribute first, so the sweep is
// compiled for that ISA and the cursor's SIMD methods inline into it.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/views.h"

#ifndef LSC_SWEEP_TARGET
#error "define LSC_SWEEP_TARGET (the including kernel file's target attribute) first"
#endif

namespace lsc {
namespace {

template <int kWays, typename Cursor>
LSC_SWEEP_TARGET inline void SweepSlicedGroups(const SlicedView& w, int64_t g_begin, int64_t g_end, const float* x,
                                               int64_t ldx, const Epilogue& e, float* y, int64_t ldy) {
  Cursor cursor[kWays];
  for (int64_t g = g_begin; g < g_end; g += kWays) {
    const int ways = static_cast<int>(std::min<int64_t>(kWays, g_end - g));
    uint64_t rounds[kWays], common = ~uint64_t{0};
    for (int i = 0; i < ways; ++i) {
      cursor[i].Start(w, g + i);
      rounds[i] = w.group_start[g + i + 1] - w.group_start[g + i];
      common = std::min(common, rounds[i]);
    }
    uint64_t r = 0;
    if (ways == kWays) {
      for (; r + 2 <= common; r += 2) {
        for (int i = 0; i < kWays; ++i) cursor[i].Prefetch();
        for (int u = 0; u < 2; ++u) {
          for (int i = 0; i < kWays; ++i) cursor[i].Round(u, x, ldx);
        }
      }
    }
    for (int i = 0; i < ways; ++i) {
      uint64_t q = r;
      for (; q + 2 <= rounds[i]; q += 2) {
        cursor[i].Prefetch();
        cursor[i].Round(0, x, ldx);
        cursor[i].Round(1, x, ldx);
      }
      if (q < rounds[i]) cursor[i].Round(0, x, ldx);
      cursor[i].Store(w, g + i, e, y, ldy);
    }
  }
}

}  // namespace
}  // namespace lsc
