// Native micro-benchmark of the compute kernels on random sparse weights (no onnxruntime):
//   kernel_bench K N density batch [isa]
// Prints microseconds per product for every kernel variant the CPU supports (or the named one).
// Knobs of the tiled kernel's layout, from the environment: LSC_BENCH_TILE (rows per batch tile,
// the ISA's widest by default; the MatMul op uses at most 64), LSC_BENCH_BLOCK (rows per K-block),
// LSC_BENCH_CHUNK (columns per chunk), LSC_BENCH_SHIFT=1 (activations off 64-byte alignment) and
// LSC_BENCH_L1ROWS=r (every non-zero reads one of r activation rows: the same work with the
// activations in L1, which bounds what fewer cache misses could give). Above 16 rows it also
// times the tiled kernel as LSCMatMul walks it (`tiled-op`: 64-row tiles, per-block offsets).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <time.h>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/layouts.h"
#include "kernels/sliced_layout.h"
#include "kernels/tiled_layout.h"
#include "../tests/random_columns.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

using namespace lsc;

namespace {

// This thread's CPU time, which time slices given to other processes on a shared host do not
// count (wall time with LSC_BENCH_WALL=1).
double Now() {
  if (std::getenv("LSC_BENCH_WALL")) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// `count` floats starting on a 64-byte boundary, as the ops' scratch buffers do.
struct AlignedFloats {
  std::vector<float> storage;
  float* data;
  explicit AlignedFloats(size_t count, float fill = 0.0f) : storage(count + 16, fill) {
    data = storage.data() + (16 - reinterpret_cast<uintptr_t>(storage.data()) / 4 % 16) % 16;
  }
};

template <typename Fn>
double Microseconds(Fn&& fn) {
  fn();
  double best = 1e30;
  for (int round = 0; round < 7; ++round) {
    int reps = 0;
    const double start = Now();
    double elapsed = 0;
    do {
      fn();
      ++reps;
      elapsed = Now() - start;
    } while (elapsed < 0.05);
    best = std::min(best, elapsed / reps);
  }
  return best * 1e6;
}

// Bytes per second of a plain streaming read of `bytes` (the same cache regime as a layout of
// that size read over and over).
double ReadBandwidth(size_t bytes) {
  std::vector<uint64_t> buffer(bytes / 8 + 8, 1);
  uint64_t sink = 0;
  const double us = Microseconds([&] {
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    const uint64_t* p = buffer.data();
    const size_t n = buffer.size() / 4 * 4;
    for (size_t i = 0; i < n; i += 4) {
      a0 ^= p[i];
      a1 ^= p[i + 1];
      a2 ^= p[i + 2];
      a3 ^= p[i + 3];
    }
    sink += a0 + a1 + a2 + a3;
  });
  if (sink == 42) std::printf(" ");
  return double(buffer.size() * 8) / (us * 1e-6);
}

#if defined(__x86_64__) || defined(_M_X64)
// zmm FMAs per second this core sustains when each takes one operand from L1, as those of the
// AVX-512 tiled kernel do (8 independent chains over 4 KiB of rows): its ceiling.
__attribute__((target("avx512f"))) double FmaFromL1PerSecond() {
  alignas(64) static float rows[1024];
  for (float& r : rows) r = 1.0f;
  const __m512 w = _mm512_set1_ps(1e-7f);
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  constexpr int kReps = 1 << 16;
  double best = 1e30;
  for (int round = 0; round < 7; ++round) {
    const double start = Now();
    for (int rep = 0; rep < kReps; ++rep) {
      const float* p = rows;
      __asm__ volatile("" : "+r"(p));  // the rows are read again each time
      for (int r = 0; r < 1024; r += 128) {
        a0 = _mm512_fmadd_ps(w, _mm512_load_ps(p + r), a0);
        a1 = _mm512_fmadd_ps(w, _mm512_load_ps(p + r + 16), a1);
        a2 = _mm512_fmadd_ps(w, _mm512_load_ps(p + r + 32), a2);
        a3 = _mm512_fmadd_ps(w, _mm512_load_ps(p + r + 48), a3);
        a4 = _mm512_fmadd_ps(w, _mm512_load_ps(p + r + 64), a4);
        a5 = _mm512_fmadd_ps(w, _mm512_load_ps(p + r + 80), a5);
        a6 = _mm512_fmadd_ps(w, _mm512_load_ps(p + r + 96), a6);
        a7 = _mm512_fmadd_ps(w, _mm512_load_ps(p + r + 112), a7);
      }
    }
    best = std::min(best, Now() - start);
  }
  alignas(64) float sums[16];
  _mm512_store_ps(sums, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                                      _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7))));
  if (sums[0] == 42) std::printf(" ");
  return kReps * 64.0 / best;
}
#endif

int64_t EnvInt(const char* name, int64_t otherwise) {
  const char* value = std::getenv(name);
  return value ? std::atoll(value) : otherwise;
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
      const int64_t ldx = WindowedStride(layout);
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
    for (bool windowed : {false, true}) {
      if (batch > kSlicedRows || (windowed && !set.sliced_windows) || K < kSlicedWindow) continue;
      SlicedLayout sliced;
      BuildSlicedLayout(columns, &sliced, windowed);
      AlignedFloats a_buffer(a.size(), 1.0f);
      float* ax = a_buffer.data;
      const Epilogue e{1.0f, nullptr, false};
      const double us = Microseconds([&] {
        set.spmv_sliced(sliced.view(), 0, sliced.groups, ax, K, batch, e, y.data(), N);
      });
      const double bandwidth = ReadBandwidth(sliced.bytes());
      std::printf("  %-28s %s %9.1f us  (%.2f B per non-zero, fill %.2f, %.1f GB/s = %.0f%% of a %.1f GB/s "
                  "read of as many bytes)\n",
                  set.name, windowed ? "sliced-win" : "sliced    ", us, double(sliced.bytes()) / double(columns.nnz()),
                  double(columns.nnz()) / double(sliced.rounds() * kSlicedLanes), sliced.bytes() / us * 1e-3,
                  100.0 * sliced.bytes() / (us * 1e-6) / bandwidth, bandwidth * 1e-9);
    }
    {
      const int64_t T = std::max<int64_t>(1, std::min<int64_t>(set.tiled_tile, EnvInt("LSC_BENCH_TILE", set.tiled_tile)));
      const int64_t tiles = (batch + T - 1) / T;
      const int64_t rows_per_block = EnvInt("LSC_BENCH_BLOCK", 24576 / (4 * T));
      const int64_t l1_rows = std::max<int64_t>(1, EnvInt("LSC_BENCH_L1ROWS", K));
      std::vector<int64_t> offsets(static_cast<size_t>(K));
      for (int64_t k = 0; k < K; ++k) offsets[k] = k % l1_rows * T;
      TiledLayout tiled;
      const int64_t chunk = EnvInt("LSC_BENCH_CHUNK", TiledChunk(T));
      BuildTiledLayout(columns, offsets.data(), UnitBlocks(K, 1, rows_per_block), chunk, &tiled);
      AlignedFloats at_buffer(static_cast<size_t>(tiles * K * T), 1.0f), yt_buffer(static_cast<size_t>(tiles * N * T));
      float *at_data = at_buffer.data, *yt_data = yt_buffer.data;
      const Epilogue e{1.0f, nullptr, false};
      const double kernel_only = Microseconds([&] {
        for (int64_t t = 0; t < tiles; ++t) {
          set.spmm_tiled(tiled.view(), 0, N, at_data + t * K * T + EnvInt("LSC_BENCH_SHIFT", 0), std::min(T, batch - t * T), e,
                         yt_data + t * N * T, T);
        }
      });
      // One FMA per 16 rows of a tile and non-zero.
      double fmas = 0;
      for (int64_t t = 0; t < tiles; ++t) fmas += double(columns.nnz()) * double((std::min(T, batch - t * T) + 15) / 16);
      std::printf("  %-28s tiled     %9.1f us  (%lld K-blocks, %.2f ns per non-zero and tile, %.2f G FMA/s)\n",
                  set.name, kernel_only, (long long)tiled.blocks, kernel_only * 1e3 / double(columns.nnz() * tiles),
                  fmas / kernel_only * 1e-3);
#if defined(__x86_64__) || defined(_M_X64)
      if (std::strcmp(set.isa, "avx512") == 0) {
        const double ceiling = FmaFromL1PerSecond();
        std::printf("  %-28s           %.0f%% of the %.2f G/s of FMAs with an operand from L1 this core sustains\n",
                    "", 100.0 * fmas / (kernel_only * 1e-6) / ceiling, ceiling * 1e-9);
      }
#endif
    }
    if (batch > 16) {
      // The walk LSCMatMul's batched product takes (ops/lsc_matmul.cc, ops/packed_weight.cc):
      // 64-row tiles, K-blocks of 48 KiB of transposed activations with offsets counted from
      // each block's first row (16-bit), chunks of as many columns, and per span of 256 KiB of
      // partial sums one call per K-block. The transposes of A and into Y are left out.
      const int64_t T = std::min<int64_t>(set.tiled_tile, 64), tiles = (batch + T - 1) / T;
      const int64_t block_rows = 49152 / (4 * T), chunk = block_rows;
      const int64_t span = std::max<int64_t>(1, 262144 / (4 * T * chunk)) * chunk;
      const int64_t l1_rows = std::max<int64_t>(1, EnvInt("LSC_BENCH_L1ROWS", K));
      const std::vector<int64_t> blocks = UnitBlocks(K, 1, block_rows);
      std::vector<int64_t> offsets(static_cast<size_t>(K));
      for (size_t b = 0; b + 1 < blocks.size(); ++b) {
        for (int64_t k = blocks[b]; k < blocks[b + 1]; ++k) offsets[k] = (k - blocks[b]) % l1_rows * T;
      }
      TiledLayout tiled;
      BuildTiledLayout(columns, offsets.data(), blocks, chunk, &tiled);
      AlignedFloats at_buffer(static_cast<size_t>(tiles * K * T), 1.0f), yt_buffer(static_cast<size_t>(tiles * N * T));
      float *at_data = at_buffer.data, *yt_data = yt_buffer.data;
      const Epilogue e{1.0f, nullptr, false};
      const double us = Microseconds([&] {
        for (int64_t t = 0; t < tiles; ++t) {
          for (int64_t s0 = 0; s0 < N; s0 += span) {
            for (int64_t b = 0; b < tiled.blocks; ++b) {
              set.spmm_tiled(tiled.blocks_view(b, b + 1, b > 0, b + 1 < tiled.blocks), s0, std::min(N, s0 + span),
                             at_data + (t * K + blocks[b]) * T, std::min(T, batch - t * T), e, yt_data + t * N * T, T);
            }
          }
        }
      });
      double fmas = 0;
      for (int64_t t = 0; t < tiles; ++t) fmas += double(columns.nnz()) * double((std::min(T, batch - t * T) + 15) / 16);
      std::printf("  %-28s tiled-op  %9.1f us  (%lld K-blocks, %d-bit offsets, %.2f G FMA/s; the op's walk)\n",
                  set.name, us, (long long)tiled.blocks, tiled.offset16.empty() ? 32 : 16, fmas / us * 1e-3);
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
