// Native tests of the compute kernels: every variant the CPU supports against a double-precision
// reference, on random sparse weights of many shapes (ctest; -DLSC_ORT_BUILD_TESTS=ON). Runs
// without onnxruntime, so it also runs cross-compiled (e.g. aarch64 under qemu for NEON).
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/layouts.h"
#include "random_columns.h"
#include "unified_kernel_test.h"

using namespace lsc;

namespace {

int failures = 0;

// Y[m][n] = alpha * sum_k A[m][k] W[k][n] + bias[n], in double.
std::vector<double> Reference(const ColumnLists& w, const std::vector<float>& a, int64_t M, float alpha,
                              const std::vector<float>& bias) {
  std::vector<double> y(static_cast<size_t>(M * w.N));
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < w.N; ++n) {
      double sum = 0;
      for (uint64_t i = w.ptr[n]; i < w.ptr[n + 1]; ++i) sum += double(a[m * w.K + w.row[i]]) * w.value[i];
      y[m * w.N + n] = alpha * sum + bias[n];
    }
  }
  return y;
}

void Expect(const char* what, const KernelSet& set, int64_t K, int64_t N, int64_t M, const std::vector<float>& y,
            const std::vector<double>& expected) {
  for (size_t i = 0; i < expected.size(); ++i) {
    if (std::fabs(y[i] - expected[i]) > 1e-4 * (1 + std::fabs(expected[i]))) {
      std::printf("FAIL %s %s K=%lld N=%lld M=%lld at %zu: %g vs %g\n", set.name, what, (long long)K, (long long)N,
                  (long long)M, i, double(y[i]), expected[i]);
      ++failures;
      return;
    }
  }
}

void TestVariant(const KernelSet& set) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  const int64_t shapes[][2] = {{1, 1}, {1, 17}, {17, 1}, {31, 33}, {32, 16}, {100, 37}, {257, 130}, {64, 300}};
  for (const auto& shape : shapes) {
    for (double density : {0.0, 0.1, 0.5, 1.0}) {
      const int64_t K = shape[0], N = shape[1];
      const ColumnLists w = RandomColumns(K, N, density, rng);
      std::vector<float> bias(static_cast<size_t>(N));
      for (float& b : bias) b = normal(rng);
      for (int64_t M : {1, 2, 3, 5, 8, 16, 17, 33, 64, 100}) {
        std::vector<float> a(static_cast<size_t>(M * K));
        for (float& v : a) v = normal(rng);
        const std::vector<double> expected = Reference(w, a, M, 0.5f, bias);
        // Batched: transpose, tile kernel, transpose back.
        const int64_t T = set.batch_tile;
        std::vector<float> at(static_cast<size_t>(K * T)), yt(static_cast<size_t>(N * T)), y(static_cast<size_t>(M * N));
        std::vector<int64_t> offsets(static_cast<size_t>(K));
        for (int64_t k = 0; k < K; ++k) offsets[k] = k * T;
        for (int64_t m0 = 0; m0 < M; m0 += T) {
          const int64_t rows = std::min(T, M - m0);
          set.transpose(a.data() + m0 * K, K, rows, K, at.data(), T);
          set.spmm_tile(w.view(), 0, N, at.data(), offsets.data(), rows, 0.5f, bias.data(), yt.data(), T);
          set.transpose(yt.data(), T, N, rows, y.data() + m0 * N, N);
        }
        Expect("spmm_tile", set, K, N, M, y, expected);
        // Row by row on column lists.
        for (int64_t m = 0; m < M; ++m) {
          set.spmv_columns(w.view(), 0, N, a.data() + m * K, 0.5f, bias.data(), y.data() + m * N);
        }
        Expect("spmv_columns", set, K, N, M, y, expected);
        if (set.spmv_windowed != nullptr) {
          WindowedLayout layout;
          BuildWindowedLayout(w, set.lanes, set.window, &layout);
          const int64_t ldx = layout.windows * layout.window + layout.window;
          std::vector<float> x(static_cast<size_t>(M * ldx), 0.0f);
          for (int64_t m = 0; m < M; ++m) std::copy(a.begin() + m * K, a.begin() + (m + 1) * K, x.begin() + m * ldx);
          for (int64_t m0 = 0; m0 < M; m0 += kWindowedRows) {
            set.spmv_windowed(layout.view(), 0, layout.groups, x.data() + m0 * ldx, ldx,
                              std::min<int64_t>(kWindowedRows, M - m0), 0.5f, bias.data(), y.data() + m0 * N, N);
          }
          Expect("spmv_windowed", set, K, N, M, y, expected);
        }
      }
    }
  }
}

}  // namespace

int main() {
  int tested = 0;
  for (const KernelSet& set : AllKernelSets()) {
    if (!set.supported()) {
      std::printf("skip %s (not supported by this CPU)\n", set.name);
      continue;
    }
    TestVariant(set);
    failures += TestUnifiedKernels(set);
    std::printf("%s %s\n", failures ? "checked" : "ok", set.name);
    ++tested;
  }
  std::printf("%d variants tested, %d failures\n", tested, failures);
  return failures == 0 && tested > 0 ? 0 : 1;
}
