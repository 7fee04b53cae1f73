// Native micro-benchmark of the compute kernels on random sparse weights (no onnxruntime):
//   kernel_bench K N density batch [isa]
// Prints microseconds per product for every kernel variant the CPU supports (or the named one).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/layouts.h"
#include "../tests/random_columns.h"

using namespace lsc;

namespace {

template <typename Fn>
double Microseconds(Fn&& fn) {
  fn();
  double best = 1e30;
  for (int round = 0; round < 7; ++round) {
    int reps = 0;
    const auto start = std::chrono::steady_clock::now();
    double elapsed = 0;
    do {
      fn();
      ++reps;
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    } while (elapsed < 0.05);
    best = std::min(best, elapsed / reps);
  }
  return best * 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s K N density batch [isa]\n", argv[0]);
    return 2;
  }
  const int64_t K = std::atoll(argv[1]), N = std::atoll(argv[2]), batch = std::atoll(argv[4]);
  const double density = std::atof(argv[3]);
  std::mt19937 rng(1);
  const ColumnLists columns = RandomColumns(K, N, density, rng);
  std::vector<float> a(static_cast<size_t>(batch * K), 1.0f), y(static_cast<size_t>(batch * N));
  std::printf("K=%lld N=%lld density=%.3f nnz=%llu batch=%lld\n", (long long)K, (long long)N, density,
              (unsigned long long)columns.nnz(), (long long)batch);
  for (const KernelSet& set : AllKernelSets()) {
    if (!set.supported() || (argc > 5 && std::strcmp(argv[5], set.isa) != 0)) continue;
    const ColumnView view = columns.view();
    if (set.spmv_windowed != nullptr && batch <= 16) {
      WindowedLayout layout;
      BuildWindowedLayout(columns, set.lanes, set.window, &layout);
      const int64_t ldx = layout.windows * layout.window + layout.window;
      std::vector<float> x(static_cast<size_t>(ldx * batch), 1.0f);
      const WindowedView wv = layout.view();
      std::printf("  %-28s windowed  %9.1f us  (%zu rounds, fill %.2f)\n", set.name, Microseconds([&] {
                    for (int64_t r = 0; r < batch; r += kWindowedRows) {
                      set.spmv_windowed(wv, 0, layout.groups, x.data() + r * ldx, ldx,
                                        std::min<int64_t>(kWindowedRows, batch - r), 1.0f, nullptr, y.data() + r * N, N);
                    }
                  }),
                  layout.offset.size() / layout.lanes,
                  double(columns.nnz()) / double(layout.offset.size() ? layout.offset.size() : 1));
    }
    const int64_t T = set.batch_tile, tiles = (batch + T - 1) / T;
    const int64_t L = tiles == 1 ? std::min(T, (batch + 15) / 16 * 16) : T;
    std::vector<float> at(static_cast<size_t>(tiles * K * L)), yt(static_cast<size_t>(tiles * N * L));
    std::vector<int64_t> offsets(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) offsets[k] = k * L;
    const double kernel_only = Microseconds([&] {
      for (int64_t t = 0; t < tiles; ++t) {
        set.spmm_tile(view, 0, N, at.data() + t * K * L, offsets.data(), std::min(T, batch - t * T), 1.0f, nullptr,
                      yt.data() + t * N * L, L);
      }
    });
    const double with_transposes = Microseconds([&] {
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t rows = std::min(T, batch - t * T);
        set.transpose(a.data() + t * T * K, K, rows, K, at.data() + t * K * L, L);
        set.spmm_tile(view, 0, N, at.data() + t * K * L, offsets.data(), rows, 1.0f, nullptr, yt.data() + t * N * L,
                      L);
        set.transpose(yt.data() + t * N * L, L, N, rows, y.data() + t * T * N, N);
      }
    });
    std::printf("  %-28s columns   %9.1f us  (kernel only %.1f us, %.2f ns per non-zero and tile)\n", set.name,
                with_transposes, kernel_only, kernel_only * 1e3 / double(columns.nnz() * tiles));
  }
  return 0;
}
