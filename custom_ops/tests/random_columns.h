// Random sparse weights in execution layout, for the native tests and benchmark.
#pragma once

#include <cstdint>
#include <cstring>
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

// float16 bit pattern of a float of moderate magnitude, rounded to nearest even.
inline uint32_t HalfOf(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint32_t sign = (b >> 16) & 0x8000u, m = b & 0x7FFFFF;
  const int e = static_cast<int>((b >> 23) & 0xFF) - 127 + 15;
  if (e <= 0) return sign;
  if (e >= 31) return sign | 0x7C00u;
  uint32_t h = sign | (static_cast<uint32_t>(e) << 10) | (m >> 13);
  if ((m & 0x1FFF) > 0x1000 || ((m & 0x1FFF) == 0x1000 && (h & 1))) ++h;
  return h;
}

}  // namespace lsc
