// libFuzzer target: the native blob reader, every codec's decoder and the execution layouts.
//
// The target repairs each input's size field and CRC first. Any input must then be rejected with
// a Status or accepted with every invariant the kernels rely on: decoded entries inside the
// matrix view with non-zero bit patterns and no more of them than the header declares, column
// lists sorted and in range, mswu's unified layouts (signed sums) inside the weight, and, on
// small weights, every kernel variant on every layout (sliced, windowed, tiled) equal to the
// column dot products. Memory and time must follow the input's size, not its declared shape
// (the run uses a 256 MiB budget; libFuzzer's -timeout and -rss_limit_mb catch the rest). Build
// with -DLSC_ORT_BUILD_FUZZERS=ON (custom_ops/fuzz/README.md).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "format/blob.h"
#include "format/codecs/mswu.h"
#include "format/crc32.h"
#include "format/decoder.h"
#include "kernels/kernels.h"
#include "kernels/layouts.h"
#include "kernels/sliced_layout.h"
#include "kernels/tiled_layout.h"
#include "kernels/unified_layout.h"

using namespace lsc;

namespace {

void Check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

uint32_t DtypeMask(const Blob& blob) { return blob.itemsize() == 4 ? 0xFFFFFFFFu : blob.itemsize() == 2 ? 0xFFFFu : 0xFFu; }

void CheckColumns(const ColumnLists& lists, uint64_t nnz) {
  Check(lists.ptr.size() == static_cast<size_t>(lists.N) + 1, "ptr has N + 1 entries");
  Check(lists.ptr.front() == 0 && lists.ptr.back() == nnz, "ptr runs from 0 to nnz");
  Check(lists.row.size() == nnz && lists.value.size() == nnz, "one row and value per non-zero");
  for (int64_t n = 0; n < lists.N; ++n) {
    Check(lists.ptr[n] <= lists.ptr[n + 1], "ptr is monotone");
    for (uint64_t i = lists.ptr[n]; i < lists.ptr[n + 1]; ++i) {
      Check(lists.row[i] < lists.K, "row inside K");
      Check(i == lists.ptr[n] || lists.row[i - 1] < lists.row[i], "rows strictly increasing in a column");
    }
  }
}

// Runs every kernel variant the CPU has on every layout of a small weight (sliced, windowed,
// tiled) and checks them against the column dot products, for a few rows of activations.
void RunKernels(const ColumnLists& lists) {
  if (lists.K > 4096 || lists.N > 4096) return;
  bool finite = true;
  for (float v : lists.value) finite = finite && std::isfinite(v) && std::fabs(v) < 1e30f;
  const int64_t K = lists.K, N = lists.N, M = 3;
  std::vector<float> a(static_cast<size_t>(M * K) + 1);
  for (size_t k = 0; k < a.size(); ++k) a[k] = static_cast<float>(k % 7) - 3.0f;
  std::vector<float> expected(static_cast<size_t>(M * N) + 1), y(static_cast<size_t>(M * N) + 1);
  for (int64_t m = 0; m < M; ++m) SpmvColumnsScalar(lists.view(), 0, N, a.data() + m * K, 1.0f, nullptr, expected.data() + m * N);
  auto compare = [&](const char* what, int64_t rows) {
    if (!finite) return;
    for (int64_t m = 0; m < rows; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        double scale = 1.0;
        for (uint64_t i = lists.ptr[n]; i < lists.ptr[n + 1]; ++i) scale += std::fabs(lists.value[i] * a[m * K + lists.row[i]]);
        Check(std::fabs(double(y[m * N + n]) - double(expected[m * N + n])) <= 1e-4 * scale, what);
      }
    }
  };
  const Epilogue epilogue{1.0f, nullptr, false};
  for (const KernelSet& set : AllKernelSets()) {
    if (!set.supported()) continue;
    SlicedLayout sliced;
    if (BuildSlicedLayout(lists, &sliced).ok()) {
      set.spmv_sliced(sliced.view(), 0, sliced.groups, a.data(), K, 2, epilogue, y.data(), N);
      compare("the sliced kernel matches the column lists", 2);
    }
    if (K >= kSlicedWindow && BuildSlicedLayout(lists, &sliced, true).ok()) {  // windows read within K
      set.spmv_sliced(sliced.view(), 0, sliced.groups, a.data(), K, 2, epilogue, y.data(), N);
      compare("the sliced kernel on windowed slices matches the column lists", 2);
    }
    const int64_t T = set.tiled_tile;
    std::vector<int64_t> offsets(static_cast<size_t>(K) + 1);
    for (int64_t k = 0; k < K; ++k) offsets[k] = k * T;
    TiledLayout tiled;
    if (K > 0 && BuildTiledLayout(lists, offsets.data(), UnitBlocks(K, 1, 64), TiledChunk(T), &tiled).ok()) {
      std::vector<float> at(static_cast<size_t>(K * T)), yt(static_cast<size_t>(N * T) + 1);
      set.transpose(a.data(), K, M, K, at.data(), T);
      set.spmm_tiled(tiled.view(), 0, N, at.data(), M, epilogue, yt.data(), T);
      set.transpose(yt.data(), T, N, M, y.data(), N);
      compare("the tiled kernel matches the column lists", M);
    }
    if (set.spmv_windowed == nullptr || !WindowedLayoutWorthwhile(lists, set.lanes, set.window)) continue;
    WindowedLayout layout;
    BuildWindowedLayout(lists, set.lanes, set.window, &layout);
    Check(layout.group_start.size() == static_cast<size_t>(layout.groups) + 1, "group_start size");
    Check(layout.offset.size() == layout.group_start.back() * static_cast<uint64_t>(set.lanes), "offset size");
    const int64_t ldx = WindowedStride(layout);
    std::vector<float> x(static_cast<size_t>(M * ldx));
    for (int64_t m = 0; m < M; ++m) StageWindowedRow(layout, a.data() + m * K, x.data() + m * ldx);
    set.spmv_windowed(layout.view(), 0, layout.groups, x.data(), ldx, M, 1.0f, nullptr, y.data(), N);
    compare("the windowed kernel matches the column lists", M);
  }
}

// The mswu execution layout: free non-zeros in column lists, unified blocks as signed sums of
// at most 64 inputs inside K, every entry a valid sum; together as many multiplies as the plain
// column lists' non-zeros or fewer.
void CheckMswuLayout(const MswuDecoder& decoder, bool k_is_row, const ColumnLists& all) {
  ColumnLists plain;
  std::unique_ptr<UnifiedLayout> unified;
  Check(BuildMswuLayout(decoder, k_is_row, &plain, &unified).ok(), "a valid mswu blob gets its unified layout");
  if (unified == nullptr) {
    Check(plain.nnz() == all.nnz(), "without unified blocks, the plain lists hold every non-zero");
    return;
  }
  Check(plain.nnz() <= all.nnz() && unified->columns.nnz() <= all.nnz(), "the layout follows the non-zeros");
  CheckColumns(plain, plain.nnz());
  CheckColumns(unified->columns, unified->columns.nnz());
  Check(unified->columns.K == unified->count() && unified->N == all.N, "entries index the signed sums");
  for (int64_t e = 0; e < unified->count(); ++e) {
    Check(unified->length[e] >= 1 && unified->length[e] <= kMaxSignedSumLength, "sum length in [1, 64]");
    Check(static_cast<int64_t>(unified->first[e]) + unified->length[e] <= unified->K, "sum inputs inside K");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* input, size_t size) {
  // Mutations would almost never keep the declared size and the CRC right, and the reader stops
  // there: repair both (in a copy) so mutations reach the header, codec and layout checks.
  std::vector<uint8_t> copy(input, input + size);
  if (size >= 20) {
    const uint64_t total = size;
    std::memcpy(copy.data() + 8, &total, 8);
    const uint32_t crc = Crc32(copy.data() + 20, size - 20);
    std::memcpy(copy.data() + 16, &crc, 4);
  }
  const uint8_t* data = copy.data();
  Blob blob;
  if (!ParseBlob(data, size, &blob).ok()) return 0;
  Check(blob.numel() >= 0 && blob.rows() >= 0 && blob.cols() >= 0, "non-negative sizes");
  Check(blob.rows() * blob.cols() == blob.numel() || blob.shape.size() < 2, "matrix view covers the tensor");
  std::unique_ptr<MatrixDecoder> decoder;
  if (!CreateDecoder(blob, &decoder).ok()) return 0;
  uint64_t seen = 0;
  const uint32_t mask = DtypeMask(blob);
  const Status decoded = DecodeAll(*decoder, [&](const std::vector<Entry>& entries) {
    for (const Entry& e : entries) {
      Check(e.row >= 0 && e.row < blob.rows() && e.col >= 0 && e.col < blob.cols(), "entry inside the matrix");
      Check(e.bits != 0 && (e.bits & ~mask) == 0, "entry is a non-zero bit pattern of the dtype");
    }
    seen += entries.size();
    Check(seen <= blob.nnz, "no more entries than the header declares");
  });
  if (!decoded.ok()) return 0;
  Check(seen == blob.nnz, "a valid blob decodes to its declared nnz");
  for (bool k_is_row : {true, false}) {
    ColumnLists lists;
    if (!BuildColumnLists(*decoder, k_is_row, &lists).ok()) continue;
    CheckColumns(lists, blob.nnz);
    RunKernels(lists);
    if (blob.codec == CodecId::kMswu) CheckMswuLayout(static_cast<const MswuDecoder&>(*decoder), k_is_row, lists);
  }
  return 0;
}
