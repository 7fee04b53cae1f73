// Random sparse weights in execution layout, for the native tests and benchmark.
#pragma once

#include <cstdint>
#include <random>

#include "kernels/layouts.h"

namespace lsc {

inline ColumnLists RandomColumns(int64_t K, int64_t N, double density, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::normal_distribution<float> normal;
  ColumnLists lists;
  lists.K = K;
  lists.N = N;
  lists.ptr.push_back(0);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) {
      if (uniform(rng) < density) {
        lists.row.push_back(static_cast<uint32_t>(k));
        lists.value.push_back(normal(rng));
      }
    }
    lists.ptr.push_back(lists.row.size());
  }
  return lists;
}

}  // namespace lsc
