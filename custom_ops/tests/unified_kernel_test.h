// Native tests of the unified-block kernels (kernels/unified.h) of one ISA against a
// double-precision reference: signed sums of rows and of transposed tiles, and the accumulating
// broadcast tile. Included by kernel_test.cc.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/unified.h"
#include "random_columns.h"

namespace lsc {

inline int TestUnifiedKernels(const KernelSet& set) {
  const UnifiedKernelSet* found = nullptr;
  for (const UnifiedKernelSet& u : AllUnifiedKernelSets()) {
    if (std::strcmp(u.isa, set.isa) == 0) found = &u;
  }
  if (found == nullptr) return 0;
  const UnifiedKernelSet& u = *found;
  int failures = 0;
  auto expect = [&](const char* what, double actual, double expected, int64_t where) {
    if (std::fabs(actual - expected) > 1e-4 * (1 + std::fabs(expected))) {
      if (failures < 5) std::printf("FAIL %s %s at %lld: %g vs %g\n", u.name, what, (long long)where, actual, expected);
      ++failures;
    }
  };
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  for (int64_t K : {1, 7, 64, 200}) {
    // Signed sums of every length up to 64 (and the K limit).
    std::vector<uint32_t> first, length;
    std::vector<uint64_t> signs;
    for (int e = 0; e < 70; ++e) {
      const uint32_t len = 1 + static_cast<uint32_t>(rng() % std::min<int64_t>(64, K));
      first.push_back(static_cast<uint32_t>(rng() % (K - len + 1)));
      length.push_back(len);
      signs.push_back((static_cast<uint64_t>(rng()) << 32 | rng()) & (len == 64 ? ~0ull : (1ull << len) - 1));
    }
    const SignedSumView view{static_cast<int64_t>(first.size()), first.data(), length.data(), signs.data()};
    const int64_t E = view.count;
    auto exact = [&](const float* x, int64_t stride, int64_t e) {
      double sum = 0;
      for (uint32_t i = 0; i < length[e]; ++i) sum += ((signs[e] >> i) & 1 ? -1.0 : 1.0) * x[(first[e] + i) * stride];
      return sum;
    };
    for (int64_t rows : {1, 3, 17}) {
      std::vector<float> a(static_cast<size_t>(rows * K)), t(static_cast<size_t>(rows * E));
      for (float& v : a) v = normal(rng);
      u.signed_sums_rows(view, 0, E, a.data(), K, rows, t.data(), E);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t e = 0; e < E; ++e) expect("signed_sums_rows", t[r * E + e], exact(a.data() + r * K, 1, e), e);
      }
      u.signed_sums_rows(view, 5, 9, a.data(), K, rows, t.data(), 4);  // a sub-range
      for (int64_t e = 5; e < 9; ++e) expect("signed_sums_rows range", t[e - 5], exact(a.data(), 1, e), e);
      // Accumulating column dot products over the sums of these rows.
      for (double density : {0.05, 0.5, 1.0}) {
        const ColumnLists w = RandomColumns(E, 41, density, rng);
        std::vector<float> y(static_cast<size_t>(rows * 41)), expected(y.size());
        for (size_t i = 0; i < y.size(); ++i) y[i] = expected[i] = normal(rng);
        u.signed_sums_rows(view, 0, E, a.data(), K, rows, t.data(), E);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t n = 0; n < 41; ++n) {
            double sum = 0;
            for (uint64_t i = w.ptr[n]; i < w.ptr[n + 1]; ++i) sum += double(w.value[i]) * t[r * E + w.row[i]];
            expected[r * 41 + n] += static_cast<float>(1.5 * sum);
          }
        }
        u.spmv_accumulate(w.view(), 3, 41, t.data(), E, rows, 1.5f, y.data(), 41);
        u.spmv_accumulate(w.view(), 0, 3, t.data(), E, rows, 1.5f, y.data(), 41);
        for (size_t i = 0; i < y.size(); ++i) expect("spmv_accumulate", y[i], expected[i], static_cast<int64_t>(i));
      }
    }
    for (int64_t lanes : {int64_t{1}, int64_t{5}, int64_t{16}, int64_t{33}, int64_t{set.batch_tile}}) {
      const int64_t L = 64;
      std::vector<float> at(static_cast<size_t>(K * L)), tt(static_cast<size_t>(E * L));
      for (float& v : at) v = normal(rng);
      for (int64_t e = 0; e < E; ++e) {  // the signed sums of a transposed tile, as LSCConv stages them
        for (int64_t b = 0; b < lanes; ++b) tt[e * L + b] = static_cast<float>(exact(at.data() + b, L, e));
      }
      // Accumulate in two chunks of rows with cursors, onto existing values.
      const ColumnLists w = RandomColumns(E, 37, 0.3, rng);
      std::vector<float> yt(static_cast<size_t>(37 * L)), expected(yt.size());
      for (size_t i = 0; i < yt.size(); ++i) yt[i] = expected[i] = normal(rng);
      for (int64_t n = 0; n < 37; ++n) {
        for (int64_t b = 0; b < lanes; ++b) {
          double sum = 0;
          for (uint64_t i = w.ptr[n]; i < w.ptr[n + 1]; ++i) sum += double(w.value[i]) * tt[w.row[i] * L + b];
          expected[n * L + b] += static_cast<float>(0.5 * sum);
        }
      }
      std::vector<uint64_t> cursor(w.ptr.begin(), w.ptr.end() - 1);
      const uint32_t split = static_cast<uint32_t>(E / 2);
      u.accumulate_tile(w.view(), 0, 37, cursor.data(), split, tt.data(), L, 0, lanes, 0.5f, yt.data(), L);
      u.accumulate_tile(w.view(), 0, 37, cursor.data(), static_cast<uint32_t>(E), tt.data() + split * L, L, split,
                        lanes, 0.5f, yt.data(), L);
      for (int64_t n = 0; n < 37; ++n) {
        for (int64_t b = 0; b < lanes; ++b) expect("accumulate_tile", yt[n * L + b], expected[n * L + b], n);
        if (cursor[n] != w.ptr[n + 1]) {
          std::printf("FAIL %s accumulate_tile cursor of column %lld\n", u.name, (long long)n);
          ++failures;
        }
      }
    }
  }
  std::printf("%s %s\n", failures ? "checked" : "ok", u.name);
  return failures;
}

}  // namespace lsc
